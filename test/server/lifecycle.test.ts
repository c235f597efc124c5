import { describe, expect, it } from "vitest";
import {
  allowedActions,
  canTransition,
  isActive,
  isTerminal,
  sourcesOf,
  TASK_STATUSES,
} from "../../src/server/tasks/lifecycle";

const legal = new Set([
  "pending>queued",
  "pending>cancelled",
  "queued>preparing",
  "queued>cancelled",
  "preparing>training",
  "preparing>failed",
  "preparing>cancelled",
  "preparing>completed",
  "preparing>interrupted",
  "training>paused",
  "training>completed",
  "training>failed",
  "training>cancelled",
  "training>interrupted",
  "paused>training",
  "paused>completed",
  "paused>failed",
  "paused>cancelled",
  "paused>interrupted",
  "failed>queued",
  "cancelled>queued",
  "interrupted>queued",
  "interrupted>failed",
]);

describe("task lifecycle", () => {
  it("allows exactly the documented transitions", () => {
    for (const from of TASK_STATUSES) {
      for (const to of TASK_STATUSES) {
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(legal.has(`${from}>${to}`));
      }
    }
  });

  it("never leaves completed", () => {
    expect(TASK_STATUSES.filter((to) => canTransition("completed", to))).toEqual([]);
  });

  it("lists the sources of each status", () => {
    expect(sourcesOf("queued").sort()).toEqual(["cancelled", "failed", "interrupted", "pending"]);
    expect(sourcesOf("pending")).toEqual([]);
  });

  it("classifies terminal and active statuses", () => {
    expect(TASK_STATUSES.filter(isTerminal)).toEqual(["completed", "failed", "cancelled"]);
    expect(TASK_STATUSES.filter(isActive)).toEqual(["preparing", "training", "paused"]);
  });

  it("offers actions by status", () => {
    expect(allowedActions("pending", false)).toMatchObject({
      start: true,
      cancel: true,
      delete: true,
    });
    expect(allowedActions("training", false)).toMatchObject({
      pause: true,
      cancel: true,
      delete: false,
    });
    expect(allowedActions("paused", false)).toMatchObject({ resume: true, pause: false });
    expect(allowedActions("failed", true)).toMatchObject({
      retry: true,
      resumeFromCheckpoint: true,
    });
    expect(allowedActions("failed", false).resumeFromCheckpoint).toBe(false);
    expect(allowedActions("completed", true)).toMatchObject({ retry: false, delete: true });
  });
});
