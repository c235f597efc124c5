import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { attempts } from "../../src/server/db/schema";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { killGroups, waitFor } from "../helpers/wait";

/**
 * The fault corpus: broken records, handles, progress events and log lines written into the
 * folders (and rows) of finished and running tasks, all in one studio home. The studio must
 * start and serve; each task hit by a fault that leaves no believable outcome ends with a reason
 * that names what was wrong; a task hit by a fault it can recover from goes on and completes; the
 * untouched tasks go on as if nothing happened. Every kind counts once in FAULT_KINDS.
 */

type Task = { id: string; trainer: number; runner: number };

/** exit.json of a task that ended while no studio ran: written over the runner's real record. */
const EXIT_FAULTS: [string, (file: string, t: Task) => void, RegExp][] = [
  ["not JSON", (f) => writeFileSync(f, "CORRUPT{{{"), /exit\.json is unreadable: not JSON/],
  ["empty file", (f) => writeFileSync(f, ""), /exit\.json is unreadable: not JSON \(0 bytes/],
  ["a JSON array", (f) => writeFileSync(f, "[]"), /exit\.json is unreadable: not a valid record/],
  ["JSON null", (f) => writeFileSync(f, "null"), /exit\.json is unreadable: not a valid record/],
  ["fields missing", (f) => writeFileSync(f, '{"attempt":1}'), /not a valid record \(exitCode/],
  [
    "a field of the wrong type",
    (f) => rewrite(f, { exitCode: "0" }),
    /not a valid record \(exitCode/,
  ],
  ["a version from the future", (f) => rewrite(f, { version: 99 }), /not a valid record \(version/],
  ["attempt 0", (f) => rewrite(f, { attempt: 0 }), /not a valid record \(attempt/],
  [
    "a date that is not one",
    (f) => rewrite(f, { endedAt: "yesterday" }),
    /\(endedAt: not a date\)/,
  ],
  [
    "1 MiB of padding",
    (f) => writeFileSync(f, `${" ".repeat(1 << 20)}{}`),
    /more than any record holds/,
  ],
  [
    "a folder",
    (f) => {
      rmSync(f);
      mkdirSync(f);
    },
    /exit\.json is unreadable: cannot be read \(EISDIR\)/,
  ],
  [
    "a link to a system file",
    (f) => {
      rmSync(f);
      symlinkSync("/etc/passwd", f);
    },
    /exit\.json is unreadable: not JSON/,
  ],
  [
    "a link to itself",
    (f) => {
      rmSync(f);
      symlinkSync(f, f);
    },
    /exit\.json is unreadable: cannot be read \(ELOOP\)/,
  ],
  [
    "binary garbage",
    (f) => writeFileSync(f, Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x7b])),
    /exit\.json is unreadable: not JSON/,
  ],
  [
    "cut in half",
    (f) => writeFileSync(f, readFileSync(f, "utf8").slice(0, 40)),
    /exit\.json is unreadable: not JSON/,
  ],
  [
    "NUL bytes",
    (f) => writeFileSync(f, '{"attempt":\u00001}'),
    /exit\.json is unreadable: not JSON/,
  ],
  [
    "other processes' pids",
    (f) => rewrite(f, { runnerPid: 1, trainerPid: 1 }),
    /exit\.json names runner pid 1 \(the attempt's is \d+\) and trainer pid 1/,
  ],
  [
    "another attempt's record",
    (f) => rewrite(f, { attempt: 7 }),
    // (a runner not yet reaped by whoever adopted it is a zombie: ended all the same)
    /^Training process terminated unexpectedly: runner (gone|exited \(zombie\)) without recording an exit/,
  ],
];

/** The stored handle of a running attempt, broken while no studio ran: runner.json proves it again. */
const HANDLE_FAULTS: [string, unknown][] = [
  ["an empty object", {}],
  ["an unknown kind", { kind: "martian" }],
  ["a negative pid", { kind: "local", runner: { pid: -5, startTime: "1" } }],
  ["an array", [1, 2, 3]],
];

/** Lines appended to a running attempt's progress.jsonl: skipped, never blocking what follows. */
const PROGRESS_FAULTS: [string, string][] = [
  [
    "a step beyond int4",
    '{"event":"progress","epoch":1,"total_epochs":1,"step":2147483648,"total_steps":1}',
  ],
  [
    "a fractional step",
    '{"event":"progress","epoch":1,"total_epochs":1,"step":1.5,"total_steps":3}',
  ],
  ["not JSON", "{{{ not json"],
  [
    "a loss that is text",
    '{"event":"progress","epoch":1,"total_epochs":1,"step":1,"total_steps":3,"loss":"abc"}',
  ],
  ["a 2 MiB line", `{"event":"progress","pad":"${"x".repeat(2 << 20)}"}`],
  ["a checkpoint path out of the folder", '{"event":"checkpoint","step":1,"path":"../../../etc"}'],
  ["an unknown event", '{"event":"teleported","step":1}'],
  ["NUL bytes", '{"event":"progress\u0000","step":1}'],
];

/** Bytes appended to a running attempt's training.log. */
const LOG_FAULTS: [string, string | Buffer][] = [
  ["a 2 MiB line", `${"y".repeat(2 << 20)}\n`],
  ["bytes that are not UTF-8", Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0x0a])],
  [
    "a \\r bar redrawn 4,000 times",
    `${Array.from({ length: 4000 }, (_, i) => `\r${i}/4000 [==>]`).join("")}\n`,
  ],
];

/** Live, while the runner runs: not believed, warned about, and the real outcome recorded after. */
const LIVE_EXIT_FAULTS: [string, (file: string, t: Task) => void][] = [
  ["corrupt exit.json", (f) => writeFileSync(f, "CORRUPT{{{")],
  [
    "forged exit.json",
    (f, t) =>
      writeFileSync(
        f,
        JSON.stringify({
          version: 1,
          attempt: 1,
          exitCode: 3,
          signal: null,
          startedAt: new Date().toISOString(),
          endedAt: new Date().toISOString(),
          trainerPid: t.trainer,
          runnerPid: t.runner,
        }),
      ),
  ],
];

/** Both the stored handle and runner.json broken: the processes cannot be identified. */
const UNIDENTIFIABLE = 1;

const FAULT_KINDS =
  EXIT_FAULTS.length +
  HANDLE_FAULTS.length +
  PROGRESS_FAULTS.length +
  LOG_FAULTS.length +
  LIVE_EXIT_FAULTS.length +
  UNIDENTIFIABLE;

function rewrite(file: string, patch: Record<string, unknown>) {
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), ...patch }));
}

// One database, PostgreSQL when there is one: the faults live in files and handles, which both
// databases store alike (record-faults.test.ts runs the issue's reproductions on both), and a
// corpus run costs a minute.
const CORPUS_DATABASE = testDatabaseKinds().at(-1)!;

describe.each([CORPUS_DATABASE])("the fault corpus (%s)", (kind) => {
  let studio: TestStudio;
  const trainers: number[] = [];

  afterAll(async () => {
    killGroups(trainers);
    await studio?.dispose();
  });

  it(`starts, serves, and confines each of ${FAULT_KINDS} kinds of fault to its task`, async () => {
    expect(FAULT_KINDS).toBeGreaterThanOrEqual(30);
    studio = await TestStudio.create(kind, {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "64",
    });
    await studio.start();
    const finish = join(studio.home, "finish.until");
    const later = join(studio.home, "later.until");
    const dirOf = (id: string) => join(studio.home, "tasks", id);
    // All created and started at once (the scheduler launches them one after another), then
    // waited for together: far cheaper than one round trip per task.
    const start = async (until: string, name: string) => {
      const task = await studio.fixtureTask(
        ["--lines", "3", "--interval-ms", "30", "--until", until],
        name,
      );
      await studio.client.task.start.mutate({ id: task.id });
      return task.id;
    };
    const running = async (ids: string[]): Promise<Task[]> => {
      const tasks: Task[] = [];
      for (const id of ids) {
        const p = await waitFor("the trainer to start", () => studio.processes(id), 120_000, 100);
        trainers.push(p.trainer);
        tasks.push({ id, ...p });
      }
      return tasks;
    };

    const exitIds = [];
    for (const [name] of EXIT_FAULTS) exitIds.push(await start(finish, `exit: ${name}`));
    const handleIds = [];
    for (const [name] of HANDLE_FAULTS) handleIds.push(await start(later, `handle: ${name}`));
    const lostId = await start(later, "handle and runner.json");
    const liveIds = [];
    for (const [name] of [...PROGRESS_FAULTS, ...LOG_FAULTS, ...LIVE_EXIT_FAULTS]) {
      liveIds.push(await start(later, `live: ${name}`));
    }
    const untouchedIds = [await start(later, "untouched 1"), await start(later, "untouched 2")];
    const exitTasks = await running(exitIds);
    const handleTasks = await running(handleIds);
    const [lost] = (await running([lostId])) as [Task];
    const liveTasks = await running(liveIds);
    const untouched = await running(untouchedIds);

    // The studio goes down; the first group ends meanwhile and its records are broken.
    await studio.stop();
    writeFileSync(finish, "");
    for (const t of exitTasks) {
      await waitFor("exit.json", () => existsSync(join(dirOf(t.id), "exit.json")), 30_000);
    }
    for (const [i, [, inject]] of EXIT_FAULTS.entries()) {
      inject(join(dirOf(exitTasks[i]!.id), "exit.json"), exitTasks[i]!);
    }
    await studio.withDatabase(async (db) => {
      for (const [i, [, handle]] of HANDLE_FAULTS.entries()) {
        await db
          .update(attempts)
          .set({ handle: handle as Record<string, unknown> })
          .where(eq(attempts.taskId, handleTasks[i]!.id));
      }
      await db.update(attempts).set({ handle: {} }).where(eq(attempts.taskId, lost.id));
    });
    writeFileSync(join(dirOf(lost.id), "runner.json"), "garbage");

    await studio.start();
    expect(studio.log()).toMatch(/boot reconciliation: /);
    const get = (id: string) => studio.client.task.get.query({ id });
    for (const [i, [name, , reason]] of EXIT_FAULTS.entries()) {
      const { task } = await get(exitTasks[i]!.id);
      expect([name, task.status]).toEqual([name, "failed"]);
      expect([name, task.statusReason]).toEqual([name, expect.stringMatching(reason)]);
    }
    for (const t of handleTasks) expect((await get(t.id)).task.status).toBe("training");
    const unidentified = await get(lost.id);
    expect(unidentified.task.status).toBe("failed");
    expect(unidentified.task.statusReason).toMatch(
      /^could not launch: the attempt's processes cannot be identified \(stored handle: .*; runner\.json is unreadable: not JSON/,
    );

    // Live faults land in the running tasks' files.
    for (const [i, [, line]] of PROGRESS_FAULTS.entries()) {
      appendFileSync(join(dirOf(liveTasks[i]!.id), "progress.jsonl"), `${line}\n`);
    }
    for (const [i, [, bytes]] of LOG_FAULTS.entries()) {
      const t = liveTasks[PROGRESS_FAULTS.length + i]!;
      appendFileSync(join(dirOf(t.id), "training.log"), bytes);
    }
    const liveExit = liveTasks.slice(PROGRESS_FAULTS.length + LOG_FAULTS.length);
    for (const [i, [, inject]] of LIVE_EXIT_FAULTS.entries()) {
      inject(join(dirOf(liveExit[i]!.id), "exit.json"), liveExit[i]!);
    }
    for (const t of liveExit) {
      await waitFor(
        "the warning",
        async () => (await get(t.id)).events.some((e) => e.type === "warning"),
        30_000,
      );
      expect((await get(t.id)).task.status).toBe("training");
    }
    // The studio answers throughout.
    expect((await studio.client.task.list.query({ limit: 100 })).items.length).toBe(
      exitTasks.length + handleTasks.length + 1 + liveTasks.length + untouched.length,
    );

    writeFileSync(later, "");
    for (const t of [...handleTasks, ...liveTasks, ...untouched]) {
      const done = await waitFor(
        `task ${t.id} to complete`,
        async () => {
          const d = await get(t.id);
          return d.task.status === "completed" ? d : null;
        },
        60_000,
      );
      // Progress kept moving past every bad event: it ends at the trainer's last line.
      const last = studio
        .logOf(t.id)
        .map((l) => /^line (\d+) of 3$/.exec(l)?.[1])
        .filter(Boolean)
        .at(-1);
      expect((done.task.progress as { step: number }).step).toBe(Number(last));
    }
  }, 300_000);
});
