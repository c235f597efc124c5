import { describe, expect, it } from "vitest";
import {
  MAX_STANDING_TRIES,
  planStanding,
  type StandingAction,
  type StandingInput,
  type StandingRecord,
} from "../../src/server/evaluations/standing-plan";
import type { EvalStatus } from "../../src/trainers/evaluate/eval-state";

const SET = "/h/datasets/pinned/aaa/held.jsonl";
const OTHER = "/h/datasets/pinned/bbb/old.jsonl";
const idOf = (set: string, name: string) => `${set === SET ? "cur" : "old"}:${name}`;

const known = { origin: "standing" as const, dataset: { id: "d", name: "held" }, startedAt: "" };
function judged(
  state: EvalStatus["state"],
  reason = "the evaluation process (pid 9) ended before it finished",
): EvalStatus {
  const source = { path: "checkpoints/x", step: 1 };
  if (state === "done") {
    return {
      ...known,
      id: "x",
      source,
      state,
      finishedAt: "",
      results: {
        rows: 1,
        tokens: 1,
        loss: 1,
        perplexity: Math.E,
        baseLoss: 1,
        basePerplexity: Math.E,
        exactMatch: null,
        samples: [],
      },
    };
  }
  if (state === "failed") return { ...known, id: "x", source, state, finishedAt: null, reason };
  return { ...known, id: "x", source, state };
}

function record(
  name: string,
  written: StandingRecord["written"],
  judgedAs: EvalStatus["state"],
  extra: Partial<StandingRecord> = {},
): StandingRecord {
  const setPath = extra.setPath ?? SET;
  return {
    id: idOf(setPath, name),
    checkpoint: name,
    step: Number(name.split("-")[1]),
    setPath,
    written,
    judged: judged(judgedAs),
    tries: 1,
    ...extra,
  };
}

const plan = (input: Partial<StandingInput>) =>
  planStanding({ setPath: SET, checkpoints: [], kept: [], records: [], idOf, ...input });
const step = (name: string) => ({ name, step: Number(name.split("-")[1]) });

describe("the standing evaluation's next moves", () => {
  it("queues every checkpoint with no record for the set, and starts the lowest step", () => {
    expect(plan({ checkpoints: [step("step-20"), step("step-10")] })).toEqual([
      { kind: "queue", id: "cur:step-20", name: "step-20", step: 20 },
      { kind: "queue", id: "cur:step-10", name: "step-10", step: 10 },
      { kind: "launch", id: "cur:step-10" },
    ]);
  });

  it("starts nothing while one of the task's standing evaluations runs (or is about to)", () => {
    const actions = plan({
      checkpoints: [step("step-10"), step("step-20")],
      kept: ["step-10", "step-20"],
      records: [record("step-10", "running", "running")],
    });
    expect(actions).toEqual([{ kind: "queue", id: "cur:step-20", name: "step-20", step: 20 }]);
  });

  it("never queues a checkpoint twice: a record of any state for the set and checkpoint is its score", () => {
    for (const [written, judgedAs] of [
      ["queued", "queued"],
      ["running", "running"],
      ["done", "done"],
      ["failed", "failed"],
    ] as const) {
      const actions = plan({
        checkpoints: [step("step-10")],
        records: [record("step-10", written, judgedAs)],
      });
      expect(actions.filter((a) => a.kind === "queue")).toEqual([]);
    }
  });

  it("starts again an evaluation whose evaluator died, up to the limit, then gives up saying so", () => {
    const died = (tries: number) =>
      plan({
        checkpoints: [step("step-10")],
        kept: ["step-10"],
        records: [record("step-10", "running", "failed", { tries })],
      });
    expect(died(1)).toEqual([
      { kind: "requeue", id: "cur:step-10", tries: 2 },
      { kind: "launch", id: "cur:step-10" },
    ]);
    expect(died(MAX_STANDING_TRIES)).toEqual([
      {
        kind: "give-up",
        id: "cur:step-10",
        reason: `the evaluation process (pid 9) ended before it finished; tried ${MAX_STANDING_TRIES} times, not tried again`,
      },
      { kind: "release", name: "step-10" },
    ]);
  });

  it("drops the queue of a set no longer attached; lets one running finish; queues for the new set", () => {
    const actions = plan({
      checkpoints: [step("step-10"), step("step-20")],
      kept: ["step-10", "step-20"],
      records: [
        record("step-10", "running", "running", { setPath: OTHER }),
        record("step-20", "queued", "queued", { setPath: OTHER }),
      ],
    });
    expect(actions).toEqual([
      {
        kind: "drop",
        id: "old:step-20",
        reason: "not scored: the task's evaluation set was replaced before its turn",
      },
      { kind: "queue", id: "cur:step-10", name: "step-10", step: 10 },
      { kind: "queue", id: "cur:step-20", name: "step-20", step: 20 },
    ]);
    expect(
      plan({ setPath: null, records: [record("step-20", "queued", "queued")], kept: ["step-20"] }),
    ).toEqual([
      {
        kind: "drop",
        id: "cur:step-20",
        reason: "not scored: the evaluation set was detached before its turn",
      },
      { kind: "release", name: "step-20" },
    ]);
  });

  it("releases kept weights once no queued or running evaluation needs them", () => {
    expect(
      plan({
        checkpoints: [step("step-10"), step("step-20")],
        kept: ["step-10", "step-20"],
        records: [record("step-10", "done", "done"), record("step-20", "failed", "failed")],
      }),
    ).toEqual([
      { kind: "release", name: "step-10" },
      { kind: "release", name: "step-20" },
    ]);
  });

  /**
   * Every combination of three checkpoints, each with no record or a record in each state it can
   * be in (of this set or another; one that died tried once or to the limit), each kept or not,
   * with the set attached or not: the rules hold in all of them.
   */
  it("holds its rules in every combination of three checkpoints' records", () => {
    type Shape = null | [StandingRecord["written"], EvalStatus["state"], string, number];
    const shapes: Shape[] = [
      null,
      ["queued", "queued", SET, 1],
      ["queued", "queued", OTHER, 1],
      ["running", "running", SET, 1],
      ["running", "running", OTHER, 1],
      ["running", "failed", SET, 1],
      ["running", "failed", SET, MAX_STANDING_TRIES],
      ["running", "failed", OTHER, 1],
      ["done", "done", SET, 1],
      ["done", "done", OTHER, 1],
      ["failed", "failed", SET, 1],
    ];
    const names = ["step-1", "step-2", "step-3"];
    const broken: string[] = [];
    let cases = 0;
    for (const a of shapes) {
      for (const b of shapes) {
        for (const c of shapes) {
          for (let keptMask = 0; keptMask < 8; keptMask++) {
            for (const setPath of [SET, null]) {
              const records = [a, b, c].flatMap((shape, i) =>
                shape
                  ? [record(names[i]!, shape[0], shape[1], { setPath: shape[2], tries: shape[3] })]
                  : [],
              );
              const kept = names.filter((_, i) => keptMask & (1 << i));
              const input = { setPath, checkpoints: names.map(step), kept, records, idOf };
              const problem = ruleBroken(input, planStanding(input));
              if (problem)
                broken.push(`${problem} in ${JSON.stringify({ setPath, kept, records })}`);
              cases++;
            }
          }
        }
      }
    }
    expect(broken.slice(0, 3)).toEqual([]);
    expect(cases).toBe(11 ** 3 * 8 * 2);
  });
});

/** The first rule the plan breaks for this input, or null. */
function ruleBroken(input: StandingInput, actions: StandingAction[]): string | null {
  const launches = actions.filter((a) => a.kind === "launch");
  const running = input.records.some((r) => r.judged.state === "running");
  // One at a time per task: never a start beside one running, never two.
  if (launches.length > 1) return "two launches";
  if (running && launches.length) return "a launch beside one running";
  // Every checkpoint is queued exactly when the set is attached and it has no record for it.
  for (const checkpoint of input.checkpoints) {
    const queued = actions.some((a) => a.kind === "queue" && a.name === checkpoint.name);
    const scored = input.records.some(
      (r) => r.checkpoint === checkpoint.name && r.setPath === input.setPath,
    );
    if (queued !== (input.setPath !== null && !scored))
      return `${checkpoint.name} queued: ${queued}`;
  }
  // What waits after this plan: queued of the set, started again, newly queued.
  const requeued = new Set(actions.flatMap((a) => (a.kind === "requeue" ? [a.id] : [])));
  const waiting = [
    ...input.records
      .filter((r) => (r.written === "queued" && r.setPath === input.setPath) || requeued.has(r.id))
      .map((r) => ({ id: r.id, step: r.step })),
    ...actions.flatMap((a) => (a.kind === "queue" ? [{ id: a.id, step: a.step }] : [])),
  ];
  if (!running && waiting.length > 0) {
    const lowest = Math.min(...waiting.map((w) => w.step ?? Number.MAX_SAFE_INTEGER));
    const launched =
      launches[0] && waiting.find((w) => "id" in launches[0]! && w.id === launches[0].id);
    if (launched?.step !== lowest) return "not the lowest step waiting launched";
  } else if (launches.length) {
    return "a launch with nothing waiting";
  }
  for (const r of input.records) {
    const kinds = actions
      .filter((a) => "id" in a && a.id === r.id && a.kind !== "launch")
      .map((a) => a.kind)
      .join();
    const died = r.written === "running" && r.judged.state === "failed";
    const again = r.setPath === input.setPath && r.tries < MAX_STANDING_TRIES;
    const want =
      r.written === "queued" && r.setPath !== input.setPath
        ? "drop"
        : died
          ? again
            ? "requeue"
            : "give-up"
          : "";
    if (kinds !== want) return `${r.id}: ${kinds || "nothing"} where ${want || "nothing"} is due`;
  }
  // Kept weights stay exactly while something waiting or running needs them.
  const needed = new Set([
    ...input.records
      .filter(
        (r) =>
          r.judged.state === "running" ||
          (r.written === "queued" && r.setPath === input.setPath) ||
          requeued.has(r.id),
      )
      .map((r) => r.checkpoint),
    ...actions.flatMap((a) => (a.kind === "queue" ? [a.name] : [])),
  ]);
  for (const name of input.kept) {
    const released = actions.some((a) => a.kind === "release" && a.name === name);
    if (released === needed.has(name)) return `${name} released: ${released}`;
  }
  return null;
}
