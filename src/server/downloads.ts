import { existsSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { EXPORT_FOLDER } from "../trainers/export/export-record";
import { openInside, PathRefusal } from "./datasets/safe-paths";
import type { Db } from "./db/client";
import { studioPaths, tasksRootOf } from "./home";
import { getTask } from "./tasks/repository";

/** The only files of a task folder that can be downloaded: the trained adapter and its records. */
const DOWNLOADABLE = new Set([
  "adapter_config.json",
  "adapter_model.safetensors",
  "model.safetensors",
  "trainer_state.json",
  "config.json",
  "training.log",
]);

/**
 * The downloadable files the task's folder holds now, in the list's order, with their sizes: a
 * page offers only these (a custom command may write none of the adapter's files). Links and
 * anything but plain files are left out, as a download would refuse them.
 */
export async function listDownloads(
  root: string,
  taskId: string,
): Promise<{ name: string; size: number }[]> {
  const found: { name: string; size: number }[] = [];
  for (const name of DOWNLOADABLE) {
    try {
      const { handle, size } = await openInside(root, `${taskId}/${name}`);
      await handle.close();
      found.push({ name, size });
    } catch (err) {
      if (!(err instanceof PathRefusal)) throw err;
    }
  }
  return found;
}

/**
 * Downloads are served at
 * `/api/tasks/<id>/files/<name>`: one of the files above, in the task folder;
 * `/api/tasks/<id>/export/<name>`: any file of the task's export folder (tasks/<id>/export/,
 * where the exporter puts the merged model, its config and tokenizer, provenance.json). A name
 * is one path segment that does not start with a dot.
 */
const PATTERN =
  /^\/api\/tasks\/([a-z0-9]{1,64})\/(files|export)\/([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127})$/;

/**
 * Streams one task file. Names outside the fixed list are refused, and the file must be a
 * regular file exactly at tasks/<id>/<name> (or tasks/<id>/export/<name>): a symbolic link
 * (config.json -> /etc/shadow), a linked task or export folder or a FIFO is refused with its
 * reason, never followed.
 */
export async function serveDownload(
  /** The folder holding the task's folder (see tasksRootOf), or a reason it cannot be read here. */
  tasksRootFor: (taskId: string) => Promise<string | { refused: string }>,
  path: string,
  res: ServerResponse,
  req: IncomingMessage,
) {
  const [, taskId, area, name] = PATTERN.exec(path) ?? [];
  if (
    !taskId ||
    !name ||
    (area === "files" && !DOWNLOADABLE.has(name)) ||
    (req.method !== "GET" && req.method !== "HEAD")
  ) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
    return;
  }
  const root = await tasksRootFor(taskId);
  if (typeof root !== "string") {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(`${root.refused}\n`);
    return;
  }
  let opened: Awaited<ReturnType<typeof openInside>>;
  try {
    const relative = area === "export" ? `${taskId}/${EXPORT_FOLDER}/${name}` : `${taskId}/${name}`;
    opened = await openInside(root, relative);
  } catch (err) {
    if (!(err instanceof PathRefusal)) throw err;
    const status = err.kind === "missing" ? 404 : 403;
    const message = err.kind === "missing" ? "not found" : `refused: ${err.message}`;
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8" }).end(`${message}\n`);
    return;
  }
  const { handle, size } = opened;
  res.writeHead(200, {
    "content-type": name.endsWith(".json") ? "application/json" : "application/octet-stream",
    "content-length": size,
    "content-disposition": `attachment; filename="${taskId}-${area === "export" ? "merged-" : ""}${name}"`,
    "x-content-type-options": "nosniff",
  });
  if (req.method === "HEAD" || size === 0) {
    await handle.close();
    res.end();
    return;
  }
  // Exactly the bytes of the file as opened (it may still be growing: training.log).
  handle.createReadStream({ start: 0, end: size - 1 }).pipe(res);
}

/**
 * Where a download for `taskId` is opened from: the folder holding its task folder, which may
 * be under another studio's home on this machine; a folder that is not here is refused by name.
 */
export async function taskFilesRoot(
  db: Db,
  home: string,
  taskId: string,
): Promise<string | { refused: string }> {
  const task = await getTask(db, taskId);
  // Unknown task: looked for under this home, where it is missing (404).
  if (!task) return studioPaths(home).tasks;
  try {
    const root = tasksRootOf(home, task);
    if (existsSync(root)) return root;
    return {
      refused: `task ${taskId}'s folder ${join(root, taskId)} is not on this machine; download through the studio that started it`,
    };
  } catch (err) {
    return { refused: err instanceof Error ? err.message : String(err) };
  }
}
