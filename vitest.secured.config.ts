import { defineConfig } from 'vitest/config';

// The secured suite (npm run test:secured, which starts the secured services): the refusals, the
// right to be forgotten and the secrets in the logs, then the crash tests, the end-to-end test and
// the recommender test again, every client with TLS and SASL (its own principal) and the ACLs on.
export default defineConfig({
  test: {
    include: [
      'tests/integration/security.test.ts',
      'tests/integration/runtime-at-least-once.test.ts',
      'tests/integration/runtime-exactly-once.test.ts',
      'tests/integration/end-to-end.test.ts',
      'tests/integration/recommender.test.ts',
      'tests/integration/gateway.test.ts',
    ],
    sequence: { shuffle: false },
    globalSetup: ['tests/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 120_000,
  },
});
