"""LoRA fine-tuning with Hugging Face transformers + peft, following the studio's trainer protocol.

Run as `python train.py --task-dir <dir> [--resume-from <checkpoint>]` (or under torchrun, one
process per GPU). Reads <dir>/config.json (see src/trainers/protocol.ts), appends progress events
to <dir>/progress.jsonl, writes checkpoints to <dir>/checkpoints/checkpoint-N (kept, verified and
chosen on resume by the studio's checkpoint tool: see checkpoints.py) and, when training
completes, the adapter (adapter_config.json, adapter_model.safetensors) into <dir>.

SIGTERM asks for a checkpoint at the end of the current step, then the process exits with 143.
A failure is reported as a "failed" event naming the error before the process exits with it.
Nothing is downloaded unless the model is a hub id and HF_HUB_OFFLINE is unset.
"""

import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time

EXIT_STOPPED = 143  # 128 + SIGTERM, as if the signal had ended the process
IS_MAIN_PROCESS = int(os.environ.get("RANK", "0")) == 0
MAX_REASON = 1000  # the protocol's strings are at most 1,024 characters


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--resume-from", default=None)
    return parser.parse_args()


class Events:
    """Appends protocol events to progress.jsonl; only the main process writes."""

    def __init__(self, task_dir):
        self.path = os.path.join(task_dir, "progress.jsonl")

    def emit(self, event, **fields):
        if not IS_MAIN_PROCESS:
            return
        record = {"event": event, "time": time.time()}
        record.update({k: v for k, v in fields.items() if v is not None})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


# ---- datasets ---------------------------------------------------------------------------------
# The studio validated the file when it was uploaded or registered (src/trainers/dataset.ts);
# here only what is needed to read it is checked again.


def read_rows(path):
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def row_to_text(row, fmt):
    """The text a model trains on for one row.

    Keep in sync with rowToText in src/trainers/dataset.ts: both trainers must use the same
    templates so that an adapter is prompted the same way whichever trainer made it.
    """
    if fmt == "alpaca":
        instruction, output = row["instruction"], row["output"]
        input_text = row.get("input") or ""
        input_part = f"### Input:\n{input_text}\n" if input_text.strip() else ""
        return f"### Instruction:\n{instruction}\n{input_part}### Response:\n{output}"
    if fmt == "chat":
        return "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in row["messages"])
    if fmt == "text":
        return row["text"]
    raise ValueError(f"unknown dataset format: {fmt}")


def split_train_eval(texts, eval_split, seed):
    """A seeded shuffle then a tail for evaluation; every attempt of a task gets the same split."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(texts) * eval_split))
    if eval_split > 0 and n_eval == 0 and len(texts) >= 2:
        n_eval = 1
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    return [texts[i] for i in train_idx], [texts[i] for i in eval_idx]


# ---- stopping on SIGTERM ----------------------------------------------------------------------


class StopRequest:
    """Set by SIGTERM/SIGINT; the training loop notices it at the end of the next step."""

    def __init__(self):
        self.flag = threading.Event()
        self.signal_name = None

    def install(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signal_name = signal.Signals(signum).name
        self.flag.set()

    def is_set(self):
        return self.flag.is_set()


def run():
    """main(), with its failure told in a "failed" event (the traceback still goes to the log)."""
    args = parse_args()
    task_dir = os.path.abspath(args.task_dir)
    events = Events(task_dir)
    try:
        return main(args, task_dir, events)
    except BaseException as err:
        reason = failure_reason(err)
        if reason:
            try:
                events.emit("failed", reason=reason)
            except OSError:
                pass  # the folder is gone or full: the exit code still tells
        raise


def failure_reason(err):
    """One line for the task's failure reason; None for a plain exit code."""
    if isinstance(err, SystemExit):
        text = err.code if isinstance(err.code, str) else None
    elif isinstance(err, Exception):
        text = f"{type(err).__name__}: {err}"
    else:
        text = None
    return " ".join(text.split())[:MAX_REASON] if text else None


def main(args, task_dir, events):
    stop = StopRequest()
    stop.install()

    with open(os.path.join(task_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    hp = config["hyperparameters"]
    # Beside this script; imported here so that importing train.py alone (its tests) needs nothing.
    from checkpoints import CheckpointTool
    from task_model import load_base, load_tokenizer

    checkpoints = CheckpointTool(task_dir, report=IS_MAIN_PROCESS)
    requested = args.resume_from or config.get("resumeFrom")
    # The newest checkpoint from the one asked for down that verifies and loads (every process
    # chooses the same; only the main one says so).
    resumed = checkpoints.choose_resume(requested) if requested else None
    resume_from = resumed["path"] if resumed else None

    # Imported after the cheap checks so that a bad config fails in milliseconds, not seconds.
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    log(f"transformers {transformers.__version__}, torch {torch.__version__}")
    transformers.set_seed(hp["seed"])

    rows = read_rows(config["dataset"]["path"])
    texts = [row_to_text(row, config["dataset"]["format"]) for row in rows]
    train_texts, eval_texts = split_train_eval(texts, hp["evalSplit"], hp["seed"])
    if not train_texts:
        raise SystemExit("the dataset has no rows left to train on after the evaluation split")
    log(f"dataset: {len(train_texts)} training rows, {len(eval_texts)} evaluation rows")

    model_id = config["model"]
    tokenizer = load_tokenizer(model_id, need_pad=True)

    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    model = load_base(model_id, torch.bfloat16 if use_bf16 else torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(
        r=hp["loraRank"],
        lora_alpha=hp["loraAlpha"],
        lora_dropout=hp["loraDropout"],
        target_modules=hp["targetModules"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable, total = count_parameters(model)
    log(f"LoRA: {trainable} trainable parameters of {total} ({100 * trainable / total:.3f}%)")
    trainable_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)

    train_dataset = TokenizedTexts(train_texts, tokenizer, hp["maxLength"])
    eval_dataset = TokenizedTexts(eval_texts, tokenizer, hp["maxLength"]) if eval_texts else None

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = math.ceil(math.ceil(len(train_dataset) / world_size) / hp["batchSize"])
    total_steps = steps_per_epoch * hp["epochs"]
    eval_strategy = "steps" if eval_dataset is not None else "no"
    checkpoints.total_steps = total_steps
    checkpoints.evaluates = eval_dataset is not None
    if IS_MAIN_PROCESS:
        # Refuses the start when not even one checkpoint fits; warns when the run will not.
        start_step = (resumed["step"] or 0) if resumed else 0
        checkpoints.start(start_step, resume_from, trainable_bytes)
    training_args = TrainingArguments(
        # Checkpoints are staged there; the tool moves each to checkpoints/checkpoint-N once verified.
        output_dir=checkpoints.staging_dir,
        num_train_epochs=hp["epochs"],
        learning_rate=hp["learningRate"],
        per_device_train_batch_size=hp["batchSize"],
        per_device_eval_batch_size=hp["batchSize"],
        # Steps rather than warmup_ratio, whose meaning and name moved between releases.
        warmup_steps=math.ceil(total_steps * hp["warmupRatio"]),
        weight_decay=hp["weightDecay"],
        max_grad_norm=hp["maxGradNorm"],
        seed=hp["seed"],
        data_seed=hp["seed"],
        logging_steps=hp["loggingSteps"],
        save_strategy="steps",
        save_steps=hp["saveSteps"],
        eval_steps=hp["evalSteps"],
        bf16=use_bf16,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without it, several processes on the CPU (torchrun, gloo) would each train alone.
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        ddp_find_unused_parameters=False,
        **{eval_strategy_key(TrainingArguments): eval_strategy},
    )

    class ProgressCallback(TrainerCallback):
        """Turns the Trainer's moments into progress.jsonl events and carries out a stop request."""

        def __init__(self):
            self.reporting = True
            self.stopped = False
            self.last_eval = None  # (step, eval loss)
            self.last_saved = None  # the step of the last checkpoint put in place

        def on_train_begin(self, args, state, control, **kwargs):
            resumed = state.global_step if resume_from else None
            if resume_from:
                apply_peak_learning_rate(
                    kwargs.get("optimizer"), kwargs.get("lr_scheduler"), hp["learningRate"]
                )
            events.emit(
                "started",
                total_epochs=hp["epochs"],
                total_steps=state.max_steps,
                resumed_from_step=resumed,
            )

        def on_step_end(self, args, state, control, **kwargs):
            if stop_agreed(stop, args.device):
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not self.reporting or not logs or "loss" not in logs:
                return
            events.emit(
                "progress",
                epoch=state.epoch or 0,
                total_epochs=hp["epochs"],
                step=state.global_step,
                total_steps=state.max_steps,
                loss=as_float(logs.get("loss")),
                loss_not_finite=not_finite(logs.get("loss")),
                learning_rate=as_float(logs.get("learning_rate")),
                grad_norm=as_float(logs.get("grad_norm")),
            )

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.reporting and metrics and "eval_loss" in metrics:
                self.last_eval = (state.global_step, as_float(metrics["eval_loss"]))
                events.emit(
                    "eval",
                    epoch=state.epoch,
                    step=state.global_step,
                    eval_loss=as_float(metrics["eval_loss"]),
                )

        def on_save(self, args, state, control, **kwargs):
            # Every process has written its part (its RNG state) before the folder is sealed.
            wait_for_every_process()
            if not IS_MAIN_PROCESS:
                return
            step = state.global_step
            eval_loss = self.last_eval[1] if self.last_eval and self.last_eval[0] == step else None
            # The tool writes the "checkpoint" event once the checkpoint is in place.
            if checkpoints.commit(step, eval_loss) is not None:
                self.last_saved = step

    progress = ProgressCallback()
    trainer = Trainer(
        model=model,
        args=training_args,
        data_collator=PadCollator(tokenizer.pad_token_id),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        callbacks=[progress],
    )

    if stop.is_set():
        events.emit("stopped", step=0, reason=f"{stop.signal_name} before training began")
        return EXIT_STOPPED
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    step = trainer.state.global_step
    if progress.stopped:
        saved = (
            f"checkpoint saved at step {step}"
            if progress.last_saved == step
            else f"the checkpoint at step {step} was discarded (see the warning)"
        )
        events.emit("stopped", step=step, reason=f"{stop.signal_name}: {saved}")
        return EXIT_STOPPED

    progress.reporting = False
    eval_loss_adapter = eval_loss_base = None
    if eval_dataset is not None:
        eval_loss_adapter = as_float(trainer.evaluate()["eval_loss"])
        with trainer.model.disable_adapter():
            eval_loss_base = as_float(trainer.evaluate()["eval_loss"])
        log(f"eval loss: base {eval_loss_base:.4f}, with adapter {eval_loss_adapter:.4f}")
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(task_dir, safe_serialization=True)
    events.emit(
        "completed",
        step=step,
        train_loss=as_float(result.training_loss),
        eval_loss_base=eval_loss_base,
        eval_loss_adapter=eval_loss_adapter,
        runtime_s=time.time() - started,
    )
    return 0


class TokenizedTexts:
    """A map-style dataset of tokenized texts (no `datasets` dependency), eos appended to each."""

    def __init__(self, texts, tokenizer, max_length):
        eos = tokenizer.eos_token_id
        self.items = []
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            if eos is not None and len(ids) < max_length and (not ids or ids[-1] != eos):
                ids = ids + [eos]
            self.items.append(ids)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return {"input_ids": self.items[index]}


class PadCollator:
    """Right-pads a batch; padding is masked out of attention and of the loss."""

    def __init__(self, pad_token_id):
        self.pad_token_id = pad_token_id

    def __call__(self, features):
        import torch

        width = max(len(f["input_ids"]) for f in features)
        input_ids, attention_mask, labels = [], [], []
        for f in features:
            ids = f["input_ids"]
            pad = width - len(ids)
            input_ids.append(ids + [self.pad_token_id] * pad)
            attention_mask.append([1] * len(ids) + [0] * pad)
            labels.append(ids + [-100] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "attention_mask": torch.tensor(attention_mask),
            "labels": torch.tensor(labels),
        }


def stop_agreed(stop, device):
    """Whether any process was asked to stop: under torchrun every rank must stop at the same step,
    or the next collective operation would wait forever."""
    import torch
    import torch.distributed as dist

    local = stop.is_set()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    flag = torch.tensor([1 if local else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def wait_for_every_process():
    """A barrier under torchrun; nothing with one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def eval_strategy_key(training_arguments_class):
    """transformers 4.41 renamed evaluation_strategy to eval_strategy; 4.46 dropped the old name."""
    import inspect

    params = inspect.signature(training_arguments_class.__init__).parameters
    return "eval_strategy" if "eval_strategy" in params else "evaluation_strategy"


def count_parameters(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def apply_peak_learning_rate(optimizer, scheduler, peak):
    """A resumed run takes the learning rate its checkpoint saved (optimizer and schedule); the
    studio may have lowered it since (a rollback after the loss diverged). Rescale both so the
    schedule continues from the same point at the configured peak."""
    if optimizer is None or scheduler is None or not hasattr(scheduler, "base_lrs"):
        return
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        if base and base != peak:
            group["lr"] = group["lr"] * peak / base
            group["initial_lr"] = peak
    scheduler.base_lrs = [peak for _ in scheduler.base_lrs]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def not_finite(value):
    """What a loss was instead of a number ("nan", "inf", "-inf"), or None when it was one."""
    if value is None or math.isfinite(float(value)):
        return None
    number = float(value)
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def as_float(value):
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def log(message):
    if IS_MAIN_PROCESS:
        print(f"[hf-peft] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(run())
