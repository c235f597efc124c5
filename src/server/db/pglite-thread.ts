import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { QueryOptions, Results } from "@electric-sql/pglite";
import { DIST_DIR } from "../../platform/package-root";
import { freeBytes } from "../disk-space";
import type { DatabaseHealth } from "./health";
import {
  endsInstance,
  fromWireError,
  type ThreadMessage,
  type ThreadRequest,
  type WireError,
  type WorkerSetup,
} from "./pglite-protocol";

const MiB = 1024 * 1024;

/**
 * Room Postgres needs to write again: one WAL segment (16 MiB). Below it a checkpoint or a new
 * WAL segment may PANIC, so the studio does not checkpoint, and does not reopen a stopped
 * database, with less free.
 */
export const ROOM_TO_WRITE_BYTES = 16 * MiB;
/**
 * A thread that answers no ping for this long is stuck and is ended. The known spin (after a
 * PANIC) is caught at once by the PANIC itself; this is the backstop for any other, generous
 * enough that a long statement of a migration on a busy machine is not taken for one.
 */
const STUCK_MS = 60_000;
const PING_MS = 1_000;
const REOPEN_EVERY_MS = 2_000;
const OPEN_TIMEOUT_MS = 120_000;

export interface PgliteThreadOptions {
  dataDir: string;
  health: DatabaseHealth;
  log: (message: string) => void;
}

type Request = ThreadRequest extends infer R ? (R extends unknown ? Omit<R, "id"> : never) : never;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** Whether a success shows that writes work; null for pings, which say nothing about the database. */
  write: boolean | null;
}

/** The transaction object drizzle's PGlite driver is handed. */
export interface ThreadTransaction {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  exec(sql: string): Promise<Results[]>;
}

/** Raised to callers while the embedded database is down; `code` marks it for the health. */
export class EmbeddedDatabaseDown extends Error {
  readonly code = "EMBEDDED_DATABASE_DOWN";
}

/**
 * The studio's side of the embedded database: PGlite runs in a worker thread
 * (./pglite-worker.ts), and this object is the client drizzle is given (the part of PGlite's
 * interface drizzle uses: query, exec, transaction).
 *
 * Why a thread: a PGlite that PANICs (on a full disk) spins in its next call, synchronously,
 * forever; in the studio's own thread nothing else would run again, not even SIGTERM. Here:
 * - a PANIC or FATAL error marks the instance dead at once (the thread calls PGlite no more);
 *   a thread that answers no ping for STUCK_MS is taken for dead too;
 * - a dead thread is ended; calls fail at once with EmbeddedDatabaseDown, so requests do not
 *   hang and writers retry later as they do after any failed write;
 * - every REOPEN_EVERY_MS, once ROOM_TO_WRITE_BYTES are free, a new thread opens the database
 *   from its folder (Postgres' crash recovery replays the WAL: every committed write is kept).
 */
export class PgliteThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private down: string | null = null;
  private closing = false;
  private pingSentAt: number | null = null;
  private readonly pinger: NodeJS.Timeout;
  private reopenTimer: NodeJS.Timeout | null = null;
  private toldNoRoom = false;
  /** Session settings (`set_config`), applied again by every new thread before it serves. */
  private readonly settings = new Map<string, string>();

  private constructor(private readonly opts: PgliteThreadOptions) {
    this.pinger = setInterval(() => this.ping(), PING_MS);
    this.pinger.unref();
  }

  /** Starts the thread and opens the database; rejects with PGlite's reason when it cannot. */
  static async open(opts: PgliteThreadOptions): Promise<PgliteThread> {
    const thread = new PgliteThread(opts);
    try {
      await thread.start();
    } catch (err) {
      thread.closing = true;
      clearInterval(thread.pinger);
      throw err;
    }
    return thread;
  }

  private start(): Promise<void> {
    const worker = new Worker(join(DIST_DIR, "pglite-worker.js"), {
      workerData: {
        dataDir: this.opts.dataDir,
        settings: Object.fromEntries(this.settings),
      } satisfies WorkerSetup,
    });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`PGlite did not open within ${OPEN_TIMEOUT_MS / 1000} s`));
      }, OPEN_TIMEOUT_MS);
      const settle = (err: Error | null) => {
        clearTimeout(timer);
        if (err) {
          void worker.terminate();
          reject(err);
          return;
        }
        this.worker = worker;
        this.down = null;
        this.pingSentAt = null;
        resolve();
      };
      worker.on("message", (message: ThreadMessage) => {
        if ("event" in message) {
          if (message.event === "ready") settle(null);
          else if (message.event === "open-failed") settle(fromWireError(message.error));
          else if (this.worker === worker) this.stop(stopReason(message.error));
          return;
        }
        this.answer(message);
      });
      worker.on("error", (err) => {
        if (this.worker === worker) this.stop(`its thread failed: ${err.message}`);
        else settle(err);
      });
      worker.on("exit", (code) => {
        if (this.worker === worker) this.stop(`its thread exited (code ${code})`);
        else settle(new Error(`PGlite's thread exited (code ${code}) while opening`));
      });
    });
  }

  private answer(message: Extract<ThreadMessage, { id: number }>) {
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    if (message.ok) {
      if (call.write !== null) this.opts.health.record({ ok: true, write: call.write });
      call.resolve(message.value);
      return;
    }
    const error = fromWireError(message.error);
    if (call.write !== null) this.opts.health.failed(error);
    call.reject(error);
    if (endsInstance(message.error)) this.stop(stopReason(message.error));
  }

  private call<T>(request: Request, write: boolean): Promise<T> {
    const worker = this.worker;
    if (this.down !== null || !worker) {
      const error = new EmbeddedDatabaseDown(
        `the embedded database is not available: ${this.down ?? "it is closed"}`,
      );
      this.opts.health.failed(error);
      return Promise.reject(error);
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, write });
      worker.postMessage({ ...request, id } as ThreadRequest);
    });
  }

  private ping() {
    if (!this.worker || this.down !== null) return;
    if (this.pingSentAt !== null) {
      if (Date.now() - this.pingSentAt > STUCK_MS) {
        this.stop(`it did not answer for ${STUCK_MS / 1000} s`);
      }
      return;
    }
    this.pingSentAt = Date.now();
    const worker = this.worker;
    const id = this.nextId++;
    this.pending.set(id, {
      resolve: () => {
        this.pingSentAt = null;
      },
      reject: () => {
        this.pingSentAt = null;
      },
      write: null,
    });
    worker.postMessage({ op: "ping", id } satisfies ThreadRequest);
  }

  /** The instance is dead: end its thread, fail what waits on it, and reopen once there is room. */
  private stop(reason: string) {
    if (this.down !== null) return;
    this.down = `it stopped: ${reason}`;
    const worker = this.worker;
    this.worker = null;
    void worker?.terminate();
    const error = new EmbeddedDatabaseDown(`the embedded database is not available: ${this.down}`);
    this.opts.health.failed(error);
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
    if (this.closing) return;
    this.opts.log(
      `embedded database in ${this.opts.dataDir} ${this.down}; reopening it once ${ROOM_TO_WRITE_BYTES / MiB} MB are free there`,
    );
    this.scheduleReopen();
  }

  private scheduleReopen() {
    this.reopenTimer = setTimeout(() => {
      this.reopen().catch((err) => this.opts.log(`embedded database: reopening failed: ${err}`));
    }, REOPEN_EVERY_MS);
    this.reopenTimer.unref();
  }

  private async reopen() {
    this.reopenTimer = null;
    if (this.closing) return;
    const free = await freeBytes(this.opts.dataDir).catch(() => 0);
    if (free < ROOM_TO_WRITE_BYTES) {
      if (!this.toldNoRoom) {
        this.opts.log(
          `embedded database: ${Math.floor(free / MiB)} MB free in ${this.opts.dataDir}; waiting for ${ROOM_TO_WRITE_BYTES / MiB} MB to reopen it`,
        );
        this.toldNoRoom = true;
      }
      this.scheduleReopen();
      return;
    }
    const reason = this.down;
    try {
      await this.start();
    } catch (err) {
      this.opts.log(`embedded database: reopening failed (${err}); trying again`);
      this.scheduleReopen();
      return;
    }
    if (this.closing) {
      await this.close();
      return;
    }
    this.toldNoRoom = false;
    this.opts.log(`embedded database reopened from ${this.opts.dataDir} (${reason})`);
    this.opts.health.record({ ok: true, write: true });
  }

  /**
   * Sets a session setting for good: PGlite has one session, and a reopened database gets a new
   * one, so the setting is kept and each new thread applies it before its first call.
   */
  async setSessionConfig(name: string, value: string): Promise<void> {
    this.settings.set(name, value);
    await this.query("select set_config($1, $2, false)", [name, value]);
  }

  query<T>(sql: string, params: unknown[] = [], options?: QueryOptions): Promise<Results<T>> {
    return this.txQuery<T>(null, sql, params, options);
  }

  exec(sql: string): Promise<Results[]> {
    return this.call({ op: "exec", sql, tx: null }, true);
  }

  /** PGlite's transaction, held open in the thread until `fn` settles. */
  async transaction<T>(fn: (tx: ThreadTransaction) => Promise<T>): Promise<T> {
    const tx = await this.call<number>({ op: "begin" }, true);
    let result: T;
    try {
      result = await fn({
        query: (sql, params = [], options) => this.txQuery(tx, sql, params, options),
        exec: (sql) => this.call({ op: "exec", sql, tx }, true),
      });
    } catch (err) {
      await this.call({ op: "end", tx, commit: false }, false).catch(() => {});
      throw err;
    }
    await this.call({ op: "end", tx, commit: true }, true);
    return result;
  }

  private txQuery<T>(
    tx: number | null,
    sql: string,
    params: unknown[],
    options: QueryOptions | undefined,
  ): Promise<Results<T>> {
    return this.call(
      {
        op: "query",
        sql,
        params,
        rowMode: options?.rowMode ?? "object",
        // drizzle's parsers leave these types as text (it maps them itself); only ids travel
        textTypes: Object.keys(options?.parsers ?? {}).map(Number),
        tx,
      },
      !/^\s*select\b/i.test(sql),
    );
  }

  /**
   * Flushes PGlite's data (it runs with fsync off). Skipped with less than ROOM_TO_WRITE_BYTES
   * free: a checkpoint that cannot write its files PANICs, and reads go on working without it.
   */
  async checkpoint(): Promise<void> {
    if (this.down !== null) return;
    if ((await freeBytes(this.opts.dataDir).catch(() => 0)) < ROOM_TO_WRITE_BYTES) return;
    await this.exec("CHECKPOINT");
  }

  /** Checkpoints and closes; a thread that does not finish within a few seconds is ended. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pinger);
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    const worker = this.worker;
    if (!worker) return;
    const bounded = (work: Promise<unknown>) =>
      Promise.race([work.catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
    await bounded(this.checkpoint());
    await bounded(this.call({ op: "close" }, false));
    this.worker = null;
    this.down = "it is closed";
    await worker.terminate();
  }
}

function stopReason(error: WireError): string {
  return `${error.severity ?? "error"}: ${error.message}`;
}
