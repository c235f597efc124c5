import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import { resolve } from "node:path";
import { parseRunnerArgs, runnerArgv } from "./args";
import { runAttempt } from "./run-attempt";

/**
 * The runner: one small resident process per attempt, like conmon. It is the trainer's parent
 * for the trainer's whole life, so it alone can learn the exit status, and it records it in
 * exit.json. See ./run-attempt.
 */

const parsed = parseRunnerArgs(process.argv.slice(2));
// Absolute, because the daemon and the trainer run inside the task folder.
const options = { ...parsed, taskDir: resolve(parsed.taskDir) };

if (options.daemonize) {
  // Re-spawn in a new session and exit at once: the real runner is re-parented to init, so
  // nothing that walks the studio's process tree or signals its group reaches it.
  const daemon = spawn(
    process.execPath,
    [
      ...process.execArgv,
      resolve(process.argv[1]!),
      ...runnerArgv({ ...options, daemonize: false }),
    ],
    { detached: true, stdio: "ignore", env: process.env, cwd: options.taskDir },
  );
  daemon.on("error", (err) => {
    writeSync(2, `runner: cannot start the daemon: ${err.message}\n`);
    process.exit(1);
  });
  if (daemon.pid !== undefined) {
    daemon.unref();
    writeSync(1, `${daemon.pid}\n`);
    process.exit(0);
  }
} else {
  // Only SIGKILL may end the runner: a studio restart, a closed terminal or a broken pipe must not.
  // SIGUSR2 is the studio's "look at cancel.json" (see run-attempt); never fatal, even early.
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP", "SIGPIPE", "SIGUSR2"] as const) {
    process.on(signal, () => {});
  }
  runAttempt(options);
}
