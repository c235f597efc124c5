import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import {
  endsInstance,
  type ThreadMessage,
  type ThreadRequest,
  toWireError,
  type WireError,
  type WorkerSetup,
} from "./pglite-protocol";

/**
 * The embedded database's own thread (built to dist/pglite-worker.js; ./pglite-thread.ts starts
 * it). PGlite runs Postgres as WebAssembly, synchronously: when Postgres PANICs (a WAL segment or
 * a checkpoint file it cannot write on a full disk), PGlite reports the error and then spins in
 * its next call without end. Here that spin can only block this thread: after a PANIC nothing
 * calls PGlite again, and the studio ends the thread and opens the database anew.
 */

function threadPort(): MessagePort {
  if (!parentPort) throw new Error("pglite-worker runs as a worker thread");
  return parentPort;
}
const port = threadPort();
const { dataDir, settings } = workerData as WorkerSetup;

interface OpenTransaction {
  tx: Transaction;
  finish: (commit: boolean) => void;
  done: Promise<void>;
}

const transactions = new Map<number, OpenTransaction>();
let nextTransaction = 1;
let stopped: WireError | null = null;
const send = (message: ThreadMessage) => port.postMessage(message);
const ROLLED_BACK = Symbol("rolled back");

function identityParsers(textTypes: number[]) {
  return Object.fromEntries(textTypes.map((type) => [type, (value: string) => value]));
}

async function main() {
  let pg: PGlite;
  try {
    pg = await PGlite.create(dataDir);
    for (const [name, value] of Object.entries(settings)) {
      await pg.query("select set_config($1, $2, false)", [name, value]);
    }
  } catch (err) {
    send({ event: "open-failed", error: toWireError(err) });
    return;
  }

  /** Opens a transaction and keeps it open until `end`: PGlite's own, so its locking holds. */
  async function begin(): Promise<number> {
    let finish: (commit: boolean) => void = () => {};
    const finished = new Promise<boolean>((resolve) => {
      finish = resolve;
    });
    let done: Promise<void> = Promise.resolve();
    const tx = await new Promise<Transaction>((resolve, reject) => {
      done = pg.transaction(async (tx) => {
        resolve(tx);
        if (!(await finished)) throw ROLLED_BACK;
      });
      // BEGIN itself failed: the callback never ran. (Later rejections are awaited by `end`.)
      done.catch(reject);
    });
    const id = nextTransaction++;
    transactions.set(id, { tx, finish, done });
    return id;
  }

  async function end(id: number, commit: boolean) {
    const open = transactions.get(id);
    if (!open) throw new Error(`no open transaction ${id}`);
    transactions.delete(id);
    open.finish(commit);
    try {
      await open.done;
    } catch (err) {
      if (err !== ROLLED_BACK) throw err;
    }
  }

  function target(tx: number | null): PGlite | Transaction {
    if (tx === null) return pg;
    const open = transactions.get(tx);
    if (!open) throw new Error(`no open transaction ${tx}`);
    return open.tx;
  }

  async function run(req: ThreadRequest): Promise<unknown> {
    switch (req.op) {
      case "query":
        return target(req.tx).query(req.sql, req.params, {
          rowMode: req.rowMode,
          parsers: identityParsers(req.textTypes),
        });
      case "exec":
        return target(req.tx).exec(req.sql);
      case "begin":
        return begin();
      case "end":
        return end(req.tx, req.commit);
      case "ping":
        return null;
      case "close":
        await pg.close();
        return null;
    }
  }

  port.on("message", async (req: ThreadRequest) => {
    if (stopped) {
      send({ id: req.id, ok: false, error: stopped });
      return;
    }
    try {
      send({ id: req.id, ok: true, value: await run(req) });
    } catch (err) {
      const error = toWireError(err);
      send({ id: req.id, ok: false, error });
      if (endsInstance(error) && !stopped) {
        stopped = error;
        send({ event: "stopped", error });
      }
    }
  });
  send({ event: "ready" });
}

void main();
