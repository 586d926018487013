import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure functions, fast, parallel) and `integration`
// (real daemons on loopback, one file at a time: the lab's addresses and
// ports are a shared resource).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'src/**/*.test.ts', 'sprints/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
