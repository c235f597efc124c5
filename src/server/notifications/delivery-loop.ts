import type { Db } from "../db/client";
import type { NotificationRow } from "../db/schema";
import { dueNotifications, type RecordedTry, recordTry } from "./outbox";
import { readStoredNotification } from "./payload";
import { type DeliveryPolicy, nextStep } from "./retry-schedule";
import { type WebhookFormat, webhookBody } from "./webhook-body";
import { postWebhook } from "./webhook-post";
import { deliveryHeaders } from "./webhook-signature";

export interface WebhookTarget {
  url: string;
  secret: string | undefined;
  format: WebhookFormat;
}

export interface DeliveryOptions {
  db: Db;
  webhook: WebhookTarget;
  policy: DeliveryPolicy;
  /** Where people open the studio, for the links in bodies. */
  studioUrl: string;
  log: (msg: string) => void;
}

/** How often the outbox is looked at; a notification waits at most about this long. */
const EVERY_MS = 1_000;
/** One try's limit: connect, send, and the receiver's answer. */
const TIMEOUT_MS = 10_000;
/** Rows taken per pass: each is tried once, one after another. */
const BATCH = 20;

/**
 * Posts pending outbox rows to the webhook, for the supervising studio only (the supervisor
 * starts and stops it with its term). Each try's result is recorded as soon as it is known: a
 * 2xx marks the row delivered at once, so a restart re-sends only a notification whose answer
 * was not yet recorded (receivers drop it by its X-Studio-Delivery id). A result the database
 * does not take (a failed or fenced write) is kept and recorded again before anything else is
 * posted, and its row is not posted again by this loop.
 */
export class NotificationDelivery {
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;
  private readonly stopping = new AbortController();
  private readonly unrecorded = new Map<number, { label: string; result: RecordedTry }>();
  /** The last failure to read the outbox, said once until it changes. */
  private readFailure = "";

  constructor(private readonly opts: DeliveryOptions) {}

  start() {
    this.timer = setInterval(() => this.kick(), EVERY_MS);
    this.kick();
  }

  /** Stops taking rows and aborts the try in flight (its row stays pending for the next term). */
  async stop() {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    await this.pass;
  }

  private kick() {
    if (this.pass || this.stopping.signal.aborted) return;
    this.pass = this.deliverDue()
      .then(() => {
        this.readFailure = "";
      })
      .catch((err) => {
        const words = databaseWords(err);
        if (words === this.readFailure) return;
        this.readFailure = words;
        this.opts.log(`notifications: cannot read the outbox (tried again every second): ${words}`);
      })
      .finally(() => {
        this.pass = null;
      });
  }

  /** One pass over the due rows. */
  async deliverDue(): Promise<void> {
    for (const [id, { label, result }] of this.unrecorded) {
      try {
        await recordTry(this.opts.db, id, result);
      } catch {
        continue; // still refused (said when it first was)
      }
      this.unrecorded.delete(id);
      this.opts.log(`${label}: recorded as ${result.status} now`);
    }
    const rows = await dueNotifications(this.opts.db, new Date(), BATCH);
    for (const row of rows) {
      if (this.stopping.signal.aborted) return;
      if (!this.unrecorded.has(row.id)) await this.deliver(row);
    }
  }

  private async deliver(row: NotificationRow) {
    const { webhook, policy, log } = this.opts;
    const reading = readStoredNotification(row.payload);
    let label = `notification ${row.deliveryId} (task ${row.taskId})`;
    if (!reading.ok) {
      const error = `cannot be delivered: ${reading.problem}`;
      log(`${label} failed: ${error}`);
      await this.settle(row.id, label, { status: "failed", attempts: row.attempts, error });
      return;
    }
    const { payload } = reading;
    label = `notification ${row.deliveryId} (task ${row.taskId} ${payload.kind})`;
    const body = webhookBody({
      payload,
      deliveryId: row.deliveryId,
      format: webhook.format,
      studioUrl: this.opts.studioUrl,
    });
    const attempts = row.attempts + 1;
    const tried = await postWebhook({
      url: webhook.url,
      body,
      headers: deliveryHeaders({
        deliveryId: row.deliveryId,
        kind: payload.kind,
        body,
        secret: webhook.secret,
        timestamp: Math.floor(Date.now() / 1000),
      }),
      timeoutMs: TIMEOUT_MS,
      signal: this.stopping.signal,
    });
    // Cut short by the end of the term: the row stays as it was. An answer that came is kept.
    if (tried.kind !== "answered" && this.stopping.signal.aborted) return;
    const step = nextStep(tried, attempts, policy);
    switch (step.status) {
      case "delivered":
        log(`${label} delivered (try ${attempts})`);
        await this.settle(row.id, label, { status: "delivered", attempts });
        return;
      case "failed":
        log(`${label} failed: ${step.error}`);
        await this.settle(row.id, label, { status: "failed", attempts, error: step.error });
        return;
      case "pending":
        log(
          `${label}: try ${attempts} of ${policy.maxAttempts} did not deliver it (${step.error}); next try in ${Math.round(step.delayMs / 1000)} s`,
        );
        await this.settle(row.id, label, {
          status: "pending",
          attempts,
          nextAttemptAt: new Date(Date.now() + step.delayMs),
          error: step.error,
        });
    }
  }

  /** Records one try's result; one the database does not take is kept for the next pass. */
  private async settle(id: number, label: string, result: RecordedTry) {
    try {
      await recordTry(this.opts.db, id, result);
    } catch (err) {
      this.unrecorded.set(id, { label, result });
      this.opts.log(
        `${label}: cannot record that it is ${result.status} (${databaseWords(err)}); recorded again before anything else is sent, and not sent again meanwhile`,
      );
    }
  }
}

/** drizzle wraps the database's own error ("Failed query: …" with the statement): its words. */
function databaseWords(err: unknown): string {
  let e = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
