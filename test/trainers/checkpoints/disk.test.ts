import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { verifyCheckpoint } from "../../../src/trainers/checkpoints/folder";
import { CheckpointKeeper } from "../../../src/trainers/checkpoints/keeper";
import { type ProgressEvent, progressEventSchema } from "../../../src/trainers/protocol";
import { mountTmpfs, unmountTmpfs } from "../../helpers/tmpfs";

/**
 * Checkpoints on a real small disk: a tmpfs of a few hundred kilobytes holds the task folder
 * (the dataset lies elsewhere). The built-in trainer is run for real, with builtin:tiny, whose
 * checkpoints take about 60 KB on disk and are estimated at about 125 KB before the first.
 */

const TRAINER = join(process.cwd(), "dist", "builtin-trainer.js");
const FIXTURE = join(process.cwd(), "test", "fixtures", "builtin", "alpaca-200.jsonl");

const root = mkdtempSync(join(tmpdir(), "checkpoint-disk-"));
const disk = join(root, "disk");
const dataset = join(root, "rows.jsonl");
let mounted = false;
const children: ChildProcess[] = [];

beforeAll(() => {
  mkdirSync(disk);
  const rows = readFileSync(FIXTURE, "utf8").trim().split("\n").slice(0, 40);
  writeFileSync(dataset, `${rows.join("\n")}\n`);
});
afterEach(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  if (mounted) await unmountTmpfs(disk);
  mounted = false;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function smallDisk(kilobytes: number): string {
  mountTmpfs(disk, kilobytes / 1024);
  mounted = true;
  return disk;
}

function builtinTask(taskDir: string, hyperparameters: Record<string, unknown> = {}) {
  mkdirSync(taskDir, { recursive: true });
  const config = {
    taskId: "disk",
    attempt: 1,
    trainer: "builtin",
    model: "builtin:tiny",
    dataset: { path: dataset, format: "alpaca" },
    taskDir,
    hyperparameters: {
      epochs: 1,
      batchSize: 4,
      maxLength: 48,
      loraRank: 4,
      seed: 7,
      loggingSteps: 1,
      saveSteps: 1,
      ...hyperparameters,
    },
  };
  writeFileSync(join(taskDir, "config.json"), JSON.stringify(config));
}

function run(taskDir: string) {
  const child = spawn(process.execPath, [TRAINER, "--task-dir", taskDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
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

function events(taskDir: string): ProgressEvent[] {
  let text: string;
  try {
    text = readFileSync(join(taskDir, "progress.jsonl"), "utf8");
  } catch {
    return [];
  }
  return text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => progressEventSchema.parse(JSON.parse(line)));
}

describe("checkpoints on a small real disk", () => {
  it("refuses to start when not even one checkpoint fits, saying so", async () => {
    const taskDir = join(smallDisk(96), "task");
    builtinTask(taskDir);
    const { code, output } = await run(taskDir).exited;
    expect(code, output).toBe(1);
    const seen = events(taskDir);
    expect(seen.map((e) => e.event)).toEqual(["failed"]);
    expect(seen[0]).toMatchObject({
      reason: expect.stringMatching(
        /^not enough disk space for one checkpoint: it takes about 1\d\d KB and \d\d KB are free on the task folder's disk$/,
      ),
    });
  });

  it("warns at the first checkpoint when the run will not fit, and trains on", async () => {
    // Room for the estimate of one checkpoint (so it starts), not for the run.
    const taskDir = join(smallDisk(200), "task");
    // Four checkpoints to come, keeping three and the best: up to four at once.
    builtinTask(taskDir, { saveSteps: 2 });
    const trainer = run(taskDir);
    // Once it warned, stop it: the rest of the run would fill the disk.
    for (;;) {
      if (trainer.child.exitCode !== null) break;
      if (events(taskDir).some((e) => e.event === "warning")) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    trainer.child.kill("SIGTERM");
    const { code, output } = await trainer.exited;
    expect(code, output).toBe(143);
    const seen = events(taskDir);
    const kinds = seen.map((e) => e.event).filter((e) => e !== "progress");
    // Known from the first checkpoint's measured size, once that checkpoint is in.
    expect(kinds.slice(0, 3)).toEqual(["started", "checkpoint", "warning"]);
    const warning = seen.find((e) => e.event === "warning")!;
    expect(warning).toMatchObject({
      kind: "disk-space",
      step: 2,
      message: expect.stringMatching(
        /^this run will not fit on the task folder's disk: it needs about \d+ KB more \(up to 4 checkpoints of \d\d KB at once, then the final \d\d KB\) and \d+ KB are free; free some space or keep fewer checkpoints, or it will fail when the disk is full$/,
      ),
    });
    expect(output).toContain(`disk: ${(warning as { message: string }).message}`);
    // Said once: the later checkpoints' forecasts do not repeat it.
    const disk = seen.filter((e) => e.event === "warning" && e.kind === "disk-space");
    expect(disk).toHaveLength(1);
    expect(seen.at(-1)).toMatchObject({ event: "stopped" });
  });

  it("discards a checkpoint the disk cannot hold with the disk's own error, keeping the older ones", async () => {
    const taskDir = join(smallDisk(256), "task");
    mkdirSync(join(taskDir, "checkpoints"), { recursive: true });
    const warnings: string[] = [];
    const keeper = new CheckpointKeeper(
      taskDir,
      { trainer: "builtin", prefix: "step-", savesAtEnd: false, finalFiles: ["w.bin"] },
      { totalSteps: 10, saveSteps: 1, keepLast: 3, evaluates: false },
      { saved: () => {}, warn: (_, message) => warnings.push(message), print: () => {} },
    );
    const commit = (step: number, bytes: number) =>
      keeper.commit({
        staged: keeper.stagingPath(step),
        step,
        evalLoss: null,
        write: async (dir) => {
          const data = Buffer.alloc(bytes, step);
          writeFileSync(join(dir, "w.bin"), data);
          const sha256 = createHash("sha256").update(data).digest("hex");
          return [{ path: "w.bin", size: bytes, sha256 }];
        },
        diskWarned: false,
      });
    expect((await commit(1, 20_000)).path).toBe("checkpoints/step-1");
    expect(await commit(2, 400_000)).toEqual({ path: null, disk: null });
    expect(warnings).toEqual([
      expect.stringMatching(
        /^the checkpoint at step 2 was discarded: it could not be written: ENOSPC: no space left on device, write; the earlier checkpoints are kept$/,
      ),
    ]);
    // Nothing half-written is left; the disk has room again for the next one.
    expect(readdirSync(join(taskDir, "checkpoints"))).toEqual(["step-1"]);
    expect((await verifyCheckpoint(join(taskDir, "checkpoints", "step-1"), 1)).kind).toBe(
      "verified",
    );
    expect((await commit(3, 20_000)).path).toBe("checkpoints/step-3");
  });
});
