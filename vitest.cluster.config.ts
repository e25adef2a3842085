import { defineConfig } from 'vitest/config';

// The last tier of `npm test`: the pipeline on a 3-broker cluster that the test starts itself
// (infra/local.sh up kafka --brokers 3), with brokers SIGKILLed mid-stream. Its own config because
// it runs alone: three brokers and a processor take the machine's two cores.
export default defineConfig({
  test: {
    include: ['tests/cluster/**/*.test.ts'],
    globalSetup: ['tests/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
  },
});
