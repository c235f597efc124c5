import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { MIGRATIONS_DIR } from "../package-root";
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
}

/** Opens the database and brings its schema up to date. Called at start, never at import. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const migrationsFolder = opts.migrationsFolder ?? MIGRATIONS_DIR;
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl, migrationsFolder)
    : openPglite(opts.pgliteDir, migrationsFolder);
}

async function openPostgres(url: string, migrationsFolder: string): Promise<Database> {
  // The epoch travels as a connection parameter, so a pool is bound to one epoch: changing it
  // means a new pool, and whatever the old pool still has under way is fenced off.
  const connect = (epoch: number | null) => {
    const client = postgres(url, {
      max: 10,
      ...POSTGRES_CLIENT_OPTIONS,
      ...(epoch === null ? {} : { connection: { "studio.epoch": String(epoch) } }),
    });
    return { client, db: drizzlePostgres(client, { schema }) as unknown as Db };
  };
  let current = connect(null);
  await migratePostgres(current.db as never, { migrationsFolder });
  return {
    get db() {
      return current.db;
    },
    kind: "postgres",
    lease: new PostgresSupervisionLease(url),
    actUnder: async (epoch) => {
      const old = current;
      current = connect(epoch);
      await old.client.end({ timeout: 5 });
    },
    checkpoint: async () => {},
    close: () => current.client.end({ timeout: 5 }),
  };
}

async function openPglite(dir: string, migrationsFolder: string): Promise<Database> {
  mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  await migratePglite(db as never, { migrationsFolder });
  const actUnder = async (epoch: number) => {
    // One connection: the setting is the session's own.
    await client.query("select set_config('studio.epoch', $1, false)", [String(epoch)]);
  };
  return {
    db,
    kind: "pglite",
    lease: new PgliteSupervisionLease(client),
    actUnder,
    checkpoint: async () => {
      await client.exec("CHECKPOINT");
    },
    close: async () => {
      await client.exec("CHECKPOINT");
      await client.close();
    },
  };
}
