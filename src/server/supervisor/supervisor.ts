import type { TaskRow } from "../db/schema";
import { StandingEvaluations } from "../evaluations/standing-evaluations";
import { NotificationDelivery } from "../notifications/delivery-loop";
import { rebuildFromFolders } from "../recovery/rebuild";
import type { RebuildReport } from "../recovery/rebuild-report";
import { getTask } from "../tasks/repository";
import { AttemptWatchers } from "./attempt-watcher";
import { Commands } from "./commands";
import type { SupervisorContext } from "./context";
import { Launcher } from "./launcher";
import { Reconciler } from "./reconciler";

/** The studio polls every followed attempt this often (see AttemptWatcher.poll); file events make it sooner. */
const POLL_MS = 1_000;

/**
 * Owns every running attempt of this studio. Its parts, one job each:
 * - Commands (./commands): what a person asks of a task;
 * - Launcher (./launcher): starts queued tasks in their turn;
 * - AttemptWatchers (./attempt-watcher): follow each running attempt's files and processes;
 * - Reconciler (./reconciler): decides (./reconcile, pure) and writes what every observation
 *   means, at boot and live alike;
 * - NotificationDelivery (../notifications): posts the outbox's notifications to the webhook;
 * - StandingEvaluations (../evaluations): scores each checkpoint on the task's evaluation set.
 * Exactly one supervisor acts per database at a time (see ../supervision).
 */
export class Supervisor {
  /** How long a launch may take to confirm; reconciliation waits this long for a half-started one. */
  readonly launchTimeoutMs = 10_000;
  private readonly watchers: AttemptWatchers;
  private readonly launcher: Launcher;
  private readonly reconciler: Reconciler;
  private readonly commands: Commands;
  /** Null when no webhook is configured. */
  private readonly notifications: NotificationDelivery | null;
  private readonly standing: StandingEvaluations;
  private poller: NodeJS.Timeout | null = null;
  /** The rebuild in progress, if any: rebuilds run one at a time. */
  private recovering: Promise<unknown> = Promise.resolve();
  private bootOver!: () => void;
  /**
   * Settles once the term's boot (rebuild, reconciliation) is over, or the supervisor stopped.
   * The studio answers meanwhile; commands wait for it, so none acts on a task that boot has
   * not judged yet.
   */
  readonly booted = new Promise<void>((resolve) => {
    this.bootOver = resolve;
  });
  /** True until `booted` settles: statuses shown may still change. */
  booting = true;

  constructor(private readonly ctx: SupervisorContext) {
    this.watchers = new AttemptWatchers(ctx, (watcher) => this.reconciler.reconcileLive(watcher));
    this.launcher = new Launcher(ctx, this.watchers);
    const schedule = () => this.launcher.schedule();
    this.commands = new Commands(ctx, this.watchers, schedule);
    this.reconciler = new Reconciler(ctx, {
      watchers: this.watchers,
      schedule,
      resumeFromCheckpoint: (id) => this.commands.retry(id, true),
      retryAutomatically: (id, fromCheckpoint, automatic) =>
        this.commands.retry(id, fromCheckpoint, automatic),
      recordHandle: (attempt, handle) => this.launcher.recordHandle(attempt, handle),
      launchTimeoutMs: this.launchTimeoutMs,
    });
    const { env } = ctx;
    this.standing = new StandingEvaluations({
      db: ctx.db,
      home: env.STUDIO_HOME,
      minFreeMb: env.STUDIO_MIN_FREE_MB,
      niceness: env.STUDIO_EVAL_NICENESS,
      python: () => ctx.hfPeft.interpreter().path,
      baseEnv: process.env,
      log: ctx.log,
    });
    this.notifications = env.STUDIO_WEBHOOK_URL
      ? new NotificationDelivery({
          db: ctx.db,
          webhook: {
            url: env.STUDIO_WEBHOOK_URL,
            secret: env.STUDIO_WEBHOOK_SECRET,
            format: env.STUDIO_WEBHOOK_FORMAT,
          },
          policy: {
            maxAttempts: env.STUDIO_WEBHOOK_MAX_ATTEMPTS,
            backoffSeconds: env.STUDIO_WEBHOOK_BACKOFF_SECONDS,
          },
          studioUrl: ctx.publicUrl,
          log: ctx.log,
        })
      : null;
  }

  /**
   * Boot, before reconciliation: gives back the tasks the database lost from their folders
   * (src/server/recovery). They are inserted open, so boot reconciliation then judges them with
   * every other open task: ended ones finalized from exit.json, live trainers re-attached by
   * identity.
   */
  rebuildAtBoot(): Promise<RebuildReport> {
    return rebuildFromFolders(this.ctx.db, this.ctx.env.STUDIO_HOME);
  }

  /**
   * On demand (`studio recover`): the same rebuild while the studio runs, then the rebuilt
   * tasks reconciled as at boot. The report carries each task's status after that.
   */
  recover(): Promise<RebuildReport> {
    const run = this.recovering.then(() => this.afterBoot(() => this.recoverOnce()));
    this.recovering = run.catch(() => {});
    return run;
  }

  private async recoverOnce(): Promise<RebuildReport> {
    const report = await this.rebuildAtBoot();
    const ids = report.rebuilt.map((t) => t.taskId);
    // A watcher still following a task whose row was deleted stops before the new row's starts.
    for (const id of ids) {
      const stale = this.watchers.get(id);
      if (stale) await this.watchers.release(stale, false);
    }
    const summary = await this.reconciler.reconcileOpenTasks(
      "the task was rebuilt from its folder",
      ids,
    );
    if (ids.length) this.ctx.log(`recover: reconciliation of the rebuilt tasks: ${summary}`);
    this.launcher.schedule();
    for (const rebuilt of report.rebuilt) {
      const row = await getTask(this.ctx.db, rebuilt.taskId);
      if (!row) continue;
      rebuilt.status = row.status;
      rebuilt.statusReason = row.statusReason;
      this.ctx.bus.publishTask(row);
    }
    return report;
  }

  /**
   * Boot reconciliation: every open task once, before the loop starts; `resumeReason` says why
   * trainers ran unfollowed (a restart, another studio's term). One-line summary.
   */
  reconcileAtBoot(resumeReason: string): Promise<string> {
    return this.reconciler.reconcileOpenTasks(resumeReason);
  }

  /** Starts the periodic check that backs up file events, and ends the boot: reconciliation ran before. */
  startLoop() {
    this.poller = setInterval(() => {
      const now = Date.now();
      for (const watcher of this.watchers.all()) watcher.poll(now);
      this.launcher.schedule();
    }, POLL_MS);
    this.launcher.schedule();
    this.notifications?.start();
    this.standing.start();
    this.endBoot();
  }

  private endBoot() {
    this.booting = false;
    this.bootOver();
  }

  private async afterBoot<T>(command: () => Promise<T>): Promise<T> {
    await this.booted;
    return command();
  }

  /** Stops following trainers. The trainers themselves keep running; the next studio re-attaches. */
  async stop() {
    this.endBoot();
    if (this.poller) clearInterval(this.poller);
    this.reconciler.stop();
    // Both stop taking new work at once (before either waits on what is under way).
    await Promise.all([
      this.launcher.stop(),
      this.watchers.stopAll(),
      this.notifications?.stop(),
      this.standing.stop(),
    ]);
  }

  start(id: string): Promise<TaskRow> {
    return this.afterBoot(() => this.commands.start(id));
  }

  retry(id: string, fromCheckpoint: boolean): Promise<TaskRow> {
    return this.afterBoot(() => this.commands.retry(id, fromCheckpoint));
  }

  cancel(id: string): Promise<TaskRow> {
    return this.afterBoot(() => this.commands.cancel(id));
  }

  pause(id: string): Promise<TaskRow> {
    return this.afterBoot(() => this.commands.pause(id));
  }

  resume(id: string): Promise<TaskRow> {
    return this.afterBoot(() => this.commands.resume(id));
  }

  /** The task's evaluation set changed: its standing evaluations follow at the next pass. */
  evaluationSetChanged(taskId: string): void {
    this.standing.setChanged(taskId);
  }

  isFollowing(taskId: string): boolean {
    return this.watchers.get(taskId) !== undefined;
  }
}
