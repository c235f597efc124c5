import { describe, expect, it } from "vitest";
import type { ExitRecord, RunnerRecord } from "../../src/runner/records";
import {
  type FileFound,
  type FolderContents,
  type FolderFile,
  type FolderVerdict,
  inventoryFolder,
  type RebuildPlan,
} from "../../src/server/recovery/folder-inventory";
import type { SlurmAttemptHandle } from "../../src/server/supervisor/executor";
import { initialProgress } from "../../src/server/supervisor/progress-state";
import type { StoredTaskRecord } from "../../src/server/tasks/task-record";
import { hyperparametersSchema, type TaskConfig } from "../../src/trainers/protocol";

const ID = "t0123456789";
const NOW = new Date("2030-01-02T03:04:05.000Z");
const STUDIO = { now: NOW, host: "studio-host", tasksRoot: "/home/s/tasks" };
const CONFIG_WRITTEN = Date.parse("2030-01-01T10:00:00.000Z");
const hyperparameters = hyperparametersSchema.parse({ epochs: 2 });

/** A version 2 record: from before evaluation sets. */
const taskRecord: StoredTaskRecord = {
  version: 2,
  id: ID,
  name: "demo",
  model: "builtin:tiny",
  trainer: "builtin",
  mode: "lora",
  dataset: { path: "/home/s/datasets/pinned/abc/data.jsonl", format: "alpaca" },
  hyperparameters,
  command: null,
  gpusRequested: 1,
  limits: { memoryMb: 512 },
  createdAt: "2030-01-01T09:00:00.000Z",
};

const config = (attempt: number, extra: Partial<TaskConfig> = {}): TaskConfig => ({
  taskId: ID,
  attempt,
  trainer: "command",
  model: "fixture",
  mode: "lora",
  dataset: { path: "/home/s/datasets/pinned/abc/data.jsonl", format: "alpaca" },
  taskDir: `/home/s/tasks/${ID}`,
  hyperparameters,
  resumeFrom: null,
  gpus: ["0", "1"],
  command: ["/usr/bin/node", "train.mjs"],
  ...extra,
});

const runner = (attempt: number): RunnerRecord => ({
  version: 1,
  attempt,
  bootId: "boot-1",
  runner: { pid: 100, startTime: "5000" },
  trainer: { pid: 101, startTime: "5001" },
  startedAt: "2030-01-01T10:00:01.000Z",
});

const exit = (attempt: number, extra: Partial<ExitRecord> = {}): ExitRecord => ({
  version: 1,
  attempt,
  exitCode: 0,
  signal: null,
  startedAt: "2030-01-01T10:00:01.500Z",
  endedAt: "2030-01-01T11:00:00.000Z",
  trainerPid: 101,
  runnerPid: 100,
  ...extra,
});

const json = (value: unknown, mtimeMs = CONFIG_WRITTEN): FileFound => ({
  state: "read",
  text: `${JSON.stringify(value)}\n`,
  mtimeMs,
});
const text = (t: string): FileFound => ({ state: "read", text: t, mtimeMs: CONFIG_WRITTEN });

function folder(
  files: Partial<Record<FolderFile, FileFound>>,
  extra: Partial<FolderContents> = {},
): FolderContents {
  const missing: FileFound = { state: "missing" };
  return {
    name: ID,
    files: {
      task: missing,
      config: missing,
      runner: missing,
      exit: missing,
      cancel: missing,
      slurmJob: missing,
      ...files,
    },
    hasLog: true,
    hasProgress: true,
    oldestTimeMs: Date.parse("2030-01-01T08:00:00.000Z"),
    ...extra,
  };
}

function planOf(verdict: FolderVerdict): RebuildPlan {
  if (verdict.kind !== "rebuild") throw new Error(`not rebuilt: ${verdict.why}`);
  return verdict.plan;
}

function whyNot(verdict: FolderVerdict): string {
  if (verdict.kind !== "cannot") throw new Error("rebuilt, but should not have been");
  return verdict.why;
}

const notRecovered = (plan: RebuildPlan) => plan.event.data.notRecovered.join(" | ");
const recovered = (plan: RebuildPlan) => plan.event.data.recovered.join(" | ");

describe("a folder that cannot give a task", () => {
  it.each([["UPPER"], ["has-dash"], ["has space"], ["x".repeat(65)], [""]])(
    "refuses a folder name that is not a task id: %j",
    (name) => {
      const why = whyNot(inventoryFolder(folder({ task: json(taskRecord) }, { name }), STUDIO));
      expect(why).toBe("not a task folder (a task id is 1 to 64 lowercase letters and digits)");
    },
  );

  it("refuses a folder with neither task.json nor config.json", () => {
    expect(whyNot(inventoryFolder(folder({ runner: json(runner(1)) }), STUDIO))).toBe(
      "nothing in it says what the task was (task.json is missing; config.json is missing)",
    );
  });

  it("names what is wrong with each settings file when neither can be read", () => {
    const why = whyNot(
      inventoryFolder(
        folder({
          task: text("{not json"),
          config: { state: "unreadable", problem: "not a regular file" },
        }),
        STUDIO,
      ),
    );
    expect(why).toBe(
      'nothing in it says what the task was (task.json: not JSON (9 bytes: "{not json"); config.json: not a regular file)',
    );
  });

  it("refuses settings that name another task (a folder copied under another name)", () => {
    const why = whyNot(
      inventoryFolder(
        folder({
          task: json({ ...taskRecord, id: "tother" }),
          config: json({ ...config(1), taskId: "tother" }),
        }),
        STUDIO,
      ),
    );
    expect(why).toContain(`task.json: names task "tother", not this folder's ${ID}`);
    expect(why).toContain(`config.json: names task "tother", not this folder's ${ID}`);
  });

  it.each([
    ["a version from a newer studio", { ...taskRecord, version: 4 }, "version"],
    [
      "an evaluation set of a newer shape",
      { ...taskRecord, version: 3, evaluationSet: { version: 2, path: "/x" } },
      "evaluation set version 2 is not one this studio reads",
    ],
    ["no version", { ...taskRecord, version: undefined }, "version"],
    ["a name PostgreSQL cannot store", { ...taskRecord, name: "a\u0000b" }, "name: contains a NUL"],
    [
      "a lone surrogate in the model",
      { ...taskRecord, model: "m\uD800" },
      "model: contains a lone",
    ],
    ["an empty name", { ...taskRecord, name: "" }, "name"],
    ["hyperparameters out of range", { ...taskRecord, hyperparameters: { epochs: 0 } }, "epochs"],
    ["an unknown trainer", { ...taskRecord, trainer: "rm -rf" }, "trainer"],
    ["a creation time that is no date", { ...taskRecord, createdAt: "yesterday" }, "not a date"],
    ["not an object", [1, 2, 3], "not a valid record"],
  ])("refuses task.json with %s (no config.json to fall back on)", (_, record, problem) => {
    const why = whyNot(inventoryFolder(folder({ task: json(record) }), STUDIO));
    expect(why).toMatch(/^nothing in it says what the task was \(task\.json: /);
    expect(why).toContain(problem);
  });
});

describe("a task that was never launched", () => {
  it("comes back pending with every setting from task.json", () => {
    const plan = planOf(inventoryFolder(folder({ task: json(taskRecord) }), STUDIO));
    expect(plan.taskId).toBe(ID);
    expect(plan.task).toEqual({
      id: ID,
      name: "demo",
      model: "builtin:tiny",
      trainer: "builtin",
      mode: "lora",
      datasetPath: taskRecord.dataset.path,
      datasetFormat: "alpaca",
      hyperparameters,
      command: null,
      gpusRequested: 1,
      limits: { memoryMb: 512 },
      evaluationSet: null,
      progress: initialProgress(),
      folder: `/home/s/tasks/${ID}`,
      createdAt: new Date(taskRecord.createdAt),
      updatedAt: NOW,
      status: "pending",
      currentAttempt: 0,
    });
    expect(plan.attempt).toBeNull();
    expect(plan.event.attempt).toBeNull();
    expect(notRecovered(plan)).toContain(
      "whether it was waiting in the queue or had been cancelled",
    );
  });

  it("comes back with the evaluation set a version 3 task.json names", () => {
    const evaluationSet = {
      version: 1,
      datasetId: "d1",
      name: "held-out.jsonl",
      path: "/home/s/datasets/pinned/def/held-out.jsonl",
      format: "alpaca",
      attachedAt: "2030-01-01T09:30:00.000Z",
    } as const;
    const v3 = { ...taskRecord, version: 3, evaluationSet };
    const plan = planOf(inventoryFolder(folder({ task: json(v3) }), STUDIO));
    expect(plan.task.evaluationSet).toEqual(evaluationSet);
  });
});

describe("a task with an attempt", () => {
  const full = {
    task: json(taskRecord),
    config: json(config(1)),
    runner: json(runner(1)),
    exit: json(exit(1)),
  };

  it("comes back open (training) with the attempt its records speak of, outcome left to reconciliation", () => {
    const plan = planOf(inventoryFolder(folder(full), STUDIO));
    expect(plan.task).toMatchObject({
      status: "training",
      currentAttempt: 1,
      cancelRequestedAt: null,
      name: "demo",
      gpusRequested: 1,
    });
    expect(plan.attempt).toEqual({
      taskId: ID,
      number: 1,
      executor: "local",
      host: "studio-host",
      gpus: ["0", "1"],
      resumeFrom: null,
      intentAt: new Date(CONFIG_WRITTEN),
      startedAt: new Date(runner(1).startedAt),
    });
    // No handle, no cursors, no end: the reconciler proves the processes from runner.json and
    // the monitor reads training.log and progress.jsonl from their start.
    expect(plan.attempt).not.toHaveProperty("handle");
    expect(plan.attempt).not.toHaveProperty("logCursor");
    expect(plan.attempt).not.toHaveProperty("endedAt");
    expect(plan.event.type).toBe("rebuilt");
    expect(plan.event.attempt).toBe(1);
    expect(plan.event.message).toMatch(
      /^rebuilt from its folder: the task's settings \(task\.json\)/,
    );
    expect(recovered(plan)).toContain("attempt 1 (config.json, runner.json, exit.json)");
    expect(recovered(plan)).toContain(
      "log lines, progress and metrics (read again from training.log and progress.jsonl)",
    );
    expect(plan.event.data.notRecovered).toEqual(["the event history (kept only in the database)"]);
  });

  it("keeps the checkpoint an attempt resumed from", () => {
    const plan = planOf(
      inventoryFolder(
        folder({ ...full, config: json(config(1, { resumeFrom: "/x/checkpoints/step-10" })) }),
        STUDIO,
      ),
    );
    expect(plan.attempt?.resumeFrom).toBe("/x/checkpoints/step-10");
  });

  it("is preparing while nothing of the runner is there (a launch in flight or lost)", () => {
    const plan = planOf(
      inventoryFolder(folder({ task: json(taskRecord), config: json(config(1)) }), STUDIO),
    );
    expect(plan.task.status).toBe("preparing");
    expect(plan.attempt?.startedAt).toBeNull();
    expect(plan.attempt?.intentAt).toEqual(new Date(CONFIG_WRITTEN));
  });

  it("takes the start from exit.json when runner.json is gone", () => {
    const plan = planOf(
      inventoryFolder(
        folder({ task: json(taskRecord), config: json(config(1)), exit: json(exit(1)) }),
        STUDIO,
      ),
    );
    expect(plan.task.status).toBe("training");
    expect(plan.attempt?.startedAt).toEqual(new Date(exit(1).startedAt));
  });

  it("reads version-0 records (written before records had a version)", () => {
    const { version: _r, ...oldRunner } = runner(1);
    const { version: _e, ...oldExit } = exit(1);
    const plan = planOf(
      inventoryFolder(folder({ ...full, runner: json(oldRunner), exit: json(oldExit) }), STUDIO),
    );
    expect(recovered(plan)).toContain("attempt 1 (config.json, runner.json, exit.json)");
  });

  it("carries a cancel request of the attempt over (so its ending counts as cancelled)", () => {
    const cancel = {
      version: 1,
      attempt: 1,
      requestedAt: "2030-01-01T10:30:00.000Z",
      graceMs: 30_000,
    };
    const plan = planOf(inventoryFolder(folder({ ...full, cancel: json(cancel) }), STUDIO));
    expect(plan.task.cancelRequestedAt).toEqual(new Date(cancel.requestedAt));
    expect(recovered(plan)).toContain(
      "attempt 1 (config.json, runner.json, exit.json, cancel.json)",
    );
  });

  it("ignores a cancel request of an earlier attempt", () => {
    const cancel = { version: 1, attempt: 1, requestedAt: "2030-01-01T10:30:00.000Z", graceMs: 0 };
    const plan = planOf(
      inventoryFolder(
        folder({
          ...full,
          config: json(config(2)),
          runner: json(runner(2)),
          exit: json(exit(2)),
          cancel: json(cancel),
        }),
        STUDIO,
      ),
    );
    expect(plan.task.cancelRequestedAt).toBeNull();
  });

  it("counts attempts before the latest as not recovered", () => {
    const second = planOf(
      inventoryFolder(
        folder({ ...full, config: json(config(2)), runner: json(runner(2)), exit: json(exit(2)) }),
        STUDIO,
      ),
    );
    expect(second.task.currentAttempt).toBe(2);
    expect(second.attempt?.number).toBe(2);
    expect(notRecovered(second)).toContain(
      "attempt 1 (the folder keeps only the latest attempt's records)",
    );
    const fourth = planOf(
      inventoryFolder(
        folder({ ...full, config: json(config(4)), runner: json(runner(4)), exit: json(exit(4)) }),
        STUDIO,
      ),
    );
    expect(notRecovered(fourth)).toContain(
      "attempts 1 to 3 (the folder keeps only the latest attempt's records)",
    );
  });

  it("takes the latest attempt any record names, and says what its missing config.json loses", () => {
    // exit.json of attempt 2 beside config.json of attempt 1: the config of 2 did not survive.
    const plan = planOf(
      inventoryFolder(
        folder({ task: json(taskRecord), config: json(config(1)), exit: json(exit(2)) }),
        STUDIO,
      ),
    );
    expect(plan.attempt).toMatchObject({ number: 2, gpus: [], resumeFrom: null });
    expect(plan.attempt?.intentAt).toEqual(new Date(exit(2).startedAt));
    expect(notRecovered(plan)).toContain(
      "attempt 2's GPUs and the checkpoint it resumed from (no config.json of that attempt)",
    );
  });

  it("leaves records of an earlier attempt out (a launch that stopped before clearing them)", () => {
    const plan = planOf(
      inventoryFolder(
        folder({
          task: json(taskRecord),
          config: json(config(3)),
          runner: json(runner(2)),
          exit: json(exit(2)),
        }),
        STUDIO,
      ),
    );
    expect(plan.attempt).toMatchObject({ number: 3, startedAt: null });
    expect(plan.task.status).toBe("preparing");
    expect(recovered(plan)).toContain("attempt 3 (config.json)");
  });

  it("marks a Slurm attempt as such", () => {
    const job: SlurmAttemptHandle = {
      kind: "slurm",
      version: 1,
      taskDir: `/home/s/tasks/${ID}`,
      attempt: 1,
      jobId: "812",
      cluster: null,
      node: "gpu-07",
    };
    const plan = planOf(
      inventoryFolder(
        folder({ task: json(taskRecord), config: json(config(1)), slurmJob: json(job) }),
        STUDIO,
      ),
    );
    expect(plan.attempt?.executor).toBe("slurm");
    expect(plan.task.status).toBe("training");
  });

  it.each([
    ["runner", "not JSON", text("{")],
    ["exit", "not a valid record (exitCode", json({ ...exit(1), exitCode: "zero" })],
    ["exit", "not a valid record (version", json({ ...exit(1), version: 99 })],
    [
      "cancel",
      "not a valid record (graceMs",
      json({ version: 1, attempt: 1, requestedAt: "2030-01-01T00:00:00Z", graceMs: -1 }),
    ],
    ["slurmJob", "not JSON", text("")],
    [
      "runner",
      "runner.json: a symbolic link (or behind one); links are not followed",
      {
        state: "unreadable",
        problem: "a symbolic link (or behind one); links are not followed",
      } as FileFound,
    ],
    [
      "exit",
      "exit.json: 70000 bytes, more than any such file holds",
      { state: "unreadable", problem: "70000 bytes, more than any such file holds" } as FileFound,
    ],
  ] as const)(
    "rebuilds the task when %s's record cannot be believed, naming it (%s) for reconciliation to judge",
    (file, problem, found) => {
      const plan = planOf(inventoryFolder(folder({ ...full, [file]: found }), STUDIO));
      expect(plan.task.status).toBe("training");
      expect(notRecovered(plan)).toContain(problem);
    },
  );

  it("a record unreadable beside a launch with nothing else is training, not preparing", () => {
    const plan = planOf(
      inventoryFolder(
        folder({ task: json(taskRecord), config: json(config(1)), exit: text("garbage") }),
        STUDIO,
      ),
    );
    expect(plan.task.status).toBe("training");
  });

  it("says the log is gone when training.log is missing", () => {
    const plan = planOf(
      inventoryFolder(folder(full, { hasLog: false, hasProgress: false }), STUDIO),
    );
    expect(notRecovered(plan)).toContain("the log (no training.log)");
    expect(recovered(plan)).not.toContain("log lines");
  });

  it("notes an unreadable config.json while task.json gives the settings", () => {
    const plan = planOf(inventoryFolder(folder({ ...full, config: text("[") }), STUDIO));
    expect(plan.task.name).toBe("demo");
    expect(notRecovered(plan)).toContain('config.json: not JSON (1 bytes: "[")');
    expect(plan.attempt?.gpus).toEqual([]);
  });
});

describe("an older folder (no task.json)", () => {
  const older = { config: json(config(1)), runner: json(runner(1)), exit: json(exit(1)) };

  it("rebuilds from config.json: a stand-in name, GPUs from the attempt, the folder's oldest time", () => {
    const plan = planOf(inventoryFolder(folder(older), STUDIO));
    expect(plan.task).toMatchObject({
      name: `task ${ID}`,
      trainer: "command",
      model: "fixture",
      command: ["/usr/bin/node", "train.mjs"],
      gpusRequested: 2,
      createdAt: new Date("2030-01-01T08:00:00.000Z"),
      status: "training",
    });
    expect(recovered(plan)).toContain("the task's settings (config.json of attempt 1)");
    expect(notRecovered(plan)).toContain(
      "its name, the GPUs asked for and when it was created (no task.json: the folder predates it)",
    );
  });

  it("uses the rebuild's time when the folder has no time at all", () => {
    const plan = planOf(inventoryFolder(folder(older, { oldestTimeMs: null }), STUDIO));
    expect(plan.task.createdAt).toEqual(NOW);
  });

  it("falls back on config.json when task.json is unreadable, saying why", () => {
    const plan = planOf(inventoryFolder(folder({ ...older, task: text("nope") }), STUDIO));
    expect(plan.task.name).toBe(`task ${ID}`);
    expect(notRecovered(plan)).toContain(
      'its name, the GPUs asked for and when it was created (task.json: not JSON (4 bytes: "nope"))',
    );
  });

  it("refuses config.json whose settings PostgreSQL cannot store", () => {
    const why = whyNot(
      inventoryFolder(folder({ config: json(config(1, { command: ["a\u0000"] })) }), STUDIO),
    );
    expect(why).toContain("config.json: command.0: contains a NUL character");
  });
});
