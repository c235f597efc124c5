import { initTRPC, TRPCError } from "@trpc/server";
import superjson from "superjson";
import { DatasetError } from "../datasets/dataset-error";
import type { StudioServices } from "../services";
import { TaskActionError } from "../supervisor/task-action-error";

export interface Context extends StudioServices {
  /** True when the request proved the access token (or none is configured). */
  authorized: boolean;
  /** Aborted when the studio shuts down: subscriptions end so the server can close. */
  shutdownSignal: AbortSignal;
}

/** A validation failure, as a list of field paths and messages a form can place and a CLI can print. */
function validationIssues(cause: unknown) {
  const issues = (cause as { issues?: unknown } | undefined)?.issues;
  if (!Array.isArray(issues)) return null;
  return issues.map((i: { path?: PropertyKey[]; message?: string; line?: unknown }) => ({
    path: (i.path ?? []).map(String).join("."),
    message: String(i.message ?? "invalid"),
    // a dataset's problems name their line in the file (0: the file as a whole)
    ...(typeof i.line === "number" ? { line: i.line } : {}),
  }));
}

const t = initTRPC.context<Context>().create({
  // Dates and other non-JSON values arrive as what the router's types say they are.
  transformer: superjson,
  errorFormatter({ shape, error }) {
    const issues = error.code === "BAD_REQUEST" ? validationIssues(error.cause) : null;
    if (!issues) return { ...shape, data: { ...shape.data, issues: null } };
    return {
      ...shape,
      message: issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; "),
      data: { ...shape.data, issues },
    };
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
