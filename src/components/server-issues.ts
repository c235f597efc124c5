import { TRPCClientError } from "@trpc/client";
import type { InputIssue, ZodErrorData } from "../server/api/zod-error";

/**
 * The input problems behind a refused call, as the studio's error formatter sends them in
 * `error.data.zodError` (a field that failed its schema, a check only the server makes, or the
 * lines of a refused dataset file). Anything else yields none.
 */
export function serverValidationIssues(error: unknown): InputIssue[] {
  if (!(error instanceof TRPCClientError)) return [];
  const data = error.data as { zodError?: ZodErrorData | null } | null | undefined;
  return data?.zodError?.issues ?? [];
}
