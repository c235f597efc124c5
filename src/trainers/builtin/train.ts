import { join } from "node:path";
import { writeFileAtomicAsync } from "../../platform/atomic-write";
import { estimateCheckpoint } from "../checkpoints/disk-forecast";
import { BUILTIN_STYLE, CheckpointKeeper } from "../checkpoints/keeper";
import { ProgressLog } from "../progress-log";
import type { ProgressEvent, TaskConfig } from "../protocol";
import { type BaseModel, loadBaseModel, saveModel } from "./base-model";
import { type Batch, epochOrder, makeBatch, splitEval, stepsPerEpoch } from "./batches";
import {
  type Checkpoint,
  type LogEntry,
  loadCheckpoint,
  type TrainerState,
  writeCheckpointFiles,
  writeTrainerState,
} from "./checkpoint";
import { type Engine, openEngine, threadsFromEnvironment } from "./engine";
import { adapterConfigJson, initLoraWeights, type LoraSettings, loraPass } from "./lora";
import { adamWStep, clipGradNorm, DEFAULT_ADAMW, initAdamWState } from "./optimizer";
import { deriveSeed, Rng } from "./rng";
import { type TensorMap, writeSafetensors } from "./safetensors";
import { learningRateAt } from "./schedule";
import { encodeForTraining } from "./tokenizer";
import type { LoraPass, Transformer } from "./transformer";

/** The training loop: one optimizer step per batch, with logging, evaluation and checkpoints. */

export interface TrainHooks {
  /** Polled between steps; true once a stop (SIGTERM) was asked for. */
  shouldStop(): boolean;
  /** A human-readable line for training.log. */
  print(line: string): void;
}

export type TrainOutcome = "completed" | "stopped";

/** The run cannot start, for a reason of its own (not a bug): the trainer says so and exits 1. */
export class RefusedToStart extends Error {}

const LORA_INIT_STREAM = 4;
const DROPOUT_STREAM = 5;

export function loraSettingsOf(config: TaskConfig): LoraSettings {
  const hp = config.hyperparameters;
  return {
    rank: hp.loraRank,
    alpha: hp.loraAlpha,
    dropout: hp.loraDropout,
    targetModules: hp.targetModules,
  };
}

/** Mean token loss over `sequences`, batch by batch, with no dropout. */
function evaluate(
  model: Transformer,
  lora: LoraPass | null,
  sequences: number[][],
  batchSize: number,
): number {
  let lossSum = 0;
  let tokens = 0;
  for (let start = 0; start < sequences.length; start += batchSize) {
    const batch = makeBatch(sequences.slice(start, start + batchSize));
    lossSum += model.lossSum(batch, batch.targets, lora);
    tokens += batch.tokenCount;
  }
  return tokens === 0 ? Number.NaN : lossSum / tokens;
}

function round(value: number, digits = 4): number {
  return Number(value.toFixed(digits));
}

export async function train(
  config: TaskConfig,
  texts: string[],
  hooks: TrainHooks,
): Promise<TrainOutcome> {
  const engine = await openEngine(threadsFromEnvironment(process.env));
  try {
    return await trainOn(engine, config, texts, hooks);
  } finally {
    await engine.close();
  }
}

async function trainOn(
  engine: Engine,
  config: TaskConfig,
  texts: string[],
  hooks: TrainHooks,
): Promise<TrainOutcome> {
  const startedAt = performance.now();
  const hp = config.hyperparameters;
  const taskDir = config.taskDir;
  const progress = new ProgressLog(join(taskDir, "progress.jsonl"));
  const lora = config.mode === "lora";
  const settings = loraSettingsOf(config);

  const base: BaseModel = await loadBaseModel(config.model);
  const modelConfig = base.config;
  const maxTokens = Math.min(hp.maxLength, modelConfig.contextLength + 1);
  const sequences = texts.map((text) => encodeForTraining(text, maxTokens));
  const split = splitEval(sequences.length, hp.evalSplit, hp.seed);
  if (split.train.length === 0) throw new Error("the dataset has no training rows");
  const evalSequences = split.eval.map((i) => sequences[i]!);
  const perEpoch = stepsPerEpoch(split.train.length, hp.batchSize);
  const totalSteps = perEpoch * hp.epochs;

  const initial: TensorMap = lora
    ? initLoraWeights(modelConfig, settings, new Rng(deriveSeed(hp.seed, LORA_INIT_STREAM)))
    : base.weights;
  const params = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const [name, t] of initial) {
    params.set(name, Float32Array.from(t.data));
    shapes.set(name, t.shape);
  }
  let optimizer = initAdamWState(params);
  let step = 0;
  let epochIndex = 0;
  let batchIndex = 0;
  let dropoutRng = new Rng(deriveSeed(hp.seed, DROPOUT_STREAM));
  let logHistory: LogEntry[] = [];
  const weightsFile = lora ? "adapter_model.safetensors" : "model.safetensors";
  const keeper = new CheckpointKeeper(
    taskDir,
    BUILTIN_STYLE(weightsFile),
    {
      totalSteps,
      saveSteps: hp.saveSteps,
      keepLast: hp.keepCheckpoints,
      evaluates: evalSequences.length > 0,
    },
    {
      saved: (at, path) => progress.write({ event: "checkpoint", step: at, path }),
      warn: (kind, message, at) => progress.warn(kind, message, at),
      print: hooks.print,
    },
  );
  await keeper.clearLeftovers();
  let resumeFrom: string | null = null;
  let sizes = estimateCheckpoint([...params.values()].reduce((n, p) => n + p.length * 4, 0));
  if (config.resumeFrom) {
    let loaded: Checkpoint | null = null;
    const choice = await keeper.chooseResume(config.resumeFrom, {
      loads: async (dir) => {
        loaded = await loadCheckpoint(dir);
      },
    });
    const checkpoint = loaded as Checkpoint | null;
    if (!checkpoint) throw new Error(`${choice.path} was chosen but not loaded`);
    resumeFrom = choice.path;
    sizes = choice.sizes;
    for (const [name, value] of params) {
      const saved = checkpoint.weights.get(name)?.data;
      if (!saved || saved.length !== value.length) {
        throw new Error(`checkpoint ${resumeFrom} does not match this task: ${name} differs`);
      }
      params.set(name, Float32Array.from(saved));
    }
    optimizer = checkpoint.optimizer;
    step = checkpoint.resume.step;
    epochIndex = checkpoint.resume.epoch_index;
    batchIndex = checkpoint.resume.batch_index;
    dropoutRng = Rng.fromState(checkpoint.resume.dropout_rng_state);
    logHistory = checkpoint.logHistory;
  }
  const startDisk = await keeper.forecastAtStart(step, sizes, resumeFrom !== null);
  if (startDisk.verdict.verdict === "no-room") throw new RefusedToStart(startDisk.verdict.message);
  let diskWarned = startDisk.warned;

  const model = engine.transformer(modelConfig);
  for (const [name, t] of base.weights) model.setWeight(name, t.data);
  const trainedNames = [...params.keys()];
  const syncParams = () => {
    for (const [name, value] of params) model.setWeight(name, value);
  };
  const weightsMetadata: Record<string, string> = { format: "pt" };
  const noDecay = new Set(
    [...params.keys()].filter((n) => n.endsWith(".bias") || n.endsWith("norm.weight")),
  );

  const trainedWeights = (): TensorMap => {
    const out: TensorMap = new Map();
    for (const [name, data] of params) out.set(name, { shape: shapes.get(name)!, data });
    return out;
  };
  const trainerState = (): TrainerState => ({
    global_step: step,
    max_steps: totalSteps,
    epoch: round(step / perEpoch),
    num_train_epochs: hp.epochs,
    log_history: logHistory,
  });
  const extraFiles = (): Record<string, string> =>
    lora ? { "adapter_config.json": adapterConfigJson(settings, config.model) } : {};
  let lastCheckpointStep = -1;
  /** The last evaluation: a checkpoint of the same step records its loss in its manifest. */
  let lastEval: { step: number; loss: number } | null = null;
  const checkpoint = async () => {
    const snapshot: Checkpoint = {
      resume: {
        step,
        epoch_index: epochIndex,
        batch_index: batchIndex,
        dropout_rng_state: dropoutRng.getState(),
        weights_file: weightsFile,
      },
      weights: trainedWeights(),
      optimizer,
      logHistory,
    };
    const state = trainerState();
    const committed = await keeper.commit({
      staged: keeper.stagingPath(step),
      step,
      evalLoss: lastEval?.step === step ? lastEval.loss : null,
      write: (dir) => writeCheckpointFiles(dir, snapshot, state, weightsMetadata, extraFiles()),
      loads: async (dir) => {
        await loadCheckpoint(dir);
      },
      diskWarned,
    });
    if (committed.disk) diskWarned = committed.disk.verdict === "short";
    if (committed.path !== null) lastCheckpointStep = step;
  };
  const evalNow = (): number => {
    syncParams();
    return evaluate(model, lora ? loraPass(settings, null) : null, evalSequences, hp.batchSize);
  };

  progress.write({
    event: "started",
    total_epochs: hp.epochs,
    total_steps: totalSteps,
    ...(resumeFrom ? { resumed_from_step: step } : {}),
  });
  hooks.print(
    `${lora ? "LoRA" : "pretraining"} on ${config.model}: ${split.train.length} training rows, ` +
      `${evalSequences.length} eval rows, ${totalSteps} steps` +
      (resumeFrom ? `, resuming at step ${step} from ${resumeFrom}` : ""),
  );

  let windowLoss = 0;
  let windowSteps = 0;
  let windowTokens = 0;
  let windowStart = performance.now();
  let order = epochOrder(split.train.length, hp.seed, epochIndex);
  while (step < totalSteps) {
    if (hooks.shouldStop()) {
      if (lastCheckpointStep !== step) await checkpoint();
      progress.write({ event: "stopped", step, reason: "SIGTERM" });
      hooks.print(`stopped at step ${step}`);
      return "stopped";
    }
    const rows = order.slice(batchIndex * hp.batchSize, (batchIndex + 1) * hp.batchSize);
    const batch: Batch = makeBatch(rows.map((i) => sequences[split.train[i]!]!));
    const learningRate = learningRateAt(step, totalSteps, hp.learningRate, hp.warmupRatio);
    syncParams();
    const { loss, grads: gradArrays } = model.lossAndGradients(
      batch,
      batch.targets,
      batch.tokenCount,
      lora ? loraPass(settings, dropoutRng) : null,
      trainedNames,
    );
    const gradNorm = clipGradNorm(gradArrays, hp.maxGradNorm);
    adamWStep(params, gradArrays, optimizer, learningRate, {
      ...DEFAULT_ADAMW,
      weightDecay: hp.weightDecay,
      noDecay,
    });
    step += 1;
    batchIndex += 1;
    if (batchIndex === perEpoch) {
      batchIndex = 0;
      epochIndex += 1;
      order = epochOrder(split.train.length, hp.seed, epochIndex);
    }
    windowLoss += loss;
    windowSteps += 1;
    windowTokens += batch.tokenCount;
    const epoch = round(step / perEpoch);

    if (step % hp.loggingSteps === 0 || step === totalSteps) {
      const seconds = (performance.now() - windowStart) / 1000;
      const meanLoss = round(windowLoss / windowSteps);
      const tokensPerSecond = Math.round(windowTokens / seconds);
      progress.write({
        event: "progress",
        epoch,
        total_epochs: hp.epochs,
        step,
        total_steps: totalSteps,
        ...lossField(meanLoss),
        learning_rate: learningRate,
        grad_norm: round(gradNorm),
        tokens_per_second: tokensPerSecond,
      });
      logHistory.push({ step, epoch, loss: meanLoss, learning_rate: learningRate });
      hooks.print(
        `step ${step}/${totalSteps} epoch ${epoch} loss ${meanLoss} lr ${learningRate.toExponential(3)} ` +
          `${tokensPerSecond} tokens/s`,
      );
      windowLoss = 0;
      windowSteps = 0;
      windowTokens = 0;
      windowStart = performance.now();
    }
    if (evalSequences.length > 0 && step % hp.evalSteps === 0) {
      const evalLoss = round(evalNow());
      lastEval = { step, loss: evalLoss };
      progress.write({ event: "eval", epoch, step, eval_loss: evalLoss });
      logHistory.push({ step, epoch, eval_loss: evalLoss });
      hooks.print(`step ${step} eval loss ${evalLoss}`);
    }
    if (step % hp.saveSteps === 0) await checkpoint();
    // Yield so a SIGTERM handler can run between steps.
    await new Promise((resolve) => setImmediate(resolve));
  }

  let evalLossBase: number | undefined;
  let evalLossAdapter: number | undefined;
  if (evalSequences.length > 0) {
    evalLossAdapter = round(evalNow());
    // The base model's loss: without the adapters, or with the base weights put back.
    if (!lora) for (const [name, t] of base.weights) model.setWeight(name, t.data);
    evalLossBase = round(evaluate(model, null, evalSequences, hp.batchSize));
    hooks.print(`eval loss: base ${evalLossBase}, trained ${evalLossAdapter}`);
  }
  if (lora) {
    await writeSafetensors(join(taskDir, weightsFile), trainedWeights(), weightsMetadata);
    await writeFileAtomicAsync(
      join(taskDir, "adapter_config.json"),
      adapterConfigJson(settings, config.model),
    );
  } else {
    await saveModel(join(taskDir, weightsFile), { config: modelConfig, weights: trainedWeights() });
  }
  await writeTrainerState(taskDir, trainerState());
  const losses = logHistory.flatMap((entry) => (entry.loss === undefined ? [] : [entry.loss]));
  const trainLoss =
    losses.length > 0 ? round(losses.reduce((a, b) => a + b, 0) / losses.length) : undefined;
  progress.write({
    event: "completed",
    step,
    train_loss: trainLoss,
    eval_loss_base: evalLossBase,
    eval_loss_adapter: evalLossAdapter,
    runtime_s: round((performance.now() - startedAt) / 1000, 2),
  });
  hooks.print(
    `completed ${step} steps in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`,
  );
  return "completed";
}

/** The loss for a progress event: a number, or what it was instead (JSON has no NaN). */
function lossField(
  loss: number,
): Pick<ProgressEvent & { event: "progress" }, "loss" | "loss_not_finite"> {
  if (Number.isFinite(loss)) return { loss };
  return { loss_not_finite: Number.isNaN(loss) ? "nan" : loss > 0 ? "inf" : "-inf" };
}
