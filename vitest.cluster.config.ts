import { defineConfig } from 'vitest/config';

// Tier 3, not part of `npm test`: the pipeline on a 3-broker cluster that the test starts itself
// (infra/local.sh up kafka --brokers 3), with brokers SIGKILLed mid-stream. It is kept out of the
// default run because it exposes open defects under a broker failover with kafkajs (records
// repeated by the exactly-once pass-through, or left unprocessed; README, Reliability), and a
// failing run would hide every other result. `npm run test:cluster` runs it.
export default defineConfig({
  test: {
    include: ['tests/cluster/**/*.test.ts'],
    globalSetup: ['tests/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
  },
});
