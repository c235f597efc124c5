import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { inArray, isNotNull, or } from "drizzle-orm";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { probe } from "../../platform/identity";
import { evaluationSetSchema } from "../../shared/evaluation-set";
import {
  EVAL_RECORD_VERSION,
  type EvalRecord,
  evalRecordPath,
  parseEvalRecord,
  standingEvalId,
} from "../../trainers/evaluate/eval-record";
import { judgeEvaluation } from "../../trainers/evaluate/eval-state";
import {
  KEPT_WEIGHTS_FOLDER,
  keepWeights,
  listKeptWeights,
  releaseKeptWeights,
} from "../../trainers/evaluate/kept-weights";
import { listCheckpoints, parseModelSource } from "../../trainers/playground/model-source";
import type { Db } from "../db/client";
import { type TaskRow, tasks } from "../db/schema";
import { noRoomReason } from "../disk-space";
import { taskDir } from "../home";
import { launchEvaluator, readEvaluationRecords } from "../tasks/task-evaluation";
import { planStanding, type StandingAction, type StandingRecord } from "./standing-plan";

/**
 * The standing evaluations of the supervising studio: every few seconds, each task with an
 * evaluation set (and each whose set just changed) is looked at, and what ./standing-plan.ts
 * decides is carried out: checkpoints queued (weights kept, a "queued" record written), the next
 * one started when none of the task runs, evaluators that died started again, kept weights
 * released. Everything it knows is in the task folder, so a restart (or another studio taking
 * over) carries on where it stood: an evaluator still running is followed by its record, and a
 * checkpoint's record id is fixed by the set and the checkpoint, so none is scored twice.
 *
 * When they run: as soon as a checkpoint is there, one at a time per task, beside the training,
 * at the lowest CPU priority (STUDIO_EVAL_NICENESS) and on one thread (the evaluator lowers
 * itself, see ../../trainers/evaluate/evaluate-command.ts), on the CPU only. Training keeps its CPU; the
 * scores follow it, and catch up once it ends.
 */

const PASS_MS = 2_000;

export interface StandingSettings {
  db: Db;
  home: string;
  minFreeMb: number;
  /** The CPU priority standing evaluations run at (STUDIO_EVAL_NICENESS). */
  niceness: number;
  python: () => string;
  baseEnv: Record<string, string | undefined>;
  log: (msg: string) => void;
}

type WatchedTask = Pick<
  TaskRow,
  "id" | "folder" | "status" | "trainer" | "lastCheckpoint" | "evaluationSet"
>;

export class StandingEvaluations {
  private timer: NodeJS.Timeout | null = null;
  private passing: Promise<void> | null = null;
  /** Tasks with nothing to do, by what would change that (status, last checkpoint, set). */
  private readonly settled = new Map<string, string>();
  /** Tasks whose set changed: looked at on the next pass even with no set (to drop its queue). */
  private readonly changed = new Set<string>();
  /** The last problem logged for a task, so a lasting one is logged once. */
  private readonly problems = new Map<string, string>();

  constructor(private readonly settings: StandingSettings) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), PASS_MS);
    this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.passing;
  }

  /** The task's evaluation set was attached, replaced or detached: look at it again soon. */
  setChanged(taskId: string): void {
    this.changed.add(taskId);
    this.settled.delete(taskId);
  }

  private tick(): void {
    if (this.passing || !this.timer) return;
    this.passing = this.pass()
      .catch((err: unknown) => this.settings.log(`standing evaluations: ${err}`))
      .finally(() => {
        this.passing = null;
      });
  }

  private async pass(): Promise<void> {
    const changed = [...this.changed];
    this.changed.clear();
    const rows: WatchedTask[] = await this.settings.db
      .select({
        id: tasks.id,
        folder: tasks.folder,
        status: tasks.status,
        trainer: tasks.trainer,
        lastCheckpoint: tasks.lastCheckpoint,
        evaluationSet: tasks.evaluationSet,
      })
      .from(tasks)
      .where(
        changed.length
          ? or(isNotNull(tasks.evaluationSet), inArray(tasks.id, changed))
          : isNotNull(tasks.evaluationSet),
      );
    for (const task of rows) {
      if (!this.timer) return;
      try {
        await this.tend(task);
        this.problems.delete(task.id);
      } catch (err) {
        const problem = err instanceof Error ? err.message : String(err);
        if (this.problems.get(task.id) !== problem) {
          this.settings.log(`standing evaluation of task ${task.id}: ${problem}`);
          this.problems.set(task.id, problem);
        }
      }
    }
  }

  /** One task: what is on disk, the plan, the plan carried out. */
  private async tend(task: WatchedTask): Promise<void> {
    if (task.trainer === "command") return;
    const dir = task.folder ?? taskDir(this.settings.home, task.id);
    if (!existsSync(dir)) return; // not on this machine: the studio that has it scores it
    let setPath: string | null = null;
    if (task.evaluationSet !== null) {
      const parsed = evaluationSetSchema.safeParse(task.evaluationSet);
      if (!parsed.success) throw new Error(`its evaluation set cannot be read: ${parsed.error}`);
      setPath = parsed.data.path;
    }
    const key = JSON.stringify([task.status, task.lastCheckpoint, setPath]);
    if (this.settled.get(task.id) === key) return;

    const kept = await listKeptWeights(dir);
    for (const leftover of kept.leftovers) await releaseKeptWeights(dir, leftover);
    const onDisk = await listCheckpoints(dir);
    const checkpoints = [...new Set([...onDisk, ...kept.names])].map((name) => ({
      name,
      step: parseModelSource(name).step,
    }));
    const records = await this.standingRecords(dir, task.id);
    const actions = planStanding({
      setPath,
      checkpoints,
      kept: kept.names,
      records,
      idOf: standingEvalId,
    });
    for (const action of actions) await this.carryOut(task, dir, action);
    const busy = records.some((r) => r.judged.state === "running" || r.judged.state === "queued");
    if (actions.length === 0 && !busy) this.settled.set(task.id, key);
    else this.settled.delete(task.id);
  }

  private async standingRecords(dir: string, taskId: string): Promise<StandingRecord[]> {
    const now = new Date();
    const out: StandingRecord[] = [];
    for (const found of await readEvaluationRecords(dirname(dir), taskId)) {
      // An unreadable record is listed to people as such; it blocks nothing here.
      if (!("record" in found) || found.record.origin !== "standing") continue;
      const { record } = found;
      out.push({
        id: record.id,
        checkpoint: basename(record.source.path),
        step: record.source.step,
        setPath: record.dataset.path,
        written: record.state,
        judged: judgeEvaluation(record, record.process ? probe(record.process) : null, now),
        tries: record.tries,
      });
    }
    return out;
  }

  private async carryOut(task: WatchedTask, dir: string, action: StandingAction): Promise<void> {
    switch (action.kind) {
      case "queue":
        return this.queue(task, dir, action);
      case "requeue":
        return this.rewrite(dir, action.id, (r) => ({
          ...r,
          state: "queued",
          tries: action.tries,
          process: null,
          finishedAt: null,
          reason: null,
        }));
      case "give-up":
      case "drop":
        return this.rewrite(dir, action.id, (r) => ({
          ...r,
          state: "failed",
          finishedAt: new Date().toISOString(),
          reason: action.reason,
        }));
      case "launch":
        return this.launch(task, dir, action.id);
      case "release":
        return releaseKeptWeights(dir, action.name);
    }
  }

  /** Keeps the checkpoint's weights (unless kept already), then writes its "queued" record. */
  private async queue(
    task: WatchedTask,
    dir: string,
    action: Extract<StandingAction, { kind: "queue" }>,
  ): Promise<void> {
    const set = evaluationSetSchema.parse(task.evaluationSet);
    if ((await keepWeights(dir, action.name)) === "gone") return; // removed meanwhile
    const record: EvalRecord = {
      version: EVAL_RECORD_VERSION,
      id: action.id,
      origin: "standing",
      state: "queued",
      trainer: task.trainer === "hf-peft" ? "hf-peft" : "builtin",
      source: { path: `checkpoints/${action.name}`, step: action.step },
      readFrom: join(KEPT_WEIGHTS_FOLDER, action.name),
      tries: 1,
      niceness: this.settings.niceness,
      dataset: { id: set.datasetId, name: set.name, path: set.path, format: set.format },
      python: null,
      process: null,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      results: null,
      reason: null,
    };
    writeJsonAtomic(evalRecordPath(dir, record.id), record);
  }

  /** Its turn: "running" (with the interpreter of now), then the evaluator started. */
  private async launch(task: WatchedTask, dir: string, id: string): Promise<void> {
    const noRoom = await noRoomReason(this.settings.home, this.settings.minFreeMb);
    if (noRoom) throw new Error(`waits: ${noRoom}`);
    const text = await readFile(evalRecordPath(dir, id), "utf8").catch((err: unknown) => {
      // Not queued after all (its weights were gone): nothing to start.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    });
    if (text === null) return;
    const record = parseEvalRecord(text);
    if (record.state !== "queued") return;
    const running: EvalRecord = {
      ...record,
      state: "running",
      python: task.trainer === "hf-peft" ? this.settings.python() : null,
      niceness: this.settings.niceness,
      process: null,
      startedAt: new Date().toISOString(),
    };
    writeJsonAtomic(evalRecordPath(dir, id), running);
    await launchEvaluator(this.settings, dir, running);
  }

  private async rewrite(dir: string, id: string, change: (r: EvalRecord) => EvalRecord) {
    const record = parseEvalRecord(await readFile(evalRecordPath(dir, id), "utf8"));
    writeJsonAtomic(evalRecordPath(dir, id), change(record));
  }
}
