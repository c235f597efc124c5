import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/server/db/client";
import { tasks } from "../../src/server/db/schema";
import { createTestDatabase, type TestDatabase } from "../helpers/databases";

/**
 * The PostgreSQL driver as the studio uses it, under a storm of terminated backends (two every
 * 150 ms for 6 s): transactions, plain queries and the supervision lease all at once. postgres.js
 * 3.4.9 threw from a deferred write to a closed socket (outside any caller: the process ended),
 * let a transaction's rejection go unhandled when its connection closed first, and rejected its
 * connect-time type fetch with no one to catch it; the first two are patched
 * (patches/postgres+3.4.9.patch), the third avoided (fetch_types off). Every call must settle,
 * and an uncaught error or unhandled rejection fails this file.
 */
describe.skipIf(!process.env.DATABASE_URL)(
  "the driver under terminated backends (postgres)",
  () => {
    let target: TestDatabase;
    const admin = postgres(process.env.DATABASE_URL ?? "", { max: 1, onnotice: () => {} });
    afterAll(async () => {
      await admin.end();
      await target?.drop();
    });

    it("settles every call, and works again once the storm is over", async () => {
      target = await createTestDatabase("postgres");
      const name = new URL(target.url!).pathname.slice(1);
      const database = await openDatabase({ databaseUrl: target.url, pgliteDir: "" });
      const holder = {
        version: 1 as const,
        host: "h",
        pid: 1,
        startTime: "1",
        home: "/h",
        url: "u",
      };
      const until = Date.now() + 6_000;
      let calls = 0;
      const settled = { ok: 0, failed: 0 };
      const count = (p: Promise<unknown>) =>
        p.then(
          () => settled.ok++,
          () => settled.failed++,
        );
      const work = (async () => {
        let epoch: number | null = null;
        while (Date.now() < until) {
          calls += 5;
          await count(
            (async () => {
              if (epoch === null) {
                const claim = await database.lease.tryAcquire(holder);
                if (claim) {
                  epoch = claim.epoch;
                  await database.actUnder(epoch);
                }
              } else if (!(await database.lease.stillHeld(2_000))) {
                epoch = null;
                await database.actUnder(0);
                await database.lease.release();
              }
            })(),
          );
          await Promise.all([
            count(database.db.select().from(tasks).limit(1)),
            count(database.db.select().from(tasks).limit(1)),
            ...[0, 1].map(() =>
              count(
                database.db.transaction(async (tx) => {
                  await tx.select().from(tasks).limit(1);
                  await tx.update(tasks).set({ name: "x" }).where(eq(tasks.id, "none"));
                }),
              ),
            ),
          ]);
          await new Promise((r) => setTimeout(r, 30));
        }
      })();
      while (Date.now() < until) {
        await admin`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${name} and pid <> pg_backend_pid() order by random() limit 2`;
        await new Promise((r) => setTimeout(r, 150));
      }
      await work;
      expect(settled.ok + settled.failed).toBe(calls);
      expect(settled.failed).toBeGreaterThan(0);
      expect(await database.db.select().from(tasks).limit(1)).toEqual([]);
      await database.lease.release();
      await database.close();
    }, 60_000);

    it("rejects a pipelined transaction whose connection is terminated, and the process lives on", async () => {
      target ??= await createTestDatabase("postgres");
      const sql = postgres(target.url!, { max: 2, onnotice: () => {}, fetch_types: false });
      try {
        for (let round = 0; round < 3; round++) {
          const tx = sql
            .begin(async (t) => {
              const slow = t`select pg_sleep(1), 'studio-pipelined-test'`;
              // Sent right behind it; unpatched, its deferred write ran after the close and threw.
              const next = t`select 2`;
              next.catch(() => {});
              await slow;
              await next;
            })
            .then(
              () => "committed",
              (err: Error) => err.message,
            );
          await new Promise((r) => setTimeout(r, 200));
          await admin`select pg_terminate_backend(pid) from pg_stat_activity
            where query like '%studio-pipelined-test%' and pid <> pg_backend_pid()`;
          expect(await tx).toMatch(/CONNECTION_CLOSED|terminating connection/);
        }
      } finally {
        await sql.end({ timeout: 1 });
      }
    });
  },
);
