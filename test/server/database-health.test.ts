import { describe, expect, it } from "vitest";
import {
  type DatabaseHealthState,
  databaseProblemOf,
  nextHealth,
} from "../../src/server/db/health";

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe("databaseProblemOf", () => {
  it.each([
    [withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"), "unreachable"],
    [withCode("write CONNECTION_CLOSED 127.0.0.1:5432", "CONNECTION_CLOSED"), "unreachable"],
    [withCode("terminating connection due to administrator command", "57P01"), "unreachable"],
    [withCode('database "x" is not currently accepting connections', "55000"), "unreachable"],
    [withCode("canceling statement due to statement timeout", "57014"), "unreachable"],
    [
      withCode(
        "the embedded database is not available: it stopped: PANIC: No space left on device",
        "EMBEDDED_DATABASE_DOWN",
      ),
      "unreachable",
    ],
    [
      withCode('could not extend file "base/5/16385": No space left on device', "53100"),
      "disk-full",
    ],
    [new Error("No space left on device (ENOSPC)"), "disk-full"],
  ] as const)("%s: %s", (err, kind) => {
    expect(databaseProblemOf(err)?.kind).toBe(kind);
  });

  it("looks through drizzle's wrapper to the driver's error", () => {
    const wrapped = new Error("Failed query: select 1", {
      cause: withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
    });
    expect(databaseProblemOf(wrapped)).toEqual({
      kind: "unreachable",
      message: "connect ECONNREFUSED 127.0.0.1:5432",
    });
  });

  it("says nothing of a call's own fault", () => {
    expect(databaseProblemOf(withCode("duplicate key value", "23505"))).toBeNull();
    expect(databaseProblemOf(withCode('relation "x" does not exist', "42P01"))).toBeNull();
    expect(databaseProblemOf("not an error")).toBeNull();
  });
});

describe("nextHealth", () => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const t1 = new Date("2026-01-01T00:00:05Z");
  const ok: DatabaseHealthState = { status: "ok" };
  const down = { ok: false, problem: { kind: "unreachable", message: "refused" } } as const;
  const full = { ok: false, problem: { kind: "disk-full", message: "no space" } } as const;

  it("fails since the first failure, and keeps that time while it goes on", () => {
    const failing = nextHealth(ok, down, t0);
    expect(failing).toEqual({
      status: "failing",
      kind: "unreachable",
      message: "refused",
      since: t0,
    });
    expect(nextHealth(failing, down, t1)).toBe(failing);
    expect(nextHealth(failing, full, t1)).toEqual({
      status: "failing",
      kind: "disk-full",
      message: "no space",
      since: t0,
    });
  });

  it("ends on a success; a read does not end a full disk, a write does", () => {
    expect(nextHealth(nextHealth(ok, down, t0), { ok: true, write: false }, t1)).toEqual(ok);
    const fullDisk = nextHealth(ok, full, t0);
    expect(nextHealth(fullDisk, { ok: true, write: false }, t1)).toBe(fullDisk);
    expect(nextHealth(fullDisk, { ok: true, write: true }, t1)).toEqual(ok);
  });

  it("ignores errors that are the call's own", () => {
    expect(nextHealth(ok, { ok: false, problem: null }, t0)).toBe(ok);
  });
});
