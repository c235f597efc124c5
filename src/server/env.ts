import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { refusedSbatchArg } from "./sbatch-options";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** An http(s) URL; one with a user name or password is refused (fetch cannot send it). */
const httpUrl = (what: string) =>
  z
    .string()
    .refine((s) => {
      try {
        return ["http:", "https:"].includes(new URL(s).protocol);
      } catch {
        return false;
      }
    }, `${what} must be an http:// or https:// URL`)
    .refine((s) => {
      try {
        const url = new URL(s);
        return !url.username && !url.password;
      } catch {
        return true;
      }
    }, `${what} must not hold a user name or password (put credentials in the path or query, as Slack's do)`);

const streamMaxSecondsSchema = z.coerce.number().int().min(1).max(86_400).default(900);

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
    /**
     * Further names (or name:port) the studio answers to besides its bind address, comma-separated,
     * e.g. the name a reverse proxy forwards; any other Host header is refused (DNS rebinding).
     */
    STUDIO_ALLOWED_HOSTS: z
      .string()
      .default("")
      .transform((s) =>
        s
          .split(",")
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean),
      )
      .pipe(
        z.array(
          z
            .string()
            .regex(
              /^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:\d{1,5})?$/,
              "each allowed host is a name or an address, optionally with :port (e.g. studio.example.org or 10.0.0.5:3000)",
            ),
        ),
      ),
    /** A page session ends after this many hours without a request (sliding expiry). */
    STUDIO_SESSION_TTL_HOURS: z.coerce
      .number()
      .positive("must be more than 0")
      .max(24 * 366, "at most a year")
      .default(168),
    STUDIO_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(1),
    /** Below this much free space (MB) on STUDIO_HOME, no task is launched and no upload taken. */
    STUDIO_MIN_FREE_MB: z.coerce.number().int().min(0).max(10_000_000).default(100),
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
    /**
     * Load the page's server (Next) at the first page request instead of just after the studio
     * starts: for studios driven through the API and the CLI alone (scripts, a cluster's head
     * node, the test suite), which then never spend the second of CPU it takes.
     */
    STUDIO_PAGE_ON_DEMAND: flag,
    /** A playground's generation server (its model loaded) stops after this long unused. */
    STUDIO_PLAYGROUND_IDLE_SECONDS: z.coerce.number().int().min(1).max(86_400).default(120),
    /** Every live stream is cut after this long (tRPC's sse.maxDurationMs); the page resumes it. */
    STUDIO_STREAM_MAX_SECONDS: streamMaxSecondsSchema,
    /**
     * The CPU priority (niceness) an evaluation set's evaluations run at, beside the training:
     * 19 (the lowest) yields to every other session on the machine; 0 competes as an equal.
     */
    STUDIO_EVAL_NICENESS: z.coerce.number().int().min(0).max(19).default(19),
    STUDIO_CANCEL_GRACE_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    /** Stall watchdog: no new step for this many median step times (and STUDIO_STALL_MIN_SECONDS). */
    STUDIO_STALL_FACTOR: z.coerce.number().min(2).max(1000).default(20),
    STUDIO_STALL_MIN_SECONDS: z.coerce.number().int().min(1).max(604_800).default(600),
    /** …and at least this long when an evaluation or checkpoint save is due by the task's schedule. */
    STUDIO_STALL_SLOW_SECONDS: z.coerce.number().int().min(1).max(604_800).default(3600),
    /**
     * Divergence watchdog (a NaN/infinite loss, or a loss over STUDIO_DIVERGENCE_SPIKE_FACTOR × its
     * recent median for STUDIO_DIVERGENCE_PATIENCE reports in a row): "rollback" stops the trainer
     * and runs again from the last good checkpoint at STUDIO_DIVERGENCE_LR_FACTOR × the learning
     * rate, at most STUDIO_DIVERGENCE_ROLLBACKS times in a row, then stops; "stop" stops it;
     * "warn" only says so.
     */
    STUDIO_DIVERGENCE_ACTION: z.enum(["rollback", "stop", "warn"]).default("rollback"),
    STUDIO_DIVERGENCE_SPIKE_FACTOR: z.coerce.number().min(1.5).max(1e6).default(5),
    STUDIO_DIVERGENCE_PATIENCE: z.coerce.number().int().min(1).max(1000).default(3),
    STUDIO_DIVERGENCE_ROLLBACKS: z.coerce.number().int().min(0).max(100).default(2),
    STUDIO_DIVERGENCE_LR_FACTOR: z.coerce.number().gt(0).lt(1).default(0.5),
    /** Automatic retries in a row of a task that failed from outside (killed, runner lost, disk full); 0: off. */
    STUDIO_RETRY_LIMIT: z.coerce.number().int().min(0).max(100).default(0),
    STUDIO_RETRY_BACKOFF_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
    /** With retries on: a task that ran out of memory is retried from the start at half its batch size. */
    STUDIO_RETRY_OOM_SMALLER_BATCH: flag,
    /** The hf-peft trainer's interpreter; unset: the one `studio setup hf-peft` recorded, else python3. */
    STUDIO_PYTHON: z
      .string()
      .min(1)
      .optional()
      .or(z.literal("").transform(() => undefined)),
    STUDIO_ALLOW_COMMAND_TRAINER: flag,
    STUDIO_AUTO_RESUME: flag,
    /** Extra folders (colon-separated, absolute) whose datasets may be registered by path. */
    STUDIO_DATASET_ROOTS: z
      .string()
      .default("")
      .transform((s) => s.split(":").filter(Boolean))
      .pipe(z.array(z.string().refine(isAbsolute, "dataset roots must be absolute paths"))),
    /** Where people open the studio (e.g. a proxy's https:// address), for links in notifications. */
    STUDIO_PUBLIC_URL: httpUrl("STUDIO_PUBLIC_URL")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** Notifications (src/server/notifications): where the supervising studio posts them; unset: none. */
    STUDIO_WEBHOOK_URL: httpUrl("STUDIO_WEBHOOK_URL")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** HMAC-SHA256 key: every delivery is signed (X-Studio-Signature) when it is set. */
    STUDIO_WEBHOOK_SECRET: z
      .string()
      .min(16, "STUDIO_WEBHOOK_SECRET must be at least 16 characters")
      .max(512)
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** json: the studio's versioned body; slack: {"text": …} for Slack-compatible incoming webhooks. */
    STUDIO_WEBHOOK_FORMAT: z
      .enum(["json", "slack"], "STUDIO_WEBHOOK_FORMAT must be json or slack")
      .default("json"),
    /** Deliveries tried per notification before it is marked failed. */
    STUDIO_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(15),
    /** The wait after the first failed delivery; each further one waits twice as long (at most an hour). */
    STUDIO_WEBHOOK_BACKOFF_SECONDS: z.coerce.number().int().min(1).max(3600).default(10),
    /** Where trainers run: on this machine (local) or as Slurm batch jobs (slurm). */
    STUDIO_EXECUTOR: z.enum(["local", "slurm"]).default("local"),
    /** slurm.conf of the cluster; Slurm's own default (/etc/slurm/slurm.conf) when unset. */
    STUDIO_SLURM_CONF: z
      .string()
      .refine(isAbsolute, "must be an absolute path")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    STUDIO_SLURM_PARTITION: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, "a partition name: letters, digits, _ . -")
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** sbatch --time for every job: minutes, [D-]HH:MM[:SS] or UNLIMITED. */
    STUDIO_SLURM_TIME: z
      .string()
      .regex(
        /^((\d+-)?\d+(:\d+){0,2}|infinite|unlimited|INFINITE|UNLIMITED)$/,
        "a Slurm time limit: minutes, [D-]HH:MM[:SS] or UNLIMITED",
      )
      .optional()
      .or(z.literal("").transform(() => undefined)),
    /** Further sbatch options, space-separated, each as --name or --name=value (e.g. --account=ml). */
    STUDIO_SLURM_EXTRA_ARGS: z
      .string()
      .default("")
      .transform((s) => s.split(/\s+/).filter(Boolean))
      .pipe(
        z.array(
          z.string().superRefine((arg, ctx) => {
            const reason = refusedSbatchArg(arg);
            if (reason) ctx.addIssue({ code: "custom", message: reason });
          }),
        ),
      ),
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
  .superRefine((env, ctx) => {
    if (env.STUDIO_WEBHOOK_SECRET && !env.STUDIO_WEBHOOK_URL) {
      ctx.addIssue({
        code: "custom",
        path: ["STUDIO_WEBHOOK_SECRET"],
        message:
          "STUDIO_WEBHOOK_SECRET is set but STUDIO_WEBHOOK_URL is not: set the URL to send notifications to, or unset the secret",
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

/**
 * STUDIO_STREAM_MAX_SECONDS on its own, for the tRPC router: its SSE settings are fixed when its
 * module loads, before the studio reads its configuration. A value loadEnv would refuse counts
 * as unset here; loadEnv then stops the studio with the reason.
 */
export function streamMaxSeconds(source: Record<string, string | undefined> = process.env): number {
  const parsed = streamMaxSecondsSchema.safeParse(source.STUDIO_STREAM_MAX_SECONDS);
  return parsed.success ? parsed.data : streamMaxSecondsSchema.parse(undefined);
}

export function databaseKind(env: Env): "postgres" | "pglite" {
  return env.DATABASE_URL ? "postgres" : "pglite";
}
