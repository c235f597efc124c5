import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import type { EvaluationSet } from "../../shared/evaluation-set";
import type { TaskLimits } from "../../shared/task-input";
import { DATASET_FORMATS, type Hyperparameters, TRAINER_KINDS } from "../../trainers/protocol";
import type { StoredNotification } from "../notifications/payload";
import { TASK_STATUSES } from "../tasks/lifecycle";
import type { StopRequest } from "../tasks/stop-request";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const tasks = pgTable(
  "tasks",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    model: text("model").notNull(),
    trainer: text("trainer", { enum: TRAINER_KINDS }).notNull(),
    mode: text("mode", { enum: ["lora", "pretrain"] })
      .notNull()
      .default("lora"),
    datasetPath: text("dataset_path").notNull(),
    datasetFormat: text("dataset_format", { enum: DATASET_FORMATS }).notNull(),
    hyperparameters: jsonb("hyperparameters").$type<Hyperparameters>().notNull(),
    command: jsonb("command").$type<string[] | null>(),
    gpusRequested: integer("gpus_requested").notNull().default(0),
    /** What the runner holds the trainer to (memory, CPUs, run time, priority); {} for none. */
    limits: jsonb("limits").$type<TaskLimits>().notNull().default({}),
    /** Held-out data every checkpoint is scored on (versioned EvaluationSet); null for none. */
    evaluationSet: jsonb("evaluation_set").$type<EvaluationSet>(),
    status: text("status", { enum: TASK_STATUSES }).notNull(),
    statusReason: text("status_reason"),
    /** Live progress derived by the monitor (ProgressState), stored with the cursors it came from. */
    progress: jsonb("progress").$type<Record<string, unknown>>().notNull().default({}),
    /** Queue order: set when the task enters the queue. */
    queuedAt: ts("queued_at"),
    /** Set when the next attempt should continue from the last checkpoint. */
    resumeFromCheckpoint: boolean("resume_from_checkpoint").notNull().default(false),
    lastCheckpoint: text("last_checkpoint"),
    cancelRequestedAt: ts("cancel_requested_at"),
    /** Set with cancelRequestedAt when a watchdog, not a person, stopped the trainer (StopRequest). */
    stopRequest: jsonb("stop_request").$type<StopRequest>(),
    currentAttempt: integer("current_attempt").notNull().default(0),
    /**
     * The task's folder (absolute), fixed at create. Null on rows from before it was stored:
     * those live under the supervising studio's own STUDIO_HOME. Stored because a standby studio
     * with another home that takes over supervision must find the same files.
     */
    folder: text("folder"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    index("tasks_created_idx").on(t.createdAt.desc(), t.id),
    index("tasks_status_created_idx").on(t.status, t.createdAt.desc()),
    index("tasks_active_idx")
      .on(t.status, t.queuedAt)
      .where(sql`${t.status} in ('queued', 'preparing', 'training', 'paused')`),
  ],
);

/** One row per attempt to run a task: the handle that proves which process is ours. */
export const attempts = pgTable(
  "attempts",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    taskId: text("task_id")
      .notNull()
      .references(() => tasks.id, { onDelete: "cascade" }),
    number: integer("number").notNull(),
    executor: text("executor").notNull().default("local"),
    /** Executor-specific, JSON-serializable handle (local: boot id, runner and trainer identities). */
    handle: jsonb("handle").$type<Record<string, unknown>>(),
    pid: integer("pid"),
    processStartTime: text("process_start_time"),
    bootId: text("boot_id"),
    host: text("host").notNull(),
    gpus: jsonb("gpus").$type<string[]>().notNull().default([]),
    resumeFrom: text("resume_from"),
    logCursor: jsonb("log_cursor").$type<{ inode: string; offset: number }>(),
    progressCursor: jsonb("progress_cursor").$type<{ inode: string; offset: number }>(),
    exitCode: integer("exit_code"),
    signal: text("signal"),
    error: text("error"),
    intentAt: ts("intent_at").notNull().defaultNow(),
    startedAt: ts("started_at"),
    endedAt: ts("ended_at"),
  },
  (t) => [
    uniqueIndex("attempts_task_number_idx").on(t.taskId, t.number),
    index("attempts_open_idx").on(t.taskId).where(sql`${t.endedAt} is null`),
  ],
);

export const taskEvents = pgTable(
  "task_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    taskId: text("task_id")
      .notNull()
      .references(() => tasks.id, { onDelete: "cascade" }),
    attempt: integer("attempt"),
    type: text("type").notNull(),
    message: text("message").notNull().default(""),
    data: jsonb("data").$type<Record<string, unknown>>(),
    /**
     * The supervision epoch of the studio that wrote it (see `supervision`), filled in by the
     * database from the writing connection; null for writes made outside a studio.
     */
    epoch: integer("epoch").default(
      sql`nullif(current_setting('studio.epoch', true), '')::integer`,
    ),
    at: ts("at").notNull().defaultNow(),
  },
  (t) => [index("task_events_task_idx").on(t.taskId, t.id)],
);

export const METRIC_KINDS = ["train", "eval"] as const;
export type MetricKind = (typeof METRIC_KINDS)[number];

export const taskMetrics = pgTable(
  "task_metrics",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    taskId: text("task_id")
      .notNull()
      .references(() => tasks.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    step: integer("step").notNull(),
    epoch: doublePrecision("epoch"),
    loss: doublePrecision("loss"),
    evalLoss: doublePrecision("eval_loss"),
    learningRate: doublePrecision("learning_rate"),
    /**
     * "train" (loss, learning rate) or "eval" (eval loss): one step can have one row of each.
     * (task, attempt, step, kind) is unique, so the monitor's writes are idempotent upserts and
     * re-reading lines after a restart stores no duplicate.
     */
    kind: text("kind", { enum: METRIC_KINDS }).notNull().default("train"),
    at: ts("at").notNull().defaultNow(),
  },
  (t) => [
    index("task_metrics_task_step_idx").on(t.taskId, t.step),
    uniqueIndex("task_metrics_task_attempt_step_kind_idx").on(t.taskId, t.attempt, t.step, t.kind),
  ],
);

export const NOTIFICATION_STATUSES = ["pending", "delivered", "failed"] as const;
export type NotificationStatus = (typeof NOTIFICATION_STATUSES)[number];

/**
 * The notification outbox: one row per notification a task event made, inserted in the same
 * transaction as the event (src/server/tasks/repository.ts `addEvent`), delivered by the
 * supervising studio (src/server/notifications). Rows outlive a restart, a kill and a takeover,
 * and the task itself (no foreign key: a deleted task's last notification still goes out).
 * Fenced like the task tables (migration 0006).
 */
export const notificationOutbox = pgTable(
  "notification_outbox",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    /** Sent as X-Studio-Delivery with every try: receivers drop a delivery they already took. */
    deliveryId: text("delivery_id").notNull(),
    taskId: text("task_id").notNull(),
    /** The task event that made it. */
    eventId: bigint("event_id", { mode: "number" }).notNull(),
    /** What happened, as it was when the event was written (versioned: ../notifications/payload). */
    payload: jsonb("payload").$type<StoredNotification>().notNull(),
    status: text("status", { enum: NOTIFICATION_STATUSES }).notNull().default("pending"),
    /** Deliveries tried so far. */
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ts("next_attempt_at").notNull().defaultNow(),
    /** Why the last try did not deliver it (a failed row keeps why it was given up). */
    lastError: text("last_error"),
    createdAt: ts("created_at").notNull().defaultNow(),
    /** When it was delivered or given up. */
    finishedAt: ts("finished_at"),
  },
  (t) => [
    uniqueIndex("notification_outbox_delivery_idx").on(t.deliveryId),
    index("notification_outbox_due_idx")
      .on(t.nextAttemptAt, t.id)
      .where(sql`${t.status} = 'pending'`),
    index("notification_outbox_status_idx").on(t.status, t.finishedAt),
  ],
);
export type NotificationRow = typeof notificationOutbox.$inferSelect;

/** Who supervised, in `supervision.holder`: enough to say who took over from whom. */
export interface SupervisionHolder {
  version: 1;
  host: string;
  /** pid and start time: the process, even when its pid is reused. */
  pid: number;
  startTime: string;
  home: string;
  url: string;
}

/**
 * The fencing token of supervision: one row whose epoch goes up each time a studio becomes the
 * supervisor. Every studio connection carries the epoch it acts under (`studio.epoch`), and a
 * trigger refuses any write to tasks, attempts, events or metrics from a connection whose epoch
 * is not the current one (migration 0003), so a studio that lost the supervisor lock cannot
 * change anything even before it notices.
 */
export const supervision = pgTable("supervision", {
  id: integer("id").primaryKey(),
  epoch: integer("epoch").notNull(),
  holder: jsonb("holder").$type<SupervisionHolder>().notNull(),
  acquiredAt: ts("acquired_at").notNull().defaultNow(),
});

export type TaskRow = typeof tasks.$inferSelect;
export type AttemptRow = typeof attempts.$inferSelect;
export type TaskEventRow = typeof taskEvents.$inferSelect;
export type TaskMetricRow = typeof taskMetrics.$inferSelect;

/**
 * A signed-in browser. The cookie holds a random secret; only its SHA-256 is stored, so the
 * database never holds what a browser presents. `tokenFingerprint` ties the session to the
 * access token it was opened with: when the token changes, every older session stops working.
 */
export const sessions = pgTable(
  "sessions",
  {
    /** Public id for listing and revoking; says nothing about the secret. */
    id: text("id").primaryKey(),
    secretHash: text("secret_hash").notNull(),
    tokenFingerprint: text("token_fingerprint").notNull(),
    /** The client's address and user agent at login, to recognise the session by. */
    client: text("client").notNull().default(""),
    userAgent: text("user_agent").notNull().default(""),
    createdAt: ts("created_at").notNull().defaultNow(),
    lastSeenAt: ts("last_seen_at").notNull().defaultNow(),
    /** Moves forward with use (sliding expiry). */
    expiresAt: ts("expires_at").notNull(),
  },
  (t) => [
    uniqueIndex("sessions_secret_hash_idx").on(t.secretHash),
    index("sessions_expires_idx").on(t.expiresAt),
  ],
);
export type SessionRow = typeof sessions.$inferSelect;
