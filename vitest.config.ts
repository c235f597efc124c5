import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
    // Most files wait on real processes and studios rather than compute: two at a time keep two
    // cores busy (vitest's default, cores - 1, runs them one by one here; three at a time
    // starved the timing-bound restart tests).
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
