/**
 * Whether a run's checkpoints and final adapter will fit on the disk of its task folder. A
 * checkpoint is written whole before older ones are removed, so at its peak the folder holds the
 * kept checkpoints plus the new one; the final adapter is written once the last checkpoint is in.
 * Pure: the trainer measures the sizes and asks statfs for the free space.
 */

/** What one checkpoint holds, and the final output (the adapter, or the model in pretraining). */
export interface CheckpointSizes {
  checkpointBytes: number;
  /** Files in a checkpoint, its manifest included: each may take up to a block more on disk. */
  checkpointFiles: number;
  finalBytes: number;
  finalFiles: number;
}

export interface DiskForecastInput {
  /** Free bytes on the task folder's file system, for this user (statfs bavail × bsize). */
  freeBytes: number;
  /** The file system's block size: a small file takes a whole block. */
  blockBytes: number;
  /** Measured from the last checkpoint, or estimated before the first. */
  sizes: CheckpointSizes;
  /** Checkpoint folders in the task folder now (they are already counted out of `freeBytes`). */
  checkpointsOnDisk: number;
  /** How many more checkpoints the run will write. */
  checkpointsToCome: number;
  keepLast: number;
  /** The run evaluates, so the best checkpoint by eval loss may be kept beside the last ones. */
  keepsBest: boolean;
}

export type DiskVerdict =
  | { verdict: "fits"; neededBytes: number }
  /** The run will fill the disk before it ends: warn early, it may still free up. */
  | { verdict: "short"; neededBytes: number; message: string }
  /** Not even the next checkpoint fits: a run that starts now cannot save anything. */
  | { verdict: "no-room"; neededBytes: number; message: string };

const KB = 1024;
const MB = 1024 * KB;
/** A size for people: KB below a megabyte, one decimal below 10 MB, whole megabytes above. */
export function megabytes(bytes: number): string {
  if (bytes < MB) return `${Math.ceil(bytes / KB)} KB`;
  const mb = bytes / MB;
  return `${mb < 10 ? mb.toFixed(1) : Math.round(mb)} MB`;
}

/**
 * What `bytes` in `files` files take on disk at most: each file's last block partly used, and a
 * block for the folder itself when there is one.
 */
export function onDiskBytes(bytes: number, files: number, blockBytes: number, folder: boolean) {
  return bytes + (files + (folder ? 1 : 0)) * blockBytes;
}

/**
 * Extra bytes the rest of the run needs on top of what is on disk now (never negative), and the
 * most checkpoint folders there will be at once.
 */
export function bytesStillNeeded(input: DiskForecastInput): {
  bytes: number;
  peakFolders: number;
  checkpointBytes: number;
  finalBytes: number;
} {
  const { sizes, blockBytes, checkpointsOnDisk: onDisk, checkpointsToCome } = input;
  const checkpointBytes = onDiskBytes(
    sizes.checkpointBytes,
    sizes.checkpointFiles,
    blockBytes,
    true,
  );
  const finalBytes = onDiskBytes(sizes.finalBytes, sizes.finalFiles, blockBytes, false);
  if (checkpointsToCome <= 0) {
    return { bytes: finalBytes, peakFolders: onDisk, checkpointBytes, finalBytes };
  }
  const retained = input.keepLast + (input.keepsBest ? 1 : 0);
  // The kept ones (or more, left from before) plus the one being written.
  const peakFolders = Math.min(onDisk + checkpointsToCome, Math.max(onDisk, retained) + 1);
  const atEnd = Math.min(onDisk + checkpointsToCome, retained);
  const duringSaves = (peakFolders - onDisk) * checkpointBytes;
  const withFinal = (atEnd - onDisk) * checkpointBytes + finalBytes;
  return {
    bytes: Math.max(0, duringSaves, withFinal),
    peakFolders,
    checkpointBytes,
    finalBytes,
  };
}

export function forecastDisk(input: DiskForecastInput): DiskVerdict {
  const { bytes: neededBytes, peakFolders, checkpointBytes, finalBytes } = bytesStillNeeded(input);
  const free = megabytes(input.freeBytes);
  if (input.checkpointsToCome > 0 && input.freeBytes < checkpointBytes) {
    return {
      verdict: "no-room",
      neededBytes,
      message: `not enough disk space for one checkpoint: it takes about ${megabytes(checkpointBytes)} and ${free} are free on the task folder's disk`,
    };
  }
  if (neededBytes > input.freeBytes) {
    return {
      verdict: "short",
      neededBytes,
      message:
        `this run will not fit on the task folder's disk: it needs about ${megabytes(neededBytes)} more ` +
        `(up to ${peakFolders} checkpoints of ${megabytes(checkpointBytes)} at once, ` +
        `then the final ${megabytes(finalBytes)}) and ${free} are free; ` +
        "free some space or keep fewer checkpoints, or it will fail when the disk is full",
    };
  }
  return { verdict: "fits", neededBytes };
}

/** How many checkpoints a run at `step` will still write. */
export function checkpointsToCome(
  step: number,
  totalSteps: number,
  saveSteps: number,
  /** The trainer also saves at the last step (Hugging Face's Trainer does). */
  savesAtEnd: boolean,
): number {
  if (step >= totalSteps) return 0;
  const periodic = Math.floor(totalSteps / saveSteps) - Math.floor(step / saveSteps);
  const atEnd = savesAtEnd && totalSteps % saveSteps !== 0 ? 1 : 0;
  return periodic + atEnd;
}

/**
 * Before the first checkpoint, its size from the trainable weights: the weights themselves and
 * AdamW's two moments of the same size, plus a few small files (state, configuration, RNG). The
 * final output is the weights again, with their configuration.
 */
export function estimateCheckpoint(trainableBytes: number): CheckpointSizes {
  return {
    checkpointBytes: 3 * trainableBytes + 64 * 1024,
    checkpointFiles: 8,
    finalBytes: trainableBytes + 16 * 1024,
    finalFiles: 2,
  };
}
