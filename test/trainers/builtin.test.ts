import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readSafetensors } from "../../src/trainers/builtin/safetensors";
import { sampleText } from "../../src/trainers/builtin/sample";
import { verifyCheckpoint } from "../../src/trainers/checkpoints/folder";
import { type ProgressEvent, progressEventSchema } from "../../src/trainers/protocol";

/** The bundled trainer run for real: as a child process, stopped with real signals. */

const TRAINER = join(process.cwd(), "dist", "builtin-trainer.js");
const FIXTURE = join(process.cwd(), "test", "fixtures", "builtin", "alpaca-200.jsonl");

let root: string;
let dataset: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "builtin-trainer-"));
  dataset = join(root, "rows.jsonl");
  const rows = (await readFile(FIXTURE, "utf8")).trim().split("\n").slice(0, 40);
  await writeFile(dataset, `${rows.join("\n")}\n`);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

async function makeTask(name: string, overrides: Record<string, unknown> = {}, mode = "lora") {
  const taskDir = join(root, name);
  await mkdir(taskDir);
  const config = {
    taskId: name,
    attempt: 1,
    trainer: "builtin",
    model: "builtin:tiny",
    mode,
    dataset: { path: dataset, format: "alpaca" },
    taskDir,
    hyperparameters: {
      epochs: 2,
      batchSize: 4,
      maxLength: 48,
      loraRank: 4,
      learningRate: 0.005,
      seed: 7,
      loggingSteps: 1,
      evalSteps: 4,
      saveSteps: 5,
      ...overrides,
    },
  };
  await writeFile(join(taskDir, "config.json"), JSON.stringify(config));
  return taskDir;
}

function start(args: string[]) {
  const child = spawn(process.execPath, [TRAINER, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, output })),
  );
  return { child, exited };
}

async function events(taskDir: string): Promise<ProgressEvent[]> {
  const text = await readFile(join(taskDir, "progress.jsonl"), "utf8");
  return text
    .trim()
    .split("\n")
    .map((line) => progressEventSchema.parse(JSON.parse(line)));
}

async function waitForStep(taskDir: string, step: number) {
  for (;;) {
    if (existsSync(join(taskDir, "progress.jsonl"))) {
      const seen = await events(taskDir);
      if (seen.some((e) => e.event === "progress" && e.step >= step)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("built-in trainer program", () => {
  let complete: string;
  let completeOutput: string;

  beforeAll(async () => {
    // Two checkpoints kept, so the first of the three it writes is removed on the way.
    complete = await makeTask("complete", { keepCheckpoints: 2 });
    const { code, output } = await start(["--task-dir", complete]).exited;
    expect(code, output).toBe(0);
    completeOutput = output;
  });

  test("writes protocol events, a PEFT adapter and trainer_state.json", async () => {
    const seen = await events(complete);
    const kinds = seen.map((e) => e.event);
    expect(kinds[0]).toBe("started");
    expect(kinds.at(-1)).toBe("completed");
    expect(kinds).toContain("eval");
    // 36 training rows / batch 4 = 9 steps per epoch, 2 epochs.
    expect(seen[0]).toMatchObject({ event: "started", total_steps: 18, total_epochs: 2 });
    expect(seen.filter((e) => e.event === "checkpoint").map((e) => e.step)).toEqual([5, 10, 15]);
    const progress = seen.filter((e) => e.event === "progress");
    expect(progress).toHaveLength(18);
    expect(progress.at(-1)).toMatchObject({ step: 18, epoch: 2, total_steps: 18 });
    const completed = seen.at(-1)!;
    if (completed.event !== "completed") throw new Error("no completed event");
    // The loss falls clearly: about 5.7 → 5.1 for these settings.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const losses = progress.flatMap((e) => (e.event === "progress" && e.loss ? [e.loss] : []));
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.3);
    expect(completed.eval_loss_adapter!).toBeLessThan(completed.eval_loss_base! - 0.3);

    const adapterConfig = JSON.parse(await readFile(join(complete, "adapter_config.json"), "utf8"));
    expect(adapterConfig).toMatchObject({
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ["q_proj", "v_proj"],
      base_model_name_or_path: "builtin:tiny",
    });
    const adapter = await readSafetensors(join(complete, "adapter_model.safetensors"));
    expect(
      adapter.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape,
    ).toEqual([4, 64]);
    const state = JSON.parse(await readFile(join(complete, "trainer_state.json"), "utf8"));
    expect(state).toMatchObject({ global_step: 18, max_steps: 18, epoch: 2, num_train_epochs: 2 });
    expect(state.log_history.some((e: { eval_loss?: number }) => e.eval_loss !== undefined)).toBe(
      true,
    );
    expect(existsSync(join(complete, "checkpoints", "step-10", "trainer_state.json"))).toBe(true);
  });

  test("keeps the last checkpoints, each sealed with a manifest that verifies", async () => {
    expect(readdirSync(join(complete, "checkpoints")).sort()).toEqual(["step-10", "step-15"]);
    expect(completeOutput).toContain("removed checkpoints/step-5: older than the last 2");
    for (const step of [10, 15]) {
      const verified = await verifyCheckpoint(join(complete, "checkpoints", `step-${step}`), step);
      if (verified.kind !== "verified")
        throw new Error(`step-${step}: ${JSON.stringify(verified)}`);
      expect(verified.manifest.files.map((f) => f.path).sort()).toEqual([
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.safetensors",
        "resume_state.json",
        "trainer_state.json",
      ]);
    }
  });

  test("SIGTERM saves a checkpoint and exits 143; resuming ends bit-identical", async () => {
    const stopped = await makeTask("stopped");
    const run = start(["--task-dir", stopped]);
    await waitForStep(stopped, 3);
    run.child.kill("SIGTERM");
    const { code, output } = await run.exited;
    expect(code, output).toBe(143);
    const seen = await events(stopped);
    const stop = seen.at(-1)!;
    if (stop.event !== "stopped") throw new Error(`last event is ${stop.event}, not stopped`);
    const checkpoint = seen.filter((e) => e.event === "checkpoint").at(-1)!;
    expect(checkpoint).toMatchObject({ step: stop.step, path: `checkpoints/step-${stop.step}` });
    expect(stop.step).toBeLessThan(18);

    const resumed = start([
      "--task-dir",
      stopped,
      "--resume-from",
      join(stopped, `checkpoints/step-${stop.step}`),
    ]);
    const result = await resumed.exited;
    expect(result.code, result.output).toBe(0);
    const after = await events(stopped);
    expect(
      after.find((e) => e.event === "started" && e.resumed_from_step === stop.step),
    ).toBeTruthy();
    const expected = await readFile(join(complete, "adapter_model.safetensors"));
    expect((await readFile(join(stopped, "adapter_model.safetensors"))).equals(expected)).toBe(
      true,
    );
  });

  test("resuming from a corrupted newest checkpoint falls back to the one before, names it, and ends bit-identical", async () => {
    const resumed = await makeTask("resumed");
    await cp(join(complete, "checkpoints"), join(resumed, "checkpoints"), { recursive: true });
    // One byte changed on disk, the size unchanged: only the hash can tell.
    const adapter = join(resumed, "checkpoints", "step-15", "adapter_model.safetensors");
    const bytes = await readFile(adapter);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(adapter, bytes);
    const config = JSON.parse(await readFile(join(resumed, "config.json"), "utf8"));
    config.resumeFrom = join(resumed, "checkpoints", "step-15");
    await writeFile(join(resumed, "config.json"), JSON.stringify(config));
    const { code, output } = await start(["--task-dir", resumed]).exited;
    expect(code, output).toBe(0);
    const message =
      "resuming from checkpoints/step-10 instead: checkpoints/step-15: adapter_model.safetensors does not match its sha256 in the manifest";
    expect(output).toContain(`resume: ${message}`);
    const seen = await events(resumed);
    expect(seen[0]).toMatchObject({ event: "warning", kind: "resume-fallback", message, step: 10 });
    expect(seen[1]).toMatchObject({ event: "started", resumed_from_step: 10 });
    const expected = await readFile(join(complete, "adapter_model.safetensors"));
    expect((await readFile(join(resumed, "adapter_model.safetensors"))).equals(expected)).toBe(
      true,
    );
    const state = JSON.parse(await readFile(join(resumed, "trainer_state.json"), "utf8"));
    expect(state.log_history.filter((e: { loss?: number }) => e.loss !== undefined)).toHaveLength(
      18,
    );
  });

  test("samples text from the finished task, in-process and from the command line", async () => {
    const options = { maxNewTokens: 20, temperature: 0.8, seed: 3 };
    const first = await sampleText(complete, "### Instruction:\n", options);
    expect(await sampleText(complete, "### Instruction:\n", options)).toBe(first);
    expect(first.length).toBeGreaterThan(0);
    const cli = start([
      "sample",
      "--task-dir",
      complete,
      "--prompt",
      "### Instruction:\n",
      "--max-new-tokens",
      "20",
      "--temperature",
      "0.8",
      "--seed",
      "3",
    ]);
    const { code, output } = await cli.exited;
    expect(code, output).toBe(0);
    expect(output).toBe(`${first}\n`);
  });

  test("pretrain mode trains every weight and writes model.safetensors", async () => {
    const taskDir = await makeTask(
      "pretrain",
      { epochs: 1, saveSteps: 100, evalSplit: 0.5, maxLength: 24 },
      "pretrain",
    );
    const { code, output } = await start(["--task-dir", taskDir]).exited;
    expect(code, output).toBe(0);
    const model = await readSafetensors(join(taskDir, "model.safetensors"));
    expect(model.tensors.get("model.embed_tokens.weight")?.shape).toEqual([258, 64]);
    expect(existsSync(join(taskDir, "adapter_model.safetensors"))).toBe(false);
    // The model it wrote samples: greedy (temperature 0) ignores the seed, and one byte-level
    // token is at most one byte of text.
    const text = await sampleText(taskDir, "### ", { maxNewTokens: 5, temperature: 0, seed: 0 });
    expect(await sampleText(taskDir, "### ", { maxNewTokens: 5, temperature: 0, seed: 9 })).toBe(
      text,
    );
    expect(Buffer.byteLength(text)).toBeGreaterThan(0);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(5);
  });
});
