import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { killGroups, waitFor } from "../helpers/wait";

/**
 * The studio answers before its boot reconciliation is over (issue #14: a start that waits for
 * every open task is slow with many of them), and no command acts before it. PostgreSQL only:
 * the boot is held still from outside by a row lock on the task it has to end, taken on a
 * connection of the test's own; an embedded database has no second connection.
 */
describe.skipIf(!process.env.DATABASE_URL)(
  "boot reconciliation in the background (postgres)",
  () => {
    let studio: TestStudio;
    const trainers: number[] = [];
    let releaseBoot = () => {};

    afterEach(async () => {
      releaseBoot();
      killGroups(trainers.splice(0));
      await studio?.dispose();
    });

    /**
     * A task whose trainer ended while no studio ran, its row locked by the test: `studio start`
     * returns with the boot held at that task until `release`.
     */
    async function startWithHeldBoot() {
      studio = await TestStudio.create("postgres", { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
      await studio.start();
      const until = join(studio.home, "finish");
      const ended = await studio.fixtureTask(
        ["--lines", "5", "--until", until],
        "ended while down",
      );
      await studio.client.task.start.mutate({ id: ended.id });
      const p = await waitFor("the trainer", () => studio.processes(ended.id));
      trainers.push(p.trainer);
      const waiting = await studio.fixtureTask(["--lines", "3"], "started during the boot");

      await studio.stop();
      writeFileSync(until, "");
      const exitRecord = join(studio.home, "tasks", ended.id, "exit.json");
      await waitFor("the runner's exit record", () => existsSync(exitRecord));

      const db = postgres(studio.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      let locked!: () => void;
      const lockTaken = new Promise<void>((r) => {
        locked = r;
      });
      const held = new Promise<void>((r) => {
        releaseBoot = r;
      });
      const holding = db
        .begin(async (sql) => {
          await sql`select id from tasks where id = ${ended.id} for update`;
          locked();
          await held;
        })
        .catch(() => {})
        .finally(() => db.end());
      await lockTaken;
      await studio.cli("start"); // returns once the studio answers: the boot is still held
      const release = async () => {
        releaseBoot();
        await holding;
      };
      return { ended, waiting, release };
    }

    it("answers reads while the boot runs; a command waits for the boot and then acts", async () => {
      const { ended, waiting, release } = await startWithHeldBoot();
      const info = await studio.client.studio.info.query();
      expect(info.booting).toBe(true);
      const shown = await studio.client.task.get.query({ id: ended.id });
      expect(shown.task.status).toBe("training"); // as stored: the boot has not judged it yet

      let settled = false;
      const start = studio.client.task.start.mutate({ id: waiting.id }).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(settled).toBe(false);
      expect((await studio.client.studio.info.query()).booting).toBe(true);

      await release();
      await start;
      await studio.booted();
      const finished = await studio.client.task.get.query({ id: ended.id });
      expect(finished.task.status).toBe("completed");
      await waitFor(
        "the task started during the boot to complete",
        async () =>
          (await studio.client.task.get.query({ id: waiting.id })).task.status === "completed",
        30_000,
        100,
      );
    });

    it("stops at once while its boot is held, and the next start judges the task", async () => {
      const { ended, release } = await startWithHeldBoot();
      // Before, the stop waited out the held boot (the 15 s statement timeout), where `studio
      // stop` gives up and kills. Now only the database's close bounds it (5 s).
      const stopStarted = Date.now();
      await studio.stop();
      expect(Date.now() - stopStarted).toBeLessThan(10_000);
      expect(studio.log()).toMatch(/stopped\n*$/);

      await release();
      await studio.start();
      const judged = await studio.client.task.get.query({ id: ended.id });
      expect(judged.task.status).toBe("completed");
    });
  },
);
