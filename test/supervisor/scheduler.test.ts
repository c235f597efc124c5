import { describe, expect, it } from "vitest";
import {
  planStarts,
  type QueuedTask,
  type RunningTask,
  type SchedulerInput,
  type StartPlan,
  waitingReason,
} from "../../src/server/supervisor/scheduler";

const q = (taskId: string, gpusRequested = 0): QueuedTask => ({ taskId, gpusRequested });
const r = (taskId: string, ...gpus: string[]): RunningTask => ({ taskId, gpus });

describe("planStarts", () => {
  it.each<[string, SchedulerInput, StartPlan]>([
    [
      "CPU-only: fills free slots in queue order",
      { queued: [q("a"), q("b"), q("c")], running: [r("x")], concurrency: 3, gpuIds: [] },
      {
        starts: [
          { taskId: "a", gpus: [] },
          { taskId: "b", gpus: [] },
        ],
        waiting: [{ taskId: "c", position: 1, reason: "slots-busy" }],
        unschedulable: [],
      },
    ],
    [
      "CPU-only: a task asking for a GPU can never start and does not block",
      { queued: [q("a", 1), q("b")], running: [], concurrency: 1, gpuIds: [] },
      {
        starts: [{ taskId: "b", gpus: [] }],
        waiting: [],
        unschedulable: [{ taskId: "a", reason: "no-gpus-configured" }],
      },
    ],
    [
      "more GPUs than the machine has is unschedulable",
      { queued: [q("a", 3), q("b", 2)], running: [], concurrency: 4, gpuIds: ["0", "1"] },
      {
        starts: [{ taskId: "b", gpus: ["0", "1"] }],
        waiting: [],
        unschedulable: [{ taskId: "a", reason: "too-many-gpus" }],
      },
    ],
    [
      "hands out the lowest free GPUs, skipping busy ones",
      {
        queued: [q("a", 1), q("b", 2)],
        running: [r("x", "1")],
        concurrency: 4,
        gpuIds: ["0", "1", "2", "3"],
      },
      {
        starts: [
          { taskId: "a", gpus: ["0"] },
          { taskId: "b", gpus: ["2", "3"] },
        ],
        waiting: [],
        unschedulable: [],
      },
    ],
    [
      "a big task at the head waits for GPUs and nothing overtakes it",
      {
        queued: [q("big", 2), q("small", 1), q("cpu", 0)],
        running: [r("x", "0")],
        concurrency: 4,
        gpuIds: ["0", "1"],
      },
      {
        starts: [],
        waiting: [
          { taskId: "big", position: 1, reason: "gpus-busy" },
          { taskId: "small", position: 2, reason: "behind-head" },
          { taskId: "cpu", position: 3, reason: "behind-head" },
        ],
        unschedulable: [],
      },
    ],
    [
      "a task asking no GPU on a GPU machine runs in a CPU slot",
      { queued: [q("a", 0), q("b", 1)], running: [], concurrency: 2, gpuIds: ["0"] },
      {
        starts: [
          { taskId: "a", gpus: [] },
          { taskId: "b", gpus: ["0"] },
        ],
        waiting: [],
        unschedulable: [],
      },
    ],
    [
      "concurrency lowered below what runs: nothing starts",
      { queued: [q("a")], running: [r("x"), r("y")], concurrency: 1, gpuIds: [] },
      {
        starts: [],
        waiting: [{ taskId: "a", position: 1, reason: "slots-busy" }],
        unschedulable: [],
      },
    ],
    [
      "concurrency 0 pauses the queue",
      { queued: [q("a")], running: [], concurrency: 0, gpuIds: ["0"] },
      {
        starts: [],
        waiting: [{ taskId: "a", position: 1, reason: "slots-busy" }],
        unschedulable: [],
      },
    ],
    [
      "a GPU held by a running task but no longer configured is not handed out",
      { queued: [q("a", 1)], running: [r("x", "7")], concurrency: 2, gpuIds: ["0"] },
      { starts: [{ taskId: "a", gpus: ["0"] }], waiting: [], unschedulable: [] },
    ],
    [
      "duplicate configured GPU ids count once",
      { queued: [q("a", 1), q("b", 1)], running: [], concurrency: 2, gpuIds: ["0", "0"] },
      {
        starts: [{ taskId: "a", gpus: ["0"] }],
        waiting: [{ taskId: "b", position: 1, reason: "gpus-busy" }],
        unschedulable: [],
      },
    ],
    [
      "an empty queue plans nothing",
      { queued: [], running: [r("x", "0")], concurrency: 1, gpuIds: ["0"] },
      { starts: [], waiting: [], unschedulable: [] },
    ],
  ])("%s", (_, input, expected) => {
    expect(planStarts(input)).toEqual(expected);
  });

  it.each<[string, SchedulerInput]>([
    [
      "a task twice in the queue",
      { queued: [q("a"), q("a")], running: [], concurrency: 1, gpuIds: [] },
    ],
    [
      "a task queued and running",
      { queued: [q("a")], running: [r("a")], concurrency: 1, gpuIds: [] },
    ],
    ["a negative GPU count", { queued: [q("a", -1)], running: [], concurrency: 1, gpuIds: [] }],
    [
      "a fractional GPU count",
      { queued: [q("a", 0.5)], running: [], concurrency: 1, gpuIds: ["0"] },
    ],
    ["a fractional concurrency", { queued: [], running: [], concurrency: 1.5, gpuIds: [] }],
  ])("refuses %s", (_, input) => {
    expect(() => planStarts(input)).toThrow();
  });
});

/** mulberry32: a tiny seeded generator, so a failure replays exactly. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (below: number) => Math.floor(next() * below) };
}

function checkInvariants(input: SchedulerInput, plan: StartPlan): void {
  const configured = new Set(input.gpuIds);
  const schedulable = input.queued.filter(
    (t) => t.gpusRequested === 0 || t.gpusRequested <= configured.size,
  );
  // Every queued task lands in exactly one list.
  const placed = [...plan.starts, ...plan.waiting, ...plan.unschedulable].map((t) => t.taskId);
  expect(placed.sort()).toEqual(input.queued.map((t) => t.taskId).sort());
  // Never more than `concurrency` running (none started when already at or over it).
  const running = input.running.length + plan.starts.length;
  expect(running).toBeLessThanOrEqual(Math.max(input.concurrency, input.running.length));
  if (input.running.length >= input.concurrency) expect(plan.starts).toEqual([]);
  // No GPU handed to two running tasks; only configured, free GPUs; exactly as many as asked.
  const held = input.running.flatMap((t) => t.gpus);
  const handed = plan.starts.flatMap((t) => t.gpus);
  expect(new Set(handed).size).toBe(handed.length);
  for (const gpu of handed) {
    expect(configured.has(gpu)).toBe(true);
    expect(held).not.toContain(gpu);
  }
  for (const start of plan.starts) {
    expect(start.gpus.length).toBe(
      input.queued.find((t) => t.taskId === start.taskId)!.gpusRequested,
    );
  }
  // FIFO without overtaking: the starts are exactly a prefix of the schedulable queue.
  expect(plan.starts.map((t) => t.taskId)).toEqual(
    schedulable.slice(0, plan.starts.length).map((t) => t.taskId),
  );
  expect(plan.waiting.map((t) => t.position)).toEqual(plan.waiting.map((_, i) => i + 1));
  // Something waits only when the head truly cannot start.
  const head = plan.waiting[0];
  if (head) {
    const freeGpus = [...configured].filter((g) => !held.includes(g) && !handed.includes(g));
    const needed = input.queued.find((t) => t.taskId === head.taskId)!.gpusRequested;
    expect(running >= input.concurrency || needed > freeGpus.length).toBe(true);
  }
}

describe("planStarts invariants (seeded random inputs)", () => {
  it("holds them for every plan and starts every schedulable task, in order, as tasks finish", () => {
    const rng = random(20240611);
    for (let round = 0; round < 300; round++) {
      const gpuIds = Array.from({ length: rng.int(5) }, (_, i) => String(i));
      const concurrency = rng.int(5);
      const queued = Array.from({ length: rng.int(12) }, (_, i) =>
        q(`t${i}`, rng.next() < 0.4 ? 0 : rng.int(gpuIds.length + 2)),
      );
      let running: RunningTask[] = [];
      let queue = queued;
      const startOrder: string[] = [];
      // Simulate: plan, start, finish a random running task; until nothing can change.
      for (let tick = 0; tick < 100; tick++) {
        const input = { queued: queue, running, concurrency, gpuIds };
        const plan = planStarts(input);
        checkInvariants(input, plan);
        running = [...running, ...plan.starts];
        startOrder.push(...plan.starts.map((s) => s.taskId));
        const started = new Set(plan.starts.map((s) => s.taskId));
        queue = queue.filter((t) => !started.has(t.taskId));
        if (running.length === 0) break;
        running.splice(rng.int(running.length), 1);
      }
      const expected = planStarts({ queued, running: [], concurrency: 1, gpuIds });
      const schedulable = queued
        .filter((t) => !expected.unschedulable.some((u) => u.taskId === t.taskId))
        .map((t) => t.taskId);
      expect(startOrder).toEqual(concurrency === 0 ? [] : schedulable);
    }
  });
});

describe("waiting reasons, in words", () => {
  it.each([
    ["slots-busy", 0, 1, "waiting for a free slot (1 task runs at once)"],
    ["slots-busy", 0, 4, "waiting for a free slot (4 tasks run at once)"],
    ["gpus-busy", 1, 4, "waiting for 1 free GPU"],
    ["gpus-busy", 2, 4, "waiting for 2 free GPUs"],
    ["behind-head", 0, 4, "waiting behind the task at the head of the queue (first in, first out)"],
  ] as const)("%s (%i GPUs, concurrency %i)", (reason, gpusRequested, concurrency, words) => {
    expect(waitingReason(reason, { gpusRequested }, concurrency)).toBe(words);
  });
});
