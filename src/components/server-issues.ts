import { TRPCClientError } from "@trpc/client";
import { z } from "zod";
import { type ValidationIssue, validationIssueSchema } from "./validation-issue";

/**
 * The zod issues behind a refused call. tRPC turns a failed input parse into BAD_REQUEST whose
 * message is the ZodError's message: its issues as JSON. Anything else yields no issues.
 */
export function serverValidationIssues(error: unknown): ValidationIssue[] {
  if (!(error instanceof TRPCClientError)) return [];
  if (error.data?.code !== "BAD_REQUEST") return [];
  let json: unknown;
  try {
    json = JSON.parse(error.message);
  } catch {
    return [];
  }
  const parsed = z.array(validationIssueSchema).safeParse(json);
  return parsed.success ? parsed.data : [];
}
