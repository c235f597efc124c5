import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { isAlive, killGroups, waitFor } from "../helpers/wait";

/**
 * Trainers outlive upgrades. The release before records were versioned (the commit below) is
 * built from git history into a folder of its own, started on a studio home, and given two
 * trainers; then this release's studio starts on the same home and database (running its newer
 * migrations) and must adopt both: one completes with every line once, one is cancelled, its old
 * runner knowing nothing of cancel.json.
 */
const PREVIOUS_RELEASE = "eeb22ebd2431a7089528f346f303ac1d70f93caf";
const ROOT = join(import.meta.dirname, "../..");

function buildPreviousRelease(): string {
  const dir = mkdtempSync(join(tmpdir(), "studio-previous-"));
  try {
    execFileSync("git", ["cat-file", "-e", `${PREVIOUS_RELEASE}^{commit}`], { cwd: ROOT });
  } catch {
    throw new Error(
      `the upgrade test needs the previous release (${PREVIOUS_RELEASE}) in git history: use a full clone`,
    );
  }
  const archive = execFileSync(
    "git",
    [
      "archive",
      PREVIOUS_RELEASE,
      "src",
      "scripts",
      "drizzle",
      "data",
      "package.json",
      "next.config.ts",
      "tsconfig.json",
    ],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
  );
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  // Same dependencies, and the page as built now (the old server only serves it).
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  symlinkSync(join(ROOT, ".next"), join(dir, ".next"));
  // Its built-in trainer imports tfjs, which this release no longer installs, so that one bundle
  // fails to build; the upgrade is of the studio, runner and CLI, which must all build.
  try {
    execFileSync(process.execPath, ["scripts/build-node.mjs"], { cwd: dir, stdio: "ignore" });
  } catch {}
  for (const program of ["server.js", "cli.js", "runner.js"]) {
    if (!existsSync(join(dir, "dist", program))) {
      throw new Error(`the previous release's ${program} did not build`);
    }
  }
  return dir;
}

// One database, PostgreSQL when there is one: the upgrade is of records and migrations, and
// building the previous release costs half a minute per run.
describe.each([testDatabaseKinds().at(-1)!])(
  "an upgrade adopts the previous release's trainers (%s)",
  (kind) => {
    let previous: string;
    let studio: TestStudio;
    const trainers: number[] = [];

    beforeAll(() => {
      previous = buildPreviousRelease();
    });

    afterAll(async () => {
      killGroups(trainers);
      await studio?.dispose();
      if (previous) rmSync(previous, { recursive: true, force: true });
    });

    const previousCli = (...args: string[]) =>
      execFileSync(process.execPath, [join(previous, "dist/cli.js"), ...args], {
        env: studio.env as NodeJS.ProcessEnv,
        encoding: "utf8",
      });

    it("re-attaches, completes and cancels trainers started by the previous release", async () => {
      studio = await TestStudio.create(kind, {
        STUDIO_ALLOW_COMMAND_TRAINER: "1",
        STUDIO_CONCURRENCY: "2",
        STUDIO_CANCEL_GRACE_MS: "1000",
      });
      previousCli("start");
      const until = join(studio.home, "upgrade.until");
      const long = await studio.fixtureTask([
        "--lines",
        "200",
        "--interval-ms",
        "20",
        "--until",
        until,
      ]);
      const stubborn = await studio.fixtureTask(["--lines", "1", "--ignore-sigterm", "--hang"]);
      for (const t of [long, stubborn]) {
        await studio.client.task.start.mutate({ id: t.id });
        const p = await waitFor("the trainer to start", () => studio.processes(t.id));
        trainers.push(p.trainer);
      }
      await waitFor(
        "output",
        () => studio.logOf(long.id).length > 20 && studio.logOf(stubborn.id).length > 0,
      );
      // The previous runner's record carries no version: that is the format being upgraded from.
      const record = JSON.parse(
        readFileSync(join(studio.home, "tasks", long.id, "runner.json"), "utf8"),
      );
      expect(record.version).toBeUndefined();
      previousCli("stop");

      await studio.start();
      const detail = await studio.client.task.get.query({ id: long.id });
      expect(detail.task.status).toBe("training");
      expect(detail.events.at(-1)?.type).toBe("recovered");
      writeFileSync(until, "");
      await waitFor(
        "the adopted task to complete",
        async () =>
          (await studio.client.task.get.query({ id: long.id })).task.status === "completed",
        60_000,
      );
      const lines = studio.logOf(long.id);
      expect(new Set(lines).size).toBe(lines.length);
      expect(lines[0]).toBe("line 1 of 200");

      // A version-0 runner does not read cancel.json: the studio signals and keeps the grace.
      await studio.client.task.cancel.mutate({ id: stubborn.id });
      const cancelled = await waitFor(
        "the stubborn trainer to be cancelled",
        async () => {
          const d = await studio.client.task.get.query({ id: stubborn.id });
          return d.task.status === "cancelled" ? d : null;
        },
        30_000,
      );
      expect(cancelled.attempts[0]).toMatchObject({ signal: "SIGKILL" });
      expect(isAlive(trainers[1]!)).toBe(false);
      // Building the previous release and starting two studios takes a while on a busy machine.
    }, 120_000);
  },
);
