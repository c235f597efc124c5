import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../platform/atomic-write";
import type { TaskConfig } from "../../trainers/protocol";

/** The attempt's settings as the trainer reads them (src/trainers/protocol.ts). */
export const TASK_CONFIG_FILE = "config.json";

/** Writes the attempt's immutable config.json (atomically: a trainer never reads half of it). */
export function writeTaskConfig(taskDir: string, config: TaskConfig) {
  mkdirSync(join(taskDir, "checkpoints"), { recursive: true });
  writeFileAtomic(join(taskDir, TASK_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, 0o600);
}
