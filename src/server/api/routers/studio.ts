import { TRPCError } from "@trpc/server";
import { diskSpace } from "../../disk-space";
import { countByStatus } from "../../tasks/repository";
import { mutatingProcedure, publicProcedure, router } from "../trpc";

export const studioRouter = router({
  info: publicProcedure.query(async ({ ctx }) => ({
    version: ctx.version,
    startedAt: ctx.startedAt,
    pid: process.pid,
    database: ctx.database.kind,
    home: ctx.env.STUDIO_HOME,
    readOnly: ctx.readOnly,
    concurrency: ctx.env.STUDIO_CONCURRENCY,
    gpus: ctx.env.STUDIO_GPUS,
    counts: await countByStatus(ctx.database.db),
    /** Free space on STUDIO_HOME against the floor: the page warns when it is low. */
    disk: await diskSpace(ctx.env.STUDIO_HOME, ctx.env.STUDIO_MIN_FREE_MB),
  })),

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
});
