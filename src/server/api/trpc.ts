import { randomBytes } from "node:crypto";
import { initTRPC, TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import type { SessionInfo, SessionStore } from "../auth";
import { DatasetError } from "../datasets/dataset-error";
import { streamMaxSeconds } from "../env";
import type { StudioServices } from "../services";
import { TaskActionError } from "../supervisor/task-action-error";
import { studioTransformer } from "./shared-encoding";
import { unstorableText } from "./storable";
import { fieldIssue, zodErrorOf } from "./zod-error";

export interface Context extends StudioServices {
  /** True when the request proved the access token (or none is configured). */
  authorized: boolean;
  /** The page session the request came with (null for the CLI's bearer token or no token). */
  session?: SessionInfo | null;
  /** The studio's sessions; null when no access token is set. */
  sessions?: SessionStore | null;
}

const t = initTRPC.context<Context>().create({
  // Dates and other non-JSON values arrive as what the router's types say they are (superjson).
  transformer: studioTransformer,
  isDev: false,
  errorFormatter({ shape, error, path }) {
    if (error.code === "INTERNAL_SERVER_ERROR") {
      // What went wrong inside (a database error carries its SQL and parameters) stays in the
      // studio's log; the caller gets a reference to it.
      const ref = randomBytes(4).toString("hex");
      const detail =
        error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : error.message;
      console.error(
        `${new Date().toISOString()} internal error ${ref} in ${path ?? "?"}: ${detail}`,
      );
      return {
        ...shape,
        message: `internal error (reference ${ref} in the studio's log)`,
        data: { ...shape.data, zodError: null },
      };
    }
    // What was wrong with the input, for a form to place each problem at its field (see zod-error.ts).
    const zodError = zodErrorOf(error.cause);
    // An input that failed its schema gets a message naming each field; other refusals keep
    // theirs. The CLI prints this message.
    const message =
      error.cause instanceof ZodError && zodError
        ? zodError.issues
            .map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message))
            .join("; ")
        : shape.message;
    return { ...shape, message, data: { ...shape.data, zodError } };
  },
  sse: {
    // keep-alive below the client's reconnectAfterInactivityMs, so an idle stream is not mistaken for a dead one
    ping: { enabled: true, intervalMs: 5_000 },
    client: { reconnectAfterInactivityMs: 15_000 },
    // A stream is ended after this long, without tRPC's "return" event: the page's EventSource
    // reconnects with the last event id it received and the stream resumes after it. The
    // request is authenticated again then, so a session that expired ends its streams too.
    maxDurationMs: streamMaxSeconds() * 1000,
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

/**
 * Text PostgreSQL cannot store (NUL, lone UTF-16 surrogates) is refused in any string of any
 * input, keys included, before the input's own schema runs: one rule for every procedure.
 */
const storableInput = t.middleware(async ({ getRawInput, next }) => {
  const problem = unstorableText(await getRawInput());
  if (problem) {
    throw new TRPCError({
      code: "BAD_REQUEST",
      message: `${problem.path ? `${problem.path}: ` : ""}${problem.message}`,
      cause: fieldIssue(problem.path ? problem.path.split(".") : [], problem.message),
    });
  }
  return next();
});

const authorized = t.middleware(({ ctx, next }) => {
  if (!ctx.authorized) {
    throw new TRPCError({ code: "UNAUTHORIZED", message: "this studio needs its access token" });
  }
  return next();
});

export const publicProcedure = t.procedure.use(refusals).use(authorized).use(storableInput);

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
