import { EventEmitter } from "node:events";

/**
 * Whether the studio's database calls work, one source of truth for the page, `studio.info`
 * and the log. Fed by the outcome of database calls (every call of the embedded database, and
 * a probe every few seconds on both kinds, src/server/db/health-probe.ts); what failed, since
 * when, and when it worked again.
 */

/** Why database calls fail: no answer at all, or writes refused for want of disk space. */
export type DatabaseProblemKind = "unreachable" | "disk-full";

export interface DatabaseProblem {
  kind: DatabaseProblemKind;
  /** The failure as the database or driver put it. */
  message: string;
}

export type DatabaseHealthState =
  | { status: "ok" }
  | { status: "failing"; kind: DatabaseProblemKind; message: string; since: Date };

/** One database call's outcome, as the health needs it. */
export type CallOutcome =
  | { ok: true; write: boolean }
  | { ok: false; problem: DatabaseProblem | null };

/** Connection-level failures of postgres.js and node's sockets. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // the studio's own: the embedded database stopped or did not answer (src/server/db/pglite-thread.ts)
  "EMBEDDED_DATABASE_DOWN",
]);

/**
 * Which problem an error of a database call shows, or null when it says nothing about the
 * database being there (a constraint, a bad statement: the call's own fault). Pure.
 * SQLSTATE classes: 08 connection exception, 57P0x shutdown/terminated/cannot connect now,
 * 57014 a statement cut off by its timeout, 53100 disk full.
 */
export function databaseProblemOf(err: unknown): DatabaseProblem | null {
  // drizzle wraps a driver's error ("Failed query: ...") with the driver's own as its cause
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    const message = e.message;
    // Not answering at all comes first: an embedded database stopped by a full disk reads no more.
    if (
      UNREACHABLE_CODES.has(code) ||
      code.startsWith("08") ||
      /^57P0\d$/.test(code) ||
      code === "57014" ||
      /not currently accepting connections/.test(message)
    ) {
      return { kind: "unreachable", message };
    }
    if (code === "53100" || /no space left on device/i.test(message)) {
      return { kind: "disk-full", message };
    }
  }
  return null;
}

/**
 * The next state after one call (pure). A failure keeps the time the failing began; a success
 * ends it, except that a read does not end "disk full" (reads work while writes fail).
 * Returns the same object when nothing changed.
 */
export function nextHealth(
  state: DatabaseHealthState,
  outcome: CallOutcome,
  now: Date,
): DatabaseHealthState {
  if (outcome.ok) {
    if (state.status === "ok") return state;
    if (state.kind === "disk-full" && !outcome.write) return state;
    return { status: "ok" };
  }
  const problem = outcome.problem;
  if (!problem) return state;
  if (
    state.status === "failing" &&
    state.kind === problem.kind &&
    state.message === problem.message
  )
    return state;
  return {
    status: "failing",
    kind: problem.kind,
    message: problem.message,
    since: state.status === "failing" ? state.since : now,
  };
}

export class DatabaseHealth {
  private current: DatabaseHealthState = { status: "ok" };
  private readonly emitter = new EventEmitter();

  constructor(private readonly log: (message: string) => void = () => {}) {
    this.emitter.setMaxListeners(0);
  }

  get state(): DatabaseHealthState {
    return this.current;
  }

  /** Records one call's outcome; logs and announces a change of state. */
  record(outcome: CallOutcome) {
    const before = this.current;
    const after = nextHealth(before, outcome, new Date());
    if (after === before) return;
    this.current = after;
    if (after.status === "failing" && before.status === "ok") {
      this.log(`database calls failing (${after.kind}): ${after.message}`);
    } else if (after.status === "ok" && before.status === "failing") {
      this.log(`database calls work again (they had failed since ${before.since.toISOString()})`);
    }
    this.emitter.emit("change", after);
  }

  /** Records a failed call (unrelated errors change nothing). */
  failed(err: unknown) {
    this.record({ ok: false, problem: databaseProblemOf(err) });
  }

  onChange(listener: (state: DatabaseHealthState) => void): () => void {
    this.emitter.on("change", listener);
    return () => this.emitter.off("change", listener);
  }
}
