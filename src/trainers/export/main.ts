import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { syncFolder } from "../../platform/durable-folder";
import { DIST_DIR } from "../../platform/package-root";
import { freeSpace, hashFile, verifyCheckpoint, writeFileDurably } from "../checkpoints/folder";
import { type ClaimedJob, JobFailure, runDetachedJob } from "../detached-job";
import { clearLeftovers, makeStagingFolder, sealExport, swapIntoPlace } from "./export-folder";
import {
  EXPORT_FOLDER,
  type ExportRecord,
  exportRecordPath,
  parseExportRecord,
} from "./export-record";
import { diskFullReason, mergeCommand, mergeFailureReason } from "./merge-program";
import {
  type ExportedFile,
  type ExportRequest,
  PROVENANCE_FILE,
  provenanceOf,
  sourceFilesOf,
} from "./provenance";

/**
 * `exporter --task-dir <dir> --export-id <id>`: carries out the export that `export.json` in
 * the task folder asks for, by the detached-job protocol (../detached-job: claimed with its
 * identity, output in export.log, its end recorded). It stages the merged model, its config and
 * provenance.json in a hidden folder, flushes them, and only then renames the folder to
 * `export/` (see export-folder.ts); on any failure the staging folder is removed and the task's
 * files, an earlier export included, are as they were. SIGTERM stops the merge and fails the
 * export, saying so.
 */
runDetachedJob<ExportRecord>(
  {
    program: "exporter",
    noun: "export",
    idOption: "export-id",
    recordPath: (taskDir) => exportRecordPath(taskDir),
    parseRecord: parseExportRecord,
    standDown: (record, id) =>
      record.id !== id
        ? `export.json now asks for export ${record.id}`
        : record.state !== "running" || record.process !== null
          ? `export ${id} is ${record.process ? "claimed" : record.state}`
          : null,
    work: exportWork,
    reasonOf,
  },
  process.argv.slice(2),
);

async function exportWork(job: ClaimedJob<ExportRecord>): Promise<Partial<ExportRecord> | null> {
  const { taskDir, id, record } = job;
  const checkStopped = () => {
    const stopped = job.stopped();
    if (stopped) throw new JobFailure(`the export was stopped (${stopped}); the task is unchanged`);
  };
  let staging: string | null = null;
  try {
    for (const line of await clearLeftovers(taskDir)) console.log(`export ${id}: ${line}`);
    const request = record.request;
    const source = join(taskDir, request.source.path);
    if (request.source.kind === "checkpoint") {
      const verified = await verifyCheckpoint(source, request.source.step);
      if (verified.kind === "failed") {
        throw new JobFailure(
          `checkpoint ${request.source.path} does not verify: ${verified.reason}`,
        );
      }
    }
    const mergedFrom = await hashSourceFiles(source, request);
    await refuseWhenNoRoom(taskDir, request);
    staging = await makeStagingFolder(taskDir, id);
    console.log(
      `export ${id}: merging ${request.source.path} of task ${request.task.id} into ${request.baseModel}`,
    );
    checkStopped();
    const outcome = await job.run(
      mergeCommand(
        request.trainer,
        { nodePath: process.execPath, distDir: DIST_DIR, pythonPath: record.python },
        { taskDir, source, out: staging },
      ),
    );
    checkStopped();
    if (outcome.code !== 0) {
      const free = await freeSpace(taskDir).catch(() => null);
      throw new JobFailure(
        mergeFailureReason({ ...outcome, freeBytes: free?.freeBytes ?? null, folder: taskDir }),
      );
    }
    const files = await sealExport(staging);
    const provenance = provenanceOf(request, mergedFrom, files, new Date());
    const provenanceText = `${JSON.stringify(provenance, null, 2)}\n`;
    await writeFileDurably(join(staging, PROVENANCE_FILE), provenanceText);
    await syncFolder(staging);
    checkStopped();
    const current = parseExportRecord(await readFile(exportRecordPath(taskDir), "utf8"));
    if (current.id !== id) {
      await rm(staging, { recursive: true, force: true });
      console.log(`export ${id}: superseded by export ${current.id} before it was put in place`);
      return null;
    }
    await swapIntoPlace(taskDir, staging, id);
    staging = null;
    const listed = [
      ...files.map(({ name, size }) => ({ name, size })),
      { name: PROVENANCE_FILE, size: Buffer.byteLength(provenanceText) },
    ].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const file of listed)
      console.log(`${join(taskDir, EXPORT_FOLDER, file.name)}\t${file.size}`);
    return { state: "done", files: listed };
  } catch (err) {
    // Space first: on a full disk the failure's record needs the room the staging folder took.
    if (staging) await rm(staging, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** The files the merge reads, with their hashes, for provenance.json; a missing one ends here. */
async function hashSourceFiles(source: string, request: ExportRequest): Promise<ExportedFile[]> {
  const files: ExportedFile[] = [];
  for (const name of sourceFilesOf(request.mode)) {
    try {
      files.push({ name, ...(await hashFile(join(source, name))) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      throw new JobFailure(`${join(request.source.path, name)} is missing: nothing to merge`);
    }
  }
  return files;
}

/**
 * Refuses before writing anything when the merged model cannot fit: it is about as large as its
 * base (saved in the base's dtype), whose size is known when the base is a local file or folder.
 */
async function refuseWhenNoRoom(taskDir: string, request: ExportRequest): Promise<void> {
  const needed = await baseModelBytes(request.baseModel);
  if (needed === null) return;
  const { freeBytes } = await freeSpace(taskDir);
  if (freeBytes < needed) {
    throw new JobFailure(
      diskFullReason(
        freeBytes,
        taskDir,
        `the merged model needs about ${Math.ceil(needed / (1024 * 1024))} MB`,
      ),
    );
  }
}

async function baseModelBytes(model: string): Promise<number | null> {
  try {
    const info = await stat(model);
    if (info.isFile()) return info.size;
    if (!info.isDirectory()) return null;
    let total = 0;
    for (const name of await readdir(model)) {
      if (/\.(safetensors|bin|pt)$/.test(name)) total += (await stat(join(model, name))).size;
    }
    return total;
  } catch {
    return null; // builtin:tiny, a hub id: not known here
  }
}

async function reasonOf(err: unknown, taskDir: string): Promise<string> {
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ENOSPC") {
    const free = await freeSpace(taskDir).catch(() => null);
    return diskFullReason(free?.freeBytes ?? null, taskDir, message);
  }
  return `the export failed: ${message}`;
}
