import { z } from "zod";
import type { ProcessIdentity } from "./identity";

/**
 * The stored forms of a process identity, checked where they are read back. Apart from
 * ./identity because the runner imports that and must load nothing but node:fs.
 */

/** A process as this boot knows it (runner.json, a stored handle): pid and start time. */
export const processRefSchema = z.object({
  pid: z.number().int().positive().max(4_194_304),
  startTime: z.string().regex(/^\d{1,20}$/),
});

/** A process with the boot it belongs to (an exporter's record). */
export const processIdentitySchema = processRefSchema.extend({
  bootId: z.string().min(1).max(128),
}) satisfies z.ZodType<ProcessIdentity, unknown>;
