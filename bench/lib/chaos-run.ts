import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { boundLine } from "../../src/server/supervisor/log-cursor";
import type { TestStudio } from "../../test/helpers/studio";
import { waitFor } from "../../test/helpers/wait";
import { baseUrl, benchStudio, killGroups, LINES_TRAINER } from "./bench-studio";
import { sleep } from "./proc";
import { ResumingSubscriber } from "./resuming-subscriber";
import { type Rng, seededRandom } from "./rng";
import { processesRunning } from "./trainer-scan";

export interface ChaosOptions {
  cycles: number;
  seed: number;
  /** Tasks kept running at once (also the studio's concurrency). */
  parallel: number;
  log?: (msg: string) => void;
}

export interface ChaosReport {
  cycles: number;
  kills: Record<string, number>;
  /** What was in flight when the studio was killed. */
  during: Record<string, number>;
  /** Faults injected besides the studio kills: runner SIGKILLs, corrupt exit.json, long lines, database outages. */
  faults: Record<string, number>;
  tasks: number;
  linesChecked: number;
  reconnects: number;
  violations: string[];
}

type Action = "start" | "cancel" | "pause" | "resume" | "nothing";
/**
 * A fault of the world: one injected into one training task while the studio runs or is down,
 * or (PostgreSQL only) a database outage of 1-4 s while the studio runs: every backend
 * terminated and connections refused, as `pg_terminate_backend` and `allow_connections` do.
 */
type Fault = "kill-runner" | "corrupt-exit" | "long-line" | "db-outage" | "none";
const TASK_FAULTS: Fault[] = ["kill-runner", "corrupt-exit", "long-line", "none"];
/** A tqdm-style bar redrawn 4,000 times on one line (about 100 KB): stored and streamed bounded. */
const LONG_LINE = `${Array.from({ length: 4000 }, (_, i) => `\r${i + 1}/4000 [===>]`).join("")}\n`;
const ACTIVE = ["queued", "preparing", "training", "paused"];
/** A half-started launch may legitimately wait this long (the supervisor's launch timeout + slack). */
const LAUNCH_GRACE_MS = 12_000;

interface Tracked {
  id: string;
  lines: number;
  subscriber: ResumingSubscriber;
  /** Lines written into training.log besides the trainer's own. */
  injected: number;
  runnerKilled: boolean;
  exitCorrupted: boolean;
}

/**
 * Kills the studio over and over (SIGKILL and SIGTERM, at seeded random moments, also while a
 * task is starting, cancelling or pausing) while tasks run, starts it again, and checks after
 * every cycle and at the end the invariants the design promises. Returns what it found.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const rng = seededRandom(opts.seed);
  const log = opts.log ?? (() => {});
  const studio = await benchStudio({
    STUDIO_CONCURRENCY: String(opts.parallel),
    STUDIO_CANCEL_GRACE_MS: "1000",
  });
  const url = baseUrl(studio);
  const database = studio.env.DATABASE_URL
    ? new URL(studio.env.DATABASE_URL).pathname.slice(1)
    : null;
  // Connected to the database DATABASE_URL names: one cannot refuse connections to one's own.
  const admin = database
    ? postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} })
    : null;
  const faults: Fault[] = admin ? [...TASK_FAULTS, "db-outage"] : TASK_FAULTS;
  /** Refuses and ends every connection to the studio's database for `ms`, then lets them in. */
  async function outage(ms: number) {
    await admin!.unsafe(`alter database "${database}" with allow_connections false`);
    try {
      await admin!`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${database} and pid <> pg_backend_pid()`;
      await sleep(ms);
    } finally {
      await admin!.unsafe(`alter database "${database}" with allow_connections true`);
    }
  }
  const tracked = new Map<string, Tracked>();
  const report: ChaosReport = {
    cycles: 0,
    kills: {},
    during: {},
    faults: {},
    tasks: 0,
    linesChecked: 0,
    reconnects: 0,
    violations: [],
  };
  const violation = (what: string) => {
    log(`VIOLATION: ${what}`);
    report.violations.push(what);
  };

  async function createTask(): Promise<string> {
    const lines = rng.int(100, 300);
    const exitCode = rng.pick([0, 0, 3]);
    const task = await studio.client.task.create.mutate({
      name: `chaos-${tracked.size}`,
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [
        process.execPath,
        LINES_TRAINER,
        "--task-dir",
        ".",
        "--lines",
        String(lines),
        "--interval-ms",
        "20",
        "--exit-code",
        String(exitCode),
      ],
    });
    tracked.set(task.id, {
      id: task.id,
      lines,
      subscriber: new ResumingSubscriber(url, task.id),
      injected: 0,
      runnerKilled: false,
      exitCorrupted: false,
    });
    return task.id;
  }

  async function tasksNow() {
    return (await studio.client.task.list.query({ limit: 500 })).items.filter((t) =>
      tracked.has(t.id),
    );
  }

  try {
    for (let cycle = 1; cycle <= opts.cycles; cycle++) {
      const tasks = await tasksNow();
      const active = tasks.filter((t) => ACTIVE.includes(t.status));
      for (let i = active.length; i < opts.parallel - 1; i++) {
        await studio.client.task.start.mutate({ id: await createTask() });
      }
      await sleep(rng.int(200, 1500));
      const now = await tasksNow();
      const action = chooseAction(rng, now);
      const inFlight = act(studio, action, now, rng, createTask).catch(() => {});
      await sleep(rng.int(0, 120));
      const signal = rng.pick(["SIGKILL", "SIGTERM"] as const);
      const fault = rng.pick<Fault>(faults);
      const whileDown = rng.int(0, 1) === 1;
      log(`cycle ${cycle}: ${signal} during ${action}; ${fault}${whileDown ? " while down" : ""}`);
      if (fault === "db-outage") {
        await outage(rng.int(1000, 4000));
        report.faults[fault] = (report.faults[fault] ?? 0) + 1;
      }
      const victim =
        fault === "none" || fault === "db-outage" ? null : await faultTarget(studio, tracked, rng);
      if (victim && !whileDown) injectFault(studio, fault, victim);
      await studio.kill(signal);
      await inFlight;
      if (victim && whileDown) injectFault(studio, fault, victim);
      if (victim) report.faults[fault] = (report.faults[fault] ?? 0) + 1;
      report.kills[signal] = (report.kills[signal] ?? 0) + 1;
      report.during[action] = (report.during[action] ?? 0) + 1;
      await studio.start();
      await sleep(1_500);
      await checkRunning(studio, tracked, violation);
      report.cycles = cycle;
    }

    // Let everything finish: resume what is paused, then wait for every task to end.
    for (const t of await tasksNow()) {
      if (t.status === "paused") await studio.client.task.resume.mutate({ id: t.id });
    }
    await waitFor(
      "every task to finish",
      async () => (await tasksNow()).every((t) => !ACTIVE.includes(t.status)),
      120_000,
      200,
    ).catch((err) => violation(String(err)));
    await checkOutcomes(studio, tracked, violation);
    for (const t of tracked.values()) {
      const file = logLinesOf(studio, t.id);
      await waitFor(
        "the subscriber to catch up",
        () => t.subscriber.received.length >= file.length,
        10_000,
      ).catch(() => {});
      await t.subscriber.stop();
      report.reconnects += t.subscriber.reconnects;
      const got = t.subscriber.received;
      const same =
        got.length === file.length &&
        got.every((l, i) => l.offset === file[i]!.offset && l.text === file[i]!.text);
      if (!same) {
        violation(
          `task ${t.id}: subscriber saw ${got.length} lines (${new Set(got.map((l) => l.offset)).size} distinct), the log has ${file.length}`,
        );
      }
      report.linesChecked += file.length;
    }
    report.tasks = tracked.size;
    return report;
  } catch (err) {
    violation(`chaos run stopped: ${err}\n--- studio.log (tail) ---\n${studio.log().slice(-4000)}`);
    report.tasks = tracked.size;
    return report;
  } finally {
    for (const t of tracked.values()) await t.subscriber.stop();
    killGroups(
      processesRunning(LINES_TRAINER)
        .map((p) => p.pid)
        .filter((pid) => isOurs(studio, pid)),
    );
    await studio.dispose();
    await admin?.end();
  }
}

/** A task whose trainer is running now, with its runner's pid. */
async function faultTarget(studio: TestStudio, tracked: Map<string, Tracked>, rng: Rng) {
  const training = (await studio.client.task.list.query({ limit: 500 })).items.filter(
    (t) => tracked.has(t.id) && t.status === "training",
  );
  if (training.length === 0) return null;
  const id = rng.pick(training).id;
  const handle = (await studio.client.task.get.query({ id })).attempts[0]?.handle as
    | { runner?: { pid: number } }
    | undefined;
  return handle?.runner ? { task: tracked.get(id)!, runner: handle.runner.pid } : null;
}

function injectFault(studio: TestStudio, fault: Fault, victim: { task: Tracked; runner: number }) {
  const dir = join(studio.home, "tasks", victim.task.id);
  switch (fault) {
    case "kill-runner":
      try {
        process.kill(victim.runner, "SIGKILL");
        victim.task.runnerKilled = true;
      } catch {}
      return;
    case "corrupt-exit":
      // The runner replaces it with the real record when the trainer ends, unless it already has.
      writeFileSync(join(dir, "exit.json"), "CORRUPT{{{");
      victim.task.exitCorrupted = true;
      return;
    case "long-line":
      appendFileSync(join(dir, "training.log"), LONG_LINE);
      victim.task.injected++;
      return;
    case "db-outage":
    case "none":
      return;
  }
}

function isOurs(studio: TestStudio, pid: number): boolean {
  return processesRunning(LINES_TRAINER).some(
    (p) => p.pid === pid && p.cwd.startsWith(studio.home),
  );
}

function chooseAction(rng: Rng, tasks: { status: string }[]): Action {
  const possible: Action[] = ["start", "nothing"];
  if (tasks.some((t) => t.status === "training" || t.status === "paused")) possible.push("cancel");
  if (tasks.some((t) => t.status === "training")) possible.push("pause");
  if (tasks.some((t) => t.status === "paused")) possible.push("resume");
  return rng.pick(possible);
}

async function act(
  studio: TestStudio,
  action: Action,
  tasks: { id: string; status: string }[],
  rng: Rng,
  createTask: () => Promise<string>,
) {
  const pick = (statuses: string[]) =>
    rng.pick(tasks.filter((t) => statuses.includes(t.status))).id;
  switch (action) {
    case "start":
      return studio.client.task.start.mutate({ id: await createTask() });
    case "cancel":
      return studio.client.task.cancel.mutate({ id: pick(["training", "paused"]) });
    case "pause":
      return studio.client.task.pause.mutate({ id: pick(["training"]) });
    case "resume":
      return studio.client.task.resume.mutate({ id: pick(["paused"]) });
    case "nothing":
      return;
  }
}

interface LogEntry {
  offset: number;
  text: string;
}

function logLinesOf(studio: TestStudio, id: string): LogEntry[] {
  const path = join(studio.home, "tasks", id, "training.log");
  if (!existsSync(path)) return [];
  const entries: LogEntry[] = [];
  const bytes = readFileSync(path);
  // As subscribers get them: every line bounded the way the studio bounds it.
  for (let start = 0, end = bytes.indexOf(0x0a); end >= 0; end = bytes.indexOf(0x0a, start)) {
    entries.push({ offset: start, text: boundLine(bytes.subarray(start, end)) });
    start = end + 1;
  }
  return entries;
}

function exitRecordOf(studio: TestStudio, id: string) {
  const path = join(studio.home, "tasks", id, "exit.json");
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as {
      attempt: number;
      exitCode: number | null;
      signal: string | null;
    };
  } catch {
    return "unreadable" as const;
  }
}

/** While the studio is up: one trainer per task at most, and no task in a state its process contradicts. */
async function checkRunning(
  studio: TestStudio,
  tracked: Map<string, Tracked>,
  violation: (what: string) => void,
) {
  const byDir = new Map<string, number[]>();
  for (const p of processesRunning(LINES_TRAINER)) {
    byDir.set(p.cwd, [...(byDir.get(p.cwd) ?? []), p.pid]);
  }
  for (const [dir, pids] of byDir) {
    if (dir.startsWith(studio.home) && pids.length > 1) {
      violation(`${pids.length} trainers (${pids.join(", ")}) run for ${dir}`);
    }
  }
  const suspects = await contradictions(studio, tracked);
  if (suspects.length === 0) return;
  // A trainer that ended a moment ago is being finalized: judge only what persists.
  await sleep(2_500);
  for (const s of await contradictions(studio, tracked)) violation(s);
}

async function contradictions(studio: TestStudio, tracked: Map<string, Tracked>) {
  const found: string[] = [];
  for (const id of tracked.keys()) {
    const detail = await studio.client.task.get.query({ id });
    const { task } = detail;
    const attempt = detail.attempts.find((a) => a.number === task.currentAttempt);
    const trainer = (attempt?.handle as { trainer?: { pid: number } } | null)?.trainer?.pid;
    const alive =
      trainer !== undefined && processesRunning(LINES_TRAINER).some((p) => p.pid === trainer);
    if (
      task.status === "preparing" &&
      attempt &&
      Date.now() - attempt.intentAt.getTime() > LAUNCH_GRACE_MS
    ) {
      found.push(
        `task ${id} still preparing ${Math.round((Date.now() - attempt.intentAt.getTime()) / 1000)} s after its launch began`,
      );
    }
    if ((task.status === "training" || task.status === "paused") && !alive) {
      found.push(`task ${id} is ${task.status} but its trainer (pid ${trainer}) is not running`);
    }
    if (!ACTIVE.includes(task.status) && task.status !== "pending" && alive) {
      found.push(`task ${id} is ${task.status} but its trainer (pid ${trainer}) still runs`);
    }
  }
  return found;
}

/** Every ended task is in the state its trainer's recorded outcome says. */
async function checkOutcomes(
  studio: TestStudio,
  tracked: Map<string, Tracked>,
  violation: (what: string) => void,
) {
  for (const t of tracked.values()) {
    const { task } = await studio.client.task.get.query({ id: t.id });
    const exit = exitRecordOf(studio, t.id);
    if (exit === "unreadable") {
      // Corrupted after the runner's last word: the task fails, naming the file.
      if (
        !t.exitCorrupted ||
        task.status !== "failed" ||
        !/exit\.json is unreadable/.test(task.statusReason ?? "")
      ) {
        violation(
          `task ${t.id}: exit.json unreadable, task is ${task.status} (${task.statusReason})`,
        );
      }
      continue;
    }
    if (!exit && t.runnerKilled) {
      // No runner left to record an outcome: failed, and (checked while running) no trainer left.
      if (
        task.status !== "failed" ||
        !/^Training process terminated unexpectedly/.test(task.statusReason ?? "")
      ) {
        violation(`task ${t.id}: runner killed, task is ${task.status} (${task.statusReason})`);
      }
      continue;
    }
    if (!exit) {
      // A studio killed between writing the attempt and spawning its runner leaves nothing
      // running: boot reconciliation fails that launch once its time is up (never starting a
      // second copy), as does a launch abandoned for not confirming in time. Those are the
      // failures with no trainer, hence no exit.json.
      const launchNeverRan =
        task.status === "failed" &&
        !existsSync(join(studio.home, "tasks", t.id, "runner.json")) &&
        /launch was not confirmed|launch abandoned/.test(task.statusReason ?? "");
      if (launchNeverRan) continue;
      if (task.currentAttempt > 0) {
        violation(
          `task ${t.id} is ${task.status} but its attempt left no exit.json (${task.statusReason})`,
        );
      } else if (task.status !== "cancelled" && task.status !== "pending") {
        violation(`task ${t.id} never ran yet is ${task.status}`);
      }
      continue;
    }
    const expected =
      task.cancelRequestedAt !== null ? "cancelled" : exit.exitCode === 0 ? "completed" : "failed";
    if (task.status !== expected) {
      violation(
        `task ${t.id}: trainer ended with ${JSON.stringify({ exitCode: exit.exitCode, signal: exit.signal })}${task.cancelRequestedAt ? " after a cancel" : ""}, task is ${task.status} (${task.statusReason})`,
      );
    }
    const lines = logLinesOf(studio, t.id).length;
    if (exit.exitCode !== null && lines !== t.lines + t.injected) {
      violation(
        `task ${t.id}: trainer exited normally but its log has ${lines} of ${t.lines + t.injected} lines`,
      );
    }
  }
}
