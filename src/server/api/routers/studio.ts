import { countByStatus } from "../../tasks/repository";
import { publicProcedure, router } from "../trpc";

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
  })),
});
