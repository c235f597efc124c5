import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { probe } from "../../platform/identity";
import { hashFile } from "../../trainers/checkpoints/folder";
import { startDetachedJob } from "../../trainers/detached-job";
import {
  EXPORT_FOLDER,
  EXPORT_LOG_FILE,
  EXPORT_RECORD_FILE,
  EXPORT_RECORD_VERSION,
  type ExportRecord,
  exportRecordPath,
  parseExportRecord,
} from "../../trainers/export/export-record";
import { type ExportStatus, judgeExport } from "../../trainers/export/export-state";
import {
  type ExportRequest,
  type ExportSource,
  exportRequestSchema,
} from "../../trainers/export/provenance";
import { pinnedDatasetSha256 } from "../datasets/pinned";
import { openInside, PathRefusal } from "../datasets/safe-paths";
import type { TaskRow } from "../db/schema";
import { noRoomReason } from "../disk-space";
import { tasksRootOf } from "../home";
import { TaskActionError } from "../supervisor/task-action-error";
import { isActive } from "./lifecycle";

/**
 * A task's export (a merged model with its provenance, see src/trainers/export/): started here
 * as a process of its own, detached like a runner, so neither a long merge nor the tensor
 * libraries it loads ever run in the studio; its state is read back from `export.json`.
 */

export interface ExportSettings {
  home: string;
  minFreeMb: number;
  studioVersion: string;
  /** The interpreter the hf-peft trainer runs with, chosen now. */
  python: () => string;
  /** The environment the exporter inherits (the studio's secrets are left out). */
  baseEnv: Record<string, string | undefined>;
}

export type TaskExportStatus = ExportStatus & { folder: string };

/** Tasks whose export this studio is starting: a second request meanwhile is refused. */
const starting = new Set<string>();

/** The task's folder, which must be on this machine. */
function folderOf(home: string, task: TaskRow): string {
  const dir = join(tasksRootOf(home, task), task.id);
  if (!existsSync(dir)) {
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `task ${task.id}'s folder ${dir} is not on this machine; export it through the studio that started it`,
    );
  }
  return dir;
}

/** Starts exporting `checkpoint` (a folder under checkpoints/), or the final adapter when null. */
export async function startExport(
  settings: ExportSettings,
  task: TaskRow,
  checkpoint: string | null,
): Promise<TaskExportStatus> {
  if (task.trainer !== "builtin" && task.trainer !== "hf-peft") {
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `task ${task.id} ran a custom command, whose output the studio cannot merge; export needs a built-in or hf-peft task`,
    );
  }
  const dir = folderOf(settings.home, task);
  const source = await sourceOf(task, dir, checkpoint);
  if (starting.has(task.id)) {
    throw new TaskActionError("CONFLICT", `an export of task ${task.id} is being started`);
  }
  starting.add(task.id);
  try {
    const current = await readExport(settings.home, task);
    if (current.state === "running") {
      throw new TaskActionError(
        "CONFLICT",
        `task ${task.id} is being exported (since ${current.startedAt}); wait for it to end`,
      );
    }
    const noRoom = await noRoomReason(settings.home, settings.minFreeMb);
    if (noRoom) throw new TaskActionError("PRECONDITION_FAILED", `cannot export: ${noRoom}`);
    const request = exportRequestSchema.parse({
      task: { id: task.id, name: task.name },
      trainer: task.trainer,
      // The hf-peft trainer only trains adapters.
      mode: task.trainer === "builtin" ? task.mode : "lora",
      baseModel: task.model,
      dataset: {
        path: task.datasetPath,
        format: task.datasetFormat,
        ...(await datasetHash(task.datasetPath)),
      },
      hyperparameters: task.hyperparameters,
      source,
      studioVersion: settings.studioVersion,
      requestedAt: new Date().toISOString(),
    } satisfies ExportRequest);
    const record: ExportRecord = {
      version: EXPORT_RECORD_VERSION,
      id: randomBytes(8).toString("hex"),
      state: "running",
      request,
      python: task.trainer === "hf-peft" ? settings.python() : null,
      process: null,
      startedAt: request.requestedAt,
      finishedAt: null,
      files: null,
      reason: null,
    };
    writeJsonAtomic(exportRecordPath(dir), record);
    await launchExporter(settings, dir, record);
    return await readExport(settings.home, task);
  } finally {
    starting.delete(task.id);
  }
}

/** What the export reads: the final adapter of a completed task, or a checkpoint of an ended one. */
async function sourceOf(
  task: TaskRow,
  dir: string,
  checkpoint: string | null,
): Promise<ExportSource> {
  if (checkpoint === null) {
    if (task.status !== "completed") {
      throw new TaskActionError(
        "CONFLICT",
        `task ${task.id} is ${task.status}; only a completed task has a final adapter to export (or name one of its checkpoints)`,
      );
    }
    const step = (task.progress as { step?: unknown } | null)?.step;
    return { kind: "final", path: ".", step: typeof step === "number" ? step : null };
  }
  const path = checkpoint.includes("/") ? checkpoint : `checkpoints/${checkpoint}`;
  const shape = /^checkpoints\/([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127})$/.exec(path);
  if (!shape) {
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `${checkpoint} is not a checkpoint folder name (e.g. checkpoints/step-20)`,
    );
  }
  if (isActive(task.status)) {
    throw new TaskActionError(
      "CONFLICT",
      `task ${task.id} is ${task.status}: its trainer may remove the checkpoint while it is read; export it once the task has ended`,
    );
  }
  const info = await lstat(join(dir, path)).catch(() => null);
  if (!info?.isDirectory()) {
    throw new TaskActionError(
      "NOT_FOUND",
      `task ${task.id} has no checkpoint ${path}${info ? " (it is not a plain folder)" : ""}`,
    );
  }
  const step = /-(\d+)$/.exec(shape[1]!)?.[1];
  return { kind: "checkpoint", path, step: step === undefined ? null : Number(step) };
}

/** The pinned copy's hash from its name; a task from before pinning has its file hashed now. */
async function datasetHash(
  path: string,
): Promise<Pick<ExportRequest["dataset"], "sha256" | "hashedFrom">> {
  const pinned = pinnedDatasetSha256(path);
  if (pinned) return { sha256: pinned, hashedFrom: "pinned-copy" };
  try {
    return { sha256: (await hashFile(path)).sha256, hashedFrom: "file-at-export" };
  } catch {
    return { sha256: null, hashedFrom: "unreadable" };
  }
}

/** The exporter, in a session of its own with its output in export.log; the studio forgets it. */
async function launchExporter(settings: ExportSettings, dir: string, record: ExportRecord) {
  const failed = await startDetachedJob({
    program: "exporter",
    idOption: "export-id",
    taskDir: dir,
    record,
    recordPath: exportRecordPath(dir),
    log: { path: join(dir, EXPORT_LOG_FILE), append: false },
    baseEnv: settings.baseEnv,
  });
  if (failed) throw new TaskActionError("PRECONDITION_FAILED", failed);
}

/** The task's export as it stands: from export.json, the exporter's identity and the folder. */
export async function readExport(home: string, task: TaskRow): Promise<TaskExportStatus> {
  const root = tasksRootOf(home, task);
  const folder = join(root, task.id, EXPORT_FOLDER);
  const record = await readRecord(root, task.id);
  const known = record !== null && !("problem" in record) ? record : null;
  const liveness = known?.process ? probe(known.process) : null;
  const missingFiles: string[] = [];
  if (known?.state === "done") {
    for (const file of known.files ?? []) {
      const info = await lstat(join(folder, file.name)).catch(() => null);
      if (!info?.isFile()) missingFiles.push(file.name);
    }
  }
  const lastLogLine =
    known?.state === "running" && liveness !== "alive" ? await lastLineOfLog(root, task.id) : null;
  const status = judgeExport({
    record,
    liveness,
    now: new Date(),
    missingFiles,
    folder,
    lastLogLine,
  });
  return { ...status, folder };
}

/** Records are small; anything larger than this is not one. */
const MAX_RECORD_BYTES = 256 * 1024;

/** export.json, read as downloads are: never through a link (the folder is a trainer's too). */
async function readRecord(
  root: string,
  taskId: string,
): Promise<ExportRecord | null | { problem: string }> {
  let opened: Awaited<ReturnType<typeof openInside>>;
  try {
    opened = await openInside(root, `${taskId}/${EXPORT_RECORD_FILE}`);
  } catch (err) {
    if (!(err instanceof PathRefusal)) throw err;
    return err.kind === "missing" ? null : { problem: `is refused: ${err.message}` };
  }
  try {
    if (opened.size > MAX_RECORD_BYTES) return { problem: `is ${opened.size} bytes, too large` };
    return parseExportRecord(await opened.handle.readFile("utf8"));
  } catch (err) {
    // Named by what is wrong, never by quoting the file.
    return {
      problem: `cannot be read: ${err instanceof SyntaxError ? "not JSON" : (err as Error).message}`,
    };
  } finally {
    await opened.handle.close();
  }
}

/** The last line of export.log that is not a stack frame, for a failure nobody recorded. */
async function lastLineOfLog(root: string, taskId: string): Promise<string | null> {
  try {
    const { handle, size } = await openInside(root, `${taskId}/${EXPORT_LOG_FILE}`);
    try {
      const length = Math.min(size, 4096);
      const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
      const lines = buffer
        .toString("utf8")
        .split("\n")
        .map((l) => l.trimEnd());
      return lines.findLast((l) => l !== "" && !/^\s/.test(l))?.slice(0, 500) ?? null;
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}
