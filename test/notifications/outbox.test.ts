import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/server/db/client";
import { notificationOutbox, taskEvents } from "../../src/server/db/schema";
import { NotificationDelivery } from "../../src/server/notifications/delivery-loop";
import { outboxSummary } from "../../src/server/notifications/outbox";
import { addEvent, insertTask } from "../../src/server/tasks/repository";
import { hyperparametersSchema } from "../../src/trainers/protocol";
import { createTestDatabase, type TestDatabase, testDatabaseKinds } from "../helpers/databases";

/** A real receiver that answers 200 and keeps the delivery ids it took. */
let receiver: Server;
let url: string;
const taken: string[] = [];
beforeAll(async () => {
  receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      taken.push(String(req.headers["x-studio-delivery"]));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
afterAll(() => new Promise((r) => receiver.close(r)));

describe.each(testDatabaseKinds())("notification outbox (%s)", (kind) => {
  let target: TestDatabase;
  let database: Database;
  // One database for both, from the template: opening a new one is most of the time here.
  beforeAll(async () => {
    taken.length = 0;
    target = await createTestDatabase(kind, { fromTemplate: true });
    database = await target.open();
  });
  afterAll(async () => {
    await database?.close();
    await target?.drop();
  });

  const newTask = () =>
    insertTask(
      database.db,
      {
        name: "outboxed",
        model: "fixture",
        trainer: "command",
        datasetPath: "/nowhere.jsonl",
        datasetFormat: "alpaca",
        hyperparameters: hyperparametersSchema.parse({}),
        command: ["true"],
      },
      "/srv/a/tasks",
    );
  const outbox = () => database.db.select().from(notificationOutbox).orderBy(notificationOutbox.id);

  it("an event's notification is stored with it, and a refused try result is never sent twice", async () => {
    const task = await newTask();

    // Only events that notify, and only with a webhook (notify), queue a notification.
    await addEvent(database.db, task.id, "started", "attempt 1 started", { notify: true });
    await addEvent(database.db, task.id, "stalled", "no new step", { attempt: 1 });
    const exited = await addEvent(database.db, task.id, "exited", "completed: done", {
      attempt: 1,
      data: { status: "completed", exitCode: 0, signal: null, cause: null },
      notify: true,
    });
    const rows = await outbox();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      taskId: task.id,
      eventId: exited.id,
      status: "pending",
      attempts: 0,
      payload: {
        version: 1,
        kind: "completed",
        eventType: "exited",
        taskName: "outboxed",
        attempt: 1,
        message: "completed: done",
        cause: null,
        at: exited.at.toISOString(),
      },
    });

    // The event and its notification go together: an outbox the database refuses takes the
    // event with it.
    await database.db.execute(
      sql`alter table notification_outbox add constraint no_rows check (false) not valid`,
    );
    await expect(
      addEvent(database.db, task.id, "stalled", "no new step", { notify: true }),
    ).rejects.toThrow();
    const stalled = await database.db
      .select()
      .from(taskEvents)
      .where(and(eq(taskEvents.taskId, task.id), eq(taskEvents.type, "stalled")));
    expect(stalled.map((e) => e.message)).toEqual(["no new step"]); // the one without notify
    await database.db.execute(sql`alter table notification_outbox drop constraint no_rows`);

    const log: string[] = [];
    const loop = new NotificationDelivery({
      db: database.db,
      webhook: { url, secret: undefined, format: "json" },
      policy: { maxAttempts: 3, backoffSeconds: 1 },
      studioUrl: "http://127.0.0.1:3000",
      log: (m) => log.push(m),
    });
    // The receiver takes it, but the database refuses to record that (as on a full disk).
    await database.db.execute(sql`
      create function refuse_outbox() returns trigger language plpgsql as $$
      begin raise exception 'could not extend file: No space left on device'; end $$`);
    await database.db.execute(sql`
      create trigger refuse_outbox before update on notification_outbox
      for each statement execute function refuse_outbox()`);
    await loop.deliverDue();
    expect(taken).toEqual([rows[0]!.deliveryId]);
    expect(log.at(-1)).toMatch(/cannot record that it is delivered .*No space left on device/);
    // Still pending in the database, but this loop knows it was delivered: not sent again.
    await loop.deliverDue();
    await loop.deliverDue();
    expect(taken).toHaveLength(1);
    expect((await outbox())[0]).toMatchObject({ status: "pending", attempts: 0 });

    // Once the database takes writes again, the result is recorded before anything is sent.
    await database.db.execute(sql`drop trigger refuse_outbox on notification_outbox`);
    await loop.deliverDue();
    expect(taken).toHaveLength(1);
    expect(log.at(-1)).toMatch(/recorded as delivered now$/);
    expect((await outbox())[0]).toMatchObject({ status: "delivered", attempts: 1 });
    expect(await outboxSummary(database.db)).toEqual({
      pending: 0,
      delivered: 1,
      failed: 0,
      lastFailure: null,
    });
    await loop.stop();
  });

  it("a row a newer studio wrote fails by name, and the status says so", async () => {
    const task = await newTask();
    await addEvent(database.db, task.id, "failed", "could not launch: boom", {
      notify: true,
    });
    const [row] = (await outbox()).filter((r) => r.taskId === task.id);
    await database.db
      .update(notificationOutbox)
      .set({ payload: { ...row!.payload, version: 2 } as never })
      .where(eq(notificationOutbox.id, row!.id));
    const log: string[] = [];
    const loop = new NotificationDelivery({
      db: database.db,
      webhook: { url, secret: undefined, format: "slack" },
      policy: { maxAttempts: 3, backoffSeconds: 1 },
      studioUrl: "http://127.0.0.1:3000",
      log: (m) => log.push(m),
    });
    const before = taken.length;
    await loop.deliverDue();
    expect(taken.length).toBe(before);
    const error =
      "cannot be delivered: its payload is version 2, written by a newer studio (this one reads up to version 1)";
    expect(log).toEqual([`notification ${row!.deliveryId} (task ${task.id}) failed: ${error}`]);
    const summary = await outboxSummary(database.db);
    expect(summary).toMatchObject({ pending: 0, failed: 1 });
    expect(summary.lastFailure).toMatchObject({
      deliveryId: row!.deliveryId,
      taskId: task.id,
      kind: "failed",
      attempts: 0,
      error,
    });
    await loop.stop();
  });
});
