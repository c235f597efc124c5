/**
 * The parts of a zod issue the page shows: from zod directly for the form's own check, or as the
 * server sends them (an InputIssue, see server-issues.ts).
 */
export type ValidationIssue = {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  origin?: string;
  expected?: string;
  minimum?: number | bigint | string;
  maximum?: number | bigint | string;
  inclusive?: boolean;
};
