// Training speed of the built-in trainer at builtin:tiny's shape (L2 D64 H4 dFF256, batch 8 ×
// 256 tokens, LoRA r8 on q_proj and v_proj, dropout 0.05, AdamW with clipping), in tokens per
// second, on 1 and 2 threads; against, in the same run, the same model and step in PyTorch on
// the CPU with as many threads (bench/fixtures/torch_trainer_speed.py, in the interpreter
// `studio setup hf-peft` prepares, as the tests do). Trials alternate the two; medians shown.
//   npm run bench:trainer [-- --steps 20 --trials 3]
import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { openEngine } from "../src/trainers/builtin/engine";
import { initLoraWeights, loraPass } from "../src/trainers/builtin/lora";
import { initWeights, TINY_BASE_SEED, TINY_CONFIG } from "../src/trainers/builtin/model";
import {
  adamWStep,
  clipGradNorm,
  DEFAULT_ADAMW,
  initAdamWState,
} from "../src/trainers/builtin/optimizer";
import { Rng } from "../src/trainers/builtin/rng";
import { numberFlags } from "./lib/args";
import { fmt, median, printTable } from "./lib/stats";

const flags = numberFlags({ steps: 20, trials: 3, warmup: 3 });
const BATCH = 8;
const TIME = 256;
const RANK = 8;
const SETTINGS = { rank: RANK, alpha: 16, dropout: 0.05, targetModules: ["q_proj", "v_proj"] };
const ROOT = join(import.meta.dirname, "..");

async function builtinTokensPerSecond(threads: number): Promise<number> {
  const engine = await openEngine(threads);
  try {
    const model = engine.transformer(TINY_CONFIG);
    for (const [name, t] of initWeights(TINY_CONFIG, TINY_BASE_SEED)) model.setWeight(name, t.data);
    const params = new Map<string, Float32Array>();
    for (const [name, t] of initLoraWeights(TINY_CONFIG, SETTINGS, new Rng(1)))
      params.set(name, t.data);
    const optimizer = initAdamWState(params);
    const rng = new Rng(2);
    const ids = Int32Array.from({ length: BATCH * TIME }, () => Math.floor(rng.next() * 258));
    const targets = Int32Array.from({ length: BATCH * TIME }, () => Math.floor(rng.next() * 258));
    const dropout = new Rng(3);
    const step = () => {
      for (const [name, value] of params) model.setWeight(name, value);
      const { grads } = model.lossAndGradients(
        { ids, batch: BATCH, time: TIME },
        targets,
        BATCH * TIME,
        loraPass(SETTINGS, dropout),
        [...params.keys()],
      );
      clipGradNorm(grads, 1);
      adamWStep(params, grads, optimizer, 2e-4, DEFAULT_ADAMW);
    };
    for (let i = 0; i < flags.warmup; i++) step();
    const start = performance.now();
    for (let i = 0; i < flags.steps; i++) step();
    return (BATCH * TIME * flags.steps) / ((performance.now() - start) / 1000);
  } finally {
    await engine.close();
  }
}

/** The hf-peft interpreter, prepared (or found ready) as the tests prepare it; null says why not. */
function torchPython(): { python: string } | { problem: string } {
  const cache = process.env.STUDIO_TEST_CACHE || join(homedir(), ".cache", "finetune-studio-tests");
  try {
    const out = execFileSync(
      process.execPath,
      [join(ROOT, "dist", "cli.js"), "setup", "hf-peft", "--quiet", "--json"],
      { env: { ...process.env, STUDIO_HOME: join(cache, "home") }, encoding: "utf8" },
    );
    return { python: (JSON.parse(out) as { python: string }).python };
  } catch (err) {
    return { problem: (err as Error).message.split("\n")[0]! };
  }
}

function torchTokensPerSecond(python: string, threads: number): number {
  const out = execFileSync(
    python,
    [
      join(ROOT, "bench", "fixtures", "torch_trainer_speed.py"),
      ...["--threads", String(threads), "--steps", String(flags.steps)],
      ...["--warmup", String(flags.warmup), "--batch", String(BATCH), "--time", String(TIME)],
      ...["--rank", String(RANK)],
    ],
    { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: String(threads) } },
  );
  return (JSON.parse(out.trim().split("\n").at(-1)!) as { tokens_per_second: number })
    .tokens_per_second;
}

const torch = torchPython();
if ("problem" in torch) {
  console.log(`PyTorch baseline unavailable (${torch.problem}); the built-in figure only.`);
}
const rows: Record<string, string>[] = [];
for (const threads of [1, 2]) {
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let trial = 0; trial < flags.trials; trial++) {
    ours.push(await builtinTokensPerSecond(threads));
    if ("python" in torch) theirs.push(torchTokensPerSecond(torch.python, threads));
  }
  const row: Record<string, string> = {
    threads: String(threads),
    "built-in tokens/s": fmt(median(ours)),
  };
  if (theirs.length > 0) {
    row["PyTorch 2.13 CPU tokens/s"] = fmt(median(theirs));
    row["built-in / PyTorch"] = `${fmt(median(ours) / median(theirs))}x`;
  }
  rows.push(row);
}
printTable(
  `builtin:tiny training step (batch ${BATCH} × ${TIME} tokens, LoRA r${RANK}), ${flags.steps} steps, median of ${flags.trials}`,
  rows,
);
