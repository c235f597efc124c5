import { type Database, type Db, STANDBY_EPOCH } from "./db/client";
import { type SupervisionHolder, supervision } from "./db/schema";
import { rebuildLogLines } from "./recovery/rebuild-report";
import type { Supervisor } from "./supervisor/supervisor";

/** How often the supervisor proves it still holds the lease, and a standby tries to take it. */
const TICK_MS = 1_000;
/** A lease check that has not answered by then counts as lost: stop acting rather than guess. */
const CHECK_TIMEOUT_MS = 2_000;

export interface SupervisionOptions {
  database: Database;
  /** This studio, as the next one will read it from the database. */
  holder: SupervisionHolder;
  /** A fresh supervisor acting through `db` (the connection that carries the new epoch). */
  makeSupervisor: (db: Db) => Supervisor;
  log: (msg: string) => void;
}

type State =
  | { kind: "standby"; reason: string }
  | { kind: "supervising"; supervisor: Supervisor; epoch: number }
  | { kind: "stopped" };

/**
 * Who supervises, moment to moment. One studio supervises a database; any other studio on it
 * serves read-only and stands by. Every second the supervisor proves it still holds the lease
 * (./db/supervision-lease) and a standby tries to take it, so a standby takes over within a few
 * seconds of the supervisor's death, and a supervisor whose lock went with its connection stops
 * acting (its supervisor is stopped; the trainers run on) until it wins the lease again. The
 * database refuses task writes from a superseded epoch, which covers the moments before that.
 * Each new term starts like a boot: reconciliation from what the files and processes show.
 */
export class Supervision {
  private state: State = { kind: "standby", reason: "starting" };
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  /** The current term's boot (rebuild, reconciliation), while it runs. */
  private beginning: Promise<void> | null = null;

  constructor(private readonly opts: SupervisionOptions) {}

  /** The acting supervisor, or null while another studio supervises (or none can be reached). */
  get supervisor(): Supervisor | null {
    return this.state.kind === "supervising" ? this.state.supervisor : null;
  }

  /** Why this studio changes nothing now, or null while it supervises. */
  get readOnly(): string | null {
    if (this.state.kind === "supervising") return null;
    return this.state.kind === "standby" ? this.state.reason : "the studio is stopping";
  }

  /** First claim (with boot reconciliation when it wins), then the periodic check. */
  async start(): Promise<void> {
    // Until it wins the lease, this studio's connection cannot change any task.
    await this.opts.database.actUnder(STANDBY_EPOCH);
    await this.tick();
    // The studio serves while its first term's boot (rebuild, reconciliation) goes on: reads
    // show what the database holds, commands wait for the boot (Supervisor.booted).
    this.timer = setInterval(() => {
      if (!this.ticking) {
        this.ticking = this.tick().finally(() => {
          this.ticking = null;
        });
      }
    }, TICK_MS);
  }

  /** Settles once the first term's boot is over (at once for a studio that stands by). */
  async firstBoot(): Promise<void> {
    await this.beginning;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    const previous = this.state;
    this.state = { kind: "stopped" };
    // A boot still under way (its database calls may be held) is not waited for: once stopped,
    // the supervisor follows nothing it would re-attach, and the next studio boots anew.
    if (previous.kind === "supervising") await previous.supervisor.stop();
    await this.opts.database.lease.release();
  }

  private async tick(): Promise<void> {
    if (this.state.kind === "stopped") return;
    try {
      if (this.state.kind === "supervising") {
        if (!(await this.opts.database.lease.stillHeld(CHECK_TIMEOUT_MS))) {
          await this.stepDown(
            "lost the supervisor lock (its database connection ended or stopped answering); trying to take it again",
          );
        }
        return;
      }
      const claim = await this.opts.database.lease.tryAcquire(this.opts.holder);
      if (claim) {
        await this.takeUp(claim.epoch, claim.previous);
      } else {
        this.standBy(await this.describeSupervisor());
      }
    } catch (err) {
      if (this.state.kind === "standby") {
        this.standBy(
          `cannot reach the database to supervise (${err instanceof Error ? err.message : err}); retrying`,
        );
      }
    }
  }

  private async takeUp(epoch: number, previous: SupervisionHolder | null) {
    const { database, log, makeSupervisor, holder } = this.opts;
    await database.actUnder(epoch);
    const supervisor = makeSupervisor(database.db);
    this.state = { kind: "supervising", supervisor, epoch };
    const why = resumeReason(previous, holder);
    log(`supervising this database (epoch ${epoch}): ${why}`);
    // Not inside the tick: the lease is checked every second however long the term's first
    // reconciliation takes (thousands of tasks, a slow disk).
    this.beginning = this.beginTerm(supervisor, why);
  }

  /** A new term's boot: rebuild what the database lost, reconcile every open task, then follow. */
  private async beginTerm(supervisor: Supervisor, why: string) {
    const { log } = this.opts;
    try {
      // Tasks the database lost (the embedded database's folder deleted, a new empty database)
      // come back from this home's task folders first; reconciliation then judges them with
      // every other open task.
      try {
        for (const line of rebuildLogLines(await supervisor.rebuildAtBoot())) log(line);
      } catch (err) {
        log(`rebuild from task folders failed (supervision goes on without it): ${err}`);
      }
      const summary = await supervisor.reconcileAtBoot(why);
      log(`boot reconciliation: ${summary}`);
    } catch (err) {
      log(`boot reconciliation failed: ${err}`);
    }
    // The term may have ended meanwhile: a stopped supervisor starts nothing.
    if (this.supervisor === supervisor) supervisor.startLoop();
  }

  private async stepDown(reason: string) {
    if (this.state.kind !== "supervising") return;
    const { supervisor, epoch } = this.state;
    this.state = { kind: "standby", reason };
    this.opts.log(`stopped supervising (epoch ${epoch}): ${reason}`);
    // The supervisor stops starting anything at once; then a connection under the standby
    // epoch, so nothing this studio still has under way can land once another studio has raised
    // the epoch; then what was under way (the term's boot too) is waited for.
    const stopped = supervisor.stop();
    await this.opts.database.actUnder(STANDBY_EPOCH);
    await stopped;
    await this.beginning;
    await this.opts.database.lease.release();
  }

  private standBy(reason: string) {
    if (this.state.kind !== "standby" || this.state.reason === reason) return;
    this.opts.log(`read-only: ${reason}`);
    this.state = { kind: "standby", reason };
  }

  private async describeSupervisor(): Promise<string> {
    const [row] = await this.opts.database.db.select().from(supervision).limit(1);
    const other = row?.holder;
    return other
      ? `another studio supervises this database: ${other.url} (home ${other.home}, pid ${other.pid} on ${other.host})`
      : "another studio supervises this database";
  }
}

/**
 * Why a new term of supervision finds trainers already running, for the events that say the
 * training went on: this studio again, a restart of the studio on this home, or another studio
 * taking over.
 */
export function resumeReason(previous: SupervisionHolder | null, self: SupervisionHolder): string {
  if (!previous) return "the studio restarted";
  const sameMachine = previous.host === self.host;
  if (sameMachine && previous.pid === self.pid && previous.startTime === self.startTime) {
    return "supervision resumed after the supervisor lock was lost";
  }
  if (sameMachine && previous.home === self.home) return "the studio restarted";
  return `this studio (${self.url}, home ${self.home}) took over supervision from the studio at ${previous.url} (home ${previous.home}, pid ${previous.pid} on ${previous.host})`;
}
