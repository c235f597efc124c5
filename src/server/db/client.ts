import { mkdirSync } from "node:fs";
import type { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { MIGRATIONS_DIR } from "../../platform/package-root";
import { DatabaseHealth } from "./health";
import { startHealthProbe } from "./health-probe";
import { PgliteThread } from "./pglite-thread";
import { POSTGRES_CLIENT_OPTIONS } from "./postgres-options";
import * as schema from "./schema";
import {
  PgliteSupervisionLease,
  PostgresSupervisionLease,
  type SupervisionLease,
} from "./supervision-lease";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

/** The epoch a studio acts under while it does not supervise: every task write is refused. */
export const STANDBY_EPOCH = 0;

export interface Database {
  /**
   * The connection to query through. Every connection carries the supervision epoch this studio
   * acts under (see `supervision` in ./schema), so read it at the time of use: `actUnder`
   * replaces it.
   */
  readonly db: Db;
  kind: "pglite" | "postgres";
  /** Whether database calls work, and since when they fail (./health.ts). */
  health: DatabaseHealth;
  /** The single-supervisor lease (see ./supervision-lease). */
  lease: SupervisionLease;
  /**
   * From now on, queries carry `epoch`; queries under the previous one are fenced off. A
   * database opened by `openDatabase` carries none (like an operator's psql: not fenced) until a
   * studio's supervision sets one.
   */
  actUnder(epoch: number): Promise<void>;
  /** Flushes PGlite's data to disk (it runs with fsync off); a no-op on PostgreSQL. */
  checkpoint(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string;
  pgliteDir: string;
  migrationsFolder?: string;
  log?: (message: string) => void;
}

/** How long a connection attempt may take: a database that does not answer fails calls fast. */
const CONNECT_TIMEOUT_S = 5;
/** No statement of the studio's runs long; one that does is waiting on something that is stuck. */
const STATEMENT_TIMEOUT_MS = 15_000;
/**
 * Seconds before a connection that failed is tried again. postgres.js's default grows with the
 * failures (to 20 s), and a query given to that connection waits it out before any attempt: in
 * an outage a page read would hang that long instead of failing.
 */
const RECONNECT_AFTER_S = 0.5;

/** Opens the database and brings its schema up to date. Called at start, never at import. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const migrationsFolder = opts.migrationsFolder ?? MIGRATIONS_DIR;
  const log = opts.log ?? (() => {});
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl, migrationsFolder, log)
    : openPglite(opts.pgliteDir, migrationsFolder, log);
}

async function openPostgres(
  url: string,
  migrationsFolder: string,
  log: (message: string) => void,
): Promise<Database> {
  // The epoch travels as a connection parameter, so a pool is bound to one epoch: changing it
  // means a new pool, and whatever the old pool still has under way is fenced off.
  const connect = (epoch: number | null) => {
    const client = postgres(url, {
      max: 10,
      ...POSTGRES_CLIENT_OPTIONS,
      connect_timeout: CONNECT_TIMEOUT_S,
      backoff: () => RECONNECT_AFTER_S,
      // Migrations run on the first pool (no epoch yet): a migration may run long, a studio's
      // own statement does not.
      ...(epoch === null
        ? {}
        : {
            connection: {
              statement_timeout: STATEMENT_TIMEOUT_MS,
              "studio.epoch": String(epoch),
            },
          }),
    });
    return { client, db: drizzlePostgres(client, { schema }) as unknown as Db };
  };
  let current = connect(null);
  await migratePostgres(current.db as never, { migrationsFolder });
  const health = new DatabaseHealth(log);
  const stopProbe = startHealthProbe({
    select1: () => current.db.execute(sql`select 1`),
    health,
    embeddedDir: null,
  });
  return {
    get db() {
      return current.db;
    },
    kind: "postgres",
    health,
    lease: new PostgresSupervisionLease(url),
    actUnder: async (epoch) => {
      const old = current;
      current = connect(epoch);
      await old.client.end({ timeout: 5 });
    },
    checkpoint: async () => {},
    close: () => {
      stopProbe();
      return current.client.end({ timeout: 5 });
    },
  };
}

async function openPglite(
  dir: string,
  migrationsFolder: string,
  log: (message: string) => void,
): Promise<Database> {
  mkdirSync(dir, { recursive: true });
  const health = new DatabaseHealth(log);
  const thread = await PgliteThread.open({ dataDir: dir, health, log });
  // The thread's client answers the part of PGlite's interface that drizzle's driver calls.
  const db = drizzlePglite({ client: thread as unknown as PGlite, schema }) as unknown as Db;
  try {
    await migratePglite(db as never, { migrationsFolder });
  } catch (err) {
    await thread.close();
    throw err;
  }
  const stopProbe = startHealthProbe({
    select1: () => db.execute(sql`select 1`),
    health,
    embeddedDir: dir,
  });
  return {
    db,
    kind: "pglite",
    health,
    lease: new PgliteSupervisionLease(thread),
    // One connection: the setting is the session's own (the thread sets it again on a reopen).
    actUnder: (epoch) => thread.setSessionConfig("studio.epoch", String(epoch)),
    checkpoint: () => thread.checkpoint(),
    close: async () => {
      stopProbe();
      await thread.close();
    },
  };
}
