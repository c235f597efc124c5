import { join } from "node:path";
import { DIST_DIR } from "../../platform/package-root";
import { type ClaimedJob, JobFailure, runDetachedJob } from "../detached-job";
import {
  type EvalRecord,
  type EvalResults,
  evalRecordPath,
  evalResultsSchema,
  parseEvalRecord,
} from "./eval-record";
import { evaluateCommand, evaluationEnv } from "./evaluate-command";

/**
 * `evaluator --task-dir <dir> --eval-id <id>`: carries out the evaluation `eval/<id>.json` asks
 * for, by the detached-job protocol (../detached-job: claimed with its identity, output in
 * `eval/<id>.log`, its end recorded). It runs the trainer's own evaluation program, which prints
 * the results as its last line, and records them or why there are none.
 */
runDetachedJob<EvalRecord>(
  {
    program: "evaluator",
    noun: "evaluation",
    idOption: "eval-id",
    recordPath: evalRecordPath,
    parseRecord: parseEvalRecord,
    standDown: (record) =>
      record.state !== "running" || record.process !== null
        ? `evaluation ${record.id} is ${record.process ? "claimed" : record.state}`
        : null,
    niceness: (record) => record.niceness,
    work: evaluationWork,
  },
  process.argv.slice(2),
);

async function evaluationWork(job: ClaimedJob<EvalRecord>): Promise<Partial<EvalRecord>> {
  const { record, taskDir } = job;
  const command = evaluateCommand(
    record,
    { nodePath: process.execPath, distDir: DIST_DIR, pythonPath: record.python },
    { taskDir, source: join(taskDir, record.readFrom ?? record.source.path) },
  );
  console.log(
    `evaluation ${record.id}: ${record.source.path} on dataset ${record.dataset.name} (${record.dataset.format})${record.origin === "standing" ? ", one thread" : ""}${record.tries > 1 ? `, try ${record.tries}` : ""}`,
  );
  const outcome = await job.run({ ...command, env: evaluationEnv(record, process.env) });
  const stopped = job.stopped();
  if (stopped) throw new JobFailure(`the evaluation was stopped (${stopped})`);
  if (outcome.code !== 0) {
    const last = outcome.lines.findLast((l) => l.trim() !== "" && !/^\s/.test(l));
    throw new JobFailure(
      `the evaluation program failed (${outcome.signal ?? `exit code ${outcome.code}`})${last ? `: ${last.slice(0, 500)}` : ""}`,
    );
  }
  const results = parseResults(outcome.lastStdoutLine);
  console.log(`evaluation ${record.id}: done`);
  return { state: "done", results, reason: null };
}

function parseResults(line: string | null): EvalResults {
  if (!line) throw new JobFailure("the evaluation program printed no results");
  try {
    return evalResultsSchema.parse(JSON.parse(line));
  } catch {
    throw new JobFailure("the evaluation program's last line is not its results");
  }
}
