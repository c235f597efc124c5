import { join } from "node:path";
import type { z } from "zod";
import {
  cancelRequestSchema,
  exitRecordSchema,
  parseRecord,
  runnerRecordSchema,
} from "../../runner/record-schemas";
import {
  CANCEL_REQUEST_FILE,
  EXIT_RECORD_FILE,
  RUNNER_RECORD_FILE,
  TRAINING_LOG_FILE,
} from "../../runner/records";
import { PROGRESS_FILE, type TaskConfig, taskConfigSchema } from "../../trainers/protocol";
import { unstorableText } from "../api/storable";
import type { attempts, tasks } from "../db/schema";
import { slurmHandleSchema } from "../supervisor/executor";
import { initialProgress } from "../supervisor/progress-state";
import { SLURM_JOB_FILE } from "../supervisor/slurm-executor";
import { TASK_CONFIG_FILE } from "../supervisor/task-folder";
import { TASK_RECORD_FILE, type TaskRecord, taskRecordSchema } from "../tasks/task-record";

/**
 * What a task folder says about the task the database lost, decided without any I/O: the rows
 * to insert, or why the folder cannot give them. The caller (./rebuild) reads the folder and
 * stores the rows; boot reconciliation then judges the rebuilt attempt like any other open one
 * (finalized from exit.json, re-attached by identity, failed with the file that is wrong), so
 * no outcome is decided here. Every fault is this folder's: a file that cannot be believed is
 * named, with what is wrong, and rebuilds what it can without it.
 */

/** The files a rebuild reads, by what they are. training.log and progress.jsonl are the monitor's. */
export const FOLDER_FILES = {
  task: TASK_RECORD_FILE,
  config: TASK_CONFIG_FILE,
  runner: RUNNER_RECORD_FILE,
  exit: EXIT_RECORD_FILE,
  cancel: CANCEL_REQUEST_FILE,
  slurmJob: SLURM_JOB_FILE,
} as const;
export type FolderFile = keyof typeof FOLDER_FILES;

/** One file as found: absent, its text (and when it was last written), or why it was not read. */
export type FileFound =
  | { state: "missing" }
  | { state: "read"; text: string; mtimeMs: number }
  | { state: "unreadable"; problem: string };

export interface FolderContents {
  /** The folder's name under tasks/: the task id it stands for. */
  name: string;
  files: Record<FolderFile, FileFound>;
  /** Whether training.log and progress.jsonl are there (the monitor reads them again). */
  hasLog: boolean;
  hasProgress: boolean;
  /** The oldest time found on the folder and its files (ms): a creation time for older folders. */
  oldestTimeMs: number | null;
}

export type NewTaskRow = typeof tasks.$inferInsert;
export type NewAttemptRow = typeof attempts.$inferInsert;

export interface RebuildPlan {
  taskId: string;
  task: NewTaskRow & { id: string };
  /** The latest attempt, the one the folder's records speak of; null when none was launched. */
  attempt: NewAttemptRow | null;
  /** The "rebuilt" event: what came back, and what did not. */
  event: { type: "rebuilt"; message: string; attempt: number | null; data: RebuiltData };
}

export type RebuiltData = {
  /** What each part of the task was rebuilt from. */
  recovered: string[];
  /** What the folder could not give back, and why. */
  notRecovered: string[];
};

export type FolderVerdict =
  | { kind: "rebuild"; plan: RebuildPlan }
  | { kind: "cannot"; folder: string; why: string };

/** Task ids as the studio makes and accepts them (src/shared/task-input.ts). */
const TASK_ID = /^[a-z0-9]{1,64}$/;

/** Settings a task row is made from, whichever file gave them. */
interface Settings {
  record: Omit<TaskRecord, "version" | "id" | "createdAt">;
  createdAt: Date | null;
  source: string;
}

type Parsed<T> = { value: T } | { problem: string } | null;

/** The file's record, what is wrong with it, or null when it is absent. */
function parse<T>(file: FileFound, schema: z.ZodType<T, unknown>): Parsed<T> {
  if (file.state === "missing") return null;
  if (file.state === "unreadable") return { problem: file.problem };
  const parsed = parseRecord(file.text, schema);
  if ("problem" in parsed) return parsed;
  // What PostgreSQL cannot store (NUL, lone surrogates) is the file's fault, named here.
  const unstorable = unstorableText(parsed.record);
  if (unstorable) {
    return { problem: `${unstorable.path ? `${unstorable.path}: ` : ""}${unstorable.message}` };
  }
  return { value: parsed.record };
}

/** Why a file gave nothing: "task.json is missing", or "task.json: <what is wrong>". */
function whyNothing(name: string, parsed: Parsed<unknown>): string {
  return parsed && "problem" in parsed ? `${name}: ${parsed.problem}` : `${name} is missing`;
}

/** A settings file must name the folder's own task: a folder copied under another name is not it. */
function ownTask<T>(parsed: Parsed<T>, idOf: (value: T) => string, folder: string): Parsed<T> {
  if (!parsed || "problem" in parsed) return parsed;
  const id = idOf(parsed.value);
  return id === folder
    ? parsed
    : { problem: `names task ${JSON.stringify(id.slice(0, 80))}, not this folder's ${folder}` };
}

function settingsFrom(
  task: Parsed<TaskRecord>,
  config: Parsed<TaskConfig>,
): Settings | { problem: string } {
  if (task && "value" in task) {
    const { version: _v, id: _id, createdAt, ...record } = task.value;
    return { record, createdAt: new Date(createdAt), source: FOLDER_FILES.task };
  }
  if (config && "value" in config) {
    const c = config.value;
    return {
      record: {
        name: `task ${c.taskId}`,
        model: c.model,
        trainer: c.trainer,
        mode: c.mode,
        dataset: c.dataset,
        hyperparameters: c.hyperparameters,
        command: c.command,
        gpusRequested: c.gpus.length,
        // Not in config.json: a task from before task.json comes back without limits or set.
        limits: {},
        evaluationSet: null,
      },
      createdAt: null,
      source: `${FOLDER_FILES.config} of attempt ${c.attempt}`,
    };
  }
  return {
    problem: `nothing in it says what the task was (${whyNothing(FOLDER_FILES.task, task)}; ${whyNothing(FOLDER_FILES.config, config)})`,
  };
}

/** What the studio doing the rebuild passes: its time, its host, its tasks folder. */
export interface RebuildingStudio {
  now: Date;
  /** The attempt's host until reconciliation learns better (a Slurm node). */
  host: string;
  /** STUDIO_HOME/tasks as the studio names it: the rebuilt task's folder is in it. */
  tasksRoot: string;
}

/** The rows that rebuild the task of one folder, or why it cannot be rebuilt. */
export function inventoryFolder(folder: FolderContents, studio: RebuildingStudio): FolderVerdict {
  const id = folder.name;
  const cannot = (why: string): FolderVerdict => ({ kind: "cannot", folder: id, why });
  if (!TASK_ID.test(id)) {
    return cannot("not a task folder (a task id is 1 to 64 lowercase letters and digits)");
  }
  const f = folder.files;
  const task = ownTask(parse(f.task, taskRecordSchema), (t) => t.id, id);
  const config = ownTask(parse(f.config, taskConfigSchema), (c) => c.taskId, id);
  const settings = settingsFrom(task, config);
  if ("problem" in settings) return cannot(settings.problem);

  const recovered = [`the task's settings (${settings.source})`];
  const notRecovered: string[] = [];
  if (settings.source !== FOLDER_FILES.task) {
    notRecovered.push(
      `its name, the GPUs asked for and when it was created (${
        task ? whyNothing(FOLDER_FILES.task, task) : "no task.json: the folder predates it"
      })`,
    );
  }

  const runner = parse(f.runner, runnerRecordSchema);
  const exit = parse(f.exit, exitRecordSchema);
  const cancel = parse(f.cancel, cancelRequestSchema);
  const slurmJob = parse(f.slurmJob, slurmHandleSchema);
  const attemptOf = (p: Parsed<{ attempt: number }>) => (p && "value" in p ? p.value.attempt : 0);
  const latest = Math.max(
    attemptOf(config),
    attemptOf(runner),
    attemptOf(exit),
    attemptOf(slurmJob),
  );
  // Records of an attempt before the latest (a launch that stopped before clearing them) are
  // not the latest attempt's.
  const ofLatest = <T extends { attempt: number }>(p: Parsed<T>): T | null =>
    p && "value" in p && p.value.attempt === latest ? p.value : null;
  for (const [file, parsed] of [
    [FOLDER_FILES.runner, runner],
    [FOLDER_FILES.exit, exit],
    [FOLDER_FILES.cancel, cancel],
    [FOLDER_FILES.slurmJob, slurmJob],
  ] as const) {
    if (parsed && "problem" in parsed) notRecovered.push(`${file}: ${parsed.problem}`);
  }
  if (config && "problem" in config && settings.source === FOLDER_FILES.task) {
    notRecovered.push(`${FOLDER_FILES.config}: ${config.problem}`);
  }

  const createdAt = settings.createdAt ?? new Date(folder.oldestTimeMs ?? studio.now.getTime());
  const base = {
    id,
    name: settings.record.name,
    model: settings.record.model,
    trainer: settings.record.trainer,
    mode: settings.record.mode,
    datasetPath: settings.record.dataset.path,
    datasetFormat: settings.record.dataset.format,
    hyperparameters: settings.record.hyperparameters,
    command: settings.record.command,
    gpusRequested: settings.record.gpusRequested,
    limits: settings.record.limits,
    evaluationSet: settings.record.evaluationSet,
    progress: initialProgress() as unknown as Record<string, unknown>,
    folder: join(studio.tasksRoot, id),
    createdAt,
    updatedAt: studio.now,
  };

  if (latest === 0) {
    notRecovered.push(
      "whether it was waiting in the queue or had been cancelled (no attempt was launched): rebuilt as pending",
    );
    return rebuilt(
      { ...base, status: "pending", currentAttempt: 0 },
      null,
      recovered,
      notRecovered,
    );
  }

  const configOfLatest = ofLatest(config);
  const runnerOfLatest = ofLatest(runner);
  const exitOfLatest = ofLatest(exit);
  const cancelOfLatest = ofLatest(cancel);
  const slurmOfLatest = ofLatest(slurmJob);
  const sources = [
    configOfLatest && FOLDER_FILES.config,
    runnerOfLatest && FOLDER_FILES.runner,
    exitOfLatest && FOLDER_FILES.exit,
    slurmOfLatest && FOLDER_FILES.slurmJob,
    cancelOfLatest && FOLDER_FILES.cancel,
  ].filter(Boolean);
  recovered.push(`attempt ${latest} (${sources.join(", ")})`);
  if (latest > 1) {
    notRecovered.push(
      latest === 2
        ? "attempt 1 (the folder keeps only the latest attempt's records)"
        : `attempts 1 to ${latest - 1} (the folder keeps only the latest attempt's records)`,
    );
  }
  if (!configOfLatest) {
    notRecovered.push(
      `attempt ${latest}'s GPUs and the checkpoint it resumed from (no ${FOLDER_FILES.config} of that attempt)`,
    );
  }
  if (folder.hasLog || folder.hasProgress) {
    recovered.push(
      `log lines, progress and metrics (read again from ${[
        folder.hasLog && TRAINING_LOG_FILE,
        folder.hasProgress && PROGRESS_FILE,
      ]
        .filter(Boolean)
        .join(" and ")})`,
    );
  }
  if (!folder.hasLog) notRecovered.push(`the log (no ${TRAINING_LOG_FILE})`);

  // Written as the launcher would have left it: preparing until something of the runner is
  // there, training after. Whatever is true now (ended, running, paused, lost) is boot
  // reconciliation's to decide, from the same files, as for any attempt found open.
  const runnerSeen =
    runnerOfLatest !== null ||
    exitOfLatest !== null ||
    slurmOfLatest !== null ||
    [runner, exit, slurmJob].some((p) => p !== null && "problem" in p);
  const startedAt = runnerOfLatest?.startedAt ?? exitOfLatest?.startedAt ?? null;
  const attempt: NewAttemptRow = {
    taskId: id,
    number: latest,
    executor: slurmOfLatest ? "slurm" : "local",
    host: studio.host,
    gpus: configOfLatest?.gpus ?? [],
    resumeFrom: configOfLatest?.resumeFrom ?? null,
    // When the launch was intended: a launch still in flight is waited for until its time is up.
    intentAt:
      f.config.state === "read" && configOfLatest
        ? new Date(f.config.mtimeMs)
        : startedAt
          ? new Date(startedAt)
          : studio.now,
    startedAt: startedAt ? new Date(startedAt) : null,
  };
  return rebuilt(
    {
      ...base,
      status: runnerSeen ? "training" : "preparing",
      currentAttempt: latest,
      cancelRequestedAt: cancelOfLatest ? new Date(cancelOfLatest.requestedAt) : null,
    },
    attempt,
    recovered,
    notRecovered,
  );
}

function rebuilt(
  task: NewTaskRow & { id: string },
  attempt: NewAttemptRow | null,
  recovered: string[],
  notRecovered: string[],
): FolderVerdict {
  const lost = ["the event history (kept only in the database)", ...notRecovered];
  return {
    kind: "rebuild",
    plan: {
      taskId: task.id,
      task,
      attempt,
      event: {
        type: "rebuilt",
        message: `rebuilt from its folder: ${recovered.join("; ")}. Not recovered: ${lost.join("; ")}`,
        attempt: attempt?.number ?? null,
        data: { recovered, notRecovered: lost },
      },
    },
  };
}
