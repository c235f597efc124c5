import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type LogCursor, readNewLines } from "../../src/server/logs/log-cursor";
import {
  type ParsedHfLine,
  parseHfLine,
  parseHfOutput,
} from "../../src/server/supervisor/hf-output-parser";
import {
  initialProgress,
  type MetricRow,
  mergeMetricRows,
  metricKind,
  type ProgressInput,
  type ProgressState,
  parseProgressLine,
  reduceProgress,
} from "../../src/server/supervisor/progress-state";
import type { ProgressEvent } from "../../src/trainers/protocol";

const T0 = 1_700_000_000_000;

function run(inputs: ProgressInput[], start: ProgressState = initialProgress()) {
  let state = start;
  const metrics: MetricRow[] = [];
  for (const input of inputs) {
    const result = reduceProgress(state, input);
    state = result.state;
    metrics.push(...result.metrics);
  }
  return { state, metrics };
}

const progress = (event: ProgressEvent, at = T0): ProgressInput => ({
  source: "progress",
  event,
  at,
});
const log = (line: string, at = T0): ProgressInput => {
  const event = parseHfLine(line);
  if (!event) throw new Error(`not an HF line: ${line}`);
  return { source: "log", event, at };
};
const bar = (step: number, total: number, remaining = "00:10") =>
  ` 10%|█         | ${step}/${total} [00:01<${remaining},  1.00it/s]`;
const step = (n: number, time: number, extra: Partial<ProgressEvent> = {}): ProgressEvent =>
  ({
    event: "progress",
    time,
    epoch: n / 100,
    total_epochs: 3,
    step: n,
    total_steps: 300,
    ...extra,
  }) as ProgressEvent;

describe("parseProgressLine", () => {
  it("accepts protocol events and rejects anything else", () => {
    expect(
      parseProgressLine('{"event":"checkpoint","step":100,"path":"checkpoints/step-100"}'),
    ).toEqual({
      event: "checkpoint",
      step: 100,
      path: "checkpoints/step-100",
    });
    expect(parseProgressLine('{"event":"progress","step":1}')).toBeNull();
    expect(parseProgressLine('{"event":"party","step":1}')).toBeNull();
    expect(parseProgressLine('{"event":"progress", "ste')).toBeNull();
    expect(parseProgressLine("")).toBeNull();
    expect(parseProgressLine("[1,2]")).toBeNull();
  });
});

describe("reduceProgress with progress.jsonl events", () => {
  it("follows a whole run and emits one chart row per logged step and evaluation", () => {
    const t = T0 / 1000;
    const { state, metrics } = run([
      progress({ event: "started", time: t, total_epochs: 3, total_steps: 300 }),
      progress(step(5, t + 5, { loss: 2.5, learning_rate: 0.0002, tokens_per_second: 1234 })),
      progress(step(10, t + 10, { loss: 2.1, learning_rate: 0.00019 })),
      progress({ event: "eval", time: t + 11, step: 10, eval_loss: 2.2 }),
      progress({ event: "checkpoint", time: t + 12, step: 10, path: "checkpoints/step-10" }),
      progress(step(12, t + 13)),
    ]);
    expect(state).toMatchObject({
      epoch: 0.12,
      totalEpochs: 3,
      step: 12,
      totalSteps: 300,
      percent: 4,
      loss: 2.1,
      evalLoss: 2.2,
      learningRate: 0.00019,
      tokensPerSecond: 1234,
      lastCheckpoint: { step: 10, path: "checkpoints/step-10" },
      startedAt: T0,
      updatedAt: T0 + 13_000,
      structured: true,
    });
    expect(metrics).toEqual([
      { step: 5, epoch: 0.05, loss: 2.5, learningRate: 0.0002, at: T0 + 5000 },
      { step: 10, epoch: 0.1, loss: 2.1, learningRate: 0.00019, at: T0 + 10_000 },
      { step: 10, epoch: 0.1, evalLoss: 2.2, at: T0 + 11_000 },
    ]);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });

  it("estimates the time left from the rate of steps", () => {
    const t = T0 / 1000;
    const inputs = [progress({ event: "started", time: t, total_epochs: 3, total_steps: 300 })];
    for (let n = 1; n <= 100; n++) inputs.push(progress(step(n, t + n * 2)));
    const { state } = run(inputs);
    expect(state.etaSeconds).toBeCloseTo(400, 5);
  });

  it("measures the rate from the first step of a resumed attempt, not from step 0", () => {
    const t = T0 / 1000;
    const inputs = [
      progress({
        event: "started",
        time: t,
        total_epochs: 3,
        total_steps: 300,
        resumed_from_step: 200,
      }),
    ];
    for (let n = 201; n <= 250; n++) inputs.push(progress(step(n, t + 60 + (n - 200))));
    const { state } = run(inputs);
    expect(state.step).toBe(250);
    expect(state.etaSeconds).toBeCloseTo(50, 5);
  });

  it("absorbs a backlog read at once instead of taking it for a burst of speed", () => {
    const backlog: ProgressInput[] = [];
    for (let n = 1; n <= 100; n++) backlog.push(progress(step(n, Number.NaN), T0));
    const live: ProgressInput[] = [];
    for (let n = 101; n <= 110; n++)
      live.push(progress(step(n, Number.NaN), T0 + (n - 100) * 1000));
    const untimed = (inputs: ProgressInput[]) =>
      inputs.map((input) => {
        const { time: _, ...event } = input.event as ProgressEvent & { time?: number };
        return { ...input, event } as ProgressInput;
      });
    const { state } = run([...untimed(backlog), ...untimed(live)]);
    // One step a second since the backlog: 190 steps left.
    expect(state.etaSeconds).toBeCloseTo(190, 5);
  });

  it("finishes on completed and keeps the checkpoint across a stop", () => {
    const done = run([
      progress(step(299, 1)),
      progress({ event: "completed", step: 300, train_loss: 1.2, eval_loss_adapter: 1.1 }),
    ]).state;
    expect(done).toMatchObject({ step: 300, percent: 100, etaSeconds: 0, evalLoss: 1.1 });
    const stopped = run([
      progress({ event: "checkpoint", step: 50, path: "checkpoints/step-50" }),
      progress(step(60, 1)),
      progress({ event: "stopped", step: 60, reason: "cancelled" }),
    ]).state;
    expect(stopped).toMatchObject({ step: 60, etaSeconds: null, lastCheckpoint: { step: 50 } });
  });

  it("keeps the last reason a trainer gives for failing, and starts without one", () => {
    expect(initialProgress().failure).toBeNull();
    const { state, metrics } = run([
      progress(step(10, 1)),
      progress({ event: "failed", reason: "RuntimeError: connection reset by peer" }),
      progress({
        event: "failed",
        reason: "worker rank 1 (local rank 1, pid 7) was killed by SIGKILL",
      }),
    ]);
    expect(state).toMatchObject({
      step: 10,
      failure: "worker rank 1 (local rank 1, pid 7) was killed by SIGKILL",
    });
    expect(metrics).toHaveLength(0);
    expect(parseProgressLine('{"event": "failed", "reason": ""}')).toBeNull();
  });

  it("keeps the last finite value when a trainer reports nan", () => {
    const { state, metrics } = run([
      progress(step(1, 1, { loss: 2 })),
      progress(step(2, 2, { loss: Number.NaN, learning_rate: 0.1 })),
    ]);
    expect(state.loss).toBe(2);
    expect(metrics[1]).toEqual({ step: 2, epoch: 0.02, learningRate: 0.1, at: 2000 });
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});

describe("reduceProgress with Hugging Face output", () => {
  it("takes steps from the training bar and ignores data-loading and evaluation bars", () => {
    const { state } = run([
      log("Map: 100%|██████████| 200/200 [00:00<00:00, 5421.36 examples/s]"),
      log(bar(0, 4)),
      log(bar(30, 300, "04:30")),
      log(bar(2, 4)),
      log("Loading checkpoint shards: 100%|██████████| 2/2 [00:03<00:00,  1.52s/it]"),
    ]);
    expect(state).toMatchObject({ step: 30, totalSteps: 300, percent: 10, etaSeconds: 270 });
  });

  it("pairs each logs dict with the step of the bar before it", () => {
    const { state, metrics } = run([
      log(bar(5, 300), T0),
      log("{'loss': '2.5', 'grad_norm': '1.0', 'learning_rate': '0.0002', 'epoch': '0.05'}", T0),
      log(bar(10, 300), T0 + 5000),
      log("{'eval_loss': '2.4', 'eval_runtime': '1.0', 'epoch': '0.1'}", T0 + 5000),
    ]);
    expect(metrics).toEqual([
      { step: 5, epoch: 0.05, loss: 2.5, learningRate: 0.0002, at: T0 },
      { step: 10, epoch: 0.1, evalLoss: 2.4, at: T0 + 5000 },
    ]);
    expect(state).toMatchObject({ loss: 2.5, evalLoss: 2.4, epoch: 0.1, structured: false });
  });

  it("emits no row for a logs dict before any step is known", () => {
    const { state, metrics } = run([log("{'loss': 2.5, 'epoch': 0.05}")]);
    expect(metrics).toEqual([]);
    expect(state.loss).toBe(2.5);
  });

  it("ignores log lines once progress.jsonl speaks for the attempt", () => {
    const { state, metrics } = run([
      log(bar(5, 300)),
      log("{'loss': 2.5, 'learning_rate': 0.0002, 'epoch': 0.05}"),
      progress(step(5, T0 / 1000, { loss: 2.4 })),
      log(bar(6, 300)),
      log("{'loss': 9.9, 'learning_rate': 0.0002, 'epoch': 0.06}"),
    ]);
    expect(metrics.map((m) => [m.step, m.loss])).toEqual([
      [5, 2.5],
      [5, 2.4],
    ]);
    expect(state).toMatchObject({ step: 5, loss: 2.4 });
  });

  it("replays a recorded log read through the log cursor (test/fixtures/hf-output/record.sh)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "progress-state-"));
    try {
      const path = join(dir, "training.log");
      await writeFile(path, readFileSync(join(__dirname, "../fixtures/hf-output/custom-loop.log")));
      let cursor: LogCursor | null = null;
      let state = initialProgress();
      const metrics: MetricRow[] = [];
      for (let read = 0; ; read++) {
        const result = await readNewLines(path, cursor, 512);
        for (const line of result.lines) {
          for (const event of parseHfOutput(line.text) as ParsedHfLine[]) {
            const reduced = reduceProgress(state, { source: "log", event, at: T0 + read * 1000 });
            state = reduced.state;
            metrics.push(...reduced.metrics);
          }
        }
        if (result.partial !== undefined) break;
        cursor = result.cursor;
      }
      // A loop that prints its metrics while its bar runs: each dict takes the step of the bar
      // frame drawn before it (tqdm redraws at most every 0.1 s, so a frame can lag its step).
      expect(state).toMatchObject({
        step: 30,
        totalSteps: 30,
        percent: 100,
        loss: 5.9761,
        evalLoss: 5.9765,
        epoch: 0.6667,
        etaSeconds: 0,
      });
      expect(metrics.filter((m) => m.loss !== undefined).map((m) => [m.step, m.loss])).toEqual([
        [4, 6.2096],
        [8, 6.1233],
        [14, 6.0497],
        [18, 6.0531],
        [24, 5.9653],
        [28, 5.9761],
      ]);
      expect(
        metrics.filter((m) => m.evalLoss !== undefined).map((m) => [m.step, m.evalLoss]),
      ).toEqual([
        [14, 6.039],
        [28, 5.9765],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("metric rows keyed by (step, kind)", () => {
  it("tells eval rows from train rows", () => {
    expect(metricKind({ step: 1, epoch: null, evalLoss: 2, at: 0 })).toBe("eval");
    expect(metricKind({ step: 1, epoch: null, loss: 2, at: 0 })).toBe("train");
    expect(metricKind({ step: 1, epoch: null, learningRate: 0.1, at: 0 })).toBe("train");
  });

  it("merges rows of one key in a batch, later fields winning, and keeps first-seen order", () => {
    const rows: MetricRow[] = [
      { step: 5, epoch: 0.1, loss: 2, at: 1 },
      { step: 5, epoch: null, evalLoss: 3, at: 2 },
      { step: 6, epoch: 0.2, loss: 1.8, at: 3 },
      { step: 5, epoch: null, learningRate: 0.01, at: 4 },
      { step: 5, epoch: 0.1, loss: 1.9, at: 5 },
    ];
    expect(mergeMetricRows(rows)).toEqual([
      { step: 5, epoch: 0.1, loss: 1.9, learningRate: 0.01, at: 5 },
      { step: 5, epoch: null, evalLoss: 3, at: 2 },
      { step: 6, epoch: 0.2, loss: 1.8, at: 3 },
    ]);
    expect(mergeMetricRows([])).toEqual([]);
  });
});
