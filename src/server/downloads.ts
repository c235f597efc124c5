import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { taskDir } from "./home";

/** The only files of a task folder that can be downloaded: the trained adapter and its records. */
const DOWNLOADABLE = new Set([
  "adapter_config.json",
  "adapter_model.safetensors",
  "model.safetensors",
  "trainer_state.json",
  "config.json",
  "training.log",
]);

const PATTERN = /^\/api\/tasks\/([a-z0-9]{1,64})\/files\/([A-Za-z0-9_.-]{1,64})$/;

export function isDownload(path: string): boolean {
  return PATTERN.test(path);
}

/** Streams one task file; names outside the fixed list are refused, so no path can escape. */
export async function serveDownload(
  home: string,
  path: string,
  res: ServerResponse,
  req: IncomingMessage,
) {
  const [, taskId, name] = PATTERN.exec(path) ?? [];
  if (!taskId || !name || !DOWNLOADABLE.has(name) || req.method !== "GET") {
    res.writeHead(404).end("not found");
    return;
  }
  const file = join(taskDir(home, taskId), name);
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, {
    "content-type": name.endsWith(".json") ? "application/json" : "application/octet-stream",
    "content-length": info.size,
    "content-disposition": `attachment; filename="${taskId}-${name}"`,
  });
  createReadStream(file).pipe(res);
}
