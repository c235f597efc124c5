import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { killGroups, waitFor } from "../helpers/wait";

/**
 * Issue #11's first reproduction, PostgreSQL only (an embedded database has no outage): the
 * trainer exits while the database refuses every connection (backends terminated,
 * `allow_connections` off for 12 s). Once it is back, the task must end as recorded within
 * seconds, with its last step, and the queued task behind it must start: nothing that failed to
 * be written is dropped. Meanwhile the studio must say since when the database fails, answer
 * studio.info without it, fail page reads fast, and clear the failure once the database is back.
 */
describe.skipIf(!process.env.DATABASE_URL)("a database outage (postgres)", () => {
  let studio: TestStudio;
  const trainers: number[] = [];
  const admin = postgres(process.env.DATABASE_URL ?? "", { max: 1, onnotice: () => {} });

  afterAll(async () => {
    killGroups(trainers);
    await studio?.dispose();
    await admin.end();
  });

  async function outage(database: string, on: boolean) {
    await admin.unsafe(
      `alter database "${database}" with allow_connections ${on ? "false" : "true"}`,
    );
    if (on) {
      await admin`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${database} and pid <> pg_backend_pid()`;
    }
  }

  it("ends the task as recorded once the database is back, and frees its slot", async () => {
    studio = await TestStudio.create("postgres", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "1",
    });
    const database = new URL(studio.env.DATABASE_URL!).pathname.slice(1);
    await studio.start();
    const until = join(studio.home, "outage.until");
    const first = await studio.fixtureTask([
      "--lines",
      "5",
      "--interval-ms",
      "20",
      "--until",
      until,
    ]);
    await studio.client.task.start.mutate({ id: first.id });
    const p = await waitFor("the trainer", () => studio.processes(first.id));
    trainers.push(p.trainer);
    const second = await studio.fixtureTask(["--lines", "3"], "queued behind");
    await studio.client.task.start.mutate({ id: second.id });
    await waitFor("some output", () => studio.logOf(first.id).length >= 5);

    await outage(database, true);
    const outageStarted = new Date();
    writeFileSync(until, "");
    // Meanwhile the studio answers at once: studio.info says since when the database fails
    // (without the counts it cannot read), and a page read fails fast instead of hanging.
    const failing = await waitFor(
      "studio.info to report the outage",
      async () => {
        const info = await studio.client.studio.info.query();
        return info.databaseHealth.status === "failing" ? info : null;
      },
      10_000,
      200,
    );
    expect(failing.databaseHealth).toMatchObject({ kind: "unreachable" });
    const since = (failing.databaseHealth as { since: Date }).since;
    expect(since.getTime()).toBeGreaterThanOrEqual(outageStarted.getTime() - 1_000);
    const readStarted = Date.now();
    // bounded, so that a read that hangs fails the time check below instead of the whole test
    await expect(
      studio.client.task.list.query(undefined, { signal: AbortSignal.timeout(10_000) }),
    ).rejects.toThrow();
    expect(Date.now() - readStarted).toBeLessThan(7_000);
    const infoStarted = Date.now();
    const during = await studio.client.studio.info.query(undefined, {
      signal: AbortSignal.timeout(10_000),
    });
    expect(Date.now() - infoStarted).toBeLessThan(4_000);
    expect(during.counts).toBeNull();
    expect(during.databaseHealth).toMatchObject({ status: "failing", since });
    await new Promise((r) =>
      setTimeout(r, Math.max(0, outageStarted.getTime() + 12_000 - Date.now())),
    );
    await outage(database, false);
    await waitFor(
      "the health to clear",
      async () => (await studio.client.studio.info.query()).databaseHealth.status === "ok",
      10_000,
      200,
    );

    const done = await waitFor(
      "the first task to complete",
      async () => {
        const d = await studio.client.task.get.query({ id: first.id });
        return d.task.status === "completed" ? d : null;
      },
      20_000,
      200,
    );
    expect(done.attempts[0]).toMatchObject({ exitCode: 0 });
    const last = studio
      .logOf(first.id)
      .map((l) => /^line (\d+) of 5$/.exec(l)?.[1])
      .filter(Boolean)
      .at(-1);
    expect((done.task.progress as { step: number }).step).toBe(Number(last));
    await waitFor(
      "the queued task to run and complete",
      async () =>
        (await studio.client.task.get.query({ id: second.id })).task.status === "completed",
      30_000,
      200,
    );
  }, 90_000);
});
