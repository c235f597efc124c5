/**
 * When the monitor reads a trainer's output and when it stores what it derived (pure: the
 * monitor asks, ./monitor acts). Reading is cheap (a few system calls, lines published at once)
 * and decides how soon a line reaches a subscriber; storing is a database transaction and
 * decides how much a restart reads again. So they have separate paces.
 */

/**
 * While a trainer keeps printing and someone follows its log live (a page, `studio task logs
 * -f`), its output is read at most this often. Measured (`npm run bench:latency`): at 10 ms a
 * line reaches a subscriber in about 10 ms at 5,000 lines/s; the earlier per-event tick every
 * 100 ms took about 40 ms.
 */
export const BUSY_READ_GAP_MS = 10;

/**
 * The same with no one following the log: only progress and metrics come of the lines, and the
 * page shows those at STORE_GAP_MS anyway. Each read then takes a quarter second of output, so
 * twenty trainers printing 100 lines/s cost the studio 80 reads a second, not 2,000
 * (`npm run bench:cost`).
 */
export const UNWATCHED_READ_GAP_MS = 250;

/**
 * Progress, metrics and the page's row are stored at most this often while output flows (the
 * page's progress and chart follow at this pace).
 */
export const STORE_GAP_MS = 500;

/**
 * Cursors alone (plain log lines, which derive nothing) are stored at most this often: after a
 * restart, at most this much output is read again. Subscribers drop line ids they already have
 * and metric rows are upserts, so reading again repeats nothing (see ../logs/log-cursor).
 */
export const CURSOR_STORE_MS = 10_000;

/** The last read: when it ran and whether it found new output. */
export interface LastRead {
  at: number;
  found: boolean;
}

/**
 * How long to wait before reading after a file event. A trainer that was quiet (its last read
 * found nothing) is read at once, so a lone line is not delayed; one that keeps printing is read
 * once per gap (`BUSY_READ_GAP_MS` while its log is `followed` live, else
 * `UNWATCHED_READ_GAP_MS`), each read taking everything written meanwhile.
 */
export function readDelay(now: number, last: LastRead | null, followed: boolean): number {
  if (!last?.found) return 0;
  const gap = followed ? BUSY_READ_GAP_MS : UNWATCHED_READ_GAP_MS;
  return Math.max(0, last.at + gap - now);
}

/** What the monitor holds that is not stored yet. */
export interface Unstored {
  /** Events (warnings) or a reset of training.log: stored at once. */
  events: boolean;
  /** Progress or metrics moved. */
  progress: boolean;
  /** The cursors moved past lines that derived nothing. */
  cursors: boolean;
}

/** The longest wait between tries to store while the database keeps refusing. */
export const STORE_RETRY_MAX_MS = 10_000;

/**
 * After `failures` stores in a row failed (the database is down, or its disk full), the next
 * try waits this long: doubling from STORE_GAP_MS up to STORE_RETRY_MAX_MS. Trying again at
 * once would spin: the batch only grows, and every try fails the same way.
 */
export function storeRetryGap(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(STORE_GAP_MS * 2 ** Math.min(failures - 1, 20), STORE_RETRY_MAX_MS);
}

/**
 * How long to wait before storing (null: nothing to store). `storedAt` is when the last store
 * began, `failures` how many in a row failed. Draining and events store at once, unless the
 * stores are failing.
 */
export function storeDelay(
  now: number,
  storedAt: number,
  unstored: Unstored,
  draining: boolean,
  failures = 0,
): number | null {
  if (!unstored.events && !unstored.progress && !unstored.cursors) return null;
  const retry = Math.max(0, storedAt + storeRetryGap(failures) - now);
  if (draining || unstored.events) return retry;
  const gap = unstored.progress ? STORE_GAP_MS : CURSOR_STORE_MS;
  return Math.max(retry, storedAt + gap - now);
}
