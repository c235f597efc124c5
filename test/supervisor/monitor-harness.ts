import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asc, eq } from "drizzle-orm";
import type { Database } from "../../src/server/db/client";
import { attempts, taskEvents, taskMetrics, tasks } from "../../src/server/db/schema";
import { type LogChunk, StudioBus, type TaskUpdate } from "../../src/server/events/bus";
import { AttemptMonitor } from "../../src/server/supervisor/monitor";
import { initialProgress, type ProgressState } from "../../src/server/supervisor/progress-state";
import { createTestDatabase, type TestDatabase } from "../helpers/databases";

/**
 * One task with one attempt in a real database, its folder on disk, and an AttemptMonitor on
 * it, with everything the monitor publishes collected. `restart()` is a new monitor that resumes
 * from what the database holds, as the supervisor's does after a studio restart.
 */
export class MonitorHarness {
  published: LogChunk[] = [];
  updates: TaskUpdate[] = [];
  errors: unknown[] = [];
  monitor!: AttemptMonitor;
  /** The cap on unstored rows given to each new monitor (the studio's by default). */
  maxUnstoredRows: number | undefined;
  dir = "";
  taskId = "";
  private attemptRowId = 0;
  private tasksMade = 0;
  private readonly bus = new StudioBus();

  private constructor(
    private readonly testDb: TestDatabase,
    readonly database: Database,
  ) {
    this.bus.emitterForSubscriptions.on("task", (update: TaskUpdate) => {
      if (update.id === this.taskId) this.updates.push(update);
    });
  }

  /** One database for a file of tests (opening one costs seconds); `fresh()` for each test. */
  static async create(kind: "pglite" | "postgres"): Promise<MonitorHarness> {
    const testDb = await createTestDatabase(kind);
    const harness = new MonitorHarness(testDb, await testDb.open());
    await harness.fresh();
    return harness;
  }

  /** A new task and attempt, folder and monitor; the previous monitor is stopped. */
  async fresh(): Promise<void> {
    this.monitor?.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.published = [];
    this.updates = [];
    this.errors = [];
    this.taskId = `t${++this.tasksMade}`;
    this.dir = await mkdtemp(join(tmpdir(), "monitor-"));
    const { database } = this;
    this.bus.emitterForSubscriptions.on(`log:${this.taskId}`, (chunk: LogChunk) =>
      this.published.push(chunk),
    );
    await database.db.insert(tasks).values({
      id: this.taskId,
      name: "faults",
      model: "builtin:tiny",
      trainer: "command",
      datasetPath: "/dev/null",
      datasetFormat: "text",
      hyperparameters: {} as never,
      status: "training",
      currentAttempt: 1,
    });
    const [attempt] = await database.db
      .insert(attempts)
      .values({ taskId: this.taskId, number: 1, host: "test" })
      .returning();
    this.attemptRowId = attempt!.id;
    this.monitor = this.newMonitor(null, null, initialProgress());
  }

  get log(): string {
    return join(this.dir, "training.log");
  }

  get progressFile(): string {
    return join(this.dir, "progress.jsonl");
  }

  /** Every line published so far, in order. */
  lines(): { offset: number; text: string }[] {
    return this.published.flatMap((c) => c.lines);
  }

  /** A new monitor from the database's state; `crash`: the old one stores nothing more first. */
  async restart({ crash = false } = {}): Promise<void> {
    if (crash) this.monitor.stop();
    else await this.monitor.drain();
    const [attempt] = await this.database.db
      .select()
      .from(attempts)
      .where(eq(attempts.id, this.attemptRowId));
    const [task] = await this.database.db.select().from(tasks).where(eq(tasks.id, this.taskId));
    this.monitor = this.newMonitor(
      attempt!.logCursor ?? null,
      attempt!.progressCursor ?? null,
      task!.progress as unknown as ProgressState,
    );
  }

  async events() {
    return this.database.db
      .select()
      .from(taskEvents)
      .where(eq(taskEvents.taskId, this.taskId))
      .orderBy(asc(taskEvents.id));
  }

  async metrics() {
    return this.database.db
      .select()
      .from(taskMetrics)
      .where(eq(taskMetrics.taskId, this.taskId))
      .orderBy(asc(taskMetrics.step), asc(taskMetrics.kind));
  }

  async progress(): Promise<ProgressState> {
    const [task] = await this.database.db.select().from(tasks).where(eq(tasks.id, this.taskId));
    return task!.progress as unknown as ProgressState;
  }

  async dispose(): Promise<void> {
    this.monitor.stop();
    await this.database.close();
    await this.testDb.drop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private newMonitor(
    logCursor: AttemptMonitor["target"]["logCursor"],
    progressCursor: AttemptMonitor["target"]["progressCursor"],
    progress: ProgressState,
  ): AttemptMonitor {
    return new AttemptMonitor(
      {
        taskId: this.taskId,
        attempt: 1,
        attemptRowId: this.attemptRowId,
        taskDir: this.dir,
        logCursor,
        progressCursor,
        progress,
      },
      this.database.db,
      this.bus,
      (err) => this.errors.push(err),
      this.maxUnstoredRows,
    );
  }
}
