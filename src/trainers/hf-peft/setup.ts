import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { acquireHomeLock, HomeLockedError } from "../../platform/home-lock";
import { PACKAGE_ROOT } from "../../platform/package-root";
import { parsePipConfigList, pipSources } from "./pip-sources";
import { PreflightCache, type PreflightEntry } from "./preflight-cache";
import { requirementsHash, torchRequirementOf, withTorch } from "./requirements";
import {
  preflightEntrySchema,
  SETUP_RECORD_VERSION,
  type SetupRecord,
  writeSetupRecord,
} from "./setup-record";

const run = promisify(execFile);

export const REQUIREMENTS_PATH = join(
  PACKAGE_ROOT,
  "src",
  "trainers",
  "hf-peft",
  "requirements.txt",
);

/**
 * What train.py, torchrun.py, sample.py and merge.py import. pip is told not to compile the
 * packages (torch and transformers are tens of thousands of files; compiling them all takes most
 * of an install), and these imports, run once with bytecode writing on, compile just what the
 * trainers load, so that they start fast even where PYTHONDONTWRITEBYTECODE is set. Anything else
 * compiles when first used.
 */
const PRECOMPILE = [
  "import torch, torch.distributed.run, transformers, peft, accelerate, safetensors, tokenizers",
  "from torch.distributed.elastic.multiprocessing.errors import ChildFailedError",
  "from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments",
  "from peft import LoraConfig, PeftModel, get_peft_model",
].join("\n");

/** numpy 2.4, pinned in requirements.txt, needs Python 3.11. */
const MIN_PYTHON = [3, 11] as const;
/** How long a setup waits for another one building the same environment. */
const LOCK_WAIT_MS = 30 * 60_000;

export interface SetupOptions {
  home: string;
  /** The interpreter the environment is made from; default python3. */
  basePython?: string;
  /** The environment's folder; default STUDIO_HOME/venvs/hf-peft-<hash>. */
  venv?: string;
  /** Another exact torch pin (a CUDA build). */
  torch?: string;
  indexUrls?: string[];
  findLinks?: string[];
  /** pip's output only if it fails. */
  quiet?: boolean;
  /** Progress lines for a person (stderr); pip's own output goes to stderr too. */
  log: (line: string) => void;
}

/** Written inside the environment: made by this setup, and whether it finished. */
const stampSchema = z.object({
  version: z.literal(1),
  state: z.enum(["building", "ready"]),
  requirementsHash: z.string(),
});
type Stamp = z.infer<typeof stampSchema>;
const STAMP_FILE = "studio-setup.json";
/** The environment's last preflight report (a PreflightEntry), kept inside it. */
const PREFLIGHT_FILE = "studio-preflight.json";

/**
 * `studio setup hf-peft`: a virtual environment with the pinned requirements, checked by the
 * preflight and recorded in STUDIO_HOME/hf-peft.json for the studio to use. An environment that
 * is ready for the same requirements is reused as it is, so running it again takes a second.
 */
export async function setupHfPeft(options: SetupOptions): Promise<SetupRecord> {
  const { home, log } = options;
  const base = await describeBasePython(options.basePython ?? "python3");
  const requirements = withTorch(readFileSync(REQUIREMENTS_PATH, "utf8"), options.torch);
  const hash = requirementsHash(requirements, `${base.executable} ${base.version}`);
  const venv = resolve(options.venv ?? join(home, "venvs", `hf-peft-${hash.slice(0, 12)}`));
  const python = join(venv, "bin", "python");

  mkdirSync(dirname(venv), { recursive: true });
  const release = await lockEnvironment(`${venv}.lock`, log);
  try {
    const stamp = readStamp(venv);
    if (stamp?.state === "ready" && stamp.requirementsHash === hash) {
      log(`environment ${venv} is ready (same requirements); not reinstalling`);
    } else {
      if (stamp?.state === "ready") {
        throw new Error(
          `${venv} holds an environment made for other requirements; remove it or choose another --venv`,
        );
      }
      if (!stamp && existsSync(venv) && readdirSync(venv).length > 0) {
        throw new Error(`${venv} exists and was not made by "studio setup"; choose another --venv`);
      }
      // Absent, or left half built by a setup that did not finish: build it from the start.
      rmSync(venv, { recursive: true, force: true });
      await buildEnvironment({ ...options, base, venv, python, requirements, hash });
    }
  } finally {
    release();
  }

  // The environment keeps its last preflight report: another home set up with the same
  // environment, or the same setup run again, imports nothing while the packages are unchanged.
  const cache = new PreflightCache();
  const kept = readKeptPreflight(venv);
  if (kept) cache.remember(python, kept);
  const result = await cache.check(python);
  const entry = cache.entry(python);
  if (entry && entry !== kept) writeJsonAtomic(join(venv, PREFLIGHT_FILE), entry);
  if (!result.ok || !entry) {
    throw new Error(
      `the environment ${venv} cannot run the hf-peft trainer: ${result.problems.join("; ") || "its interpreter could not be found"}`,
    );
  }
  const record: SetupRecord = {
    version: SETUP_RECORD_VERSION,
    python,
    venv,
    requirementsHash: hash,
    torchRequirement: torchRequirementOf(requirements),
    setupAt: new Date().toISOString(),
    preflight: entry,
  };
  writeSetupRecord(home, record);
  return record;
}

async function describeBasePython(
  python: string,
): Promise<{ executable: string; version: string }> {
  const code =
    "import json, sys; print(json.dumps({'executable': sys.executable, 'version': '.'.join(map(str, sys.version_info[:3]))}))";
  let stdout: string;
  try {
    ({ stdout } = await run(python, ["-c", code], { timeout: 60_000 }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error(`Python interpreter not found: ${python} (give one with --python)`);
    }
    throw new Error(`${python} does not run: ${e.stderr?.trim() || e.message}`);
  }
  const base = JSON.parse(stdout) as { executable: string; version: string };
  const [major, minor] = base.version.split(".").map(Number);
  if (major! < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor! < MIN_PYTHON[1])) {
    throw new Error(
      `${python} is Python ${base.version}; the pinned packages need ${MIN_PYTHON.join(".")} or newer (give another with --python)`,
    );
  }
  return base;
}

async function buildEnvironment(o: {
  base: { executable: string; version: string };
  venv: string;
  python: string;
  requirements: string;
  hash: string;
  torch?: string;
  indexUrls?: string[];
  findLinks?: string[];
  quiet?: boolean;
  log: (line: string) => void;
}) {
  o.log(`creating ${o.venv} with Python ${o.base.version} (${o.base.executable})`);
  await stream(o.base.executable, ["-m", "venv", o.venv], "python -m venv", o.quiet ?? false);
  writeStamp(o.venv, { version: 1, state: "building", requirementsHash: o.hash });
  const requirementsFile = join(o.venv, "requirements.txt");
  writeFileSync(requirementsFile, o.requirements);

  const { stdout: config } = await run(o.python, ["-m", "pip", "config", "list"], {
    env: pipEnv(),
    timeout: 60_000,
  });
  const sources = pipSources(parsePipConfigList(config), {
    indexUrls: o.indexUrls ?? [],
    findLinks: o.findLinks ?? [],
    torchRequirement: torchRequirementOf(o.requirements),
  });
  o.log(
    `installing ${torchRequirementOf(o.requirements)} and the pinned packages from ${sources.description}`,
  );
  await stream(
    o.python,
    ["-m", "pip", "install", "--no-compile", "-r", requirementsFile, ...sources.args],
    "pip install",
    o.quiet ?? false,
  );
  o.log("compiling what the trainer imports");
  const { PYTHONDONTWRITEBYTECODE: _, ...compiling } = pipEnv();
  await stream(
    o.python,
    ["-c", PRECOMPILE],
    "compiling the trainer's imports",
    o.quiet ?? false,
    compiling,
  );
  writeStamp(o.venv, { version: 1, state: "ready", requirementsHash: o.hash });
}

/** pip never asks PyPI about its own version, and never waits for input. */
function pipEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
}

/** How much of a quiet program's output is kept to show when it fails. */
const QUIET_TAIL_BYTES = 32 * 1024;

/**
 * Runs a program with its output on this process's stderr (stdout may carry --json); quiet, the
 * output is kept and shown only when the program fails.
 */
function stream(
  file: string,
  args: string[],
  what: string,
  quiet: boolean,
  env: NodeJS.ProcessEnv = pipEnv(),
): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(file, args, {
      stdio: quiet ? ["ignore", "pipe", "pipe"] : ["ignore", 2, 2],
      env,
    });
    let tail = "";
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-QUIET_TAIL_BYTES);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("error", (err) => reject(new Error(`${what} could not start: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolveRun();
      if (tail) process.stderr.write(tail.endsWith("\n") ? tail : `${tail}\n`);
      reject(
        new Error(
          `${what} failed (${signal ?? `exit code ${code}`}); its output is above, and running the setup again starts this environment afresh`,
        ),
      );
    });
  });
}

function readKeptPreflight(venv: string): PreflightEntry | null {
  try {
    const parsed = preflightEntrySchema.safeParse(
      JSON.parse(readFileSync(join(venv, PREFLIGHT_FILE), "utf8")),
    );
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function readStamp(venv: string): Stamp | null {
  try {
    const parsed = stampSchema.safeParse(JSON.parse(readFileSync(join(venv, STAMP_FILE), "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function writeStamp(venv: string, stamp: Stamp) {
  writeJsonAtomic(join(venv, STAMP_FILE), stamp);
}

/** One setup per environment at a time; a second waits for the first and then reuses its work. */
async function lockEnvironment(lockPath: string, log: (line: string) => void) {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      return await acquireHomeLock(lockPath, "studio setup hf-peft");
    } catch (err) {
      if (!(err instanceof HomeLockedError) || Date.now() > deadline) throw err;
      if (!told) {
        log(`waiting for another setup of this environment (pid ${err.holder.pid}) to finish`);
        told = true;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
