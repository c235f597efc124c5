import { randomBytes } from "node:crypto";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { probe } from "../../platform/identity";
import { startDetachedJob } from "../../trainers/detached-job";
import {
  EVAL_FOLDER,
  EVAL_RECORD_VERSION,
  type EvalRecord,
  evalIdSchema,
  evalLogPath,
  evalRecordPath,
  parseEvalRecord,
} from "../../trainers/evaluate/eval-record";
import { type EvalStatus, judgeEvaluation } from "../../trainers/evaluate/eval-state";
import { openInside, PathRefusal } from "../datasets/safe-paths";
import type { DatasetInfo } from "../datasets/store";
import type { TaskRow } from "../db/schema";
import { noRoomReason } from "../disk-space";
import { tasksRootOf } from "../home";
import { TaskActionError } from "../supervisor/task-action-error";
import { taskModel } from "./task-model-source";

/**
 * Evaluations of a task's trained weights on a held-out dataset: each one a record in
 * `eval/<id>.json` and a detached process of its own (dist/evaluator.js), started as an export
 * is, so no model is loaded in the studio and a studio restart loses nothing.
 */

export interface EvaluationSettings {
  home: string;
  minFreeMb: number;
  python: () => string;
  baseEnv: Record<string, string | undefined>;
}

/** Several at once are allowed, but not without bound: each loads the model. */
const MAX_RUNNING = 2;

export async function startEvaluation(
  settings: EvaluationSettings,
  task: TaskRow,
  dataset: DatasetInfo,
  checkpoint: string | null,
): Promise<EvalStatus> {
  const model = await taskModel(settings.home, task, checkpoint);
  const running = (await listEvaluations(settings.home, task)).filter((e) => e.state === "running");
  if (running.length >= MAX_RUNNING) {
    throw new TaskActionError(
      "CONFLICT",
      `task ${task.id} has ${running.length} evaluations running; wait for one to end`,
    );
  }
  const noRoom = await noRoomReason(settings.home, settings.minFreeMb);
  if (noRoom) throw new TaskActionError("PRECONDITION_FAILED", `cannot evaluate: ${noRoom}`);
  const record: EvalRecord = {
    version: EVAL_RECORD_VERSION,
    id: randomBytes(8).toString("hex"),
    origin: "request",
    state: "running",
    trainer: model.trainer,
    readFrom: null,
    tries: 1,
    niceness: null,
    source: model.source,
    dataset: { id: dataset.id, name: dataset.name, path: dataset.path, format: dataset.format },
    python: model.trainer === "hf-peft" ? settings.python() : null,
    process: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    results: null,
    reason: null,
  };
  await mkdir(join(model.taskDir, EVAL_FOLDER), { recursive: true });
  writeJsonAtomic(evalRecordPath(model.taskDir, record.id), record);
  await launchEvaluator(settings, model.taskDir, record);
  return judgeEvaluation(record, null, new Date());
}

/**
 * Starts the evaluator for a record already written "running", detached, with its output
 * appended to `eval/<id>.log`. A start that fails is recorded as the evaluation's failure.
 */
export async function launchEvaluator(
  settings: Pick<EvaluationSettings, "baseEnv">,
  dir: string,
  record: EvalRecord,
) {
  const failed = await startDetachedJob({
    program: "evaluator",
    idOption: "eval-id",
    taskDir: dir,
    record,
    recordPath: evalRecordPath(dir, record.id),
    log: { path: evalLogPath(dir, record.id), append: true },
    baseEnv: settings.baseEnv,
  });
  if (failed) throw new TaskActionError("PRECONDITION_FAILED", failed);
}

const MAX_RECORD_BYTES = 1024 * 1024;

/** Every evaluation of the task, newest first; an unreadable record is listed as a failure. */
export async function listEvaluations(home: string, task: TaskRow): Promise<EvalStatus[]> {
  const out: EvalStatus[] = [];
  for (const found of await readEvaluationRecords(tasksRootOf(home, task), task.id)) {
    if ("problem" in found) {
      out.push({
        id: found.id,
        origin: "request",
        state: "failed",
        source: { path: "?", step: null },
        dataset: { id: "?", name: "?" },
        startedAt: "",
        finishedAt: null,
        reason: `the evaluation record ${found.problem}`,
      });
      continue;
    }
    const { record } = found;
    out.push(judgeEvaluation(record, record.process ? probe(record.process) : null, new Date()));
  }
  return out.sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
}

/** The records in the task's eval/ folder, each read or with why it cannot be. */
export async function readEvaluationRecords(
  root: string,
  taskId: string,
): Promise<Array<{ id: string; record: EvalRecord } | { id: string; problem: string }>> {
  const names = await readdir(join(root, taskId, EVAL_FOLDER)).catch(() => [] as string[]);
  const out: Array<{ id: string; record: EvalRecord } | { id: string; problem: string }> = [];
  for (const name of names) {
    const id = name.endsWith(".json") ? name.slice(0, -5) : null;
    if (id === null || !evalIdSchema.safeParse(id).success) continue;
    const read = await readRecord(root, taskId, name);
    out.push("problem" in read ? { id, problem: read.problem } : { id, record: read });
  }
  return out;
}

/** Read as downloads are: never through a link (the folder is a trainer's too). */
async function readRecord(
  root: string,
  taskId: string,
  name: string,
): Promise<EvalRecord | { problem: string }> {
  let opened: Awaited<ReturnType<typeof openInside>>;
  try {
    opened = await openInside(root, `${taskId}/${EVAL_FOLDER}/${name}`);
  } catch (err) {
    if (!(err instanceof PathRefusal)) throw err;
    return { problem: `is refused: ${err.message}` };
  }
  try {
    if (opened.size > MAX_RECORD_BYTES) return { problem: `is ${opened.size} bytes, too large` };
    return parseEvalRecord(await opened.handle.readFile("utf8"));
  } catch (err) {
    return {
      problem: `cannot be read: ${err instanceof SyntaxError ? "not JSON" : (err as Error).message}`,
    };
  } finally {
    await opened.handle.close();
  }
}
