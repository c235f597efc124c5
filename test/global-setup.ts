import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../src/server/db/client";

const ROOT = join(import.meta.dirname, "..");
const TINY_LLAMA = join(ROOT, "test", "fixtures", "hf-peft", "tiny_llama.py");

declare module "vitest" {
  export interface ProvidedContext {
    /** The interpreter `studio setup hf-peft` prepared, or why there is none. */
    hfPeft: { python: string; venv: string; model: string } | { problem: string };
    /** An embedded database folder at the current migration, for studios not testing a first start. */
    pgliteTemplate: string;
  }
}

/**
 * Tests run the real programs (runner, trainers, CLI, server), so bundle them once first. Then
 * the hf-peft trainer's environment, made by the same `studio setup hf-peft` a person runs, and
 * a tiny Llama to train: both kept in a cache folder, named by what they were made from, so
 * that a rerun reuses them in about a second (STUDIO_TEST_CACHE moves the folder).
 */
export default async function setup(project: TestProject) {
  try {
    execFileSync(process.execPath, ["scripts/build-node.mjs"], { stdio: "inherit", cwd: ROOT });
  } catch {
    // The failing program was named above; tests that run it fail on their own, the rest still run.
    console.error("global setup: some programs did not build (see above)");
  }
  installSlurm();
  project.provide("hfPeft", prepareHfPeft());
  project.provide("pgliteTemplate", await preparePgliteTemplate());
}

/**
 * The Slurm tests start a single-node cluster of their own; installing its packages (as root,
 * from Debian) can take minutes, which no test's setup should have to fit in. A failure here is
 * only printed: those tests then fail with the script's reason.
 */
function installSlurm() {
  try {
    execFileSync(
      join(ROOT, "scripts", "slurm-cluster.sh"),
      ["install", join(cacheDir(), "slurm")],
      {
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
  } catch {
    console.error("global setup: the Slurm packages could not be installed (see above)");
  }
}

function cacheDir(): string {
  return process.env.STUDIO_TEST_CACHE || join(homedir(), ".cache", "finetune-studio-tests");
}

/**
 * A first start creates the embedded database from nothing (initdb in WebAssembly, then every
 * migration): seconds on these machines, paid by each of the suite's studios. Studios that are
 * not testing a first start begin from a copy of one database made exactly that way (the studio's
 * own openDatabase), named by the migrations and the PGlite release it was made with.
 */
async function preparePgliteTemplate(): Promise<string> {
  const migrations = join(ROOT, "drizzle");
  const key = createHash("sha256");
  for (const file of readdirSync(migrations).sort()) {
    if (file.endsWith(".sql")) key.update(file).update(readFileSync(join(migrations, file)));
  }
  const pglite = join(ROOT, "node_modules", "@electric-sql", "pglite", "package.json");
  key.update(JSON.parse(readFileSync(pglite, "utf8")).version);
  const template = join(cacheDir(), `pglite-template-${key.digest("hex").slice(0, 12)}`);
  if (existsSync(template)) return template;
  mkdirSync(cacheDir(), { recursive: true });
  const building = `${template}.${process.pid}.tmp`;
  rmSync(building, { recursive: true, force: true });
  const database = await openDatabase({ pgliteDir: building, log: () => {} });
  await database.close();
  try {
    renameSync(building, template);
  } catch (err) {
    // Another test run made it meanwhile: theirs is as good.
    rmSync(building, { recursive: true, force: true });
    if (!existsSync(template)) throw err;
  }
  return template;
}

function prepareHfPeft(): { python: string; venv: string; model: string } | { problem: string } {
  const cache = cacheDir();
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
