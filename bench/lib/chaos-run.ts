import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { boundLine } from "../../src/server/logs/log-cursor";
import type { TestStudio } from "../../test/helpers/studio";
import { mountTmpfs, unmountTmpfs } from "../../test/helpers/tmpfs";
import { waitFor } from "../../test/helpers/wait";
import { BUILTIN_TRAINER, baseUrl, benchStudio, killGroups, LINES_TRAINER } from "./bench-studio";
import { sleep } from "./proc";
import { ResumingSubscriber } from "./resuming-subscriber";
import { type Rng, seededRandom } from "./rng";
import { processesRunning } from "./trainer-scan";

export interface ChaosOptions {
  cycles: number;
  seed: number;
  /** Tasks kept running at once (also the studio's concurrency). */
  parallel: number;
  /**
   * Put STUDIO_HOME (database, tasks, logs) on a small tmpfs of its own and fill it now and then
   * (needs root, to mount).
   */
  diskFull?: boolean;
  log?: (msg: string) => void;
}

export interface ChaosReport {
  cycles: number;
  kills: Record<string, number>;
  /** What was in flight when the studio was killed. */
  during: Record<string, number>;
  /**
   * Faults injected besides the studio kills: runner SIGKILLs, corrupt exit.json, long lines,
   * database outages, full disks.
   */
  faults: Record<string, number>;
  tasks: number;
  linesChecked: number;
  reconnects: number;
  violations: string[];
}

type Action = "start" | "cancel" | "pause" | "resume" | "nothing";
/**
 * A fault of the world: one injected into one training task while the studio runs or is down;
 * (PostgreSQL only) a database outage of 1-4 s while the studio runs: every backend terminated
 * and connections refused, as `pg_terminate_backend` and `allow_connections` do; or (with
 * `diskFull`) STUDIO_HOME's disk full for 1-4 s while the studio runs, as a trainer or another
 * program filling it would leave it.
 */
type Fault = "kill-runner" | "corrupt-exit" | "long-line" | "db-outage" | "disk-full" | "none";
const TASK_FAULTS: Fault[] = ["kill-runner", "corrupt-exit", "long-line", "none"];
/** A tqdm-style bar redrawn 4,000 times on one line (about 100 KB): stored and streamed bounded. */
const LONG_LINE = `${Array.from({ length: 4000 }, (_, i) => `\r${i + 1}/4000 [===>]`).join("")}\n`;
const ACTIVE = ["queued", "preparing", "training", "paused"];
/** A half-started launch may legitimately wait this long (the supervisor's launch timeout + slack). */
const LAUNCH_GRACE_MS = 12_000;
/** Room for the embedded database, the tasks and their logs, small enough to fill in a blink. */
const DISK_MB = 256;
/**
 * The studio's free-space floor on that disk (its default, 100 MB, is for real disks): launches
 * are refused below it, and a long run's database and logs must not reach it on their own.
 */
const DISK_FLOOR_MB = 32;
/** How long the studio may take to answer while its disk is full. */
const ANSWER_WITHIN_MS = 5_000;
/** Every fifth task (and the first) trains with the shipped built-in trainer. */
const BUILTIN_EVERY = 5;
/** The programs the chaos run's tasks train with. */
const TRAINERS = [LINES_TRAINER, BUILTIN_TRAINER];

interface Tracked {
  id: string;
  /** Lines its trainer prints when nothing goes wrong (null: the built-in trainer decides). */
  lines: number | null;
  /** It was not over yet while the disk was full: lines it printed meanwhile had no room. */
  sawFullDisk: boolean;
  subscriber: ResumingSubscriber;
  /** Lines written into training.log besides the trainer's own. */
  injected: number;
  runnerKilled: boolean;
  exitCorrupted: boolean;
  /**
   * The runner's record as it was when the fault overwrote it, if it had already written one
   * (the trainer ended between the pick and the fault): a studio that had read it first keeps
   * that outcome.
   */
  exitBeforeCorruption: { exitCode: number | null } | null;
}

/**
 * Kills the studio over and over (SIGKILL and SIGTERM, at seeded random moments, also while a
 * task is starting, cancelling or pausing) while tasks run, starts it again, and checks after
 * every cycle and at the end the invariants the design promises. Returns what it found.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const rng = seededRandom(opts.seed);
  const log = opts.log ?? (() => {});
  const studio = await benchStudio(
    {
      STUDIO_CONCURRENCY: String(opts.parallel),
      STUDIO_CANCEL_GRACE_MS: "1000",
      ...(opts.diskFull ? { STUDIO_MIN_FREE_MB: String(DISK_FLOOR_MB) } : {}),
    },
    { beforeStart: opts.diskFull ? (home) => mountTmpfs(home, DISK_MB) : undefined },
  );
  const url = baseUrl(studio);
  const database = studio.env.DATABASE_URL
    ? new URL(studio.env.DATABASE_URL).pathname.slice(1)
    : null;
  // Connected to the database DATABASE_URL names: one cannot refuse connections to one's own.
  const admin = database
    ? postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} })
    : null;
  const faults: Fault[] = [
    ...TASK_FAULTS,
    ...(admin ? (["db-outage"] as const) : []),
    ...(opts.diskFull ? (["disk-full"] as const) : []),
  ];
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
  /**
   * Fills STUDIO_HOME's disk for `ms` while checking the studio still answers, then frees it.
   * Every task not yet over saw it.
   */
  async function diskFullEpisode(ms: number) {
    for (const t of tracked.values()) {
      const { task } = await studio.client.task.get.query({ id: t.id });
      if (ACTIVE.includes(task.status)) t.sawFullDisk = true;
    }
    const filler = join(studio.home, "filler.bin");
    fillDisk(filler);
    try {
      for (const until = Date.now() + ms; Date.now() < until; ) {
        await answersWithin(studio, ANSWER_WITHIN_MS).catch((err) =>
          violation(
            `with a full disk: ${err}\n--- studio.log (tail) ---\n${studio.log().slice(-3000)}`,
          ),
        );
        await sleep(250);
      }
    } finally {
      rmSync(filler, { force: true });
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

  let builtinDataset: string | null = null;
  async function createTask(): Promise<string> {
    if (tracked.size % BUILTIN_EVERY === 0) return createBuiltinTask();
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
    track(task.id, lines);
    return task.id;
  }

  /** A short run of the shipped built-in trainer on 40 rows of the shipped sample. */
  async function createBuiltinTask(): Promise<string> {
    if (!builtinDataset) {
      const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
        .split("\n")
        .slice(0, 40)
        .join("\n");
      builtinDataset = (
        await studio.client.dataset.upload.mutate({
          fileName: "chaos.jsonl",
          contentBase64: Buffer.from(rows).toString("base64"),
        })
      ).id;
    }
    const task = await studio.client.task.create.mutate({
      name: `chaos-${tracked.size}-builtin`,
      model: "builtin:tiny",
      dataset: builtinDataset,
      hyperparameters: {
        epochs: rng.int(3, 6),
        batchSize: 4,
        maxLength: 32,
        loraRank: 4,
        loggingSteps: 1,
        saveSteps: 9,
      },
    });
    track(task.id, null);
    return task.id;
  }

  function track(id: string, lines: number | null) {
    tracked.set(id, {
      id,
      lines,
      sawFullDisk: false,
      subscriber: new ResumingSubscriber(url, id),
      injected: 0,
      runnerKilled: false,
      exitCorrupted: false,
      exitBeforeCorruption: null,
    });
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
      const taskFault = TASK_FAULTS.includes(fault) && fault !== "none";
      log(
        `cycle ${cycle}: ${signal} during ${action}; ${fault}${taskFault && whileDown ? " while down" : ""}`,
      );
      if (fault === "db-outage" || fault === "disk-full") {
        await (fault === "db-outage" ? outage : diskFullEpisode)(rng.int(1000, 4000));
        report.faults[fault] = (report.faults[fault] ?? 0) + 1;
      }
      const victim =
        fault === "none" || fault === "db-outage" || fault === "disk-full"
          ? null
          : await faultTarget(studio, tracked, rng);
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
        const seen = new Set(got.map((l) => l.offset));
        const missing = file.filter((l) => !seen.has(l.offset)).map((l) => l.offset);
        violation(
          `task ${t.id}: subscriber saw ${got.length} lines (${seen.size} distinct), the log has ${file.length}; missing offsets ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", …" : ""} (the log's last: ${file.at(-1)?.offset}); ${t.subscriber.reconnects} reconnects`,
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
    killGroups(ourTrainers(studio).map((p) => p.pid));
    if (opts.diskFull) {
      // The studio's log lies on the small disk: read it before the disk goes.
      await studio.stop().catch(() => studio.kill());
      for (const line of studio.unhandledRejections()) violation(`unhandled rejection: ${line}`);
      await unmountTmpfs(studio.home);
    }
    await studio.dispose();
    await admin?.end();
  }
}

/** Takes every byte left on the disk that holds `file`. */
function fillDisk(file: string) {
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(file, "w");
  try {
    for (let left = statfsSync(file).bavail * statfsSync(file).bsize; left > 0; ) {
      left -= writeSync(fd, chunk, 0, Math.min(chunk.length, left));
    }
    for (;;) writeSync(fd, chunk, 0, 4096);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
}

/** The page, the studio's condition and the task list all answer within `ms`. */
async function answersWithin(studio: TestStudio, ms: number) {
  const within = <T>(what: string, request: Promise<T>) =>
    Promise.race([
      request,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms).unref(),
      ),
    ]);
  const page = await within("/login", fetch(`${baseUrl(studio)}/login`));
  if (page.status !== 200) throw new Error(`/login answered ${page.status}`);
  await within("studio.info", studio.client.studio.info.query());
  // Reading may fail while the database has no room, but it must answer.
  await within(
    "task.list",
    studio.client.task.list.query({ limit: 10 }).catch(() => {}),
  );
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
      try {
        victim.task.exitBeforeCorruption = JSON.parse(readFileSync(join(dir, "exit.json"), "utf8"));
      } catch {}
      writeFileSync(join(dir, "exit.json"), "CORRUPT{{{");
      victim.task.exitCorrupted = true;
      return;
    case "long-line":
      appendFileSync(join(dir, "training.log"), LONG_LINE);
      victim.task.injected++;
      return;
    case "db-outage":
    case "disk-full":
    case "none":
      return;
  }
}

/** The trainers of this run's tasks that are running now. */
function ourTrainers(studio: TestStudio) {
  return TRAINERS.flatMap((script) => processesRunning(script)).filter((p) =>
    p.cwd.startsWith(studio.home),
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
  for (const p of ourTrainers(studio)) {
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
    const alive = trainer !== undefined && ourTrainers(studio).some((p) => p.pid === trainer);
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
      // Corrupted after the runner's last word: the task fails, naming the file, unless the
      // studio had read the real record before the fault overwrote it.
      const readFirst =
        t.exitBeforeCorruption !== null &&
        task.status ===
          (task.cancelRequestedAt !== null
            ? "cancelled"
            : t.exitBeforeCorruption.exitCode === 0
              ? "completed"
              : "failed");
      const namesFile =
        task.status === "failed" && /exit\.json is unreadable/.test(task.statusReason ?? "");
      if (!t.exitCorrupted || !(namesFile || readFirst)) {
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
    if (task.status === "completed" && t.lines === null) {
      for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
        if (!existsSync(join(studio.home, "tasks", t.id, file))) {
          violation(`task ${t.id}: the built-in trainer completed without ${file}`);
        }
      }
    }
    // A full disk had no room for what a trainer printed meanwhile: those lines are not in the
    // log for anyone to lose (every line that is must still reach every subscriber).
    if (t.lines === null || t.sawFullDisk) continue;
    const lines = logLinesOf(studio, t.id).length;
    if (exit.exitCode !== null && lines !== t.lines + t.injected) {
      violation(
        `task ${t.id}: trainer exited normally but its log has ${lines} of ${t.lines + t.injected} lines`,
      );
    }
  }
}
