import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { acquireHomeLock } from "./platform/home-lock";
import { readIdentity } from "./platform/identity";
import { PACKAGE_ROOT } from "./platform/package-root";
import { SessionStore } from "./server/auth";
import { DatasetStore } from "./server/datasets/store";
import { openDatabase } from "./server/db/client";
import { openFailureReason } from "./server/db/open-failure";
import { loadEnv } from "./server/env";
import { StudioBus } from "./server/events/bus";
import { HfPeftReadiness } from "./server/hf-peft-readiness";
import { studioPaths } from "./server/home";
import { createStudioHttp } from "./server/http/handler";
import { createPageServer } from "./server/http/page-server";
import { PlaygroundSessions } from "./server/playground/playground-sessions";
import type { StudioServices } from "./server/services";
import { Supervision } from "./server/supervision";
import { executorFromEnv } from "./server/supervisor/executor-from-env";
import { Supervisor } from "./server/supervisor/supervisor";

const log = (msg: string) => console.log(`${new Date().toISOString()} ${msg}`);

async function main() {
  const env = loadEnv();
  const paths = studioPaths(env.STUDIO_HOME);
  mkdirSync(paths.tasks, { recursive: true });
  const url = `http://${env.HOST.includes(":") ? `[${env.HOST}]` : env.HOST}:${env.PORT}`;
  const releaseLock = await acquireHomeLock(paths.lock, url);
  const database = await openDatabase({
    databaseUrl: env.DATABASE_URL,
    pgliteDir: paths.pglite,
    log,
  }).catch(async (err) => {
    const where = env.DATABASE_URL
      ? "the PostgreSQL database"
      : `the embedded database in ${paths.pglite}`;
    const reason = await openFailureReason(err, env.DATABASE_URL ? null : paths.pglite);
    throw new Error(`cannot open ${where}: ${reason}`);
  });
  const version = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version;
  const bus = new StudioBus();
  const datasets = new DatasetStore(paths.datasets, env.STUDIO_DATASET_ROOTS);
  const hfPeft = new HfPeftReadiness(env.STUDIO_PYTHON, env.STUDIO_HOME);
  const playground = new PlaygroundSessions({
    idleMs: env.STUDIO_PLAYGROUND_IDLE_SECONDS * 1000,
    python: () => hfPeft.interpreter().path,
    baseEnv: process.env,
  });
  const self = readIdentity(process.pid);
  if (!self) throw new Error("cannot read this process's identity from /proc");
  const executor = executorFromEnv(env);
  // Supervises when it holds the lease (at once with PGlite), else stands by read-only and
  // takes over when the supervising studio is gone.
  const supervision = new Supervision({
    database,
    holder: {
      version: 1,
      host: hostname(),
      pid: process.pid,
      startTime: self.startTime,
      home: env.STUDIO_HOME,
      url,
    },
    makeSupervisor: (db) =>
      new Supervisor({
        env,
        db,
        bus,
        executor,
        datasets,
        hfPeft,
        publicUrl: env.STUDIO_PUBLIC_URL ?? url,
        log,
      }),
    log,
  });
  await supervision.start();
  const services: StudioServices = {
    env,
    database,
    bus,
    datasets,
    hfPeft,
    playground,
    get supervisor() {
      return supervision.supervisor;
    },
    startedAt: new Date(),
    version,
    get readOnly() {
      return supervision.readOnly;
    },
    get booting() {
      return supervision.supervisor?.booting ?? false;
    },
  };

  // Page sessions, when a token is set. A session opened with another token never opens
  // anything; the supervising studio deletes those (and expired ones) at start.
  const sessions = env.STUDIO_TOKEN
    ? new SessionStore(database, env.STUDIO_TOKEN, env.STUDIO_SESSION_TTL_HOURS)
    : null;
  if (sessions && supervision.supervisor) {
    const ended = await sessions.prune();
    if (ended > 0) log(`sessions: ${ended} ended (expired, or opened with another token)`);
  }
  const pages = createPageServer({ dir: PACKAGE_ROOT, hostname: env.HOST, port: env.PORT, log });
  // Every request: Host/Origin/path gate, one authentication decision, then its route.
  const http = createStudioHttp({
    services,
    sessions,
    log,
    handleNext: pages.handle,
  });
  const server = createServer(http.handle);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(env.PORT, env.HOST, resolve);
  });
  http.listening((server.address() as AddressInfo).port);
  writeFileSync(paths.pidFile, `${process.pid}\n`);
  log(`studio ${version} serving ${url} (database: ${database.kind}, home: ${env.STUDIO_HOME})`);
  // Loading the page's server keeps this thread busy for a while: after the boot, so that it
  // delays neither the first answers nor the re-attaching (a page asked for sooner loads it then).
  if (!env.STUDIO_PAGE_ON_DEMAND) void supervision.firstBoot().then(() => pages.preload());

  // PGlite runs with fsync off: flush now and then so a crash loses at most a few seconds.
  const checkpointTimer = setInterval(() => {
    database.checkpoint().catch((err) => log(`checkpoint failed: ${err}`));
  }, 10_000);
  checkpointTimer.unref();

  let stopping = false;
  async function stop(signal: string) {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down (trainers keep running)`);
    clearInterval(checkpointTimer);
    // before anything that could end a stream cleanly: the page resumes them from the next studio
    http.cutStreams();
    playground.closeAll();
    server.close();
    server.closeIdleConnections();
    const forced = setTimeout(() => server.closeAllConnections(), 2_000);
    forced.unref();
    await new Promise((r) => server.once("close", r));
    await supervision.stop();
    await database.close();
    rmSync(paths.pidFile, { force: true });
    releaseLock();
    log("stopped");
    process.exit(0);
  }
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

// studio.log (the studio's stdout and stderr) may lie on a full disk. A log line that cannot be
// written is lost, as it must be; the failed write must not come back as an uncaught exception,
// which would itself be logged, fail again, and so on for as long as the disk is full (that loop,
// through the page server's error logging, held the studio's thread for seconds at a time).
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

// A fault in one task's handling must never take the studio down, and must never pass unseen:
// logged with a marker the test suite fails on (test/helpers/studio.ts).
process.on("unhandledRejection", (reason) => {
  log(
    `UNHANDLED REJECTION: ${reason instanceof Error ? (reason.stack ?? reason.message) : reason}`,
  );
});

main().catch((err) => {
  const message = err instanceof Error ? err.message : String(err);
  console.error(`studio: ${message}`);
  // studio.log may be on a full disk: `studio start` hears the reason over its channel as well.
  if (process.send) process.send({ fatal: message }, () => process.exit(1));
  else process.exit(1);
});
