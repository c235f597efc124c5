import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TaskConfig } from "../../trainers/protocol";

/** The attempt's settings as the trainer reads them (src/trainers/protocol.ts). */
export const TASK_CONFIG_FILE = "config.json";

/** Writes the attempt's immutable config.json (temp file + rename, so a trainer never reads half of it). */
export function writeTaskConfig(taskDir: string, config: TaskConfig) {
  mkdirSync(join(taskDir, "checkpoints"), { recursive: true });
  const tmp = join(taskDir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, join(taskDir, TASK_CONFIG_FILE));
}
