import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { mountTmpfs, unmountTmpfs } from "../helpers/tmpfs";
import { CliStudio } from "./cli-studio";

test.setTimeout(120_000);

const MiB = 1024 * 1024;

let studio: CliStudio;
const mounts: string[] = [];
test.beforeAll(async () => {
  // The home on a real 128 MiB tmpfs (as root): about 85 MB free once the embedded database is
  // in, under four floors of 24 MB, so the page warns from the start. The tasks folder on a
  // 100 MiB tmpfs of its own (no warning of its own), so that with the home full a task's files
  // can still be written and only the database cannot grow.
  studio = await CliStudio.start({ STUDIO_MIN_FREE_MB: "24" }, (home) => {
    mountTmpfs(home, 128);
    mounts.unshift(home);
    mkdirSync(join(home, "tasks"));
    mountTmpfs(join(home, "tasks"), 100);
    mounts.unshift(join(home, "tasks"));
  });
});
test.afterAll(async () => {
  if (!studio) return;
  await studio.cli("stop").catch(() => studio.kill());
  // Once the disk is freed the queued tasks launch, and their trainers (which outlive the studio
  // by design) keep the tasks disk busy: they go first, then the disks.
  for (const mount of mounts) await unmountTmpfs(mount);
  await studio.dispose();
});

function fillDisk(path: string) {
  const fd = openSync(path, "w");
  try {
    for (const size of [MiB, 4096]) {
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

test("banners: low disk, full disk, database writes failing; each clears by itself", async ({
  page,
}) => {
  // Pins the dataset while there is room: later creates write only database rows.
  await studio.client.task.create.mutate({
    name: "first",
    model: "builtin:tiny",
    dataset: "sample",
  });
  await page.goto(`${studio.url}/finetune`);

  const disk = page.getByTestId("disk-banner");
  await expect(disk).toHaveClass(/warning/);
  await expect(disk).toHaveText(
    new RegExp(`^\\d+ MB free on ${studio.home}; launches stop below 24 MB\\.$`),
  );
  await expect(page.getByTestId("database-banner")).toHaveCount(0);

  const filler = join(studio.home, "filler.bin");
  fillDisk(filler);
  expect(statfsSync(studio.home).bavail * statfsSync(studio.home).bsize).toBeLessThan(MiB);
  await expect(disk).toHaveClass(/error/);
  await expect(disk).toHaveText(
    new RegExp(`^Disk full: 0 MB free on ${studio.home}, under the 24 MB floor\\.`),
  );

  // A full table needs a new page that the home's disk cannot hold: the insert fails.
  let refused: string | null = null;
  for (let i = 0; i < 200 && !refused; i++) {
    refused = await studio.client.task.create
      .mutate({ name: `task ${i}`, model: "builtin:tiny", dataset: "sample" })
      .then(
        () => null,
        (e: Error) => e.message,
      );
  }
  expect(refused).toMatch(/^internal error \(reference [0-9a-f]{8} in the studio's log\)$/);
  const database = page.getByTestId("database-banner");
  await expect(database).toContainText(
    /^Database writes failing \(disk full\), retrying since \d{2}:\d{2}:\d{2}\./,
  );
  await expect(database).toContainText("No space left on device");

  rmSync(filler);
  await expect(database).toHaveCount(0, { timeout: 20_000 });
  await expect(disk).toHaveClass(/warning/);
});
