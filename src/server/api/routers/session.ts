import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { type Context, publicProcedure, router } from "../trpc";

function storeOf(ctx: Context) {
  if (!ctx.sessions) {
    throw new TRPCError({
      code: "PRECONDITION_FAILED",
      message: "this studio has no access token (STUDIO_TOKEN), so it has no sessions",
    });
  }
  return ctx.sessions;
}

/** The page's signed-in browsers: listed and revoked by the CLI (`studio sessions`) or a page. */
export const sessionRouter = router({
  /** Whether this studio asks for a token, and the session this request came with. */
  current: publicProcedure.query(({ ctx }) => ({
    tokenRequired: !!ctx.env.STUDIO_TOKEN,
    session: ctx.session ?? null,
  })),

  list: publicProcedure.query(async ({ ctx }) => {
    if (!ctx.sessions) return [];
    const sessions = await ctx.sessions.list();
    return sessions.map((s) => ({ ...s, current: s.id === ctx.session?.id }));
  }),

  revoke: publicProcedure
    .input(
      z.object({
        id: z
          .string()
          .min(1)
          .max(64)
          .regex(/^s-[0-9a-f]+$/, "a session id looks like s-0123456789ab"),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      if (!(await storeOf(ctx).revoke(input.id))) {
        throw new TRPCError({ code: "NOT_FOUND", message: `no session with id ${input.id}` });
      }
      return { revoked: [input.id] };
    }),

  revokeAll: publicProcedure.mutation(async ({ ctx }) => ({
    revoked: await storeOf(ctx).revokeAll(),
  })),
});
