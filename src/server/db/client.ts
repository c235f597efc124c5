import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { MIGRATIONS_DIR } from "../package-root";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "pglite" | "postgres";
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
}

/** Opens the database and brings its schema up to date. Called at start, never at import. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const migrationsFolder = opts.migrationsFolder ?? MIGRATIONS_DIR;
  if (opts.databaseUrl) {
    const client = postgres(opts.databaseUrl, { max: 10, onnotice: () => {} });
    const db = drizzlePostgres(client, { schema });
    await migratePostgres(db, { migrationsFolder });
    return {
      db: db as unknown as Db,
      kind: "postgres",
      checkpoint: async () => {},
      close: () => client.end({ timeout: 5 }),
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
  const client = await PGlite.create(opts.pgliteDir);
  const db = drizzlePglite(client, { schema });
  await migratePglite(db, { migrationsFolder });
  return {
    db: db as unknown as Db,
    kind: "pglite",
    checkpoint: async () => {
      await client.exec("CHECKPOINT");
    },
    close: async () => {
      await client.exec("CHECKPOINT");
      await client.close();
    },
    trySupervisorLock: async () => async () => {},
  };
}
