import { defineConfig } from 'vitest/config';

// The Docker tier (npm run test:docker, which starts the engine and builds the images first):
// the images and the compose stack on a real Docker engine. One file at a time: a stack holds a
// broker, Redis, Prometheus and the stages on 2 cores.
export default defineConfig({
  test: {
    include: ['tests/docker/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
