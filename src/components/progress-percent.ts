import { z } from "zod";

/** The fields of a task's derived progress this page reads; the monitor may store more. */
const progressFields = z.looseObject({
  percent: z.number().min(0).nullable().optional(),
  step: z.number().nonnegative().optional(),
  totalSteps: z.number().positive().optional(),
  total_steps: z.number().positive().optional(),
});

/** Whole percent of steps done, or null when the trainer has not said how many steps there are. */
export function progressPercent(progress: unknown, status: string): number | null {
  if (status === "completed") return 100;
  const parsed = progressFields.safeParse(progress);
  if (!parsed.success) return null;
  if (typeof parsed.data.percent === "number")
    return Math.min(100, Math.floor(parsed.data.percent));
  const { step } = parsed.data;
  const total = parsed.data.totalSteps ?? parsed.data.total_steps;
  if (step === undefined || total === undefined) return null;
  return Math.min(100, Math.floor((step / total) * 100));
}
