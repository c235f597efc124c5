import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { mountTmpfs, unmountTmpfs } from "../helpers/tmpfs";
import { killGroups, waitFor } from "../helpers/wait";

/** Writes fill.bin in its task folder until the disk is full (see the fixture). */
const FILL_DISK = join(import.meta.dirname, "../fixtures/trainers/fill-disk.mjs");

const MiB = 1024 * 1024;

/** Resolves with how long `work` took, or rejects when it takes longer than `limitMs`. */
async function within<T>(limitMs: number, what: string, work: () => Promise<T>): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work(),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${limitMs} ms`)), limitMs);
    }),
  ]).finally(() => clearTimeout(timer));
  return Date.now() - started;
}

/**
 * Issue #11's embedded-database case: the whole STUDIO_HOME (the embedded database included) on
 * a real 128 MiB tmpfs (as root), filled by a trainer. The studio answers and its database calls
 * fail fast rather than hang; once space is freed the outcome the runner kept lands with no
 * restart and says the disk was full; with the disk full again, SIGTERM still stops it.
 */
describe("a full disk under the embedded database", () => {
  let studio: TestStudio;
  const trainers: number[] = [];
  // A runner that could not write its outcome waits for room: ended here should the test fail.
  const runners: number[] = [];
  const free = () => {
    const st = statfsSync(studio.home);
    return st.bavail * st.bsize;
  };
  let mounted = false;

  afterAll(async () => {
    killGroups(trainers);
    for (const pid of runners) {
      const cmdline = (() => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8");
        } catch {
          return ""; // it wrote its outcome and ended
        }
      })();
      if (cmdline.includes("runner.js")) process.kill(pid, "SIGKILL");
    }
    if (!studio) return;
    await studio.stop().catch(() => studio.kill());
    const unhandled = studio.unhandledRejections();
    if (mounted) await unmountTmpfs(studio.home);
    await studio.dispose();
    expect(unhandled).toEqual([]);
  });

  it("stays responsive and stoppable, and records the trainer's end once space is freed", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_MIN_FREE_MB: "40",
    });
    mountTmpfs(studio.home, 128);
    mounted = true;
    await studio.start();

    const task = await studio.client.task.create.mutate({
      name: "fills the disk",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [process.execPath, FILL_DISK],
    });
    await studio.client.task.start.mutate({ id: task.id });
    const processes = await waitFor("the trainer", () => studio.processes(task.id));
    trainers.push(processes.trainer);
    runners.push(processes.runner);
    const fillFile = join(studio.home, "tasks", task.id, "fill.bin");
    await waitFor("the disk to fill", () => free() < MiB, 30_000, 50);

    // Full, for longer than the 10 s between checkpoints (one on a full disk PANICs PGlite): every
    // kind of request answers (the database's calls succeed or fail, never hang).
    for (const until = Date.now() + 12_000; Date.now() < until; ) {
      await within(3_000, "/login", async () => {
        const res = await fetch(`http://127.0.0.1:${studio.port}/login`);
        expect(res.status).toBe(200);
      });
      await within(3_000, "studio.info", async () => {
        const info = await studio.client.studio.info.query();
        expect(info.disk?.verdict).toBe("full");
      });
      await within(5_000, "task.get", () =>
        studio.client.task.get.query({ id: task.id }).catch((e) => e),
      );
      await new Promise((r) => setTimeout(r, 1_000));
    }

    // Room again (more than the database needs to write, less than the floor): the runner's
    // kept outcome lands, and the reason says the disk was full. No restart.
    truncateSync(fillFile, statSync(fillFile).size - 24 * MiB);
    const failed = await waitFor(
      "the outcome",
      async () => {
        const d = await studio.client.task.get.query({ id: task.id });
        return d.task.status === "failed" ? d : null;
      },
      60_000,
      200,
    );
    expect(failed.task.statusReason).toMatch(
      // The runner's account (the disk when the trainer died), then the studio's (the disk now).
      new RegExp(
        `^disk full: \\d+ KB free on the task folder's disk when the trainer ended; \\d+ MB free on ${studio.home}; .*\\(trainer exited with code 1\\)$`,
      ),
    );
    expect(
      readdirSync(join(studio.home, "tasks", task.id)).filter((n) => n.endsWith(".tmp")),
    ).toEqual([]);
    await waitFor(
      "the database's health to be ok",
      async () => (await studio.client.studio.info.query()).databaseHealth.status === "ok",
      30_000,
      200,
    );

    // Full again: SIGTERM stops the studio within seconds (`studio stop` would SIGKILL at 15 s).
    const filler = openSync(join(studio.home, "filler.bin"), "w");
    try {
      for (;;) writeSync(filler, Buffer.alloc(MiB));
    } catch {
      // ENOSPC
    } finally {
      closeSync(filler);
    }
    const stopMs = await within(20_000, "studio stop", () => studio.stop());
    expect(stopMs).toBeLessThan(10_000);
    rmSync(join(studio.home, "filler.bin"));
    rmSync(fillFile);
  }, 150_000);
});

describe("a disk too small for the embedded database", () => {
  let studio: TestStudio | null = null;
  let mounted = false;

  afterAll(async () => {
    if (!studio) return;
    if (mounted) await unmountTmpfs(studio.home);
    await studio.dispose();
  });

  it("`studio start` names the cause: the disk is full, with the free space", async () => {
    studio = await TestStudio.create("pglite");
    mountTmpfs(studio.home, 4);
    mounted = true;
    const started = studio.start().then(
      () => "started",
      (e: Error) => e.message,
    );
    expect(await started).toBe(
      `studio: cannot open the embedded database in ${join(studio.home, "pglite")}: disk full (0 MB free) (see ${join(studio.home, "studio.log")})`,
    );
  }, 60_000);
});
