import { hostname } from "node:os";
import { eq } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/server/db/client";
import { notificationOutbox, taskEvents, tasks } from "../../src/server/db/schema";
import { resumeReason } from "../../src/server/supervision";
import { insertTask } from "../../src/server/tasks/repository";
import { hyperparametersSchema } from "../../src/trainers/protocol";
import { createTestDatabase, type TestDatabase, testDatabaseKinds } from "../helpers/databases";

const holder = (over: Partial<Parameters<typeof resumeReason>[1]> = {}) => ({
  version: 1 as const,
  host: hostname(),
  pid: 100,
  startTime: "5000",
  home: "/srv/a",
  url: "http://127.0.0.1:3000",
  ...over,
});

/** The database's own words for a refused write (drizzle wraps them as the cause). */
async function refusal(write: Promise<unknown>): Promise<string> {
  try {
    await write;
  } catch (err) {
    return `${err}; ${(err as { cause?: unknown }).cause}`;
  }
  return "not refused";
}

const newTask = (database: Database) =>
  insertTask(
    database.db,
    {
      name: "fenced",
      model: "fixture",
      trainer: "command",
      datasetPath: "/nowhere.jsonl",
      datasetFormat: "alpaca",
      hyperparameters: hyperparametersSchema.parse({}),
      command: ["true"],
    },
    "/srv/a/tasks",
  );

describe.each(testDatabaseKinds())("supervision fencing (%s)", (kind) => {
  let target: TestDatabase;
  const open: Database[] = [];
  afterEach(async () => {
    for (const d of open.splice(0)) await d.close();
    await target?.drop();
  });

  async function database() {
    const d = await target.open();
    open.push(d);
    return d;
  }

  it("refuses task writes from any epoch but the current one, and stamps events with it", async () => {
    target = await createTestDatabase(kind);
    const studio = await database();
    // Opened outside a studio (no epoch): like an operator's psql, not fenced.
    const task = await newTask(studio);

    const first = await studio.lease.tryAcquire(holder());
    expect(first).toEqual({ epoch: 1, previous: null });
    await studio.actUnder(first!.epoch);
    const again = await newTask(studio);
    const [created] = await studio.db
      .select({ epoch: taskEvents.epoch })
      .from(taskEvents)
      .where(eq(taskEvents.taskId, again.id));
    expect(created?.epoch).toBe(1);

    // A second claim (another term) raises the epoch; the first term's connection is refused.
    const second = await studio.lease.tryAcquire(holder({ pid: 200 }));
    expect(second?.epoch).toBe(2);
    expect(second?.previous).toMatchObject({ pid: 100, home: "/srv/a" });
    expect(
      await refusal(studio.db.update(tasks).set({ name: "stale" }).where(eq(tasks.id, task.id))),
    ).toContain("fenced: this studio acts under supervision epoch 1, the current epoch is 2");
    // The notification outbox too: a stale term can neither queue nor mark a notification.
    expect(
      await refusal(
        studio.db
          .update(notificationOutbox)
          .set({ status: "delivered" })
          .where(eq(notificationOutbox.taskId, task.id)),
      ),
    ).toContain("fenced");
    await studio.actUnder(0);
    expect(await refusal(newTask(studio))).toContain("fenced");
    await studio.actUnder(2);
    await studio.db.update(tasks).set({ name: "current" }).where(eq(tasks.id, task.id));
  });
});

describe("why trainers went on without this supervisor", () => {
  const self = holder();
  it.each([
    ["a database never supervised", null, "the studio restarted"],
    ["this very process", holder(), "supervision resumed after the supervisor lock was lost"],
    ["a reused pid is another process", holder({ startTime: "1" }), "the studio restarted"],
    ["this home, another process", holder({ pid: 7 }), "the studio restarted"],
    [
      "another home",
      holder({ pid: 7, home: "/srv/b", url: "http://127.0.0.1:4000" }),
      "this studio (http://127.0.0.1:3000, home /srv/a) took over supervision from the studio at http://127.0.0.1:4000 (home /srv/b, pid 7 on",
    ],
    [
      "another machine, same home path",
      holder({ host: "elsewhere", url: "http://node2:3000" }),
      "took over supervision from the studio at http://node2:3000 (home /srv/a, pid 100 on elsewhere)",
    ],
  ])("%s", (_, previous, expected) => {
    expect(resumeReason(previous, self)).toContain(expected);
  });
});
