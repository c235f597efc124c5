import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asc, eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ExitRecord, RunnerRecord } from "../../src/runner/records";
import type { Database } from "../../src/server/db/client";
import { attempts, taskEvents, tasks } from "../../src/server/db/schema";
import { rebuildFromFolders } from "../../src/server/recovery/rebuild";
import { failureLines } from "../../src/server/recovery/rebuild-report";
import { type TaskRecord, writeTaskRecord } from "../../src/server/tasks/task-record";
import { hyperparametersSchema, type TaskConfig } from "../../src/trainers/protocol";
import { createTestDatabase, type TestDatabase, testDatabaseKinds } from "../helpers/databases";

const hyperparameters = hyperparametersSchema.parse({});

function record(id: string, name: string): TaskRecord {
  return {
    version: 1,
    id,
    name,
    model: "fixture",
    trainer: "command",
    mode: "lora",
    dataset: { path: "/data/pinned/x.jsonl", format: "alpaca" },
    hyperparameters,
    command: ["/bin/true"],
    gpusRequested: 0,
    limits: {},
    evaluationSet: null,
    createdAt: "2030-01-01T00:00:00.000Z",
  };
}

function config(dir: string, id: string): TaskConfig {
  return {
    taskId: id,
    attempt: 1,
    trainer: "command",
    model: "fixture",
    mode: "lora",
    dataset: { path: "/data/pinned/x.jsonl", format: "alpaca" },
    taskDir: dir,
    hyperparameters,
    resumeFrom: null,
    gpus: [],
    command: ["/bin/true"],
  };
}

/** Every file under `dir` with its bytes and modification time, to prove nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        out[path] = `${statSync(path).mtimeMs}:${readFileSync(path, "base64")}`;
      } else out[path] = entry.isSymbolicLink() ? "link" : "other";
    }
  };
  walk(dir);
  return out;
}

// One database, PostgreSQL when there is one (opening a fresh PGlite costs seconds): the
// studio-level tests (./database-lost.test.ts) run the rebuild on both.
describe.each([testDatabaseKinds().at(-1)!])("rebuild from the task folders (%s)", (kind) => {
  let home: string;
  let tasksDir: string;
  let testDb: TestDatabase;
  let database: Database;

  // One database for the file (opening PGlite takes seconds); each test empties it after itself.
  beforeAll(async () => {
    testDb = await createTestDatabase(kind);
    database = await testDb.open();
  });

  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "studio-rebuild-"));
    tasksDir = join(home, "tasks");
    mkdirSync(tasksDir);
  });

  afterEach(async () => {
    await database.db.delete(tasks);
    rmSync(home, { recursive: true, force: true });
  });

  /** A folder as the studio leaves it after one attempt that ended. */
  function endedTask(id: string, name: string) {
    const dir = join(tasksDir, id);
    writeTaskRecord(dir, record(id, name));
    writeFileSync(join(dir, "config.json"), JSON.stringify(config(dir, id)));
    const runner: RunnerRecord = {
      version: 1,
      attempt: 1,
      bootId: "b",
      runner: { pid: 10, startTime: "1" },
      trainer: { pid: 11, startTime: "2" },
      startedAt: "2030-01-01T00:01:00.000Z",
    };
    const exit: ExitRecord = {
      version: 1,
      attempt: 1,
      exitCode: 0,
      signal: null,
      startedAt: runner.startedAt,
      endedAt: "2030-01-01T00:02:00.000Z",
      trainerPid: 11,
      runnerPid: 10,
    };
    writeFileSync(join(dir, "runner.json"), JSON.stringify(runner));
    writeFileSync(join(dir, "exit.json"), JSON.stringify(exit));
    writeFileSync(join(dir, "training.log"), "line 1\nline 2\n");
  }

  it("rebuilds lost tasks once, never touches known ones, and names every folder it cannot use", async () => {
    const { db } = database;
    endedTask("tended", "ended");
    writeTaskRecord(join(tasksDir, "tpending"), record("tpending", "pending one"));
    // A folder from before task.json: rebuilt from its config.json.
    endedTask("tlegacy", "legacy");
    rmSync(join(tasksDir, "tlegacy", "task.json"));
    // A task the database has: its row and folder must stay exactly as they are.
    endedTask("tknown", "known");
    await db.insert(tasks).values({
      id: "tknown",
      name: "the database's own name",
      model: "m",
      trainer: "builtin",
      datasetPath: "/elsewhere",
      datasetFormat: "text",
      hyperparameters,
      status: "failed",
      statusReason: "as the database says",
    });
    const [knownBefore] = await db.select().from(tasks).where(eq(tasks.id, "tknown"));

    // Folders that give no task, each for its own reason.
    const elsewhere = mkdtempSync(join(tmpdir(), "studio-elsewhere-"));
    writeTaskRecord(elsewhere, record("tlinked", "behind a link"));
    symlinkSync(elsewhere, join(tasksDir, "tlinked"));
    mkdirSync(join(tasksDir, "tsecret"));
    symlinkSync("/etc/passwd", join(tasksDir, "tsecret", "config.json"));
    mkdirSync(join(tasksDir, "tfifo"));
    execFileSync("mkfifo", [join(tasksDir, "tfifo", "task.json")]);
    mkdirSync(join(tasksDir, "thuge"));
    writeFileSync(join(tasksDir, "thuge", "task.json"), Buffer.alloc(3 * 1024 * 1024, 32));
    mkdirSync(join(tasksDir, "tempty"));
    writeTaskRecord(join(tasksDir, "Not-A-Task"), record("Not-A-Task", "x"));
    writeFileSync(join(tasksDir, "stray.txt"), "not a folder");
    mkdirSync(join(tasksDir, ".hidden"));
    const before = snapshot(tasksDir);

    const first = await rebuildFromFolders(db, home, { host: "h" });
    expect(first.rebuilt.map((t) => [t.taskId, t.name, t.status, t.attempt])).toEqual([
      ["tended", "ended", "training", 1],
      ["tlegacy", "task tlegacy", "training", 1],
      ["tpending", "pending one", "pending", null],
    ]);
    expect(first).toMatchObject({ folders: 11, known: 1 });
    expect(failureLines(first)).toEqual([
      "could not rebuild tasks/Not-A-Task: not a task folder (a task id is 1 to 64 lowercase letters and digits)",
      "could not rebuild tasks/stray.txt: not a folder",
      "could not rebuild tasks/tempty: nothing in it says what the task was (task.json is missing; config.json is missing)",
      "could not rebuild tasks/tfifo: nothing in it says what the task was (task.json: not a regular file; config.json is missing)",
      "could not rebuild tasks/thuge: nothing in it says what the task was (task.json: 3145728 bytes, more than any such file holds; config.json is missing)",
      "could not rebuild tasks/tlinked: is a symbolic link; links are not followed",
      "could not rebuild tasks/tsecret: nothing in it says what the task was (task.json is missing; config.json: a symbolic link (or behind one); links are not followed)",
    ]);

    const [known] = await db.select().from(tasks).where(eq(tasks.id, "tknown"));
    expect(known).toEqual(knownBefore);
    expect(await db.select().from(attempts).where(eq(attempts.taskId, "tknown"))).toEqual([]);
    const [ended] = await db.select().from(tasks).where(eq(tasks.id, "tended"));
    expect(ended).toMatchObject({
      name: "ended",
      status: "training",
      currentAttempt: 1,
      folder: join(tasksDir, "tended"),
    });
    const [attempt] = await db.select().from(attempts).where(eq(attempts.taskId, "tended"));
    expect(attempt).toMatchObject({
      number: 1,
      handle: null,
      logCursor: null,
      progressCursor: null,
      endedAt: null,
      host: "h",
    });
    const events = await db
      .select()
      .from(taskEvents)
      .where(eq(taskEvents.taskId, "tended"))
      .orderBy(asc(taskEvents.id));
    expect(events.map((e) => e.type)).toEqual(["rebuilt"]);
    expect(events[0]!.message).toContain("attempt 1 (config.json, runner.json, exit.json)");

    // Running it again inserts nothing and reports the same folders.
    const second = await rebuildFromFolders(db, home, { host: "h" });
    expect(second.rebuilt).toEqual([]);
    expect(second.known).toBe(4);
    expect(second.failed).toEqual(first.failed);
    expect(await db.select().from(taskEvents)).toHaveLength(3);
    // Nothing in any folder was written, moved or removed.
    expect(snapshot(tasksDir)).toEqual(before);
    rmSync(elsewhere, { recursive: true, force: true });
  });

  it("inserts each task once when two rebuilds run at the same time", async () => {
    for (let i = 0; i < 20; i++) endedTask(`tconcurrent${i}`, `concurrent ${i}`);
    const [a, b] = await Promise.all([
      rebuildFromFolders(database.db, home),
      rebuildFromFolders(database.db, home),
    ]);
    expect(a.rebuilt.length + b.rebuilt.length).toBe(20);
    expect(a.known + b.known).toBe(20);
    expect(await database.db.select().from(tasks)).toHaveLength(20);
    expect(await database.db.select().from(attempts)).toHaveLength(20);
    expect(await database.db.select().from(taskEvents)).toHaveLength(20);
  });

  it("keeps a task the database refuses to itself: the others of its batch are inserted", async () => {
    for (let i = 0; i < 5; i++) endedTask(`tbatch${i}`, `batch ${i}`);
    endedTask("trefused", "refused");
    await database.db.execute(sql`
      create function refuse_one() returns trigger language plpgsql as $$
      begin
        if new.id = 'trefused' then raise exception 'refused by the test'; end if;
        return new;
      end $$`);
    await database.db.execute(
      sql`create trigger refuse_one before insert on tasks for each row execute function refuse_one()`,
    );
    try {
      const report = await rebuildFromFolders(database.db, home);
      expect(report.rebuilt.map((t) => t.taskId)).toEqual([0, 1, 2, 3, 4].map((i) => `tbatch${i}`));
      expect(failureLines(report)).toEqual([
        "could not rebuild tasks/trefused: the database did not take it (refused by the test)",
      ]);
      expect(await database.db.select().from(attempts)).toHaveLength(5);
      expect(await database.db.select().from(taskEvents)).toHaveLength(5);
    } finally {
      await database.db.execute(sql`drop trigger refuse_one on tasks`);
      await database.db.execute(sql`drop function refuse_one`);
    }
  });

  it("finds nothing to do in a home without a tasks folder", async () => {
    rmSync(tasksDir, { recursive: true });
    const report = await rebuildFromFolders(database.db, home);
    expect(report).toMatchObject({ folders: 0, known: 0, rebuilt: [], failed: [] });
  });
});
