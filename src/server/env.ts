import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

const flag = z
  .enum(["0", "1", "true", "false", ""])
  .default("")
  .transform((v) => v === "1" || v === "true");

const envSchema = z
  .object({
    STUDIO_HOME: z.string().min(1).default(join(homedir(), ".finetune-studio")),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    HOST: z.string().min(1).default("127.0.0.1"),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    STUDIO_TOKEN: z
      .string()
      .min(16, "STUDIO_TOKEN must be at least 16 characters")
      .max(512)
      .optional()
      .or(z.literal("").transform(() => undefined)),
    STUDIO_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(1),
    /** Comma-separated GPU ids to hand out, e.g. "0,1,2,3"; empty on a CPU-only machine. */
    STUDIO_GPUS: z
      .string()
      .default("")
      .transform((s) =>
        s
          .split(",")
          .map((g) => g.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(/^[0-9A-Za-z-]+$/, "GPU ids are digits or UUIDs"))),
    STUDIO_CANCEL_GRACE_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    STUDIO_PYTHON: z.string().min(1).default("python3"),
    STUDIO_ALLOW_COMMAND_TRAINER: flag,
    STUDIO_AUTO_RESUME: flag,
    /** Extra folders (colon-separated, absolute) whose datasets may be registered by path. */
    STUDIO_DATASET_ROOTS: z
      .string()
      .default("")
      .transform((s) => s.split(":").filter(Boolean))
      .pipe(z.array(z.string().refine(isAbsolute, "dataset roots must be absolute paths"))),
  })
  .superRefine((env, ctx) => {
    if (!LOOPBACK.has(env.HOST) && !env.STUDIO_TOKEN) {
      ctx.addIssue({
        code: "custom",
        path: ["HOST"],
        message: `binding to ${env.HOST} would expose the studio (and the power to run trainers) to the network; set STUDIO_TOKEN to a secret of at least 16 characters, or bind to 127.0.0.1`,
      });
    }
  })
  .transform((env) => ({ ...env, STUDIO_HOME: resolve(env.STUDIO_HOME) }));

export type Env = z.infer<typeof envSchema>;

/** Reads and validates the studio's configuration; throws one readable message listing every problem. */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".") || "env"}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

export function databaseKind(env: Env): "postgres" | "pglite" {
  return env.DATABASE_URL ? "postgres" : "pglite";
}
