import { diskSpace } from "../../disk-space";
import { HF_PEFT_SETUP_COMMAND } from "../../hf-peft-readiness";
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
    /** Free space on STUDIO_HOME against the floor: the page warns when it is low. */
    disk: await diskSpace(ctx.env.STUDIO_HOME, ctx.env.STUDIO_MIN_FREE_MB),
  })),
  /** Whether each trainer that needs more than the studio can run: the create form says so. */
  trainers: publicProcedure.query(async ({ ctx }) => ({
    hfPeft: { ...(await ctx.hfPeft.check()), setupCommand: HF_PEFT_SETUP_COMMAND },
  })),
});
