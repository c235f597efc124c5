import { execFile, execFileSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCheckpoint } from "../../src/trainers/checkpoints/folder";
import { hfPeftEnvironment, ONE_THREAD } from "../helpers/hf-peft";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../dist/cli.js");

/**
 * The uninterrupted and the interrupted run train with these: 23 steps an epoch (180 training
 * rows of the sample, batch 8), 92 steps, about 20 ms each on one core of an idle machine. The
 * loss is logged at every step, so the curves compare step for step; dropout is on, so the RNG
 * state matters; warmup then linear decay, so the scheduler's does; four epochs, so the data
 * order of the epochs after the stop does.
 */
const SETTINGS = {
  epochs: 4,
  batchSize: 8,
  maxLength: 128,
  learningRate: 0.003,
  loraRank: 8,
  loraAlpha: 16,
  loraDropout: 0.05,
  warmupRatio: 0.05,
  seed: 42,
  evalSplit: 0.1,
  evalSteps: 23,
  saveSteps: 23,
  loggingSteps: 1,
};
const TOTAL_STEPS = 92;
/** How far an interrupted and resumed run's loss may be from the uninterrupted one's, at any step. */
const RESUME_TOLERANCE = 1e-3;

/**
 * The Hugging Face PEFT trainer through the studio, as a person uses it: set up with
 * `studio setup hf-peft` (the environment the global setup made is reused, as a second setup on
 * one machine would), then tasks created and started through the studio's API, training a tiny
 * Llama on the CPU.
 */
describe("the hf-peft trainer through the studio", () => {
  const env = hfPeftEnvironment();
  let studio: TestStudio;
  const bin = mkdtempSync(join(tmpdir(), "bare-python-"));

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", {
      ...ONE_THREAD,
      STUDIO_PYTHON: "",
      HF_HUB_OFFLINE: "1",
      // The uninterrupted and the interrupted run train side by side.
      STUDIO_CONCURRENCY: "2",
      // Until the setup runs, the studio's python3 is one without site-packages, so "not set up"
      // holds whatever this machine's own python3 has installed.
      PATH: `${bareBin(bin)}:${process.env.PATH}`,
    });
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
    rmSync(bin, { recursive: true, force: true });
  });

  it("says it is not set up and how, refuses to start, then runs once `studio setup hf-peft` ran", async () => {
    const before = await studio.client.studio.trainers.query();
    expect(before.hfPeft).toMatchObject({
      ok: false,
      source: "default",
      python: "python3",
      setupCommand: "studio setup hf-peft",
    });
    expect(before.hfPeft.problems).toContainEqual(expect.stringMatching(/^torch is not installed/));

    const task = await studio.client.task.create.mutate({
      name: "peft",
      model: env.model,
      dataset: "sample",
      trainer: "hf-peft",
    });
    await expect(studio.client.task.start.mutate({ id: task.id })).rejects.toThrow(
      /the Python trainer cannot run here \(python3\): torch is not installed.*; set it up with "studio setup hf-peft"/,
    );

    // The person's command, while the studio runs: it reuses a ready environment of the same
    // requirements, checks it and records it in this studio's home.
    const { stdout } = await run(process.execPath, [CLI, "setup", "hf-peft", "--venv", env.venv], {
      env: { ...process.env, STUDIO_HOME: studio.home },
    });
    expect(stdout).toContain(`python:      ${env.python} (Python 3.`);
    expect(stdout).toMatch(/torch: {7}2\.13\.0\+cpu, CPU only/);
    expect(stdout).toContain(`recorded in: ${join(studio.home, "hf-peft.json")}`);

    const after = await studio.client.studio.trainers.query();
    expect(after.hfPeft).toMatchObject({ ok: true, source: "setup", python: env.python });
    expect(after.hfPeft.summary.packages.torch).toBe("2.13.0+cpu");
    expect(after.hfPeft.summary.cuda.devices).toEqual([]);
    await studio.client.task.cancel.mutate({ id: task.id });
  }, 120_000);

  let reference: string;
  let interrupted: string;
  /** The interrupted run: stopped by SIGTERM once its first checkpoint is in, then resumed. */
  let stopAndResume: Promise<{ stoppedAt: number; filesAtStop: string[] }>;

  const task = async (id: string) => (await studio.client.task.get.query({ id })).task;

  it("trains with live progress and loss, evaluates, checkpoints, and leaves an adapter that peft loads", async () => {
    const create = (name: string) =>
      studio.client.task.create.mutate({
        name,
        model: env.model,
        dataset: "sample",
        trainer: "hf-peft",
        hyperparameters: SETTINGS,
      });
    reference = (await create("uninterrupted")).id;
    interrupted = (await create("interrupted")).id;
    await studio.client.task.start.mutate({ id: reference });
    await studio.client.task.start.mutate({ id: interrupted });
    // Alongside this run, so that the two cores are used; the next test checks what it did.
    stopAndResume = stopThenResume(interrupted);
    stopAndResume.catch(() => {}); // awaited by the next test, which reports a failure

    const live = await waitFor(
      "a live step with a loss",
      async () => {
        const t = await task(reference);
        const p = t.progress as { step: number | null; loss: number | null; totalSteps: number };
        const midway = p.step !== null && p.step > 0 && p.step < TOTAL_STEPS;
        return t.status === "training" && midway && p.loss !== null ? p : null;
      },
      120_000,
      20,
    );
    expect(live.totalSteps).toBe(TOTAL_STEPS);
    await waitFor(
      "completion",
      async () => (await task(reference)).status === "completed",
      120_000,
      100,
    );

    const done = await task(reference);
    expect(done.progress).toMatchObject({
      step: TOTAL_STEPS,
      totalSteps: TOTAL_STEPS,
      percent: 100,
    });
    const metrics = await studio.client.task.metrics.query({ id: reference });
    const losses = metrics.filter((m) => m.loss !== null);
    expect(losses.map((m) => m.step)).toEqual(steps(1, TOTAL_STEPS));
    const evals = metrics.filter((m) => m.evalLoss !== null);
    expect(evals.map((m) => m.step)).toEqual([23, 46, 69, 92]);
    expect(evals.at(-1)!.evalLoss!).toBeLessThan(evals[0]!.evalLoss!);
    expect(done.lastCheckpoint).toBe(`checkpoints/checkpoint-${TOTAL_STEPS}`);
    const dir = join(studio.home, "tasks", reference);
    // The last three are kept (the default); the best by eval loss is among them (92 < 23).
    const kept = readdirSync(join(dir, "checkpoints")).filter((name) => !name.startsWith("."));
    expect(kept.sort()).toEqual(["checkpoint-46", "checkpoint-69", "checkpoint-92"]);
    for (const step of [46, 69, 92]) {
      // Sealed by the tool, checked here by the studio's own verification.
      const verified = await verifyCheckpoint(join(dir, "checkpoints", `checkpoint-${step}`), step);
      if (verified.kind !== "verified") throw new Error(`checkpoint-${step}: ${verified.kind}`);
      expect(verified.manifest).toMatchObject({ version: 1, step, trainer: "hf-peft" });
      expect(verified.manifest.files.map((f) => f.path)).toEqual(
        expect.arrayContaining(["adapter_model.safetensors", "optimizer.pt", "rng_state.pth"]),
      );
      const measured = evals.find((m) => m.step === step)!.evalLoss!;
      expect(verified.manifest.evalLoss).toBeCloseTo(measured, 5);
    }
    for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
      expect(existsSync(join(dir, file))).toBe(true);
    }

    // The studio's own `task sample`: base model + adapter, loaded with PeftModel.from_pretrained.
    const sample = await run(
      process.execPath,
      [
        CLI,
        "task",
        "sample",
        reference,
        "--prompt",
        "### Instruction:",
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
      ],
      { env: { ...(studio.env as NodeJS.ProcessEnv) } },
    );
    expect(sample.stderr).toMatch(/loaded .* with the adapter of .* \(\d+ LoRA tensors\)/);
    expect(sample.stdout.trim().length).toBeGreaterThan(0);
  }, 240_000);

  it("exports the merged model: transformers loads it with no peft, and its logits are the base model's with the adapter", async () => {
    const printed = await studio.cli("task", "export", reference);
    const folder = join(studio.home, "tasks", reference, "export");
    const names = readdirSync(folder).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        "config.json",
        "model.safetensors",
        "provenance.json",
        "tokenizer.json",
        "tokenizer_config.json",
      ]),
    );
    expect(
      printed
        .trim()
        .split("\n")
        .map((line) => line.split("\t")[0]),
    ).toEqual(names.map((name) => join(folder, name)));
    const provenance = JSON.parse(readFileSync(join(folder, "provenance.json"), "utf8"));
    expect(provenance).toMatchObject({
      version: 1,
      trainer: "hf-peft",
      baseModel: env.model,
      source: { kind: "final", path: ".", step: TOTAL_STEPS },
      hyperparameters: { loraRank: SETTINGS.loraRank, seed: SETTINGS.seed },
    });

    const check = await run(
      env.python,
      ["-c", MERGED_LOGITS_CHECK, env.model, join(studio.home, "tasks", reference), folder],
      { env: { ...process.env, ...ONE_THREAD, HF_HUB_OFFLINE: "1" } },
    );
    const { largest, moved, loaded } = JSON.parse(check.stdout.trim().split("\n").at(-1)!);
    console.log(
      `hf-peft merge: largest logit difference from base + adapter ${largest}; the adapter moves logits by up to ${moved}`,
    );
    expect(loaded).toBe("LlamaForCausalLM");
    expect(largest).toBeLessThan(1e-4);
    expect(moved).toBeGreaterThan(largest * 10);
  }, 120_000);

  it("evaluates a checkpoint of the run with `studio task evaluate` (evaluate.py, against the base)", async () => {
    const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
      .trim()
      .split("\n");
    const heldOut = await studio.client.dataset.upload.mutate({
      fileName: "held-out.jsonl",
      contentBase64: Buffer.from(rows.slice(196, 199).join("\n")).toString("base64"),
    });
    const evaluation = await studio.cliJson<{
      state: string;
      source: { path: string; step: number | null };
      results: { rows: number; loss: number; baseLoss: number; exactMatch: { total: number } };
    }>("task", "evaluate", reference, "--dataset", heldOut.id, "--checkpoint", "checkpoint-46");
    expect(evaluation).toMatchObject({
      state: "done",
      source: { path: "checkpoints/checkpoint-46", step: 46 },
      results: { rows: 3, exactMatch: { total: 3 } },
    });
    // Trained on rows like these: the adapter's loss is below its base's.
    expect(evaluation.results.loss).toBeLessThan(evaluation.results.baseLoss);
  }, 120_000);

  it(`resumes a run stopped by SIGTERM whose last checkpoint was cut short from the one before, with the same loss at every step (within ${RESUME_TOLERANCE})`, async () => {
    const { stoppedAt, filesAtStop } = await stopAndResume;
    // The checkpoint before the one written at the stop: a periodic one.
    const fellBackTo = Math.floor((stoppedAt - 1) / SETTINGS.saveSteps) * SETTINGS.saveSteps;
    expect(stoppedAt).toBeGreaterThanOrEqual(SETTINGS.saveSteps);
    expect(stoppedAt).toBeLessThan(TOTAL_STEPS);
    // It may wait for the slot of the uninterrupted run beside it: torch has one thread in tests.
    const ended = await waitFor(
      "the resumed run to end",
      async () => {
        const t = await task(interrupted);
        return ["completed", "failed", "cancelled", "interrupted"].includes(t.status) ? t : null;
      },
      300_000,
      100,
    );
    expect(`${ended.status}: ${ended.statusReason}`).toBe("completed: finished");
    const detail = await studio.client.task.get.query({ id: interrupted });
    const first = detail.attempts.find((a) => a.number === 1);
    expect(first).toMatchObject({ exitCode: 143 });
    expect(filesAtStop).toEqual(
      expect.arrayContaining([
        "adapter_model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
        "manifest.json",
      ]),
    );
    const events = readFileSync(join(studio.home, "tasks", interrupted, "progress.jsonl"), "utf8");
    expect(events).toContain(`"reason": "SIGTERM: checkpoint saved at step ${stoppedAt}"`);
    expect(events).toContain(`"resumed_from_step": ${fellBackTo}`);
    const warnings = detail.events.filter((e) => e.type === "warning").map((e) => e.message);
    expect(warnings).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^resuming from checkpoints/checkpoint-${fellBackTo} instead: checkpoints/checkpoint-${stoppedAt}: adapter_model.safetensors is \\d+ bytes, the manifest says \\d+$`,
        ),
      ),
    );

    const expected = await studio.client.task.metrics.query({ id: reference });
    const resumed = await studio.client.task.metrics.query({ id: interrupted });
    // Each attempt's rows are its own: steps up to the stop from the first, the rest from the second.
    const lossRows = resumed.filter((m) => m.loss !== null);
    expect(lossRows.filter((m) => m.attempt === 1).map((m) => m.step)).toEqual(steps(1, stoppedAt));
    expect(lossRows.filter((m) => m.attempt === 2).map((m) => m.step)).toEqual(
      steps(fellBackTo + 1, TOTAL_STEPS),
    );

    // Every row of both attempts (the steps after the fallback twice) against the uninterrupted run.
    let largest = 0;
    for (const kind of ["loss", "evalLoss", "learningRate"] as const) {
      const want = new Map(expected.filter((m) => m[kind] !== null).map((m) => [m.step, m[kind]!]));
      const got = resumed.filter((m) => m[kind] !== null);
      expect(new Set(got.map((m) => m.step))).toEqual(new Set(want.keys()));
      for (const row of got) {
        const difference = Math.abs(row[kind]! - want.get(row.step)!);
        largest = Math.max(largest, difference);
        expect(difference, `${kind} at step ${row.step}`).toBeLessThanOrEqual(RESUME_TOLERANCE);
      }
    }
    console.log(
      `hf-peft resume: stopped at step ${stoppedAt} of ${TOTAL_STEPS}, went on from step ${fellBackTo} (${warnings.join("; ")}); largest difference from the uninterrupted run: ${largest}`,
    );
  }, 420_000);

  async function stopThenResume(id: string) {
    const first = await waitFor(
      "the first checkpoint",
      async () => (await task(id)).lastCheckpoint,
      120_000,
      20,
    );
    // A step past it first: a stop at the periodic checkpoint's own step saves that checkpoint
    // again, and cut short it would leave none to fall back to (the trainer rightly refuses).
    const firstStep = Number(/checkpoint-(\d+)$/.exec(first)?.[1]);
    await waitFor(
      "a step after the first checkpoint",
      async () => ((await task(id)).progress as { step: number | null }).step! > firstStep,
      120_000,
      20,
    );
    await studio.client.task.cancel.mutate({ id });
    const stopped = await waitFor(
      "the cancel to end the run",
      async () => {
        const t = await task(id);
        return t.status === "cancelled" ? t : null;
      },
      60_000,
      50,
    );
    const checkpoint = stopped.lastCheckpoint ?? "";
    const step = /^checkpoints\/checkpoint-(\d+)$/.exec(checkpoint)?.[1];
    if (!step) throw new Error(`no checkpoint after the stop: ${checkpoint}`);
    // What the stop saved; then its adapter cut short on disk, as a crash in a copy would leave it.
    const saved = join(studio.home, "tasks", id, checkpoint);
    const filesAtStop = readdirSync(saved);
    const adapter = join(saved, "adapter_model.safetensors");
    truncateSync(adapter, Math.floor(statSync(adapter).size / 2));
    await studio.client.task.retry.mutate({ id, fromCheckpoint: true });
    return { stoppedAt: Number(step), filesAtStop };
  }
});

/**
 * Loads the export with transformers alone and the base with the adapter through peft, and
 * prints the largest difference of their logits on one input (and how far the adapter moves
 * them from the base's), as JSON.
 */
const MERGED_LOGITS_CHECK = `
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base_id, adapter, exported = sys.argv[1:4]
ids = AutoTokenizer.from_pretrained(exported)("### Instruction:\\nSay something kind.", return_tensors="pt").input_ids
merged = AutoModelForCausalLM.from_pretrained(exported).eval()
with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_id), adapter).eval()
with torch.no_grad():
    a = merged(ids).logits
    b = with_adapter(ids).logits
    with with_adapter.disable_adapter():
        c = with_adapter(ids).logits
print(json.dumps({"largest": (a - b).abs().max().item(), "moved": (b - c).abs().max().item(), "loaded": type(merged).__name__}))
`;

function steps(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** `bin`, holding a python3 that is this machine's, run without site-packages. */
function bareBin(bin: string): string {
  const real = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], {
    encoding: "utf8",
  }).trim();
  writeFileSync(join(bin, "python3"), `#!/bin/sh\nexec ${real} -S "$@"\n`, { mode: 0o755 });
  return bin;
}
