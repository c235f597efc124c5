import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { createTaskInput, taskIdInput } from "../../../shared/task-input";
import { hyperparametersSchema } from "../../../trainers/protocol";
import { allowedActions, isActive, TASK_STATUSES, type TaskStatus } from "../../tasks/lifecycle";
import {
  deleteTask,
  getTask,
  insertTask,
  listAttempts,
  listEvents,
  listMetrics,
  listTasks,
} from "../../tasks/repository";
import { mutatingProcedure, publicProcedure, router } from "../trpc";

async function mustGetTask(ctx: { database: { db: Parameters<typeof getTask>[0] } }, id: string) {
  const task = await getTask(ctx.database.db, id);
  if (!task) throw new TRPCError({ code: "NOT_FOUND", message: `no task with id ${id}` });
  return task;
}

export const taskRouter = router({
  create: mutatingProcedure.input(createTaskInput).mutation(async ({ ctx, input }) => {
    const dataset = await ctx.datasets.resolveForTask(input.dataset);
    if (input.trainer === "command" && !ctx.env.STUDIO_ALLOW_COMMAND_TRAINER) {
      throw new TRPCError({
        code: "FORBIDDEN",
        message:
          "custom command trainers are disabled; the operator enables them with STUDIO_ALLOW_COMMAND_TRAINER=1",
      });
    }
    if (input.gpus > ctx.env.STUDIO_GPUS.length) {
      throw new TRPCError({
        code: "BAD_REQUEST",
        message:
          ctx.env.STUDIO_GPUS.length === 0
            ? "this studio has no GPUs configured (STUDIO_GPUS); ask for 0 GPUs"
            : `asked for ${input.gpus} GPUs but this studio hands out ${ctx.env.STUDIO_GPUS.length}`,
      });
    }
    return insertTask(ctx.database.db, {
      name: input.name,
      model: input.model,
      trainer: input.trainer,
      mode: input.mode,
      datasetPath: dataset.path,
      datasetFormat: dataset.format,
      hyperparameters: hyperparametersSchema.parse(input.hyperparameters),
      command: input.command ?? null,
      gpusRequested: input.gpus,
    });
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
    const [attempts, events] = await Promise.all([
      listAttempts(ctx.database.db, task.id),
      listEvents(ctx.database.db, task.id, 200),
    ]);
    return {
      task,
      attempts,
      events,
      actions: allowedActions(task.status, task.lastCheckpoint !== null),
    };
  }),

  metrics: publicProcedure
    .input(taskIdInput.extend({ limit: z.number().int().min(1).max(100_000).default(10_000) }))
    .query(async ({ ctx, input }) => {
      await mustGetTask(ctx, input.id);
      return listMetrics(ctx.database.db, input.id, input.limit);
    }),

  delete: mutatingProcedure.input(taskIdInput).mutation(async ({ ctx, input }) => {
    const task = await mustGetTask(ctx, input.id);
    const deletable = TASK_STATUSES.filter((s: TaskStatus) => !isActive(s));
    if (!(await deleteTask(ctx.database.db, task.id, deletable))) {
      throw new TRPCError({
        code: "CONFLICT",
        message: `task ${task.id} is ${task.status}; cancel it before deleting`,
      });
    }
    return { id: task.id };
  }),
});
