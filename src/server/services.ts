import type { Database } from "./db/client";
import type { Env } from "./env";

/** Everything a request handler may use; built once by the server at start. */
export interface StudioServices {
  env: Env;
  database: Database;
  startedAt: Date;
  version: string;
  /** Why this studio cannot change anything (another studio supervises), or null. */
  readOnly: string | null;
}
