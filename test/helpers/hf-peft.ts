import { inject } from "vitest";

/**
 * The hf-peft environment and tiny model the global setup prepared (test/global-setup.ts). A
 * machine where they could not be made fails these tests with the reason; none is skipped.
 */
export function hfPeftEnvironment(): { python: string; venv: string; model: string } {
  const prepared = inject("hfPeft");
  if ("problem" in prepared) throw new Error(prepared.problem);
  return prepared;
}

/** One thread per torch process: the tests run two files at a time on two cores. */
export const ONE_THREAD = { OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
