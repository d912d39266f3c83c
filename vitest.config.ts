import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The machines have two cores; real servers and databases per file make more workers slower, not faster.
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
  },
});
