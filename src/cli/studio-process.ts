import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type LockHolder, liveLockHolder } from "../platform/home-lock";
import { probe } from "../platform/identity";
import { DIST_DIR, PACKAGE_ROOT } from "../platform/package-root";
import { studioPaths } from "../server/home";
import { createClient } from "./client";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function runningStudio(home: string): LockHolder | null {
  return liveLockHolder(studioPaths(home).lock);
}

function assertBuilt() {
  if (!existsSync(join(PACKAGE_ROOT, ".next", "BUILD_ID"))) {
    throw new Error("the page is not built yet: run `npm run build` (or `npm start`) first");
  }
}

/**
 * STUDIO_CPU_PROF_DIR=<folder> runs the server under `node --cpu-prof` (a diagnostic for the
 * benchmarks, see bench/profile-top.ts): V8 writes one profile per thread there when it stops.
 * Node 20 does not take --cpu-prof in NODE_OPTIONS, so it has to be an argument.
 */
function profilingArgs(): string[] {
  const folder = process.env.STUDIO_CPU_PROF_DIR;
  return folder ? ["--cpu-prof", `--cpu-prof-dir=${folder}`] : [];
}

/** Runs the server in this terminal; returns when it exits. */
export async function startForeground(): Promise<void> {
  assertBuilt();
  await import(join(DIST_DIR, "server.js"));
}

/**
 * Starts the server detached from this terminal, its output appended to studio.log, and
 * returns once it answers (or fails with the reason the server printed).
 */
export async function startBackground(home: string, timeoutMs = 120_000): Promise<LockHolder> {
  assertBuilt();
  const paths = studioPaths(home);
  const already = runningStudio(home);
  if (already) throw new Error(`a studio is already running: pid ${already.pid}, ${already.url}`);
  mkdirSync(home, { recursive: true });
  const logOffset = existsSync(paths.log) ? statSync(paths.log).size : 0;
  const logFd = openSync(paths.log, "a");
  // The IPC channel carries a fatal start error too: studio.log may be on the disk that is full.
  const child = spawn(process.execPath, [...profilingArgs(), join(DIST_DIR, "server.js")], {
    detached: true,
    stdio: ["ignore", logFd, logFd, "ipc"],
    env: { ...process.env, STUDIO_HOME: home },
  });
  closeSync(logFd);
  let exited: number | null = null;
  let fatal: string | null = null;
  const channelClosed = new Promise((resolve) => child.once("disconnect", resolve));
  child.on("message", (message: { fatal?: unknown }) => {
    if (typeof message?.fatal === "string") fatal = message.fatal;
  });
  child.once("exit", (code) => {
    exited = code ?? 1;
  });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (exited !== null) {
        // Every message sent before the exit has arrived once the channel is closed.
        await Promise.race([channelClosed, sleep(1_000)]);
        // logOffset counts bytes: slice the bytes, then decode (a string index would cut elsewhere).
        const output = readFileSync(paths.log).subarray(logOffset).toString("utf8").trim();
        const last = fatal ?? output.split("\n").at(-1);
        throw new Error(
          last
            ? `${last.replace(/^studio: /, "")} (see ${paths.log})`
            : `the studio exited with code ${exited} and printed nothing (see ${paths.log})`,
        );
      }
      const holder = runningStudio(home);
      if (holder && holder.pid === child.pid) {
        try {
          // Another program may answer on that port: only our server's own answer counts.
          if ((await askPid(holder.url)) === child.pid) return holder;
        } catch {}
      }
      // Until the lock names it, a look costs a file read: soon enough to report the start time
      // to within a few milliseconds.
      await sleep(holder ? 50 : 20);
    }
    throw new Error(`the studio did not answer within ${timeoutMs / 1000} s; see ${paths.log}`);
  } finally {
    // The studio outlives this command: the channel goes, so neither waits on the other.
    if (child.connected) child.disconnect();
  }
}

/**
 * The pid of the studio answering at `url`, or a rejection. Bounded: a program holding the port
 * may accept and never answer. The timer is a referenced one: with only an unreferenced timer
 * (AbortSignal.timeout) and a dead socket pending, Node would end this process mid-wait.
 */
async function askPid(url: string): Promise<number> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 2_000);
  try {
    return (await createClient(url).studio.ping.query(undefined, { signal: abort.signal })).pid;
  } finally {
    clearTimeout(timer);
  }
}

/** The studio may run in a terminal's process group, so it is signalled alone, after proving it is the lock's holder. */
function signalStudio(holder: LockHolder, signal: NodeJS.Signals) {
  if (probe(holder) === "alive") process.kill(holder.pid, signal);
}

/** SIGTERM, a bounded wait for a graceful exit, then SIGKILL. Trainers are not touched. */
export async function stopStudio(home: string, graceMs = 15_000): Promise<LockHolder | null> {
  const holder = runningStudio(home);
  if (!holder) return null;
  signalStudio(holder, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!runningStudio(home)) return holder;
    await sleep(100);
  }
  signalStudio(holder, "SIGKILL");
  while (runningStudio(home)) await sleep(50);
  return holder;
}
