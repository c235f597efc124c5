import type { inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../server/api/root";
import { tellingReason } from "../shared/status-reason";
import { formatCell, table } from "./format";

type TaskDetail = inferRouterOutputs<AppRouter>["task"]["get"];
type Attempt = TaskDetail["attempts"][number];

/** A status with its reason, unless the reason only repeats it ("cancelled (cancelled)"). */
export function statusText(status: string, reason: string | null): string {
  const telling = tellingReason(status, reason);
  return telling ? `${status} (${telling})` : status;
}

export function progressText(progress: Record<string, unknown>): string {
  const percent = progress.percent;
  const step = progress.step;
  const total = progress.totalSteps;
  const steps =
    typeof step === "number" ? ` step ${step}${typeof total === "number" ? `/${total}` : ""}` : "";
  return typeof percent === "number" ? `${percent.toFixed(1)}%${steps}` : steps.trim() || "-";
}

/** How an attempt ended, as its record says: exit code, signal, launch error, or still running. */
function outcomeOf(attempt: Attempt): string {
  if (attempt.exitCode !== null) return `exit code ${attempt.exitCode}`;
  if (attempt.signal) return `killed by ${attempt.signal}`;
  if (attempt.error) return "did not start";
  return attempt.endedAt ? "ended" : "running";
}

/**
 * Which processes (or Slurm job) ran the attempt, from its stored handle; read loosely, as a
 * handle of any version or executor may be stored, or none yet (a launch in flight).
 */
function processesOf(attempt: Attempt): string {
  const handle = (attempt.handle ?? {}) as {
    kind?: string;
    jobId?: string;
    runner?: { pid?: number };
    trainer?: { pid?: number };
  };
  if (handle.kind === "slurm" && handle.jobId) return `Slurm job ${handle.jobId}`;
  const parts = [
    handle.runner?.pid ? `runner pid ${handle.runner.pid}` : null,
    (handle.trainer?.pid ?? attempt.pid)
      ? `trainer pid ${handle.trainer?.pid ?? attempt.pid}`
      : null,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "no process yet";
}

export function attemptText(attempt: Attempt): string {
  const started = formatCell(attempt.startedAt ?? attempt.intentAt);
  const span = attempt.endedAt ? `${started} to ${formatCell(attempt.endedAt)}` : `${started}`;
  const extras = [
    attempt.gpus.length ? `GPUs ${attempt.gpus.join(",")}` : null,
    attempt.resumeFrom ? `resumed from ${attempt.resumeFrom}` : null,
    attempt.error ? `error: ${attempt.error}` : null,
  ].filter(Boolean);
  return [
    `  #${attempt.number}  ${outcomeOf(attempt)}  ${span}  ${processesOf(attempt)} on ${attempt.host}`,
    ...extras.map((extra) => `      ${extra}`),
  ].join("\n");
}

/** `studio task show` for people: settings, status, every attempt with its processes, events. */
export function taskDetailText(detail: TaskDetail): string {
  const t = detail.task;
  return [
    `${t.id}  ${t.name}`,
    `status:     ${statusText(t.status, t.statusReason)}`,
    `progress:   ${progressText(t.progress)}`,
    `model:      ${t.model} (${t.trainer}, ${t.mode})`,
    ...(t.command ? [`command:    ${JSON.stringify(t.command)}`] : []),
    `dataset:    ${t.datasetPath} (${t.datasetFormat})`,
    ...(t.evaluationSet ? [`eval set:   ${setText(t.evaluationSet)}`] : []),
    `settings:   ${JSON.stringify(t.hyperparameters)}`,
    ...(t.lastCheckpoint ? [`checkpoint: ${t.lastCheckpoint}`] : []),
    `attempts:   ${detail.attempts.length || "none yet"}`,
    ...detail.attempts.map(attemptText),
    "events:",
    ...detail.events.map((e) => `  ${formatCell(e.at)}  ${e.type}  ${e.message}`),
  ].join("\n");
}

type Evaluation = inferRouterOutputs<AppRouter>["task"]["evaluations"][number];

const figure = (value: number | null) => (value === null ? "n/a" : value.toFixed(4));

/** A finished evaluation for people: what was evaluated on what, the figures, a few answers. */
export function evaluationText(evaluation: Evaluation): string {
  const head = `evaluation ${evaluation.id}: ${evaluation.source.path === "." ? "final adapter" : evaluation.source.path} on ${evaluation.dataset.name}`;
  if (evaluation.state !== "done") {
    return `${head}\n${evaluation.state}${evaluation.state === "failed" ? `: ${evaluation.reason}` : ""}`;
  }
  const r = evaluation.results;
  return [
    head,
    `rows:        ${r.rows} (${r.tokens} tokens)`,
    `loss:        ${figure(r.loss)} (base ${figure(r.baseLoss)})`,
    `perplexity:  ${figure(r.perplexity)} (base ${figure(r.basePerplexity)})`,
    ...(r.exactMatch ? [`exact match: ${r.exactMatch.matched}/${r.exactMatch.total}`] : []),
    ...r.samples.flatMap((s, i) => [
      `sample ${i + 1}:`,
      `  prompt:    ${JSON.stringify(s.prompt)}`,
      `  expected:  ${JSON.stringify(s.expected)}`,
      `  generated: ${JSON.stringify(s.generated)}`,
    ]),
  ].join("\n");
}

const setText = (set: NonNullable<TaskDetail["task"]["evaluationSet"]>) =>
  `${set.name} (${set.datasetId}, ${set.format}): every checkpoint is scored on it`;

/** What `task eval-set` changed. */
export function evaluationSetText(task: TaskDetail["task"]): string {
  return task.evaluationSet
    ? `${task.id}: evaluation set ${setText(task.evaluationSet)}`
    : `${task.id}: no evaluation set`;
}

/** Every evaluation of a task, one a line: what, on what, how it stands, the loss against the base. */
export function evaluationsTable(evaluations: Evaluation[]): string {
  if (evaluations.length === 0) return "no evaluations";
  return table(
    evaluations.map((e) => ({
      id: e.id,
      weights: e.source.path === "." ? "final adapter" : e.source.path,
      dataset: e.dataset.name,
      by: e.origin === "standing" ? "eval set" : "request",
      state: e.state === "failed" ? `failed: ${e.reason}` : e.state,
      loss: e.state === "done" ? figure(e.results.loss) : "",
      base: e.state === "done" ? figure(e.results.baseLoss) : "",
    })),
    ["id", "weights", "dataset", "by", "state", "loss", "base"],
  );
}
