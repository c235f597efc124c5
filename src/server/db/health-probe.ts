import { freeBytes } from "../disk-space";
import type { DatabaseHealth } from "./health";
import { ROOM_TO_WRITE_BYTES } from "./pglite-thread";

const PROBE_EVERY_MS = 2_000;
/** A probe that takes longer than this counts as a database that does not answer. */
const PROBE_TIMEOUT_MS = 5_000;

export interface ProbeOptions {
  /** One cheap read: `select 1`. */
  select1: () => Promise<unknown>;
  health: DatabaseHealth;
  /**
   * The embedded database's folder: there, "disk full" ends once a write has room again (the
   * probe only reads, and an idle studio may not write for a long time). Null for PostgreSQL,
   * whose disk the studio cannot see: a successful write ends it there.
   */
  embeddedDir: string | null;
}

/**
 * Asks the database `select 1` every few seconds, so a database that stopped answering is known
 * even while nothing else calls it, and its return is known without waiting for a caller.
 * Returns the function that stops it.
 */
export function startHealthProbe({ select1, health, embeddedDir }: ProbeOptions): () => void {
  let running = false;
  const probe = async () => {
    if (running) return;
    running = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        select1(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                Object.assign(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`), {
                  code: "CONNECT_TIMEOUT",
                }),
              ),
            PROBE_TIMEOUT_MS,
          );
        }),
      ]);
      const state = health.state;
      const roomAgain =
        embeddedDir !== null &&
        state.status === "failing" &&
        state.kind === "disk-full" &&
        (await freeBytes(embeddedDir).catch(() => 0)) >= ROOM_TO_WRITE_BYTES;
      health.record({ ok: true, write: roomAgain });
    } catch (err) {
      health.failed(err);
    } finally {
      clearTimeout(timer);
      running = false;
    }
  };
  const interval = setInterval(() => void probe(), PROBE_EVERY_MS);
  interval.unref();
  return () => clearInterval(interval);
}
