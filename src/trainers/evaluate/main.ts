import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { readIdentity } from "../../platform/identity";
import { DIST_DIR } from "../../platform/package-root";
import {
  type EvalRecord,
  type EvalResults,
  evalRecordPath,
  evalResultsSchema,
  parseEvalRecord,
} from "./eval-record";
import { evaluateCommand } from "./evaluate-command";

/**
 * `evaluator --task-dir <dir> --eval-id <id>`: carries out the evaluation `eval/<id>.json` asks
 * for. The studio starts it detached (it survives a studio restart) with its output in
 * `eval/<id>.log`; it records its identity, runs the trainer's own evaluation program (which
 * prints the results as its last line), then records the results or why there are none.
 */

const KEPT_LINES = 40;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { "task-dir": { type: "string" }, "eval-id": { type: "string" } },
  });
  if (!values["task-dir"] || !values["eval-id"]) {
    throw new Error("usage: evaluator --task-dir <dir> --eval-id <id>");
  }
  const taskDir = resolve(values["task-dir"]);
  const recordPath = evalRecordPath(taskDir, values["eval-id"]);
  const requested = parseEvalRecord(await readFile(recordPath, "utf8"));
  if (requested.state !== "running" || requested.process !== null) {
    console.log(`evaluation ${requested.id} is ${requested.state}; nothing to do`);
    return 0;
  }
  const me = readIdentity(process.pid);
  if (!me) throw new Error("cannot read this process's own identity from /proc");
  const record: EvalRecord = { ...requested, process: me };
  writeJsonAtomic(recordPath, record);

  let running: ReturnType<typeof spawn> | null = null;
  let stopped: string | null = null;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      stopped = signal;
      running?.kill("SIGTERM");
    });
  }
  const finish = (fields: Pick<EvalRecord, "state" | "results" | "reason">) =>
    writeJsonAtomic(recordPath, {
      ...record,
      ...fields,
      finishedAt: new Date().toISOString(),
    } satisfies EvalRecord);
  try {
    const command = evaluateCommand(
      record,
      { nodePath: process.execPath, distDir: DIST_DIR, pythonPath: record.python },
      { taskDir, source: join(taskDir, record.source.path) },
    );
    console.log(
      `evaluation ${record.id}: ${record.source.path} on dataset ${record.dataset.name} (${record.dataset.format})`,
    );
    const child = spawn(command.file, command.args, { stdio: ["ignore", "pipe", "pipe"] });
    running = child;
    const outcome = await follow(child);
    if (stopped) throw new Error(`the evaluation was stopped (${stopped})`);
    if (outcome.code !== 0) {
      const last = outcome.lines.findLast((l) => l.trim() !== "" && !/^\s/.test(l));
      throw new Error(
        `the evaluation program failed (${outcome.signal ?? `exit code ${outcome.code}`})${last ? `: ${last.slice(0, 500)}` : ""}`,
      );
    }
    const results = parseResults(outcome.stdoutLast);
    finish({ state: "done", results, reason: null });
    console.log(`evaluation ${record.id}: done`);
    return 0;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    console.error(`evaluation ${record.id} failed: ${reason}`);
    finish({ state: "failed", results: null, reason });
    return 1;
  }
}

function parseResults(line: string | null): EvalResults {
  if (!line) throw new Error("the evaluation program printed no results");
  try {
    return evalResultsSchema.parse(JSON.parse(line));
  } catch {
    throw new Error("the evaluation program's last line is not its results");
  }
}

/** The program's output goes on to the log as it comes; its last lines are kept. */
function follow(child: ReturnType<typeof spawn>): Promise<{
  code: number | null;
  signal: string | null;
  lines: string[];
  stdoutLast: string | null;
}> {
  const lines: string[] = [];
  let stdout = "";
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n"));
    if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    keep(chunk);
    // Only the last line matters: keep the tail, whatever was printed before it.
    stdout = (stdout + chunk.toString("utf8")).slice(-4 * 1024 * 1024);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    process.stderr.write(chunk);
    keep(chunk);
  });
  return new Promise((resolve) => {
    child.on("error", (err) =>
      resolve({ code: null, signal: null, lines: [...lines, String(err)], stdoutLast: null }),
    );
    child.on("close", (code, signal) =>
      resolve({
        code,
        signal,
        lines,
        stdoutLast:
          stdout
            .split("\n")
            .map((l) => l.trim())
            .findLast((l) => l !== "") ?? null,
      }),
    );
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`evaluator: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
