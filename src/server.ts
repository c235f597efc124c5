import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import next from "next";
import { appRouter } from "./server/api/root";
import { checkToken, isAuthorized, SESSION_COOKIE, sessionValue } from "./server/auth";
import { DatasetStore } from "./server/datasets/store";
import { openDatabase } from "./server/db/client";
import { isDownload, serveDownload } from "./server/downloads";
import { loadEnv } from "./server/env";
import { StudioBus } from "./server/events/bus";
import { studioPaths } from "./server/home";
import { acquireHomeLock } from "./server/home-lock";
import { PACKAGE_ROOT } from "./server/package-root";
import type { StudioServices } from "./server/services";
import { executorFromEnv } from "./server/supervisor/executor-from-env";
import { Supervisor } from "./server/supervisor/supervisor";

const log = (msg: string) => console.log(`${new Date().toISOString()} ${msg}`);

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error("request body too large");
  }
  return body;
}

async function main() {
  const env = loadEnv();
  const paths = studioPaths(env.STUDIO_HOME);
  mkdirSync(paths.tasks, { recursive: true });
  const url = `http://${env.HOST.includes(":") ? `[${env.HOST}]` : env.HOST}:${env.PORT}`;
  const releaseLock = await acquireHomeLock(paths.lock, url);

  const database = await openDatabase({ databaseUrl: env.DATABASE_URL, pgliteDir: paths.pglite });
  const version = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version;
  const bus = new StudioBus();
  const releaseSupervisorLock = await database.trySupervisorLock();
  const supervisor = releaseSupervisorLock
    ? new Supervisor({ env, db: database.db, bus, executor: executorFromEnv(env), log })
    : null;
  if (supervisor) {
    const summary = await supervisor.reconcileAtBoot();
    log(`boot reconciliation: ${summary}`);
    supervisor.startLoop();
  } else {
    log("another studio supervises this database: serving read-only");
  }
  const services: StudioServices = {
    env,
    database,
    bus,
    datasets: new DatasetStore(paths.datasets, env.STUDIO_DATASET_ROOTS),
    supervisor,
    startedAt: new Date(),
    version,
    readOnly: supervisor ? null : "another studio supervises this database",
  };

  const nextApp = next({ dev: false, dir: PACKAGE_ROOT, hostname: env.HOST, port: env.PORT });
  await nextApp.prepare();
  const handleNext = nextApp.getRequestHandler();

  // Aborted at shutdown so that open SSE streams end and server.close() can return.
  const shutdown = new AbortController();
  const handleTrpc = createHTTPHandler({
    router: appRouter,
    basePath: "/api/trpc/",
    // A dataset upload travels as base64 inside one call.
    maxBodySize: 80 * 1024 * 1024,
    createContext: ({ req }) => ({
      ...services,
      authorized: isAuthorized(req, env.STUDIO_TOKEN),
      shutdownSignal: shutdown.signal,
    }),
  });

  async function handleLogin(req: IncomingMessage, res: ServerResponse) {
    const form = new URLSearchParams(await readBody(req, 4096));
    const token = form.get("token") ?? "";
    if (!env.STUDIO_TOKEN || !checkToken(token, env.STUDIO_TOKEN)) {
      res.writeHead(303, { location: "/login?error=1" }).end();
      return;
    }
    res
      .writeHead(303, {
        location: "/finetune",
        "set-cookie": `${SESSION_COOKIE}=${sessionValue(env.STUDIO_TOKEN)}; HttpOnly; SameSite=Strict; Path=/`,
      })
      .end();
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path.startsWith("/api/trpc/")) return handleTrpc(req, res);
    if (path === "/api/login" && req.method === "POST") {
      handleLogin(req, res).catch(() => res.writeHead(400).end());
      return;
    }
    if (isDownload(path)) {
      if (!isAuthorized(req, env.STUDIO_TOKEN)) return res.writeHead(401).end("unauthorized");
      serveDownload(env.STUDIO_HOME, path, res, req).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
      return;
    }
    const open = path === "/login" || path.startsWith("/_next/") || path === "/favicon.ico";
    if (!open && !isAuthorized(req, env.STUDIO_TOKEN)) {
      res.writeHead(303, { location: "/login" }).end();
      return;
    }
    handleNext(req, res).catch((err) => {
      log(`page error: ${err}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(env.PORT, env.HOST, resolve);
  });
  writeFileSync(paths.pidFile, `${process.pid}\n`);
  log(`studio ${version} serving ${url} (database: ${database.kind}, home: ${env.STUDIO_HOME})`);

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
    shutdown.abort();
    server.close();
    server.closeIdleConnections();
    const forced = setTimeout(() => server.closeAllConnections(), 2_000);
    forced.unref();
    await new Promise((r) => server.once("close", r));
    await supervisor?.stop();
    await releaseSupervisorLock?.();
    await database.close();
    rmSync(paths.pidFile, { force: true });
    releaseLock();
    log("stopped");
    process.exit(0);
  }
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

// A fault in one task's handling must never take the studio down, and must never pass unseen:
// logged with a marker the test suite fails on (test/helpers/studio.ts).
process.on("unhandledRejection", (reason) => {
  log(
    `UNHANDLED REJECTION: ${reason instanceof Error ? (reason.stack ?? reason.message) : reason}`,
  );
});

main().catch((err) => {
  console.error(`studio: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
