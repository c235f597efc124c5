import {
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { diskVerdict } from "../../src/server/disk-space";
import { TestStudio } from "../helpers/studio";
import { mountTmpfs, unmountTmpfs } from "../helpers/tmpfs";
import { killGroups, waitFor } from "../helpers/wait";

/** Writes fill.bin in its task folder until the disk is full (see the fixture). */
const FILL_DISK = join(import.meta.dirname, "../fixtures/trainers/fill-disk.mjs");

describe("diskVerdict", () => {
  it.each([
    [0, 100, "full"],
    [99, 100, "full"],
    [100, 100, "low"],
    [399, 100, "low"],
    [400, 100, "ok"],
    [0, 0, "ok"],
  ] as const)("%d bytes free against a floor of %d: %s", (free, floor, verdict) => {
    expect(diskVerdict(free, floor)).toBe(verdict);
  });
});

const MiB = 1024 * 1024;

/**
 * A real small disk: the tasks folder of STUDIO_HOME on a 128 MiB tmpfs (as root, as in CI),
 * filled by a file until less than the floor is free. Nothing new starts or is uploaded,
 * the reason says how much is free; a queued task waits and starts by itself once space is freed.
 */
describe("a nearly full STUDIO_HOME", () => {
  let studio: TestStudio;
  const trainers: number[] = [];
  // The tasks folder on its own small disk, where trainers write (the embedded database stays
  // on the machine's disk: a database that cannot write is issue #11's next part).
  const tasksDir = () => join(studio.home, "tasks");
  const filler = () => join(tasksDir(), "filler.bin");
  const free = () => {
    const st = statfsSync(tasksDir());
    return st.bavail * st.bsize;
  };

  afterAll(async () => {
    killGroups(trainers);
    if (!studio) return;
    await studio.stop().catch(() => studio.kill());
    const unhandled = studio.unhandledRejections();
    await unmountTmpfs(tasksDir());
    await studio.dispose();
    expect(unhandled).toEqual([]);
  });

  it("refuses new work below the floor, names the free space, and recovers when space is freed", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_MIN_FREE_MB: "40",
    });
    mkdirSync(tasksDir(), { recursive: true });
    mountTmpfs(tasksDir(), 128);
    await studio.start();
    expect((await studio.client.studio.info.query()).disk).toMatchObject({
      floorBytes: 40 * MiB,
      verdict: "low",
    });

    // One task holds the only slot while another waits in the queue.
    const until = join(studio.home, "holder.until");
    const holder = await studio.fixtureTask(["--lines", "2", "--until", until], "holder");
    await studio.client.task.start.mutate({ id: holder.id });
    trainers.push((await waitFor("the holder", () => studio.processes(holder.id))).trainer);
    const queued = await studio.fixtureTask(["--lines", "2"], "queued");
    await studio.client.task.start.mutate({ id: queued.id });
    const later = await studio.fixtureTask(["--lines", "2"], "later");

    writeFileSync(filler(), Buffer.alloc(free() - 20 * MiB));
    const refused = await studio.client.task.start.mutate({ id: later.id }).then(
      () => null,
      (e: { message: string; data?: { code: string } }) => e,
    );
    expect(refused?.data?.code, String(refused?.message)).toBe("PRECONDITION_FAILED");
    expect(refused?.message).toMatch(
      new RegExp(
        `^not enough disk space: \\d+ MB free on ${tasksDir()}; the studio keeps at least 40 MB \\(STUDIO_MIN_FREE_MB\\); free some space and try again$`,
      ),
    );
    const upload = await studio.client.dataset.upload
      .mutate({
        fileName: "d.jsonl",
        contentBase64: Buffer.from('{"text":"hi"}\n').toString("base64"),
      })
      .then(
        () => null,
        (e: { message: string }) => e.message,
      );
    expect(upload).toMatch(/^not enough disk space: /);
    expect((await studio.client.studio.info.query()).disk?.verdict).toBe("full");

    // The slot frees, but the queued task waits for space and says why.
    writeFileSync(until, "");
    const waiting = await waitFor("the queued task's warning", async () => {
      const d = await studio.client.task.get.query({ id: queued.id });
      return d.events.find((e) =>
        e.message.startsWith("waiting in the queue: not enough disk space"),
      );
    });
    expect(waiting.type).toBe("warning");
    expect((await studio.client.task.get.query({ id: queued.id })).task.status).toBe("queued");

    rmSync(filler());
    await waitFor(
      "the queued task to run once space is freed",
      async () =>
        (await studio.client.task.get.query({ id: queued.id })).task.status === "completed",
      30_000,
      100,
    );
    await studio.client.task.start.mutate({ id: later.id });
    await waitFor(
      "the refused task to run now",
      async () =>
        (await studio.client.task.get.query({ id: later.id })).task.status === "completed",
      30_000,
      100,
    );
  }, 90_000);

  it("keeps the outcome of a trainer that filled the disk until it can be written, and says the disk was full", async () => {
    const fill = [process.execPath, FILL_DISK];
    const task = await studio.client.task.create.mutate({
      name: "fills the disk",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: fill,
    });
    await studio.client.task.start.mutate({ id: task.id });
    const p = await waitFor("the trainer", () => studio.processes(task.id));
    trainers.push(p.trainer);
    const fillFile = join(studio.home, "tasks", task.id, "fill.bin");
    await waitFor("the disk to fill", () => free() < MiB, 30_000, 50);
    // No room for exit.json: the runner keeps the outcome and the task goes on being followed.
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await studio.client.task.get.query({ id: task.id })).task.status).toBe("training");

    // Room for the record, still below the floor: recorded, and the reason says the disk is full.
    truncateSync(fillFile, statSync(fillFile).size - 2 * MiB);
    const failed = await waitFor("the outcome", async () => {
      const d = await studio.client.task.get.query({ id: task.id });
      return d.task.status === "failed" ? d : null;
    });
    expect(failed.task.statusReason).toMatch(
      // The runner's account (the disk when the trainer died), then the studio's (the disk now).
      new RegExp(
        `^disk full: \\d+ KB free on the task folder's disk when the trainer ended; \\d+ MB free on ${tasksDir()}; .*\\(trainer exited with code 1\\)$`,
      ),
    );
    expect(
      readdirSync(join(studio.home, "tasks", task.id)).filter((n) => n.endsWith(".tmp")),
    ).toEqual([]);
    rmSync(fillFile);
  }, 90_000);

  it("says the disk was full when the trainer died of it, though it has room again by then", async () => {
    const task = await studio.client.task.create.mutate({
      name: "fills the disk, then room",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      // Exits with code 1 and says nothing, as a trainer that could not save.
      command: [process.execPath, FILL_DISK, "--silent"],
    });
    await studio.client.task.start.mutate({ id: task.id });
    const p = await waitFor("the trainer", () => studio.processes(task.id));
    trainers.push(p.trainer);
    await waitFor("the disk to fill", () => free() < MiB, 30_000, 50);
    // All the room back before the studio reads the outcome: only the runner saw the full disk.
    await waitFor("the trainer to end", () => !existsSync(`/proc/${p.trainer}`), 30_000, 20);
    rmSync(join(studio.home, "tasks", task.id, "fill.bin"));
    const failed = await waitFor("the outcome", async () => {
      const d = await studio.client.task.get.query({ id: task.id });
      return d.task.status === "failed" ? d : null;
    });
    expect(failed.task.statusReason).toMatch(
      /^disk full: \d+ KB free on the task folder's disk when the trainer ended.*\(trainer exited with code 1\)$/,
    );
  }, 90_000);
});
