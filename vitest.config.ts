import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers on loopback; two cores are shared by them.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
