import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const SECRET = "whsec-test-0123456789";

interface Received {
  deliveryId: string;
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** A real receiver: answers each request with the next status of `answers` (the last repeats). */
async function startReceiver() {
  const received: Received[] = [];
  const state = { answers: [200] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const answered = state.answers.length > 1 ? state.answers.shift()! : state.answers[0]!;
      received.push({
        deliveryId: String(req.headers["x-studio-delivery"]),
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        answered,
      });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/studio`;
  return {
    url,
    received,
    answer: (...statuses: number[]) => {
      state.answers = statuses;
    },
    /** Requests for the task's notification(s), parsed. */
    forTask: (taskId: string) =>
      received.filter((r) => (JSON.parse(r.body) as { task: { id: string } }).task.id === taskId),
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

/** What a receiver does with the README's recipe: the signature over `<timestamp>.<raw body>`. */
function verified(r: Received): boolean {
  const timestamp = String(r.headers["x-studio-timestamp"]);
  const expected = createHmac("sha256", SECRET).update(`${timestamp}.${r.body}`).digest("hex");
  const given = String(r.headers["x-studio-signature"]).replace(/^sha256=/, "");
  const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
  return (
    fresh &&
    given.length === expected.length &&
    timingSafeEqual(Buffer.from(given), Buffer.from(expected))
  );
}

describe.each(testDatabaseKinds())("webhook notifications from a real studio (%s)", (kind) => {
  let studio: TestStudio | undefined;
  let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;
  afterEach(async () => {
    await studio?.dispose();
    await receiver?.close();
  });

  it("signed, tried again after a 500 and delivered once; one pending at a kill -9 is delivered after the restart", async () => {
    receiver = await startReceiver();
    studio = await TestStudio.create(kind, {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_WEBHOOK_URL: receiver.url,
      STUDIO_WEBHOOK_SECRET: SECRET,
      STUDIO_WEBHOOK_BACKOFF_SECONDS: "1",
    });
    await studio.start();
    const r = receiver;
    const s = studio;

    // A quick task completes; the receiver fails the first try, takes the second.
    r.answer(500, 200);
    const quick = await s.fixtureTask(["--lines", "3"], "quick");
    await s.client.task.start.mutate({ id: quick.id });
    await waitFor("the completed notification to be taken", () =>
      r.forTask(quick.id).some((x) => x.answered === 200),
    );
    const tries = r.forTask(quick.id);
    expect(tries.map((x) => x.answered)).toEqual([500, 200]);
    const id = tries[0]!.deliveryId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    for (const t of tries) {
      expect(t.deliveryId).toBe(id);
      expect(t.headers["x-studio-event"]).toBe("completed");
      expect(t.headers["content-type"]).toBe("application/json");
      expect(verified(t)).toBe(true);
      // the body is signed as sent: one changed byte does not verify
      expect(verified({ ...t, body: t.body.replace("quick", "quack") })).toBe(false);
    }
    expect(JSON.parse(tries[1]!.body)).toEqual({
      version: 1,
      deliveryId: id,
      event: "completed",
      task: {
        id: quick.id,
        name: "quick",
        url: `http://127.0.0.1:${s.port}/finetune?task=${quick.id}`,
      },
      attempt: 1,
      message: expect.stringMatching(/^completed: /),
      cause: null,
      studio: { url: `http://127.0.0.1:${s.port}` },
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });

    // A second task fails while the receiver is down; the studio is killed with its
    // notification pending, and the restarted studio delivers it.
    r.answer(503);
    const failing = await s.fixtureTask(["--lines", "2", "--exit-code", "3"], "failing");
    await s.client.task.start.mutate({ id: failing.id });
    await waitFor("a refused try of the failed notification", () => r.forTask(failing.id).length);
    await s.kill("SIGKILL");
    r.answer(200);
    await s.start();
    await waitFor("the failed notification to be taken after the restart", () =>
      r.forTask(failing.id).some((x) => x.answered === 200),
    );
    const failed = r.forTask(failing.id);
    expect(new Set(failed.map((x) => x.deliveryId)).size).toBe(1);
    expect(failed.every(verified)).toBe(true);
    expect(JSON.parse(failed.at(-1)!.body)).toMatchObject({ event: "failed", attempt: 1 });

    // Exactly one acknowledged delivery per id, and nothing delivered is sent again.
    const acknowledged = r.received.filter((x) => x.answered === 200).map((x) => x.deliveryId);
    expect(acknowledged.sort()).toEqual([id, failed[0]!.deliveryId].sort());
    const status = await s.cliJson<{ notifications: unknown }>("status");
    expect(status.notifications).toMatchObject({
      webhook: { host: new URL(r.url).host, format: "json" },
      outbox: { pending: 0, delivered: 2, failed: 0, lastFailure: null },
    });
    const logged = s.log();
    expect(logged).toContain(`notification ${id} (task ${quick.id} completed): try 1 of 15`);
    expect(logged).toContain(`notification ${id} (task ${quick.id} completed) delivered (try 2)`);
    // two studio starts: most of the time, and slow on a busy machine
  }, 90_000);
});
