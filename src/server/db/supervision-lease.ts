import type { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { POSTGRES_CLIENT_OPTIONS } from "./postgres-options";
import type { SupervisionHolder } from "./schema";

/** What becoming the supervisor gives: the epoch to act under, and who acted before. */
export interface SupervisionClaim {
  epoch: number;
  /** The previous supervisor; null on a database that was never supervised. */
  previous: SupervisionHolder | null;
}

/**
 * The right to supervise a database: one studio at a time. Holding it is two things, the way
 * a lease with a fencing token works: a lock that excludes other studios while this one lives,
 * and an epoch raised at each claim that the database checks on every task write (see
 * `supervision` in ./schema), so a studio that lost the lock is refused even before it notices.
 */
export interface SupervisionLease {
  /** Takes the lock when it is free and raises the epoch; null when another studio holds it. */
  tryAcquire(holder: SupervisionHolder): Promise<SupervisionClaim | null>;
  /** Whether the lock and the epoch are provably still ours; false when that cannot be told within `timeoutMs`. */
  stillHeld(timeoutMs: number): Promise<boolean>;
  /** Gives the lock up (a later tryAcquire may take it again). */
  release(): Promise<void>;
}

/** An arbitrary constant shared by every studio: "FTSTUDIO" read as digits. */
const LOCK_KEY = 4_631_729_011;

/** Raises the epoch and names the new holder in one statement, returning the one before. */
const CLAIM_SQL = `with previous as (select holder from supervision where id = 1)
insert into supervision (id, epoch, holder, acquired_at) values (1, 1, $1::jsonb, now())
on conflict (id) do update
  set epoch = supervision.epoch + 1, holder = excluded.holder, acquired_at = excluded.acquired_at
returning epoch, (select holder from previous) as previous`;

interface ClaimRow {
  epoch: number;
  previous: SupervisionHolder | null;
}

/**
 * PostgreSQL: a session-level advisory lock on a connection of its own (not one of the pool's,
 * which come and go). The lock lives exactly as long as that session, so "still held" is "the
 * same backend still answers" (a reconnect would be a new session, without the lock) and the
 * epoch is still the one claimed.
 */
export class PostgresSupervisionLease implements SupervisionLease {
  private session: { sql: postgres.Sql; backendPid: number; epoch: number } | null = null;

  constructor(private readonly url: string) {}

  async tryAcquire(holder: SupervisionHolder): Promise<SupervisionClaim | null> {
    await this.release();
    const sql = postgres(this.url, {
      max: 1,
      ...POSTGRES_CLIENT_OPTIONS,
      connect_timeout: 5,
      // The pool default recycles connections after 30-60 minutes: that would drop the lock.
      max_lifetime: 0,
      idle_timeout: 0,
    });
    try {
      const [lock] = await sql<{ ok: boolean; pid: number }[]>`
        select pg_try_advisory_lock(${LOCK_KEY}) as ok, pg_backend_pid() as pid`;
      if (!lock?.ok) {
        await sql.end({ timeout: 0 });
        return null;
      }
      const [claim] = await sql.unsafe<ClaimRow[]>(CLAIM_SQL, [holder as never]);
      this.session = { sql, backendPid: lock.pid, epoch: claim!.epoch };
      return { epoch: claim!.epoch, previous: claim!.previous ?? null };
    } catch (err) {
      await sql.end({ timeout: 0 }).catch(() => {});
      throw err;
    }
  }

  async stillHeld(timeoutMs: number): Promise<boolean> {
    const session = this.session;
    if (!session) return false;
    let timer: NodeJS.Timeout | undefined;
    const check = session.sql<{ pid: number; epoch: number | null }[]>`
      select pg_backend_pid() as pid, (select epoch from supervision where id = 1) as epoch`;
    // When the timeout wins the race, the check may still fail later: that is expected.
    const answered = check.then(
      (rows) => rows,
      () => null,
    );
    try {
      const rows = await Promise.race([
        answered,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer")), timeoutMs);
        }),
      ]);
      return rows?.[0]?.pid === session.backendPid && rows[0]?.epoch === session.epoch;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async release(): Promise<void> {
    const session = this.session;
    this.session = null;
    // Ending the session releases the lock, also when the connection is already gone.
    await session?.sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * PGlite: the database is private to one STUDIO_HOME, whose lock file already keeps a second
 * studio out, so the lock is always this studio's; the epoch still goes up at each claim, and
 * the same fencing trigger holds.
 */
export class PgliteSupervisionLease implements SupervisionLease {
  constructor(private readonly client: Pick<PGlite, "query">) {}

  async tryAcquire(holder: SupervisionHolder): Promise<SupervisionClaim> {
    const { rows } = await this.client.query<ClaimRow>(CLAIM_SQL, [holder]);
    return { epoch: rows[0]!.epoch, previous: rows[0]!.previous ?? null };
  }

  async stillHeld(): Promise<boolean> {
    return true;
  }

  async release(): Promise<void> {}
}
