import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { eq } from "drizzle-orm";
import { inject } from "vitest";
import { createClient, type StudioClient } from "../../src/cli/client";
import { liveLockHolder } from "../../src/platform/home-lock";
import { type Db, openDatabase } from "../../src/server/db/client";
import { attempts } from "../../src/server/db/schema";
import { createTestDatabase, type TestDatabase } from "./databases";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../dist/cli.js");
const LINES_FIXTURE = join(import.meta.dirname, "../fixtures/trainers/lines.mjs");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** A studio home of its own, driven through the real CLI as a person would. */
export class TestStudio {
  readonly home: string;
  readonly env: Record<string, string | undefined>;
  /** A typed client for this studio's address (it stays the same across restarts). */
  readonly client: StudioClient;

  private constructor(
    readonly port: number,
    extraEnv: Record<string, string | undefined>,
  ) {
    this.client = createClient(`http://127.0.0.1:${port}`);
    this.home = mkdtempSync(join(tmpdir(), "studio-home-"));
    this.env = {
      ...process.env,
      STUDIO_HOME: this.home,
      PORT: String(port),
      HOST: "127.0.0.1",
      STUDIO_URL: "",
      ...extraEnv,
    };
  }

  private database: TestDatabase | null = null;

  /**
   * A studio on PGlite, or on a fresh PostgreSQL database of its own. Its embedded database
   * starts as a copy of one made by the studio's own first start (see test/global-setup.ts),
   * unless `firstStart` asks for the real thing: initdb and every migration, seconds each
   * (benchmarks, which run outside vitest, always ask for it).
   */
  static async create(
    kind: "pglite" | "postgres",
    extraEnv: Record<string, string | undefined> = {},
    { firstStart = false }: { firstStart?: boolean } = {},
  ): Promise<TestStudio> {
    const database = kind === "postgres" ? await createTestDatabase("postgres") : null;
    const studio = new TestStudio(await freePort(), {
      DATABASE_URL: database?.url ?? "",
      ...extraEnv,
    });
    studio.database = database;
    if (kind === "pglite" && !firstStart) {
      cpSync(inject("pgliteTemplate"), join(studio.home, "pglite"), { recursive: true });
    }
    return studio;
  }

  /**
   * Stops the studio (SIGKILL if needed) and removes its home and database. Fails when the
   * studio logged an unhandled rejection at any time: a fault must never pass unseen.
   */
  async dispose() {
    await this.stop().catch(() => this.kill());
    const unhandled = this.unhandledRejections();
    await this.database?.drop();
    rmSync(this.home, { recursive: true, force: true });
    if (unhandled.length) {
      throw new Error(`the studio logged unhandled rejections:\n${unhandled.join("\n")}`);
    }
  }

  /** The studio log's lines that report an unhandled rejection (see src/server.ts). */
  unhandledRejections(): string[] {
    try {
      return this.log()
        .split("\n")
        .filter((line) => line.includes("UNHANDLED REJECTION"));
    } catch {
      return [];
    }
  }

  /** Runs `studio <args>` and returns its stdout (rejects with its stderr on a non-zero exit). */
  async cli(...args: string[]): Promise<string> {
    try {
      const { stdout } = await run(process.execPath, [CLI, ...args], {
        env: this.env as NodeJS.ProcessEnv,
        timeout: 120_000,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(e.stderr?.trim() || e.message);
    }
  }

  async cliJson<T = unknown>(...args: string[]): Promise<T> {
    return JSON.parse(await this.cli(...args, "--json")) as T;
  }

  /** `studio start`, then until its boot reconciliation is over (the studio answers before). */
  async start(): Promise<number> {
    await this.cli("start");
    await this.booted();
    return this.pid()!;
  }

  /** `studio restart`, then until the new studio's boot reconciliation is over. */
  async restart(): Promise<void> {
    await this.cli("restart");
    await this.booted();
  }

  /** Until the studio says its boot (rebuild, reconciliation) is over. */
  async booted(): Promise<void> {
    const deadline = Date.now() + 60_000;
    const token = this.env.STUDIO_TOKEN;
    const booting = async () => {
      const response = await fetch(`http://127.0.0.1:${this.port}/api/trpc/studio.ping`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      const body = (await response.json()) as {
        result?: { data?: { json?: { booting?: boolean } } };
      };
      if (!response.ok) throw new Error(`studio.ping: HTTP ${response.status}`);
      return body.result?.data?.json?.booting !== false;
    };
    while (await booting()) {
      if (Date.now() > deadline) throw new Error("the studio's boot did not end within 60 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop() {
    await this.cli("stop");
  }

  pid(): number | null {
    return liveLockHolder(join(this.home, "studio.lock"))?.pid ?? null;
  }

  /** Kills the studio outright (no shutdown code runs) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL") {
    const pid = this.pid();
    if (!pid) return;
    process.kill(pid, signal);
    while (this.pid() === pid) await new Promise((r) => setTimeout(r, 20));
  }

  /** A task whose trainer is the fixture of test/fixtures/trainers/lines.mjs, run with `args`. */
  fixtureTask(args: string[], name = "fixture") {
    return this.client.task.create.mutate({
      name,
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [process.execPath, LINES_FIXTURE, "--task-dir", ".", ...args],
    });
  }

  /** The runner's and trainer's pids of the task's latest attempt, once it has them. */
  async processes(taskId: string): Promise<{ runner: number; trainer: number } | null> {
    const detail = await this.client.task.get.query({ id: taskId });
    const handle = detail.attempts[0]?.handle as
      | { runner: { pid: number }; trainer: { pid: number } }
      | undefined;
    return handle ? { runner: handle.runner.pid, trainer: handle.trainer.pid } : null;
  }

  /** The task's training.log, as lines. */
  logOf(taskId: string): string[] {
    try {
      return readFileSync(join(this.home, "tasks", taskId, "training.log"), "utf8")
        .split("\n")
        .filter(Boolean);
    } catch {
      return [];
    }
  }

  /** Opens the studio's database directly; only while the studio is stopped (PGlite allows one user). */
  async withDatabase<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const database = await openDatabase({
      databaseUrl: this.env.DATABASE_URL || undefined,
      pgliteDir: join(this.home, "pglite"),
    });
    try {
      return await fn(database.db);
    } finally {
      await database.close();
    }
  }

  /** Rewrites the stored handle of a task's latest attempt (to simulate what a reused pid looks like). */
  async forgeAttemptHandle(
    taskId: string,
    record: {
      runner: { pid: number; startTime: string };
      trainer: { pid: number; startTime: string };
    },
  ) {
    await this.withDatabase(async (db) => {
      const [attempt] = await db.select().from(attempts).where(eq(attempts.taskId, taskId));
      const handle = {
        ...(attempt!.handle as object),
        runner: record.runner,
        trainer: record.trainer,
      };
      await db
        .update(attempts)
        .set({ handle, processStartTime: record.trainer.startTime })
        .where(eq(attempts.id, attempt!.id));
    });
  }

  log(): string {
    return readFileSync(join(this.home, "studio.log"), "utf8");
  }
}
