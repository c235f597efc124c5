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
    // Most tests drive whole studios and real processes; a loaded machine has made one take 35 s.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The built-in trainer takes every core by default; with two test files at once on two
    // cores that starved the studios the other file was timing. Tests that are about threads
    // set their own count.
    // torch (the hf-peft tests) likewise. Studios here are driven through the API and the CLI:
    // their page's server loads only if a test asks for a page.
    env: { STUDIO_BUILTIN_THREADS: "1", OMP_NUM_THREADS: "1", STUDIO_PAGE_ON_DEMAND: "1" },
  },
});
