// What a trustworthy checkpoint costs: the keeper's commit (each file flushed to the device, the
// manifest, every file read back and hashed, the folder renamed into place and flushed, older
// ones removed) against the same-run baseline of writing the same files into a folder and
// renaming it, as the trainer did before manifests (no flush, no read-back). Files of the
// built-in trainer's shape: weights, two optimizer moments of the same size, small JSON.
//   npx tsx bench/checkpoint-commit.ts [--mb 64] [--trials 5]

import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileDurably } from "../src/trainers/checkpoints/folder";
import { CheckpointKeeper } from "../src/trainers/checkpoints/keeper";
import { numberFlags } from "./lib/args";
import { fmt, median, printTable } from "./lib/stats";

const flags = numberFlags({ mb: 64, trials: 5 });
// In the repository's .tmp (its disk, not a tmpfs /tmp may be), as a task folder would be.
const scratch = join(import.meta.dirname, "..", ".tmp");
mkdirSync(scratch, { recursive: true });
const root = mkdtempSync(join(scratch, "bench-checkpoint-"));

function files(step: number): [string, Buffer][] {
  const weights = Math.round((flags.mb * 1024 * 1024) / 3);
  return [
    ["adapter_model.safetensors", Buffer.alloc(weights, step)],
    ["optimizer.safetensors", Buffer.alloc(2 * weights, step + 1)],
    ["resume_state.json", Buffer.from(`{"step":${step}}\n`)],
    ["trainer_state.json", Buffer.from(`{"global_step":${step}}\n`)],
  ];
}

async function plain(dir: string, step: number) {
  const staged = join(dir, `.tmp-step-${step}`);
  mkdirSync(staged, { recursive: true });
  for (const [name, bytes] of files(step)) await writeFile(join(staged, name), bytes);
  await rename(staged, join(dir, `step-${step}`));
  await rm(join(dir, `step-${step - 3}`), { recursive: true, force: true });
}

try {
  const baseline: number[] = [];
  const commit: number[] = [];
  const plainDir = join(root, "plain", "checkpoints");
  mkdirSync(plainDir, { recursive: true });
  const taskDir = join(root, "kept");
  mkdirSync(join(taskDir, "checkpoints"), { recursive: true });
  const keeper = new CheckpointKeeper(
    taskDir,
    { trainer: "builtin", prefix: "step-", savesAtEnd: false, finalFiles: [] },
    { totalSteps: 1000, saveSteps: 1, keepLast: 3, evaluates: false },
    { saved: () => {}, warn: () => {}, print: () => {} },
  );
  for (let step = 1; step <= flags.trials; step++) {
    let started = performance.now();
    await plain(plainDir, step);
    baseline.push(performance.now() - started);
    started = performance.now();
    const result = await keeper.commit({
      staged: keeper.stagingPath(step),
      step,
      evalLoss: null,
      write: async (dir) => {
        const entries = [];
        for (const [path, bytes] of files(step)) {
          await writeFileDurably(join(dir, path), bytes);
          const sha256 = createHash("sha256").update(bytes).digest("hex");
          entries.push({ path, size: bytes.length, sha256 });
        }
        return entries;
      },
      diskWarned: false,
    });
    commit.push(performance.now() - started);
    if (result.path === null) throw new Error(`step ${step} was discarded`);
  }
  printTable(`A ${flags.mb} MB checkpoint, ${flags.trials} trials (ms, median)`, [
    { what: "write + rename (before manifests)", ms: fmt(median(baseline)) },
    { what: "keeper commit (flush, manifest, read back, rename)", ms: fmt(median(commit)) },
  ]);
} finally {
  rmSync(root, { recursive: true, force: true });
}
