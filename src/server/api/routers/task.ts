import { on } from "node:events";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { TRPCError, tracked } from "@trpc/server";
import { z } from "zod";
import { SYSTEM_SAMPLES_FILE } from "../../../runner/system-sample";
import { createTaskInput, taskIdInput } from "../../../shared/task-input";
import { GenerationError } from "../../../trainers/playground/generation-server";
import {
  generationSettingsSchema,
  MAX_PROMPT_CHARS,
  modelSideSchema,
} from "../../../trainers/playground/protocol";
import { hyperparametersSchema } from "../../../trainers/protocol";
import { DatasetError } from "../../datasets/dataset-error";
import { assertPinnedDataset } from "../../datasets/pinned";
import { assertNoLinkInside } from "../../datasets/safe-paths";
import type { TaskRow } from "../../db/schema";
import { listDownloads, taskFilesRoot } from "../../downloads";
import type { LogChunk, TaskUpdate } from "../../events/bus";
import { studioPaths, tasksRootOf } from "../../home";
import { readLinesBefore } from "../../logs/log-cursor";
import { TaskActionError } from "../../supervisor/task-action-error";
import {
  changeEvaluationSet,
  evaluationSetOf,
  evaluationSetRefusal,
} from "../../tasks/evaluation-set";
import {
  allowedActions,
  isActive,
  RETRYABLE_STATUSES,
  TASK_STATUSES,
  type TaskStatus,
} from "../../tasks/lifecycle";
import {
  deleteTask,
  getTask,
  insertTask,
  listAttempts,
  listEvents,
  listMetrics,
  listTasks,
  queuePositionOf,
} from "../../tasks/repository";
import { readSystemSamples } from "../../tasks/system-samples";
import { listEvaluations, startEvaluation } from "../../tasks/task-evaluation";
import { type ExportSettings, readExport, startExport } from "../../tasks/task-export";
import { readLinesAfter } from "../../tasks/task-log";
import { taskModel, taskModelChoices } from "../../tasks/task-model-source";
import { taskRecordOf, writeTaskRecord } from "../../tasks/task-record";
import { sentToAll } from "../shared-encoding";
import { type Context, mutatingProcedure, publicProcedure, router } from "../trpc";
import { fieldIssue } from "../zod-error";

async function mustGetTask(ctx: { database: { db: Parameters<typeof getTask>[0] } }, id: string) {
  const task = await getTask(ctx.database.db, id);
  if (!task) throw new TRPCError({ code: "NOT_FOUND", message: `no task with id ${id}` });
  return task;
}

function supervisorOf(ctx: Context) {
  if (!ctx.supervisor) {
    throw new TRPCError({ code: "PRECONDITION_FAILED", message: `read-only: ${ctx.readOnly}` });
  }
  return ctx.supervisor;
}

/**
 * Before a start or retry that would launch a trainer: the task's dataset is still the copy
 * pinned at create. Any other case (unknown task, already started, not retryable) is left to
 * the supervisor, which answers it as before.
 */
async function datasetStillPinned(ctx: Context, id: string, launchableFrom: readonly TaskStatus[]) {
  const task = await getTask(ctx.database.db, id);
  if (task && launchableFrom.includes(task.status)) {
    await assertPinnedDataset(ctx.datasets, task.id, task.datasetPath);
  }
}

/**
 * A file of a task's folder (training.log, system.jsonl) as readers open it by path: never a link
 * out of the task folder. A task whose folder is not on this machine (started through a studio
 * elsewhere) is refused as such, rather than shown as empty.
 */
async function taskFileOf(ctx: Context, task: TaskRow, file: string): Promise<string> {
  let root: string;
  try {
    root = tasksRootOf(ctx.env.STUDIO_HOME, task);
    await assertNoLinkInside(root, `${task.id}/${file}`);
  } catch (err) {
    throw new TRPCError({
      code: "FORBIDDEN",
      message: `task ${task.id}'s ${file} is refused: ${err instanceof Error ? err.message : err}`,
    });
  }
  if (!existsSync(root)) {
    throw new TRPCError({
      code: "NOT_FOUND",
      message: `task ${task.id}'s folder ${join(root, task.id)} is not on this machine; read its ${file} through the studio that started it`,
    });
  }
  return join(root, task.id, file);
}

const LOG_PAGE_BYTES = 256 * 1024;

/** A dataset the store refuses, as a refusal of the input field that named it. */
function refusedAt(field: string) {
  return (err: unknown): never => {
    if (!(err instanceof DatasetError)) throw err;
    throw new TRPCError({
      code: err.code,
      message: err.message,
      cause: fieldIssue([field], err.message),
    });
  };
}

function exportSettings(ctx: Context): ExportSettings {
  return {
    home: ctx.env.STUDIO_HOME,
    minFreeMb: ctx.env.STUDIO_MIN_FREE_MB,
    studioVersion: ctx.version,
    python: () => ctx.hfPeft.interpreter().path,
    baseEnv: process.env,
  };
}

export const taskRouter = router({
  create: mutatingProcedure.input(createTaskInput).mutation(async ({ ctx, input }) => {
    if (input.trainer === "command" && !ctx.env.STUDIO_ALLOW_COMMAND_TRAINER) {
      throw new TRPCError({
        code: "FORBIDDEN",
        message:
          "custom command trainers are disabled; the operator enables them with STUDIO_ALLOW_COMMAND_TRAINER=1",
      });
    }
    if (input.gpus > ctx.env.STUDIO_GPUS.length) {
      const message =
        ctx.env.STUDIO_GPUS.length === 0
          ? "this studio has no GPUs configured (STUDIO_GPUS); ask for 0 GPUs"
          : `asked for ${input.gpus} GPUs but this studio hands out ${ctx.env.STUDIO_GPUS.length}`;
      throw new TRPCError({ code: "BAD_REQUEST", message, cause: fieldIssue(["gpus"], message) });
    }
    // Checked, read once and copied under its content hash: what the task will train on. A
    // refusal is about the dataset field, and says so, so the form shows it there.
    const dataset = await ctx.datasets.pinForTask(input.dataset).catch(refusedAt("dataset"));
    const evaluationSet = input.evaluationDataset
      ? await evaluationSetOf(ctx.datasets, input.evaluationDataset, new Date()).catch(
          refusedAt("evaluationDataset"),
        )
      : null;
    const row = await insertTask(
      ctx.database.db,
      {
        name: input.name,
        model: input.model,
        trainer: input.trainer,
        mode: input.mode,
        datasetPath: dataset.path,
        datasetFormat: dataset.format,
        hyperparameters: hyperparametersSchema.parse(input.hyperparameters),
        command: input.command ?? null,
        gpusRequested: input.gpus,
        limits: input.limits,
        evaluationSet,
      },
      studioPaths(ctx.env.STUDIO_HOME).tasks,
    );
    // After the row is committed, so that a rebuild running meanwhile finds the row with the
    // folder and leaves it alone. A task whose folder cannot be written is not kept: without
    // task.json it could not be rebuilt should the database lose it.
    const folder = join(tasksRootOf(ctx.env.STUDIO_HOME, row), row.id);
    try {
      writeTaskRecord(folder, taskRecordOf(row));
    } catch (err) {
      await deleteTask(ctx.database.db, row.id, ["pending"]);
      // Whatever part of the folder was made; the refusal below says what went wrong.
      await rm(folder, { recursive: true, force: true }).catch(() => {});
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new TRPCError({
        code: "PRECONDITION_FAILED",
        message: `the task's folder could not be written (${why}); nothing was created`,
      });
    }
    return row;
  }),

  list: publicProcedure
    .input(
      z
        .object({
          status: z.array(z.enum(TASK_STATUSES)).max(TASK_STATUSES.length).optional(),
          limit: z.number().int().min(1).max(500).default(100),
          cursor: z.object({ createdAt: z.coerce.date(), id: z.string().max(64) }).optional(),
        })
        .default({ limit: 100 }),
    )
    .query(({ ctx, input }) => listTasks(ctx.database.db, input)),

  get: publicProcedure.input(taskIdInput).query(async ({ ctx, input }) => {
    const task = await mustGetTask(ctx, input.id);
    const [attempts, events, queuePosition] = await Promise.all([
      listAttempts(ctx.database.db, task.id),
      listEvents(ctx.database.db, task.id, 200),
      task.status === "queued" ? queuePositionOf(ctx.database.db, task) : null,
    ]);
    return {
      task,
      attempts,
      events,
      /** 1 = next to start; null when not queued. */
      queuePosition,
      actions: allowedActions(task.status, task.lastCheckpoint !== null),
    };
  }),

  metrics: publicProcedure
    .input(taskIdInput.extend({ limit: z.number().int().min(1).max(100_000).default(10_000) }))
    .query(async ({ ctx, input }) => {
      await mustGetTask(ctx, input.id);
      return listMetrics(ctx.database.db, input.id, input.limit);
    }),

  /** What the trainer used (CPU, memory, GPUs) as its runner sampled it: recent, thinned for charts. */
  system: publicProcedure
    .input(taskIdInput.extend({ maxPoints: z.number().int().min(2).max(5_000).default(600) }))
    .query(async ({ ctx, input }) => {
      const task = await mustGetTask(ctx, input.id);
      return readSystemSamples(await taskFileOf(ctx, task, SYSTEM_SAMPLES_FILE), input.maxPoints);
    }),

  /** The files of the task's folder that can be downloaded now (what the trainer really wrote). */
  files: publicProcedure.input(taskIdInput).query(async ({ ctx, input }) => {
    const task = await mustGetTask(ctx, input.id);
    const root = await taskFilesRoot(ctx.database.db, ctx.env.STUDIO_HOME, task.id);
    if (typeof root !== "string") throw new TRPCError({ code: "NOT_FOUND", message: root.refused });
    return listDownloads(root, task.id);
  }),

  start: mutatingProcedure.input(taskIdInput).mutation(async ({ ctx, input }) => {
    const supervisor = supervisorOf(ctx);
    await datasetStillPinned(ctx, input.id, ["pending"]);
    return supervisor.start(input.id);
  }),
  cancel: mutatingProcedure
    .input(taskIdInput)
    .mutation(({ ctx, input }) => supervisorOf(ctx).cancel(input.id)),
  pause: mutatingProcedure
    .input(taskIdInput)
    .mutation(({ ctx, input }) => supervisorOf(ctx).pause(input.id)),
  resume: mutatingProcedure
    .input(taskIdInput)
    .mutation(({ ctx, input }) => supervisorOf(ctx).resume(input.id)),
  retry: mutatingProcedure
    .input(taskIdInput.extend({ fromCheckpoint: z.boolean().default(false) }))
    .mutation(async ({ ctx, input }) => {
      const supervisor = supervisorOf(ctx);
      await datasetStillPinned(ctx, input.id, RETRYABLE_STATUSES);
      return supervisor.retry(input.id, input.fromCheckpoint);
    }),

  /** Log lines before `before` (a byte offset; omitted = the end): the recent tail, then older pages. */
  logs: publicProcedure
    .input(
      taskIdInput.extend({
        before: z.number().int().min(0).optional(),
        limit: z.number().int().min(1).max(5000).default(500),
      }),
    )
    .query(async ({ ctx, input }) => {
      const task = await mustGetTask(ctx, input.id);
      const path = await taskFileOf(ctx, task, "training.log");
      return readLinesBefore(path, input.before ?? Number.MAX_SAFE_INTEGER, input.limit);
    }),

  /** Every task's status and progress as it changes: one stream per page. */
  onUpdate: publicProcedure
    .input(z.object({ lastEventId: z.string().max(64).nullish() }).optional())
    .subscription(async function* ({ ctx, signal }) {
      let seq = 0;
      for await (const [update] of on(ctx.bus.emitterForSubscriptions, "task", {
        signal,
      }) as AsyncIterable<[TaskUpdate]>) {
        seq += 1;
        yield tracked(`${ctx.startedAt.getTime()}-${seq}`, update);
      }
    }),

  /**
   * One task's log, line by line, each with its byte offset in training.log as the event id.
   * Resuming with the last id received continues exactly after that line: no gap, no duplicate.
   */
  /** Log lines after the line starting at byte `after`: `studio task logs -f` pages with it. */
  logsAfter: publicProcedure
    .input(
      taskIdInput.extend({
        after: z.number().int().min(0).nullable(),
        limit: z.number().int().min(1).max(5000).default(1000),
      }),
    )
    .query(async ({ ctx, input }) => {
      const task = await mustGetTask(ctx, input.id);
      const read = await readLinesAfter(
        await taskFileOf(ctx, task, "training.log"),
        input.after,
        LOG_PAGE_BYTES,
      );
      return { lines: read.lines.slice(0, input.limit) };
    }),

  /**
   * One task's log, in batches of lines, each batch's id the byte offset of its last line in
   * training.log. Resuming with the last id received continues exactly after that line: no gap,
   * no duplicate. A page that showed a recent tail passes the tail's last offset as lastEventId.
   */
  onLog: publicProcedure
    .input(
      taskIdInput.extend({
        lastEventId: z
          .string()
          .regex(/^\d{1,15}$/)
          .nullish(),
      }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      const task = await mustGetTask(ctx, input.id);
      const path = await taskFileOf(ctx, task, "training.log");
      // Listen first, then catch up from the file, then drop what the catch-up already covered.
      const live = on(ctx.bus.emitterForSubscriptions, `log:${input.id}`, {
        signal,
      }) as AsyncIterableIterator<[LogChunk]>;
      let last = input.lastEventId != null ? Number(input.lastEventId) : null;
      try {
        // Each read returns lines or ends the catch-up (see readLinesAfter): no busy loop, and
        // a subscriber that went away stops it at the next page.
        while (!signal?.aborted) {
          const read = await readLinesAfter(path, last, LOG_PAGE_BYTES);
          if (read.lines.length) {
            last = read.lines.at(-1)!.offset;
            yield tracked(String(last), read.lines);
          }
          if (!read.more) break;
        }
        for await (const [chunk] of live) {
          if (chunk.reset) last = null;
          const first = chunk.lines[0];
          if (!first) continue;
          // Usually every line is new to every subscriber: the chunk as published, encoded once
          // for all of them. Only the first chunk after a catch-up overlaps what was read.
          const lines =
            last === null || first.offset > last
              ? sentToAll(chunk.lines)
              : chunk.lines.filter((l) => l.offset > last!);
          if (!lines.length) continue;
          last = lines.at(-1)!.offset;
          yield tracked(String(last), lines);
        }
      } catch (err) {
        if (!signal?.aborted) throw err;
      }
    }),

  /**
   * Merges the task's adapter (the final one, or a checkpoint's) into its base model, in a
   * process of its own, into tasks/<id>/export/; `exportStatus` follows it.
   */
  export: mutatingProcedure
    .input(taskIdInput.extend({ checkpoint: z.string().min(1).max(300).optional() }))
    .mutation(async ({ ctx, input }) =>
      startExport(exportSettings(ctx), await mustGetTask(ctx, input.id), input.checkpoint ?? null),
    ),

  /** The task's export: none, running, done (its files and sizes) or failed (why). */
  exportStatus: publicProcedure
    .input(taskIdInput)
    .query(async ({ ctx, input }) =>
      readExport(ctx.env.STUDIO_HOME, await mustGetTask(ctx, input.id)),
    ),

  /** What the playground and an evaluation can load: the final adapter (when there is one) and each checkpoint. */
  models: publicProcedure
    .input(taskIdInput)
    .query(async ({ ctx, input }) =>
      taskModelChoices(ctx.env.STUDIO_HOME, await mustGetTask(ctx, input.id)),
    ),

  /**
   * The playground: the continuation of a prompt on the task's base model or its base with the
   * adapter (`side`), streamed token by token as a generation server (a process of its own,
   * kept while used) draws them. A refusal (no adapter, an unknown checkpoint, a prompt too
   * long) ends this stream with its reason and touches nothing else.
   */
  playground: publicProcedure
    .input(
      taskIdInput.extend({
        checkpoint: z.string().min(1).max(300).nullish(),
        side: modelSideSchema,
        prompt: z.string().max(MAX_PROMPT_CHARS),
        settings: generationSettingsSchema,
      }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      // A subscription's body runs after the middlewares have returned: its refusals are
      // turned into tRPC errors here, each with its own words.
      try {
        const task = await mustGetTask(ctx, input.id);
        const model = await taskModel(ctx.env.STUDIO_HOME, task, input.checkpoint ?? null);
        let tokens = 0;
        for await (const text of ctx.playground.generate(
          { taskId: task.id, ...model },
          { side: input.side, prompt: input.prompt, ...input.settings },
          signal,
        )) {
          tokens++;
          yield { kind: "token" as const, text };
        }
        yield { kind: "done" as const, tokens };
      } catch (err) {
        if (err instanceof TaskActionError) {
          throw new TRPCError({ code: err.code, message: err.message, cause: err });
        }
        if (err instanceof GenerationError) {
          throw new TRPCError({ code: "BAD_REQUEST", message: err.message, cause: err });
        }
        throw err;
      }
    }),

  /** Evaluates the final adapter or a checkpoint on a stored dataset, in a process of its own. */
  evaluate: mutatingProcedure
    .input(
      taskIdInput.extend({
        dataset: z.string().min(1).max(200),
        checkpoint: z.string().min(1).max(300).nullish(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const task = await mustGetTask(ctx, input.id);
      // An unknown dataset is refused by the store (NOT_FOUND, named).
      const dataset = await ctx.datasets.get(input.dataset);
      return startEvaluation(
        {
          home: ctx.env.STUDIO_HOME,
          minFreeMb: ctx.env.STUDIO_MIN_FREE_MB,
          python: () => ctx.hfPeft.interpreter().path,
          baseEnv: process.env,
        },
        task,
        dataset,
        input.checkpoint ?? null,
      );
    }),

  /**
   * Attaches an evaluation set (a stored dataset, pinned now) to the task, or detaches it (null):
   * every checkpoint it writes, and each already there, is then scored on it once, one at a time.
   */
  setEvaluationSet: mutatingProcedure
    .input(taskIdInput.extend({ dataset: z.string().trim().min(1).max(200).nullable() }))
    .mutation(async ({ ctx, input }) => {
      const supervisor = supervisorOf(ctx);
      const task = await mustGetTask(ctx, input.id);
      const refusal = evaluationSetRefusal(task.trainer);
      if (refusal) {
        throw new TRPCError({
          code: "PRECONDITION_FAILED",
          message: `task ${task.id}: ${refusal}`,
        });
      }
      const set =
        input.dataset === null
          ? null
          : await evaluationSetOf(ctx.datasets, input.dataset, new Date()).catch(
              refusedAt("dataset"),
            );
      const row = await changeEvaluationSet(ctx.database.db, ctx.env.STUDIO_HOME, task, set);
      supervisor.evaluationSetChanged(row.id);
      ctx.bus.publishTask(row);
      return row;
    }),

  /** The task's evaluations, newest first: running, done (loss, perplexity, exact match, samples) or failed (why). */
  evaluations: publicProcedure
    .input(taskIdInput)
    .query(async ({ ctx, input }) =>
      listEvaluations(ctx.env.STUDIO_HOME, await mustGetTask(ctx, input.id)),
    ),

  delete: mutatingProcedure.input(taskIdInput).mutation(async ({ ctx, input }) => {
    const task = await mustGetTask(ctx, input.id);
    const deletable = TASK_STATUSES.filter((s: TaskStatus) => !isActive(s));
    if (!(await deleteTask(ctx.database.db, task.id, deletable))) {
      throw new TRPCError({
        code: "CONFLICT",
        message: `task ${task.id} is ${task.status}; cancel it before deleting`,
      });
    }
    await rm(join(tasksRootOf(ctx.env.STUDIO_HOME, task), task.id), {
      recursive: true,
      force: true,
    });
    return { id: task.id };
  }),
});
