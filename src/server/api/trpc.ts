import { initTRPC, TRPCError } from "@trpc/server";
import superjson from "superjson";
import { ZodError } from "zod";
import { DatasetError } from "../datasets/dataset-error";
import type { StudioServices } from "../services";
import { TaskActionError } from "../supervisor/task-action-error";

export interface Context extends StudioServices {
  /** True when the request proved the access token (or none is configured). */
  authorized: boolean;
  /** Aborted when the studio shuts down: subscriptions end so the server can close. */
  shutdownSignal: AbortSignal;
}

/**
 * What was wrong with an input, as field paths (zod) or file lines (a dataset's contents) with
 * messages, so a form can place each one and a CLI can print them.
 */
function issuesOf(cause: unknown) {
  if (cause instanceof ZodError) {
    return cause.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  }
  if (cause instanceof DatasetError && cause.issues.length > 0) {
    // line 0: the file as a whole
    return cause.issues.map((i) => ({ path: "", message: i.message, line: i.line }));
  }
  return null;
}

const t = initTRPC.context<Context>().create({
  // Dates and other non-JSON values arrive as what the router's types say they are.
  transformer: superjson,
  isDev: false,
  errorFormatter({ shape, error }) {
    const issues = issuesOf(error.cause);
    // An input that failed its schema gets a message naming each field; other refusals keep theirs.
    const message =
      error.cause instanceof ZodError && issues
        ? issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ")
        : shape.message;
    return { ...shape, message, data: { ...shape.data, issues } };
  },
  sse: {
    // keep-alive below the client's reconnectAfterInactivityMs, so an idle stream is not mistaken for a dead one
    ping: { enabled: true, intervalMs: 5_000 },
    client: { reconnectAfterInactivityMs: 15_000 },
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** Refusals of the studio's own modules carry a tRPC error code and a message meant for people. */
const refusals = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok) {
    const cause = result.error.cause;
    if (cause instanceof DatasetError || cause instanceof TaskActionError) {
      throw new TRPCError({ code: cause.code, message: cause.message, cause });
    }
  }
  return result;
});

export const publicProcedure = t.procedure.use(refusals).use(({ ctx, next }) => {
  if (!ctx.authorized) {
    throw new TRPCError({ code: "UNAUTHORIZED", message: "this studio needs its access token" });
  }
  return next();
});

/** For calls that change state: refused while another studio supervises this database. */
export const mutatingProcedure = publicProcedure.use(({ ctx, next }) => {
  if (ctx.readOnly) {
    throw new TRPCError({
      code: "PRECONDITION_FAILED",
      message: `read-only: ${ctx.readOnly}`,
    });
  }
  return next();
});
