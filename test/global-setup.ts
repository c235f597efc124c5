import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

const ROOT = join(import.meta.dirname, "..");
const TINY_LLAMA = join(ROOT, "test", "fixtures", "hf-peft", "tiny_llama.py");

declare module "vitest" {
  export interface ProvidedContext {
    /** The interpreter `studio setup hf-peft` prepared, or why there is none. */
    hfPeft: { python: string; venv: string; model: string } | { problem: string };
  }
}

/**
 * Tests run the real programs (runner, trainers, CLI, server), so bundle them once first. Then
 * the hf-peft trainer's environment, made by the same `studio setup hf-peft` a person runs, and
 * a tiny Llama to train: both kept in a cache folder, named by what they were made from, so
 * that a rerun reuses them in about a second (STUDIO_TEST_CACHE moves the folder).
 */
export default function setup(project: TestProject) {
  try {
    execFileSync(process.execPath, ["scripts/build-node.mjs"], { stdio: "inherit", cwd: ROOT });
  } catch {
    // The failing program was named above; tests that run it fail on their own, the rest still run.
    console.error("global setup: some programs did not build (see above)");
  }
  project.provide("hfPeft", prepareHfPeft());
}

function prepareHfPeft(): { python: string; venv: string; model: string } | { problem: string } {
  const cache = process.env.STUDIO_TEST_CACHE || join(homedir(), ".cache", "finetune-studio-tests");
  try {
    mkdirSync(cache, { recursive: true });
    const out = execFileSync(
      process.execPath,
      [join(ROOT, "dist", "cli.js"), "setup", "hf-peft", "--quiet", "--json"],
      {
        cwd: ROOT,
        env: { ...process.env, STUDIO_HOME: join(cache, "home") },
        stdio: ["ignore", "pipe", "inherit"],
        encoding: "utf8",
      },
    );
    const record = JSON.parse(out) as { python: string; venv: string; requirementsHash: string };
    const model = join(cache, `tiny-llama-${modelKey(record.requirementsHash)}`);
    if (!existsSync(model)) {
      // Built aside and renamed into place, so a run stopped halfway leaves no model that looks whole.
      const building = `${model}.${process.pid}.tmp`;
      rmSync(building, { recursive: true, force: true });
      try {
        execFileSync(record.python, [TINY_LLAMA, building, join(ROOT, "data", "sample.jsonl")], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, OMP_NUM_THREADS: "1", HF_HUB_OFFLINE: "1" },
        });
      } catch (err) {
        const stderr = String((err as { stderr?: Buffer }).stderr ?? "").slice(-4000);
        throw new Error(`tiny_llama.py failed: ${stderr || (err as Error).message}`);
      }
      try {
        renameSync(building, model);
      } catch (err) {
        // Another test run built it meanwhile: theirs is as good.
        rmSync(building, { recursive: true, force: true });
        if (!existsSync(model)) throw err;
      }
    }
    return { python: record.python, venv: record.venv, model };
  } catch (err) {
    const problem = `the hf-peft test environment could not be prepared: ${(err as Error).message}`;
    console.error(`global setup: ${problem}`);
    return { problem };
  }
}

/** The model changes with the script that builds it and the packages it is built with. */
function modelKey(requirementsHash: string): string {
  return createHash("sha256")
    .update(readFileSync(TINY_LLAMA))
    .update(requirementsHash)
    .digest("hex")
    .slice(0, 12);
}
