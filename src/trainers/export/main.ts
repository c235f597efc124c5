import { spawn } from "node:child_process";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { syncFolder } from "../../platform/durable-folder";
import { readIdentity } from "../../platform/identity";
import { DIST_DIR } from "../../platform/package-root";
import { freeSpace, hashFile, verifyCheckpoint, writeFileDurably } from "../checkpoints/folder";
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
 * the task folder asks for. The studio starts it detached (it survives a studio restart) with
 * its output in export.log; it records in export.json that it runs (its identity), then how it
 * ended. It stages the merged model, its config and provenance.json in a hidden folder, flushes
 * them, and only then renames the folder to `export/` (see export-folder.ts); on any failure the
 * staging folder is removed and the task's files, an earlier export included, are as they were.
 * SIGTERM stops the merge and fails the export, saying so.
 */

/** A failure whose message is already the reason a person reads. */
class ExportFailure extends Error {}

const KEPT_LINES = 40;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { "task-dir": { type: "string" }, "export-id": { type: "string" } },
  });
  if (!values["task-dir"] || !values["export-id"]) {
    throw new Error("usage: exporter --task-dir <dir> --export-id <id>");
  }
  const taskDir = resolve(values["task-dir"]);
  const id = values["export-id"];
  const recordPath = exportRecordPath(taskDir);
  const requested = parseExportRecord(await readFile(recordPath, "utf8"));
  if (requested.id !== id || requested.state !== "running" || requested.process !== null) {
    console.log(`export ${id}: export.json now asks for export ${requested.id}; nothing to do`);
    return 0;
  }
  const me = readIdentity(process.pid);
  if (!me) throw new Error("cannot read this process's own identity from /proc");
  let record: ExportRecord = { ...requested, process: me };
  writeJsonAtomic(recordPath, record);

  let stopped: string | null = null;
  let merging: ReturnType<typeof spawn> | null = null;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      stopped = signal;
      merging?.kill("SIGTERM");
    });
  }
  const checkStopped = () => {
    if (stopped)
      throw new ExportFailure(`the export was stopped (${stopped}); the task is unchanged`);
  };

  let staging: string | null = null;
  try {
    for (const line of await clearLeftovers(taskDir)) console.log(`export ${id}: ${line}`);
    const request = record.request;
    const source = join(taskDir, request.source.path);
    if (request.source.kind === "checkpoint") {
      const verified = await verifyCheckpoint(source, request.source.step);
      if (verified.kind === "failed") {
        throw new ExportFailure(
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
    const command = mergeCommand(
      request.trainer,
      { nodePath: process.execPath, distDir: DIST_DIR, pythonPath: record.python },
      { taskDir, source, out: staging },
    );
    const child = spawn(command.file, command.args, { stdio: ["ignore", "pipe", "pipe"] });
    merging = child;
    const outcome = await followMerge(child);
    merging = null;
    checkStopped();
    if (outcome.code !== 0) {
      const free = await freeSpace(taskDir).catch(() => null);
      throw new ExportFailure(
        mergeFailureReason({ ...outcome, freeBytes: free?.freeBytes ?? null, folder: taskDir }),
      );
    }
    const files = await sealExport(staging);
    const provenance = provenanceOf(request, mergedFrom, files, new Date());
    const provenanceText = `${JSON.stringify(provenance, null, 2)}\n`;
    await writeFileDurably(join(staging, PROVENANCE_FILE), provenanceText);
    await syncFolder(staging);
    checkStopped();
    const current = parseExportRecord(await readFile(recordPath, "utf8"));
    if (current.id !== id) {
      await rm(staging, { recursive: true, force: true });
      console.log(`export ${id}: superseded by export ${current.id} before it was put in place`);
      return 0;
    }
    await swapIntoPlace(taskDir, staging, id);
    staging = null;
    const listed = [
      ...files.map(({ name, size }) => ({ name, size })),
      { name: PROVENANCE_FILE, size: Buffer.byteLength(provenanceText) },
    ].sort((a, b) => (a.name < b.name ? -1 : 1));
    record = { ...record, state: "done", finishedAt: new Date().toISOString(), files: listed };
    writeJsonAtomic(recordPath, record);
    for (const file of listed)
      console.log(`${join(taskDir, EXPORT_FOLDER, file.name)}\t${file.size}`);
    return 0;
  } catch (err) {
    // Space first: on a full disk the record below needs the room the staging folder took.
    if (staging) await rm(staging, { recursive: true, force: true }).catch(() => {});
    const reason = await reasonOf(err, taskDir);
    console.error(`export ${id} failed: ${reason}`);
    if (!(err instanceof ExportFailure)) console.error(err);
    writeJsonAtomic(recordPath, {
      ...record,
      state: "failed",
      finishedAt: new Date().toISOString(),
      reason,
    } satisfies ExportRecord);
    return 1;
  }
}

/** The merge's output goes on to export.log as it comes; its last lines are kept for the reason. */
function followMerge(
  child: ReturnType<typeof spawn>,
): Promise<{ code: number | null; signal: string | null; lines: string[] }> {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n"));
    if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    keep(chunk);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    process.stderr.write(chunk);
    keep(chunk);
  });
  return new Promise((resolve) => {
    child.on("error", (err) =>
      resolve({ code: null, signal: null, lines: [...lines, String(err)] }),
    );
    child.on("close", (code, signal) => resolve({ code, signal, lines }));
  });
}

/** The files the merge reads, with their hashes, for provenance.json; a missing one ends here. */
async function hashSourceFiles(source: string, request: ExportRequest): Promise<ExportedFile[]> {
  const files: ExportedFile[] = [];
  for (const name of sourceFilesOf(request.mode)) {
    try {
      files.push({ name, ...(await hashFile(join(source, name))) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      throw new ExportFailure(`${join(request.source.path, name)} is missing: nothing to merge`);
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
    throw new ExportFailure(
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
  if (err instanceof ExportFailure) return err.message;
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ENOSPC") {
    const free = await freeSpace(taskDir).catch(() => null);
    return diskFullReason(free?.freeBytes ?? null, taskDir, message);
  }
  return `the export failed: ${message}`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`exporter: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
