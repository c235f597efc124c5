import { z } from "zod";

/**
 * The parts of a zod issue the page shows. Client-side issues come from zod directly; the
 * server's arrive as JSON, so this schema also reads them back.
 */
export const validationIssueSchema = z.looseObject({
  code: z.string(),
  path: z.array(z.union([z.string(), z.number()])),
  message: z.string(),
  origin: z.string().optional(),
  expected: z.string().optional(),
  minimum: z.union([z.number(), z.string()]).optional(),
  maximum: z.union([z.number(), z.string()]).optional(),
  inclusive: z.boolean().optional(),
});
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
