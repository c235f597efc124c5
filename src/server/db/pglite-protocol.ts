/**
 * The messages between the studio and the thread that runs its embedded database
 * (./pglite-worker.ts runs PGlite, ./pglite-thread.ts is the studio's side). PGlite's own
 * calls, carried as data: functions (drizzle's value parsers) cannot cross a thread, so only the
 * type ids whose values are to be left as text travel.
 */

/** What a new thread is given: the data folder, and the session settings to apply first. */
export interface WorkerSetup {
  dataDir: string;
  settings: Record<string, string>;
}

export type ThreadRequest = { id: number } & (
  | {
      op: "query";
      sql: string;
      params: unknown[];
      rowMode: "array" | "object";
      textTypes: number[];
      tx: number | null;
    }
  | { op: "exec"; sql: string; tx: number | null }
  | { op: "begin" }
  | { op: "end"; tx: number; commit: boolean }
  | { op: "ping" }
  | { op: "close" }
);

/** A database error as data; `severity` PANIC or FATAL means PGlite cannot be used any more. */
export interface WireError {
  message: string;
  code?: string;
  severity?: string;
  detail?: string;
}

export type ThreadMessage =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError }
  | { event: "ready" }
  | { event: "open-failed"; error: WireError }
  /** PGlite aborted (a PANIC: Postgres' answer to a write it cannot make); it answers no more. */
  | { event: "stopped"; error: WireError };

/** Emscripten's numbers for the file errors PGlite's own file calls throw as `{ errno }`. */
const EMSCRIPTEN_ERRNO: Record<number, string> = {
  51: "No space left on device (ENOSPC)",
  29: "input/output error (EIO)",
  69: "read-only file system (EROFS)",
  2: "permission denied (EACCES)",
};

export function toWireError(err: unknown): WireError {
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (!(err instanceof Error) && typeof errno === "number") {
    return { message: EMSCRIPTEN_ERRNO[errno] ?? `file system error (Emscripten errno ${errno})` };
  }
  if (!(err instanceof Error)) return { message: String(err) };
  const e = err as Error & { code?: unknown; severity?: unknown; detail?: unknown };
  return {
    message: e.message,
    ...(typeof e.code === "string" ? { code: e.code } : {}),
    ...(typeof e.severity === "string" ? { severity: e.severity } : {}),
    ...(typeof e.detail === "string" ? { detail: e.detail } : {}),
  };
}

/** The error a caller gets: an Error with the database's code, severity and detail. */
export function fromWireError(wire: WireError): Error {
  return Object.assign(new Error(wire.message), {
    code: wire.code,
    severity: wire.severity,
    detail: wire.detail,
  });
}

/** After a PANIC (or FATAL) PGlite's next call never returns: such an error ends the instance. */
export function endsInstance(error: WireError): boolean {
  return error.severity === "PANIC" || error.severity === "FATAL";
}
