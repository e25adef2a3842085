import { defineConfig } from 'vitest/config';

// Tier 2: real Kafka and Redis, found or started by the global setup. One file at a time: the
// machine has 2 cores and the suites start broker-backed processes of their own.
export default defineConfig({
  test: {
    include: ['tests/integration/**/*.test.ts'],
    // the secured mode's own tests run in the secured suite (vitest.secured.config.ts)
    exclude: ['tests/integration/security.test.ts'],
    globalSetup: ['tests/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 120_000,
  },
});
