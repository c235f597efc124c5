import { ZodError, ZodRealError } from "zod";
import { DatasetError } from "../datasets/dataset-error";

/**
 * One problem with an input, as every client receives it in `error.data.zodError.issues`: a zod
 * issue cut down to what the page needs to place it (its path) and word it in the reader's
 * language (its code and bounds). `line`: the line of an uploaded file it is about.
 */
export interface InputIssue {
  code: string;
  path: (string | number)[];
  message: string;
  origin?: string;
  expected?: string;
  minimum?: number | string;
  maximum?: number | string;
  inclusive?: boolean;
  line?: number;
}

/**
 * What the error formatter puts in `data.zodError` (create-t3-app's convention: null unless the
 * input was refused). Not zod's `flatten()`: that keeps only messages, by top-level key, and the
 * page needs the nested path (`hyperparameters.epochs`) and the issue's code.
 */
export interface ZodErrorData {
  issues: InputIssue[];
}

const BOUND_KINDS = new Set(["number", "string", "bigint"]);

function bound(value: unknown): number | string | undefined {
  if (!BOUND_KINDS.has(typeof value)) return undefined;
  return typeof value === "bigint" ? value.toString() : (value as number | string);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function inputIssueOf(issue: ZodError["issues"][number]): InputIssue {
  const raw = issue as unknown as Record<string, unknown>;
  const found: InputIssue = {
    code: issue.code,
    path: issue.path.map((key) => (typeof key === "number" ? key : String(key))),
    message: issue.message,
    origin: text(raw.origin),
    expected: text(raw.expected),
    minimum: bound(raw.minimum),
    maximum: bound(raw.maximum),
    inclusive: typeof raw.inclusive === "boolean" ? raw.inclusive : undefined,
  };
  // absent, not undefined: the shape stays the same through JSON
  return Object.fromEntries(
    Object.entries(found).filter(([, v]) => v !== undefined),
  ) as unknown as InputIssue;
}

/**
 * The input problems behind a refusal: a failed input schema (or a refusal made as one, see
 * `fieldRefusal`), or the lines of a dataset file the store refused. Null for anything else.
 */
export function zodErrorOf(cause: unknown): ZodErrorData | null {
  if (cause instanceof ZodError) return { issues: cause.issues.map(inputIssueOf) };
  if (cause instanceof DatasetError && cause.issues.length > 0) {
    return {
      issues: cause.issues.map((i) => ({
        code: "custom",
        path: [],
        message: i.message,
        // line 0: the file as a whole
        ...(i.line ? { line: i.line } : {}),
      })),
    };
  }
  return null;
}

/**
 * A refusal that concerns one input field, for a check only the server can make; the cause of
 * the TRPCError thrown. ZodRealError, as zod's own parse throws: zod 4's plain ZodError is no
 * Error, and tRPC would keep only a copy of it as the cause.
 */
export function fieldIssue(path: (string | number)[], message: string): ZodError {
  return new ZodRealError([{ code: "custom", path, message, input: undefined }]);
}
