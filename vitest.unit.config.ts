import { defineConfig } from 'vitest/config';

// Tier 1: no service needed.
export default defineConfig({
  test: {
    include: ['tests/unit/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
