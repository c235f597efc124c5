import { mkdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { hasEvaluationSet, keepWeights } from "../evaluate/kept-weights";
import {
  type CheckpointSizes,
  checkpointsToCome,
  type DiskVerdict,
  forecastDisk,
  megabytes,
} from "./disk-forecast";
import {
  folderSizes,
  freeSpace,
  listCheckpoints,
  peekManifest,
  removeCheckpoint,
  removeLeftovers,
  renameIntoPlace,
  STAGING_PREFIX,
  sealCheckpoint,
  verifyCheckpoint,
} from "./folder";
import { type CheckpointManifest, type ManifestFile, manifestSizes } from "./manifest";
import {
  checkpointStep,
  displayPath,
  fallbackMessage,
  noCheckpointMessage,
  type RejectedCheckpoint,
  resumeCandidates,
} from "./resume-choice";
import { planRetention } from "./retention";

/**
 * A run's checkpoints, from start to end, for either trainer: the built-in trainer calls it in
 * its own process, the Python trainer through the checkpoint tool (./tool.ts). Each new
 * checkpoint is staged in a hidden folder, sealed with its manifest, verified (the hashes read
 * back from disk, and the trainer's own load), and only then renamed into place; older ones are
 * removed only after that. Resume takes the newest checkpoint that verifies.
 */

/** How a trainer names and fills its checkpoints. */
export interface CheckpointStyle {
  /** Written into each manifest. */
  trainer: string;
  /** Folder names are `<prefix><step>`. */
  prefix: string;
  /** The trainer also saves at its last step (Hugging Face's Trainer does). */
  savesAtEnd: boolean;
  /** The files of a checkpoint that the finished run writes again as its output. */
  finalFiles: string[];
}

export const BUILTIN_STYLE = (weightsFile: string): CheckpointStyle => ({
  trainer: "builtin",
  prefix: "step-",
  savesAtEnd: false,
  finalFiles: [weightsFile, "adapter_config.json", "trainer_state.json"],
});

export const HF_PEFT_STYLE: CheckpointStyle = {
  trainer: "hf-peft",
  prefix: "checkpoint-",
  savesAtEnd: true,
  finalFiles: ["adapter_model.safetensors", "adapter_config.json"],
};

/** What the rest of the run looks like. */
export interface RunShape {
  totalSteps: number;
  saveSteps: number;
  keepLast: number;
  /** The run evaluates, so the best checkpoint by eval loss is kept too. */
  evaluates: boolean;
}

/** The `kind` of the warning events this module has the trainer write (protocol "warning"). */
export const WARNING_KINDS = {
  unverified: "checkpoint-unverified",
  fallback: "resume-fallback",
  disk: "disk-space",
} as const;

export interface CheckpointReport {
  /**
   * A protocol "checkpoint" event: the studio's last checkpoint. Said as soon as the checkpoint
   * is in place, before any older one is removed, so the studio never names a removed one.
   */
  saved(step: number, path: string): void;
  /** A protocol "warning" event, which the studio shows on the task. */
  warn(kind: string, message: string, step?: number): void;
  /** A line for training.log. */
  print(line: string): void;
}

export interface ResumeChoice {
  path: string;
  /** From the folder's name; null for a path that is not named like a checkpoint. */
  step: number | null;
  sizes: CheckpointSizes;
}

/** Nothing to resume from: every candidate failed verification. */
export class NoCheckpointError extends Error {}

export interface CommitResult {
  /** Relative to the task folder, as the "checkpoint" event names it; null when discarded. */
  path: string | null;
  /** The disk forecast after it (null when nothing was committed). */
  disk: DiskVerdict | null;
}

/** An error from the operating system (ENOSPC, EACCES, EIO, ...), as opposed to a bug. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}

export class CheckpointKeeper {
  readonly checkpointsDir: string;

  constructor(
    readonly taskDir: string,
    readonly style: CheckpointStyle,
    readonly run: RunShape,
    private readonly report: CheckpointReport,
  ) {
    this.checkpointsDir = join(taskDir, "checkpoints");
  }

  /** Where the checkpoint of `step` is written before it is sealed and verified. */
  stagingPath(step: number): string {
    return join(this.checkpointsDir, `${STAGING_PREFIX}${this.style.prefix}${step}-${process.pid}`);
  }

  /** Removes what a stopped writer left (staged, replaced or half-removed folders). */
  async clearLeftovers(): Promise<void> {
    for (const name of await removeLeftovers(this.checkpointsDir)) {
      this.report.print(`removed checkpoints/${name}, left by an earlier attempt`);
    }
  }

  /**
   * The checkpoint to resume from: `requested` if it verifies, else the newest earlier one that
   * does, with a warning naming each one passed over and why. `loads` is the trainer's own
   * check that a checkpoint loads (it throws if not); `rejected` are those the caller already
   * found not to load.
   */
  async chooseResume(
    requested: string,
    options: { loads?: (dir: string) => Promise<void>; rejected?: RejectedCheckpoint[] } = {},
  ): Promise<ResumeChoice> {
    const rejected: RejectedCheckpoint[] = [...(options.rejected ?? [])];
    const siblings = (await listCheckpoints(join(requested, ".."), this.style.prefix)).map(
      (c) => c.name,
    );
    for (const path of resumeCandidates(requested, siblings, this.style.prefix)) {
      if (rejected.some((r) => r.path === path)) continue;
      const step = checkpointStep(basename(path), this.style.prefix);
      const verification = await verifyCheckpoint(path, step);
      if (verification.kind === "failed") {
        rejected.push({ path, reason: verification.reason });
        continue;
      }
      if (options.loads) {
        try {
          await options.loads(path);
        } catch (err) {
          rejected.push({ path, reason: `does not load (${(err as Error).message})` });
          continue;
        }
      }
      const fallback = fallbackMessage(path, rejected, this.taskDir);
      if (fallback) {
        this.report.print(`resume: ${fallback}`);
        this.report.warn(WARNING_KINDS.fallback, fallback, step ?? undefined);
      }
      if (verification.kind === "legacy") {
        this.report.print(
          `resume: ${displayPath(path, this.taskDir)} has no manifest (written before checkpoints had one): used as it is`,
        );
      }
      const sizes =
        verification.kind === "verified"
          ? manifestSizes(verification.manifest, this.style.finalFiles)
          : await folderSizes(path, this.style.finalFiles);
      return { path, step, sizes };
    }
    throw new NoCheckpointError(noCheckpointMessage(rejected, this.taskDir));
  }

  /** A checkpoint's sizes: from its manifest, or from its files when it has none. */
  async sizesOf(dir: string): Promise<CheckpointSizes> {
    const manifest = await peekManifest(dir);
    return manifest
      ? manifestSizes(manifest, this.style.finalFiles)
      : folderSizes(dir, this.style.finalFiles);
  }

  /**
   * The forecast as the run starts: from the checkpoint it resumes from (`measured`), or from an
   * estimate before the first one. An estimate only decides whether one checkpoint can fit ("no-
   * room": the caller refuses the start); a warning waits for a measured size, so that a rough
   * estimate never raises a false alarm. `warned`: a warning was given.
   */
  async forecastAtStart(
    step: number,
    sizes: CheckpointSizes,
    measured: boolean,
  ): Promise<{ verdict: DiskVerdict; warned: boolean }> {
    const verdict = await this.forecast(step, sizes, !measured);
    return { verdict, warned: measured && verdict.verdict === "short" };
  }

  /**
   * The disk forecast for a run at `step` whose checkpoints take `sizes`. A "short" verdict is
   * also reported as a warning unless `alreadyWarned`.
   */
  async forecast(
    step: number,
    sizes: CheckpointSizes,
    alreadyWarned: boolean,
  ): Promise<DiskVerdict> {
    const verdict = forecastDisk({
      ...(await freeSpace(this.taskDir)),
      sizes,
      checkpointsOnDisk: (await listCheckpoints(this.checkpointsDir, this.style.prefix)).length,
      checkpointsToCome: checkpointsToCome(
        step,
        this.run.totalSteps,
        this.run.saveSteps,
        this.style.savesAtEnd,
      ),
      keepLast: this.run.keepLast,
      keepsBest: this.run.evaluates,
    });
    if (verdict.verdict === "short" && !alreadyWarned) {
      this.report.print(`disk: ${verdict.message}`);
      this.report.warn(WARNING_KINDS.disk, verdict.message, step);
    }
    return verdict;
  }

  /**
   * Writes (through `write`, into `staged`), seals and verifies the checkpoint of `step`, puts it
   * in place, then removes the ones no longer kept. A checkpoint that cannot be written or fails
   * verification is discarded with a warning, every older one stays, and training goes on (the
   * disk may have room again by the next one). `write` returns the entries of the files it hashed
   * from memory (see sealCheckpoint); without `write`, `staged` was filled by the trainer.
   * `loads`: the trainer's check that the checkpoint loads; `loadFailure`: why it did not, when
   * the trainer checked before calling.
   */
  async commit(input: {
    staged: string;
    step: number;
    evalLoss: number | null;
    write?: (dir: string) => Promise<ManifestFile[] | undefined>;
    loads?: (dir: string) => Promise<void>;
    loadFailure?: string;
    diskWarned: boolean;
  }): Promise<CommitResult> {
    const { staged, step } = input;
    const name = `${this.style.prefix}${step}`;
    let manifest: CheckpointManifest;
    try {
      let files: ManifestFile[] | undefined;
      if (input.write) {
        await rm(staged, { recursive: true, force: true });
        await mkdir(staged, { recursive: true });
        files = await input.write(staged);
      }
      manifest = await sealCheckpoint(
        staged,
        { step, evalLoss: input.evalLoss, trainer: this.style.trainer },
        files,
      );
    } catch (err) {
      if (!isSystemError(err)) throw err;
      return this.discard(staged, step, `it could not be written: ${err.message}`);
    }
    const problem = input.loadFailure ?? (await this.verifyStaged(staged, step, input.loads));
    if (problem !== null) return this.discard(staged, step, problem);
    try {
      await renameIntoPlace(staged, join(this.checkpointsDir, name));
    } catch (err) {
      if (!isSystemError(err)) throw err;
      return this.discard(staged, step, `it could not be put in place: ${err.message}`);
    }
    const sizes = manifestSizes(manifest, this.style.finalFiles);
    const path = `checkpoints/${name}`;
    this.report.saved(step, path);
    this.report.print(
      `saved ${path} (${manifest.files.length} files, ${megabytes(sizes.checkpointBytes)}, verified)`,
    );
    await this.keepForScoring(name);
    await this.prune(name);
    const disk = await this.forecast(step, sizes, input.diskWarned);
    return { path, disk };
  }

  private async discard(staged: string, step: number, problem: string): Promise<CommitResult> {
    await rm(staged, { recursive: true, force: true }).catch(() => {});
    const message = `the checkpoint at step ${step} was discarded: ${problem}; the earlier checkpoints are kept`;
    this.report.print(`checkpoint: ${message}`);
    this.report.warn(WARNING_KINDS.unverified, message, step);
    return { path: null, disk: null };
  }

  private async verifyStaged(
    staged: string,
    step: number,
    loads: ((dir: string) => Promise<void>) | undefined,
  ): Promise<string | null> {
    const verification = await verifyCheckpoint(staged, step);
    if (verification.kind === "failed") return verification.reason;
    if (verification.kind === "legacy") return "its manifest is missing";
    if (!loads) return null;
    try {
      await loads(staged);
      return null;
    } catch (err) {
      return `it does not load: ${(err as Error).message}`;
    }
  }

  /**
   * A task with an evaluation set keeps each checkpoint's weights for its standing evaluation
   * (../evaluate/kept-weights.ts) before any checkpoint is removed, so every one is scored, even
   * one removed while no studio runs. Best effort: the studio keeps them itself when it finds a
   * checkpoint not kept.
   */
  private async keepForScoring(name: string): Promise<void> {
    if (!(await hasEvaluationSet(this.taskDir))) return;
    try {
      await keepWeights(this.taskDir, name);
    } catch (err) {
      if (!isSystemError(err)) throw err;
      this.report.print(
        `could not keep the weights of checkpoints/${name} for the evaluation set (${err.message})`,
      );
    }
  }

  /** Removes the checkpoints the retention plan does not keep, now that `newest` is in place. */
  private async prune(newest: string): Promise<void> {
    const folders = await listCheckpoints(this.checkpointsDir, this.style.prefix);
    const manifests = new Map<string, CheckpointManifest | null>();
    for (const folder of folders) manifests.set(folder.name, await peekManifest(folder.path));
    const plan = planRetention(
      folders.map((f) => ({
        name: f.name,
        step: f.step,
        evalLoss: manifests.get(f.name)?.evalLoss ?? null,
      })),
      newest,
      this.run.keepLast,
    );
    for (const { name, why } of plan.remove) {
      try {
        await removeCheckpoint(join(this.checkpointsDir, name));
        this.report.print(`removed checkpoints/${name}: ${why}`);
      } catch (err) {
        if (!isSystemError(err)) throw err;
        // It stays and is planned again after the next checkpoint.
        this.report.print(`could not remove checkpoints/${name} (${err.message})`);
      }
    }
  }
}
