import type { DatasetStore } from "./datasets/store";
import type { Database } from "./db/client";
import type { Env } from "./env";
import type { StudioBus } from "./events/bus";
import type { HfPeftReadiness } from "./hf-peft-readiness";
import type { PlaygroundSessions } from "./playground/playground-sessions";
import type { Supervisor } from "./supervisor/supervisor";

/** Everything a request handler may use; built once by the server at start. */
export interface StudioServices {
  env: Env;
  database: Database;
  bus: StudioBus;
  datasets: DatasetStore;
  hfPeft: HfPeftReadiness;
  /** The playground's generation servers (processes of their own). */
  playground: PlaygroundSessions;
  /** Null while another studio supervises this database (then this one is read-only). Changes as supervision moves. */
  readonly supervisor: Supervisor | null;
  startedAt: Date;
  version: string;
  /** Why this studio cannot change anything (another studio supervises), or null. */
  readonly readOnly: string | null;
  /** The supervisor's boot (rebuild, reconciliation) is still under way: statuses may change. */
  readonly booting: boolean;
}
