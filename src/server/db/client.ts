import { mkdirSync } from "node:fs";
import type { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { MIGRATIONS_DIR } from "../package-root";
import { DatabaseHealth } from "./health";
import { startHealthProbe } from "./health-probe";
import { PgliteThread } from "./pglite-thread";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "pglite" | "postgres";
  /** Whether database calls work, and since when they fail (./health.ts). */
  health: DatabaseHealth;
  /** Flushes PGlite's data to disk (it runs with fsync off); a no-op on PostgreSQL. */
  checkpoint(): Promise<void>;
  close(): Promise<void>;
  /**
   * Takes the single-supervisor lock: a session-level advisory lock on a connection kept for
   * it (PostgreSQL). PGlite is private to one studio home, whose lock file already excludes
   * a second studio. Returns the release function, or null when another studio holds it.
   */
  trySupervisorLock(): Promise<(() => Promise<void>) | null>;
}

/** An arbitrary constant shared by every studio: "FTSTUDIO" read as digits. */
const SUPERVISOR_LOCK_KEY = 4_631_729_011;

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
  const health = new DatabaseHealth(log);
  if (opts.databaseUrl) {
    const client = postgres(opts.databaseUrl, {
      max: 10,
      onnotice: () => {},
      connect_timeout: CONNECT_TIMEOUT_S,
      backoff: () => RECONNECT_AFTER_S,
      connection: { statement_timeout: STATEMENT_TIMEOUT_MS },
    });
    const db = drizzlePostgres(client, { schema });
    await migratePostgres(db, { migrationsFolder });
    const stopProbe = startHealthProbe({ db: db as unknown as Db, health, embeddedDir: null });
    return {
      db: db as unknown as Db,
      kind: "postgres",
      health,
      checkpoint: async () => {},
      close: () => {
        stopProbe();
        return client.end({ timeout: 5 });
      },
      trySupervisorLock: async () => {
        const conn = await client.reserve();
        const [row] = await conn`select pg_try_advisory_lock(${SUPERVISOR_LOCK_KEY}) as ok`;
        if (!row?.ok) {
          conn.release();
          return null;
        }
        return async () => {
          await conn`select pg_advisory_unlock(${SUPERVISOR_LOCK_KEY})`;
          conn.release();
        };
      },
    };
  }
  mkdirSync(opts.pgliteDir, { recursive: true });
  const thread = await PgliteThread.open({ dataDir: opts.pgliteDir, health, log });
  // The thread's client answers the part of PGlite's interface that drizzle's driver calls.
  const db = drizzlePglite({ client: thread as unknown as PGlite, schema });
  try {
    await migratePglite(db, { migrationsFolder });
  } catch (err) {
    await thread.close();
    throw err;
  }
  const stopProbe = startHealthProbe({
    db: db as unknown as Db,
    health,
    embeddedDir: opts.pgliteDir,
  });
  return {
    db: db as unknown as Db,
    kind: "pglite",
    health,
    checkpoint: () => thread.checkpoint(),
    close: async () => {
      stopProbe();
      await thread.close();
    },
    trySupervisorLock: async () => async () => {},
  };
}
