import { TRPCClientError } from "@trpc/client";
import { Command } from "commander";
import { formatDuration } from "../shared/format-duration";
import { createClient, home, lastStudioTarget } from "./client";
import { registerDatasetCommands } from "./dataset-commands";
import { foregroundReasonOf } from "./foreground";
import { describeNotifications, print } from "./format";
import { registerRecoverCommand } from "./recover-command";
import { registerSessionCommands } from "./session-commands";
import { registerSetupCommands } from "./setup-commands";
import { type FoundStudio, findRunningStudios } from "./studio-discovery";
import { runningStudio, startBackground, startForeground, stopStudio } from "./studio-process";
import { registerTaskCommands } from "./task-commands";

/**
 * Errors end the command with one line on stderr and a non-zero exit code. A call that reached
 * no studio (refused, reset, timed out: no answer to read) names the studio it tried.
 */
function fail(err: unknown): never {
  let message = err instanceof Error ? err.message : String(err);
  const target = lastStudioTarget();
  if (err instanceof TRPCClientError && !err.data && target) {
    message = `no answer from the studio at ${target.url} (${target.via}): ${message}`;
  }
  console.error(`studio: ${message.split("\n").join(" ")}`);
  process.exit(1);
}

const program = new Command("studio")
  .description("Finetune Studio: LoRA fine-tuning whose training survives studio restarts")
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) });

program
  .command("start")
  .description("start the studio in the background (or in this terminal with --foreground)")
  .option("--foreground", "run in this terminal")
  .option("--json", "machine-readable output")
  .action(async (opts: { foreground?: boolean; json?: boolean }) => {
    if (opts.foreground) return startForeground();
    const started = Date.now();
    const holder = await startBackground(home());
    print(
      opts.json ?? false,
      { ...holder, startupMs: Date.now() - started },
      () => `studio started: pid ${holder.pid}, ${holder.url} (${Date.now() - started} ms)`,
    );
  });

program
  .command("stop")
  .description("stop the studio gracefully (trainers keep running)")
  .option("--json", "machine-readable output")
  .action(async (opts: { json?: boolean }) => {
    const stopped = await stopStudio(home());
    print(opts.json ?? false, { stopped: stopped?.pid ?? null }, () =>
      stopped
        ? `studio stopped (pid ${stopped.pid})`
        : `no studio was running on ${home()}${listed(otherStudios())}`,
    );
  });

program
  .command("restart")
  .description("stop, then start the studio in the background (not one running in a terminal)")
  .option("--json", "machine-readable output")
  .action(async (opts: { json?: boolean }) => {
    const running = runningStudio(home());
    const foreground = running && foregroundReasonOf(running.pid);
    if (running && foreground) {
      throw new Error(
        `the studio (pid ${running.pid}, ${running.url}) runs in the foreground: ${foreground}; a restart from here would end it there and leave a background studio instead. Restart it where it runs, or run "studio stop" and then "studio start"`,
      );
    }
    const stopped = await stopStudio(home());
    const holder = await startBackground(home());
    print(
      opts.json ?? false,
      { stopped: stopped?.pid ?? null, ...holder },
      () => `studio restarted: pid ${holder.pid}, ${holder.url}`,
    );
  });

program
  .command("status")
  .description("pid, uptime, URL, database, task counts and notifications")
  .option("--json", "machine-readable output")
  .action(async (opts: { json?: boolean }) => {
    const own = runningStudio(home());
    const others = own ? [] : otherStudios();
    if (!own && others.length === 1) {
      console.error(`studio: no studio on ${home()}; the one running is on ${others[0]!.home}`);
    }
    const holder = own ?? (others.length === 1 ? others[0]! : null);
    if (!holder) {
      print(
        opts.json ?? false,
        { running: false, home: home(), elsewhere: others },
        () => `studio: not running on ${home()}${listed(others)}`,
      );
      process.exitCode = 3;
      return;
    }
    const info = await createClient(holder.url).studio.info.query();
    const uptimeMs = Date.now() - new Date(info.startedAt).getTime();
    print(opts.json ?? false, { running: true, url: holder.url, uptimeMs, ...info }, () =>
      [
        `studio ${info.version}: running, pid ${info.pid}, up ${formatDuration(uptimeMs / 1000)}`,
        `url:      ${holder.url}`,
        `database: ${info.database}${info.readOnly ? ` (read-only: ${info.readOnly})` : ""}${
          info.databaseHealth.status === "failing"
            ? ` (${info.databaseHealth.kind} since ${new Date(info.databaseHealth.since).toISOString()}: ${info.databaseHealth.message})`
            : ""
        }`,
        `home:     ${info.home}`,
        `tasks:    ${
          info.counts
            ? Object.entries(info.counts)
                .map(([s, n]) => `${s} ${n}`)
                .join(", ") || "none"
            : "unknown (the database did not answer)"
        }`,
        `notify:   ${describeNotifications(info.notifications)}`,
      ].join("\n"),
    );
  });

/** Studios of this person on other homes, when STUDIO_HOME leaves the choice open (see client.ts). */
function otherStudios() {
  return process.env.STUDIO_HOME ? [] : findRunningStudios();
}

function listed(others: FoundStudio[]): string {
  if (others.length === 0) return "";
  return `; running on other homes: ${others.map((s) => `${s.home} (${s.url}, pid ${s.pid})`).join(", ")}`;
}

registerRecoverCommand(program);
registerTaskCommands(program.command("task").description("create, inspect and control tasks"));
registerSessionCommands(
  program.command("sessions").description("list and revoke the page's signed-in sessions"),
);
registerSetupCommands(program.command("setup").description("prepare what a trainer needs"));
registerDatasetCommands(program.command("dataset").description("the studio's stored datasets"));

program.parseAsync(process.argv).catch(fail);
