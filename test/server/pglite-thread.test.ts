import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DatabaseHealth } from "../../src/server/db/health";
import { PgliteThread } from "../../src/server/db/pglite-thread";
import { mountTmpfs, unmountTmpfs } from "../helpers/tmpfs";
import { waitFor } from "../helpers/wait";

/** Writes until the disk is full, in large then small blocks, so less than a page is left. */
function fill(path: string) {
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 20, 4096]) {
      const block = Buffer.alloc(size);
      try {
        for (;;) writeSync(fd, block);
      } catch {
        // ENOSPC: on to the smaller block
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * PGlite PANICs when it cannot create a WAL segment on a full disk, and then spins in its next
 * call forever. On a real 96 MiB tmpfs (as root): the PANIC stops the instance, calls fail at
 * once instead of hanging, and once space is freed the database reopens by itself with every
 * committed row and its session settings.
 */
describe("the embedded database's thread on a full disk", () => {
  const mount = mkdtempSync(join(tmpdir(), "studio-pglite-disk-"));
  const logs: string[] = [];
  let thread: PgliteThread | null = null;

  afterAll(async () => {
    await thread?.close();
    await unmountTmpfs(mount);
    rmSync(mount, { recursive: true, force: true });
  });

  it("stops after a PANIC, fails calls fast, and reopens when space is freed", async () => {
    mountTmpfs(mount, 96);
    const health = new DatabaseHealth((m) => logs.push(m));
    const dataDir = join(mount, "pglite");
    const opened = await PgliteThread.open({ dataDir, health, log: (m) => logs.push(m) });
    thread = opened;
    await opened.exec("create table kept (id int primary key)");
    await opened.query("insert into kept values ($1)", [1]);
    // The supervision epoch is a session setting: a reopened database must carry it again.
    await opened.setSessionConfig("studio.epoch", "7");

    fill(join(mount, "filler"));
    // The next write needs a new WAL segment, which a full disk cannot hold: PANIC.
    await opened.query("select pg_switch_wal()");
    const panic = await opened.query("insert into kept values ($1)", [2]).then(
      () => null,
      (e: { code?: string; severity?: string }) => e,
    );
    expect(panic).toMatchObject({ code: "53100", severity: "PANIC" });

    const started = Date.now();
    const refused = await opened.query("select count(*) from kept").then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(refused?.code).toBe("EMBEDDED_DATABASE_DOWN");
    expect(refused?.message).toMatch(
      /^the embedded database is not available: it stopped: PANIC: could not write to file .*No space left on device$/,
    );
    expect(health.state).toMatchObject({ status: "failing", kind: "unreachable" });

    rmSync(join(mount, "filler"));
    const rows = await waitFor(
      "the database to reopen",
      async () => (await opened.query<{ id: number }>("select id from kept order by id")).rows,
      30_000,
      200,
    );
    expect(rows).toEqual([{ id: 1 }]);
    const setting = await opened.query<{ epoch: string }>(
      "select current_setting('studio.epoch', true) as epoch",
    );
    expect(setting.rows).toEqual([{ epoch: "7" }]);
    await opened.query("insert into kept values ($1)", [2]);
    expect(health.state).toEqual({ status: "ok" });
    expect(logs.some((l) => l.startsWith(`embedded database reopened from ${dataDir}`))).toBe(true);
  }, 60_000);
});
