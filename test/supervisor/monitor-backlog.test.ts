import { statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { supervision } from "../../src/server/db/schema";
import { testDatabaseKinds } from "../helpers/databases";
import { waitFor } from "../helpers/wait";
import { MonitorHarness } from "./monitor-harness";

const STEPS = 30_000;
const CAP = 1_000;
const progress = (step: number) =>
  JSON.stringify({
    event: "progress",
    epoch: step / STEPS,
    total_epochs: 1,
    step,
    total_steps: STEPS,
    loss: 1 / step,
  });

/**
 * Through a long database outage a chatty trainer goes on printing; the monitor must not hold
 * all of it in memory waiting for the database. The stores are refused for real, by the
 * database's fence (a write from a studio whose supervision epoch is no longer the current one,
 * as after a lost lock): the monitor cannot tell that from an outage, and both databases have it.
 */
describe.each(testDatabaseKinds())("a monitor whose stores keep failing (%s)", (kind) => {
  let h: MonitorHarness;
  beforeAll(async () => {
    h = await MonitorHarness.create(kind);
    await h.database.db.insert(supervision).values({
      id: 1,
      epoch: 1,
      holder: { version: 1, host: "test", pid: 1, startTime: "1", home: "/", url: "http://x" },
    });
    await h.database.actUnder(1);
    h.maxUnstoredRows = CAP;
    await h.fresh(); // a monitor on the connection that carries the epoch
  });
  afterAll(() => h.dispose());

  const fence = (epoch: number) =>
    h.database.db.update(supervision).set({ epoch }).where(eq(supervision.id, 1));

  it("stops reading at its cap of unstored rows and reads the rest once a store lands", async () => {
    // About 3 MiB: three reads of 1 MiB, each far past the cap of 1,000 rows.
    const lines = Array.from({ length: STEPS }, (_, i) => progress(i + 1));
    await writeFile(h.progressFile, `${lines.join("\n")}\n`);
    const size = statSync(h.progressFile).size;
    await fence(2);
    h.monitor.hint("progress.jsonl");
    await waitFor("a refused store", () => h.errors.length > 0, 30_000);
    expect(String(h.errors[0])).toMatch(/fenced/);

    // Unfollowed output is read every 250 ms: without the cap all of it is read well within this.
    await new Promise((r) => setTimeout(r, 2_000));
    const held = h.monitor.target.progressCursor?.offset ?? 0;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(size);

    await fence(1);
    await waitFor(
      "every step stored",
      async () => (await h.metrics()).length === STEPS,
      60_000,
      200,
    );
    const steps = (await h.metrics()).map((m) => m.step);
    expect(steps).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(h.monitor.target.progressCursor?.offset).toBe(size);
    expect((await h.progress()).step).toBe(STEPS);
  });
});
