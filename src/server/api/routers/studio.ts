import { TRPCError } from "@trpc/server";
import { HF_PEFT_SETUP_COMMAND } from "../../hf-peft-readiness";
import { outboxSummary } from "../../notifications/outbox";
import { conditionKey, studioCondition } from "../../studio-condition";
import { countByStatus } from "../../tasks/repository";
import { mutatingProcedure, publicProcedure, router } from "../trpc";

/** How long studio.info waits for the task and notification counts: it answers without them when the database does not. */
const COUNTS_TIMEOUT_MS = 2_000;
/** How often the condition stream looks at the disk (health changes are pushed at once). */
const DISK_EVERY_MS = 5_000;

export const studioRouter = router({
  /**
   * Which studio answers, without the database: `studio start` asks it to tell its own server
   * from another program on the port, and it answers even while the boot's reconciliation
   * keeps the database busy.
   */
  ping: publicProcedure.query(({ ctx }) => ({
    pid: process.pid,
    version: ctx.version,
    booting: ctx.booting,
  })),

  info: publicProcedure.query(async ({ ctx }) => {
    let timer: NodeJS.Timeout | undefined;
    const db = ctx.database.db;
    const stored = await Promise.race([
      Promise.all([countByStatus(db), outboxSummary(db)]),
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), COUNTS_TIMEOUT_MS);
      }),
    ])
      .catch(() => null)
      .finally(() => clearTimeout(timer));
    const condition = await studioCondition(ctx);
    const webhook = ctx.env.STUDIO_WEBHOOK_URL;
    return {
      version: ctx.version,
      startedAt: ctx.startedAt,
      pid: process.pid,
      database: ctx.database.kind,
      home: ctx.env.STUDIO_HOME,
      readOnly: ctx.readOnly,
      /** Boot reconciliation is still under way: statuses may change, commands wait for it. */
      booting: ctx.booting,
      concurrency: ctx.env.STUDIO_CONCURRENCY,
      gpus: ctx.env.STUDIO_GPUS,
      /** Tasks per status; null when the database did not answer in time. */
      counts: stored?.[0] ?? null,
      notifications: {
        /** Where the supervising studio posts them: the host only (a Slack URL is itself a secret). */
        webhook: webhook
          ? { host: new URL(webhook).host, format: ctx.env.STUDIO_WEBHOOK_FORMAT }
          : null,
        /** The outbox: pending, delivered and failed notifications, the latest failure and why. */
        outbox: stored?.[1] ?? null,
      },
      /** Whether database calls work, or since when they fail and why. */
      databaseHealth: condition.database,
      /** Free space on STUDIO_HOME against the floor: the page warns when it is low. */
      disk: condition.disk,
    };
  }),

  /** The database's health and the free space, now and whenever either changes: one stream per page. */
  onCondition: publicProcedure.subscription(async function* ({ ctx, signal }) {
    const stop = signal ?? new AbortController().signal;
    // Woken by a health change (at once), by the end of the stream, or every few seconds for the disk.
    let wake: () => void = () => {};
    let changed = false;
    const unsubscribe = ctx.database.health.onChange(() => {
      changed = true;
      wake();
    });
    stop.addEventListener("abort", () => wake());
    let last = "";
    try {
      while (!stop.aborted) {
        changed = false;
        const condition = await studioCondition(ctx);
        const key = conditionKey(condition);
        if (key !== last) {
          last = key;
          yield condition;
        }
        // a change that came while this one was read or sent is not waited for
        if (changed || stop.aborted) continue;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, DISK_EVERY_MS);
        });
        clearTimeout(timer);
      }
    } finally {
      unsubscribe();
    }
  }),

  /**
   * Rebuilds the tasks the database lost from their folders (as `studio start` does at boot)
   * and reconciles them: the report says what came back, in what status, and what could not.
   */
  recover: mutatingProcedure.mutation(({ ctx }) => {
    if (!ctx.supervisor) {
      throw new TRPCError({ code: "PRECONDITION_FAILED", message: `read-only: ${ctx.readOnly}` });
    }
    return ctx.supervisor.recover();
  }),
  /** Whether each trainer that needs more than the studio can run: the create form says so. */
  trainers: publicProcedure.query(async ({ ctx }) => ({
    hfPeft: { ...(await ctx.hfPeft.check()), setupCommand: HF_PEFT_SETUP_COMMAND },
  })),
});
