import { describe, expect, it } from "vitest";
import {
  BUSY_READ_GAP_MS,
  CURSOR_STORE_MS,
  readDelay,
  STORE_GAP_MS,
  storeDelay,
  UNWATCHED_READ_GAP_MS,
  type Unstored,
} from "../../src/server/supervisor/follow-pace";

describe("readDelay: when to read after a file event", () => {
  it.each([true, false])(
    "reads at once when nothing was read yet, or the last read found nothing (followed: %s)",
    (followed) => {
      expect(readDelay(1_000, null, followed)).toBe(0);
      expect(readDelay(1_000, { at: 999, found: false }, followed)).toBe(0);
      expect(readDelay(1_000, { at: 1_000, found: false }, followed)).toBe(0);
    },
  );

  it.each([
    [true, BUSY_READ_GAP_MS],
    [false, UNWATCHED_READ_GAP_MS],
  ])(
    "reads a trainer that keeps printing once per gap, never before it (followed: %s)",
    (followed, gap) => {
      for (const since of [0, 1, gap - 1]) {
        expect(readDelay(1_000 + since, { at: 1_000, found: true }, followed)).toBe(gap - since);
      }
      for (const since of [gap, gap + 1, 60_000]) {
        expect(readDelay(1_000 + since, { at: 1_000, found: true }, followed)).toBe(0);
      }
    },
  );
});

describe("storeDelay: when to store what was read", () => {
  const kinds = (events: boolean, progress: boolean, cursors: boolean): Unstored => ({
    events,
    progress,
    cursors,
  });
  const all = [false, true].flatMap((events) =>
    [false, true].flatMap((progress) =>
      [false, true].map((cursors) => kinds(events, progress, cursors)),
    ),
  );

  it("has nothing to store when nothing is unstored, draining or not", () => {
    expect(storeDelay(5_000, 0, kinds(false, false, false), false)).toBeNull();
    expect(storeDelay(5_000, 0, kinds(false, false, false), true)).toBeNull();
  });

  it("stores events at once, and everything at once while draining", () => {
    for (const unstored of all) {
      const now = 5_000;
      const storedAt = now; // a store just began
      if (unstored.events) expect(storeDelay(now, storedAt, unstored, false)).toBe(0);
      if (unstored.events || unstored.progress || unstored.cursors) {
        expect(storeDelay(now, storedAt, unstored, true)).toBe(0);
      }
    }
  });

  it("paces progress at STORE_GAP_MS and cursors alone at CURSOR_STORE_MS", () => {
    const storedAt = 100_000;
    for (const since of [0, 1, 250, STORE_GAP_MS, CURSOR_STORE_MS, CURSOR_STORE_MS + 1]) {
      const now = storedAt + since;
      expect(storeDelay(now, storedAt, kinds(false, true, false), false)).toBe(
        Math.max(0, STORE_GAP_MS - since),
      );
      expect(storeDelay(now, storedAt, kinds(false, true, true), false)).toBe(
        Math.max(0, STORE_GAP_MS - since),
      );
      expect(storeDelay(now, storedAt, kinds(false, false, true), false)).toBe(
        Math.max(0, CURSOR_STORE_MS - since),
      );
    }
  });
});
