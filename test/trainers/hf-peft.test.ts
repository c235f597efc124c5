import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PREFLIGHT_SCRIPT, runPreflight } from "../../src/trainers/hf-peft/preflight";
import { PreflightCache } from "../../src/trainers/hf-peft/preflight-cache";
import { hfPeftScriptPath } from "../../src/trainers/launch";
import { hfPeftEnvironment } from "../helpers/hf-peft";

const TRAIN_SCRIPT = hfPeftScriptPath(join(import.meta.dirname, "../../dist"));
const python = "python3";

describe("hf-peft trainer scripts", () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-hf-peft-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("compiles train.py, checkpoints.py and preflight.py", () => {
    const checkpoints = join(dirname(TRAIN_SCRIPT), "checkpoints.py");
    for (const script of [TRAIN_SCRIPT, checkpoints, PREFLIGHT_SCRIPT]) {
      // Compiled into the temp folder so that no __pycache__ lands in the checkout.
      execFileSync(python, [
        "-c",
        "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
        script,
        join(dir, "out.pyc"),
      ]);
    }
  });

  it("keeps train.py's templates identical to rowToText", () => {
    // Real Python, no packages needed: row_to_text is imported from train.py and compared.
    const rows = [
      ["alpaca", { instruction: "Add.", input: "1 + 2", output: "3" }],
      ["alpaca", { instruction: "Hi.", input: " ", output: "hi" }],
      [
        "chat",
        {
          messages: [
            { role: "user", content: "2+2?" },
            { role: "assistant", content: "4" },
          ],
        },
      ],
      ["text", { text: "as is" }],
    ] as const;
    const code = [
      "import importlib.util, json, sys",
      "spec = importlib.util.spec_from_file_location('train', sys.argv[1])",
      "train = importlib.util.module_from_spec(spec); spec.loader.exec_module(train)",
      "print(json.dumps([train.row_to_text(r, f) for f, r in json.loads(sys.argv[2])]))",
    ].join("\n");
    const out = execFileSync(python, ["-c", code, TRAIN_SCRIPT, JSON.stringify(rows)], {
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toEqual([
      "### Instruction:\nAdd.\n### Input:\n1 + 2\n### Response:\n3",
      "### Instruction:\nHi.\n### Response:\nhi",
      "<|user|>\n2+2?\n<|assistant|>\n4",
      "as is",
    ]);
  });

  it("preflight reports the missing packages as problems (a real Python without site-packages)", async () => {
    // -S leaves out site-packages, so the packages are missing here whatever this machine has.
    const bare = join(dir, "bare-python");
    writeFileSync(bare, `#!/bin/sh\nexec ${python} -S "$@"\n`);
    chmodSync(bare, 0o755);
    const result = await runPreflight(bare);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual(
      ["torch", "transformers", "peft", "accelerate"].map(
        (name) => `${name} is not installed for ${result.details.executable}`,
      ),
    );
    expect(result.details).toMatchObject({
      python: expect.stringMatching(/^3\.\d+\.\d+$/),
      packages: { torch: { ok: false, version: null } },
      cuda: { available: false, device_count: 0, version: null, devices: [] },
    });
  });

  it("preflight finds every package in the environment `studio setup hf-peft` prepared", async () => {
    const result = await runPreflight(hfPeftEnvironment().python);
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    for (const name of ["torch", "transformers", "peft", "accelerate"]) {
      expect((result.details.packages as Record<string, unknown>)[name]).toEqual({
        ok: true,
        version: expect.stringMatching(/^\d+\.\d+/),
      });
    }
  });

  it('train.py says why it fails in a "failed" event before it exits', () => {
    // A checkpoint that is not there fails before torch is imported: any python3 will do.
    const task = join(dir, "failing-task");
    mkdirSync(task);
    const config = {
      taskId: "t",
      attempt: 2,
      trainer: "hf-peft",
      model: "m",
      dataset: { path: join(task, "d.jsonl"), format: "alpaca" },
      taskDir: task,
      hyperparameters: {},
      resumeFrom: join(task, "checkpoints", "checkpoint-9"),
    };
    writeFileSync(join(task, "config.json"), JSON.stringify(config));
    const result = spawnSync(python, [TRAIN_SCRIPT, "--task-dir", task], { encoding: "utf8" });
    expect(result.status).toBe(1);
    const events = readFileSync(join(task, "progress.jsonl"), "utf8").trim().split("\n");
    expect(events.map((line) => JSON.parse(line))).toEqual([
      {
        event: "failed",
        time: expect.any(Number),
        reason:
          "cannot resume: no checkpoint to resume from verifies (checkpoints/checkpoint-9: does not exist)",
      },
    ]);
  });

  it("studio setup hf-peft refuses what it cannot use, before installing anything", () => {
    const cli = join(import.meta.dirname, "../../dist/cli.js");
    const setup = (...args: string[]) =>
      spawnSync(process.execPath, [cli, "setup", "hf-peft", ...args], {
        encoding: "utf8",
        env: { ...process.env, STUDIO_HOME: join(dir, "setup-home") },
      });
    const missing = setup("--python", join(dir, "no-such-python"));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(
      `studio: Python interpreter not found: ${join(dir, "no-such-python")} (give one with --python)`,
    );
    expect(setup("--torch", "torch>=2").stderr).toContain(
      'studio: --torch takes an exact pin such as torch==2.13.0, not "torch>=2"',
    );
    const foreign = join(dir, "not-an-environment");
    mkdirSync(foreign);
    writeFileSync(join(foreign, "notes.txt"), "mine");
    expect(setup("--venv", foreign).stderr).toContain(
      `studio: ${foreign} exists and was not made by "studio setup"; choose another --venv`,
    );
    expect(readFileSync(join(foreign, "notes.txt"), "utf8")).toBe("mine");
  });

  it("preflight says so when the interpreter is missing", async () => {
    const result = await runPreflight(join(dir, "no-such-python"));
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([
      `Python interpreter not found: ${join(dir, "no-such-python")} (run "studio setup hf-peft", or set STUDIO_PYTHON to a Python 3 with torch, transformers and peft)`,
    ]);
  });

  it("preflight says so when the interpreter is not a working Python", async () => {
    const broken = join(dir, "broken-python");
    writeFileSync(broken, "#!/bin/sh\necho 'oops' >&2\nexit 3\n");
    chmodSync(broken, 0o755);
    const result = await runPreflight(broken);
    expect(result.ok).toBe(false);
    expect(result.problems[0]).toMatch(/could not run the preflight check/);
    expect(result.details.stderr).toBe("oops");
  });

  it("preflight gives up after its timeout", async () => {
    const slow = join(dir, "slow-python");
    writeFileSync(slow, "#!/bin/sh\nexec sleep 5\n");
    chmodSync(slow, 0o755);
    const result = await runPreflight(slow, { timeoutMs: 200 });
    expect(result.problems).toEqual([`the preflight check with ${slow} took more than 0.2 s`]);
  });

  it("caches a preflight per interpreter until a package is installed or removed", async () => {
    // A real environment of its own (no pip: made in a fraction of a second), so this test can
    // install a package by hand.
    const venv = join(dir, "venv");
    execFileSync(python, ["-m", "venv", "--without-pip", venv]);
    const venvPython = join(venv, "bin", "python");
    let runs = 0;
    const cache = new PreflightCache((interpreter) => {
      runs++;
      return runPreflight(interpreter);
    });
    const first = await cache.check(venvPython);
    expect(first.ok).toBe(false);
    const [site] = first.details.site_dirs as string[];
    expect(site).toMatch(/site-packages$/);
    const [again] = await Promise.all([cache.check(venvPython), cache.check(venvPython)]);
    expect(again).toBe(first);
    expect(runs).toBe(1);

    // "Installing" peft: a package folder appears in site-packages, so the result is stale.
    mkdirSync(join(site!, "peft"));
    writeFileSync(join(site!, "peft", "__init__.py"), "__version__ = '0.0.1'\n");
    const after = await cache.check(venvPython);
    expect(runs).toBe(2);
    expect((after.details.packages as Record<string, unknown>).peft).toEqual({
      ok: true,
      version: "0.0.1",
    });
    await cache.check(venvPython);
    expect(runs).toBe(2);

    // An interpreter that cannot be found is asked again each time.
    const missing = join(dir, "missing-python");
    await cache.check(missing);
    await cache.check(missing);
    expect(runs).toBe(4);
  });
});
