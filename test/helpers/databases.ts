import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { inject } from "vitest";
import { type Database, openDatabase } from "../../src/server/db/client";

export interface TestDatabase {
  kind: "pglite" | "postgres";
  /** Set for PostgreSQL: the URL of the fresh database, for processes the test starts. */
  url?: string;
  open(): Promise<Database>;
  drop(): Promise<void>;
}

/** PGlite always; the real PostgreSQL too when DATABASE_URL is set. Each gets a fresh database. */
export function testDatabaseKinds(): ("pglite" | "postgres")[] {
  return process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];
}

/**
 * `fromTemplate`: an embedded database starts as a copy of the global setup's, already at the
 * current migration (initdb and the migrations in WebAssembly take seconds), for tests that are
 * not about opening a new one.
 */
export async function createTestDatabase(
  kind: "pglite" | "postgres",
  { fromTemplate = false }: { fromTemplate?: boolean } = {},
): Promise<TestDatabase> {
  if (kind === "pglite") {
    const dir = mkdtempSync(join(tmpdir(), "studio-pglite-"));
    if (fromTemplate) cpSync(inject("pgliteTemplate"), dir, { recursive: true });
    return {
      kind,
      open: () => openDatabase({ pgliteDir: dir }),
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const base = new URL(process.env.DATABASE_URL!);
  const name = `studio_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(base.toString(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    open: () => openDatabase({ databaseUrl: url.toString(), pgliteDir: "" }),
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
