import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { killGroups, waitFor } from "../helpers/wait";

/**
 * Issue #11's second and third reproductions, PostgreSQL only (an embedded database has one
 * studio): two studios with their own homes on one database. The one that holds the lease
 * supervises; the other serves read-only and stands by. A supervisor whose lock connection is
 * terminated stops acting; a standby takes over within 10 s of the supervisor's death, adopting
 * its trainers by identity and saying so; and a storm of terminated connections never lets two
 * of them write: every event carries the epoch of the studio that wrote it, and in the order
 * the database stored them the epochs never go back.
 */
describe.skipIf(!process.env.DATABASE_URL)("supervision moves between studios (postgres)", () => {
  let first: TestStudio;
  let second: TestStudio;
  const trainers: number[] = [];
  let admin: postgres.Sql;
  let database: string;

  afterAll(async () => {
    killGroups(trainers);
    await second?.dispose();
    await first?.dispose();
    await admin?.end();
  });

  const readOnly = async (studio: TestStudio) => (await studio.client.studio.info.query()).readOnly;

  async function statusOf(studio: TestStudio, id: string) {
    return (await studio.client.task.get.query({ id })).task.status;
  }

  /** Events in the order the database stored them, with the epoch each was written under. */
  async function eventEpochs() {
    return admin<{ id: string; epoch: number | null; task_id: string; type: string }[]>`
      select id, epoch, task_id, type from task_events order by id`;
  }

  function expectEpochsNeverGoBack(rows: { epoch: number | null }[]) {
    const epochs = rows.map((r) => r.epoch).filter((e): e is number => e !== null);
    expect(epochs.length).toBeGreaterThan(0);
    const backwards = epochs.findIndex((e, i) => i > 0 && e < epochs[i - 1]!);
    expect(backwards, `epochs in storage order: ${epochs.join(",")}`).toBe(-1);
  }

  it("a standby takes over from a killed supervisor within 10 s and adopts its trainer", async () => {
    // Two at once, so the storm's two tasks run side by side.
    const env = { STUDIO_ALLOW_COMMAND_TRAINER: "1", STUDIO_CONCURRENCY: "2" };
    first = await TestStudio.create("postgres", env);
    database = new URL(first.env.DATABASE_URL!).pathname.slice(1);
    admin = postgres(first.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    second = await TestStudio.create("pglite", { ...env, DATABASE_URL: first.env.DATABASE_URL });
    await first.start();
    await second.start();
    expect(await readOnly(first)).toBeNull();
    expect(await readOnly(second)).toContain(
      `another studio supervises this database: http://127.0.0.1:${first.port}`,
    );

    const until = join(first.home, "takeover.until");
    const task = await first.fixtureTask(["--lines", "5", "--interval-ms", "20", "--until", until]);
    await first.client.task.start.mutate({ id: task.id });
    const p = await waitFor("the trainer", () => first.processes(task.id));
    trainers.push(p.trainer);
    await waitFor("some output", () => first.logOf(task.id).length >= 5);
    // The standby reads the task's log from the folder under the other home.
    const served = await second.client.task.logs.query({ id: task.id });
    expect(served.lines.length).toBeGreaterThanOrEqual(5);

    // Created through the first studio (its dataset pinned under the first home), started later.
    const later = await first.fixtureTask(["--lines", "3"], "started after the takeover");
    await first.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(
      "the standby to supervise",
      async () => (await readOnly(second)) === null,
      10_000,
      100,
    );
    expect(Date.now() - killedAt).toBeLessThan(10_000);

    const detail = await second.client.task.get.query({ id: task.id });
    expect(detail.attempts).toHaveLength(1);
    expect((detail.attempts[0]!.handle as { trainer: { pid: number } }).trainer.pid).toBe(
      p.trainer,
    );
    // The new supervisor's reconciliation writes its account just after it takes the lock.
    const recovered = await waitFor("the takeover's account", async () =>
      (await second.client.task.get.query({ id: task.id })).events.find(
        (e) => e.type === "recovered",
      ),
    );
    expect(recovered.message).toContain(
      `took over supervision from the studio at http://127.0.0.1:${first.port}`,
    );
    expect(recovered.message).toContain(`training went on (pid ${p.trainer})`);

    writeFileSync(until, "");
    await second.client.task.start.mutate({ id: later.id });
    await waitFor(
      "the later task to complete",
      async () => (await statusOf(second, later.id)) === "completed",
      30_000,
      100,
    );
    await waitFor(
      "completion",
      async () => (await statusOf(second, task.id)) === "completed",
      20_000,
      100,
    );
    expectEpochsNeverGoBack(await eventEpochs());
  }, 60_000);

  it("a supervisor whose lock connection is terminated stops acting, and one studio supervises again", async () => {
    await first.start();
    expect(await readOnly(first)).toContain("another studio supervises this database");
    const until = join(second.home, "lost-lock.until");
    const task = await second.fixtureTask([
      "--lines",
      "5",
      "--interval-ms",
      "20",
      "--until",
      until,
    ]);
    await second.client.task.start.mutate({ id: task.id });
    const p = await waitFor("the trainer", () => second.processes(task.id));
    trainers.push(p.trainer);

    const [holder] = await admin<{ pid: number }[]>`
      select pid from pg_locks where locktype = 'advisory' and granted
      and database = (select oid from pg_database where datname = current_database())`;
    await admin`select pg_terminate_backend(${holder!.pid})`;
    await waitFor(
      "the supervisor to notice",
      () => second.log().includes("stopped supervising"),
      10_000,
      100,
    );
    // Within seconds exactly one of the two supervises again (whichever won the lock).
    await waitFor(
      "one supervisor",
      async () =>
        [await readOnly(first), await readOnly(second)].filter((r) => r === null).length === 1,
      10_000,
      100,
    );
    writeFileSync(until, "");
    const supervising = (await readOnly(first)) === null ? first : second;
    await waitFor(
      "completion",
      async () => (await statusOf(supervising, task.id)) === "completed",
      20_000,
      100,
    );
    const detail = await supervising.client.task.get.query({ id: task.id });
    expect(detail.attempts).toHaveLength(1);
    expect(detail.events.filter((e) => e.type === "exited")).toHaveLength(1);
    expectEpochsNeverGoBack(await eventEpochs());
  }, 60_000);

  it("a storm of terminated connections never lets two studios write", async () => {
    const supervising = (await readOnly(first)) === null ? first : second;
    const tasks = [];
    for (let i = 0; i < 2; i++) {
      const t = await supervising.fixtureTask(
        ["--lines", "300", "--interval-ms", "20"],
        `storm ${i}`,
      );
      await supervising.client.task.start.mutate({ id: t.id });
      tasks.push(t);
    }
    const epochOf = async () =>
      (await admin<{ epoch: number }[]>`select epoch from supervision`)[0]!.epoch;
    const epochBefore = await epochOf();
    const stormUntil = Date.now() + 12_000;
    let terminated = 0;
    while (Date.now() < stormUntil) {
      const rows = await admin<{ ok: boolean }[]>`
        select pg_terminate_backend(pid) as ok from pg_stat_activity
        where datname = ${database} and pid <> pg_backend_pid()
        order by random() limit 2`;
      terminated += rows.filter((r) => r.ok).length;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(terminated).toBeGreaterThan(10);
    // Supervision really moved (or was taken up again) under the storm.
    expect(await epochOf()).toBeGreaterThan(epochBefore);

    const settled = await waitFor(
      "one supervisor after the storm",
      async () => {
        const states = [await readOnly(first), await readOnly(second)];
        return states.filter((r) => r === null).length === 1
          ? states[0] === null
            ? first
            : second
          : null;
      },
      20_000,
      200,
    );
    for (const t of tasks) {
      // A launch cut off by the storm is adopted once its launch timeout (10 s) is up.
      await waitFor(
        `${t.name} to complete`,
        async () => (await statusOf(settled, t.id)) === "completed",
        60_000,
        200,
      );
      const detail = await settled.client.task.get.query({ id: t.id });
      expect(detail.attempts).toHaveLength(1);
      expect(detail.events.filter((e) => e.type === "exited")).toHaveLength(1);
      const home = detail.task.folder?.startsWith(first.home) ? first : second;
      expect(home.logOf(t.id).filter((l) => /^line \d+ of 300$/.test(l))).toHaveLength(300);
      expect((detail.task.progress as { step: number }).step).toBe(300);
    }
    expectEpochsNeverGoBack(await eventEpochs());
  }, 120_000);
});
