"""Evaluates an hf-peft task's adapter (or a checkpoint's) against its base model on held-out data.

    python evaluate.py --task-dir <dir> --source <adapter folder> --dataset <file> \\
        --format <alpaca|chat|text> --loss-rows N --generation-rows N --samples N

The same measures as the built-in trainer's evaluation (src/trainers/builtin/evaluate.ts): the
mean token loss and perplexity of the base with the adapter and of the base alone (the adapter
disabled), on the first --loss-rows rows, each cut as training cut it (maxLength, eos appended:
train.py's TokenizedTexts); for instruction data (alpaca, chat), greedy answers to the first
--generation-rows prompts compared with the expected answers (surrounding whitespace ignored),
and the first --samples of them shown. The base, tokenizer and adapter load as every program of
the trainer loads them (task_model.py), on the CPU, so an evaluation never takes a GPU from a
training. The results are printed as one JSON object on the last line (EvalResults in
src/trainers/evaluate/eval-record.ts); a failure's last line says why.
"""

import argparse
import json
import math
import os
import sys
import traceback

# The text before an answer, by format: keep in sync with ANSWER_MARKERS in
# src/trainers/evaluate/instruction-pairs.ts.
ANSWER_MARKERS = {"alpaca": "### Response:\n", "chat": "<|assistant|>\n"}
CHAT_ROLE_LINE = ("\n<|system|>\n", "\n<|user|>\n", "\n<|assistant|>\n")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--format", required=True, choices=["alpaca", "chat", "text"])
    parser.add_argument("--loss-rows", type=int, required=True)
    parser.add_argument("--generation-rows", type=int, required=True)
    parser.add_argument("--samples", type=int, required=True)
    return parser.parse_args()


def instruction_pair(text, fmt):
    """(prompt, expected answer) cut at the last answer marker; None for plain text or no marker.

    The same cut as instructionPair in src/trainers/evaluate/instruction-pairs.ts: the prompt is
    exactly what the model saw before the answer in training; a chat's answer ends where the
    next turn begins.
    """
    marker = ANSWER_MARKERS.get(fmt)
    if marker is None:
        return None
    at = text.rfind(marker)
    if at < 0:
        return None
    cut = at + len(marker)
    answer = text[cut:]
    if fmt == "chat":
        ends = [answer.find(role) for role in CHAT_ROLE_LINE if answer.find(role) >= 0]
        if ends:
            answer = answer[: min(ends)]
    return text[:cut], answer


def perplexity_of(loss_sum, tokens):
    """exp(mean token loss); None with nothing to average, or beyond what a float holds."""
    if tokens == 0 or not math.isfinite(loss_sum):
        return None
    try:
        return math.exp(loss_sum / tokens)
    except OverflowError:
        return None


def loss_sum(model, items, collate, batch_size, torch):
    """The summed token loss of `items` (lists of token ids) and the tokens it is over."""
    total, tokens = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = collate([{"input_ids": ids} for ids in items[start : start + batch_size]])
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        # Each position predicts the next token; padding is labelled -100 and counts nothing.
        labels = batch["labels"][:, 1:]
        predicted = logits[:, :-1].float()
        total += float(
            torch.nn.functional.cross_entropy(
                predicted.reshape(-1, predicted.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
        )
        tokens += int((labels != -100).sum())
    return total, tokens


def greedy_answer(model, tokenizer, prompt_ids, expected, limit, torch):
    """The adapter's greedy continuation, a few tokens longer than the expected answer at most."""
    budget = len(tokenizer(expected, add_special_tokens=False)["input_ids"]) + 8
    budget = min(budget, limit - prompt_ids.shape[1])
    with torch.no_grad():
        output = model.generate(
            input_ids=prompt_ids,
            attention_mask=torch.ones_like(prompt_ids),
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0][prompt_ids.shape[1] :], skip_special_tokens=True)


def evaluate(args):
    task_dir = os.path.abspath(args.task_dir)
    source = os.path.abspath(args.source)
    # Beside this script: train.py reads and cuts the data; task_model.py loads the model.
    from task_model import (
        context_length,
        describe,
        load_tokenizer,
        load_with_adapter,
        read_task_config,
    )
    from train import PadCollator, TokenizedTexts, read_rows, row_to_text

    config = read_task_config(task_dir)
    hp = config["hyperparameters"]
    rows = read_rows(args.dataset)[: args.loss_rows]
    try:
        texts = [row_to_text(row, args.format) for row in rows]
    except (KeyError, TypeError) as error:
        raise SystemExit(
            f"the dataset's rows are not in {args.format} format (a row has no {error})"
        ) from None

    import torch

    model_id = config["model"]
    tokenizer = load_tokenizer(model_id, need_pad=True)
    model = load_with_adapter(model_id, source)
    print(describe(model_id, source, model), file=sys.stderr)
    limit = context_length(model)

    items = TokenizedTexts(texts, tokenizer, min(hp["maxLength"], limit)).items
    collate = PadCollator(tokenizer.pad_token_id)
    trained, tokens = loss_sum(model, items, collate, hp["batchSize"], torch)
    with model.disable_adapter():
        base, _ = loss_sum(model, items, collate, hp["batchSize"], torch)

    pairs = []
    for text in texts:
        pair = instruction_pair(text, args.format)
        if pair is None:
            continue
        prompt_ids = tokenizer(pair[0], return_tensors="pt")["input_ids"]
        # A prompt the context cannot hold leaves no room to answer: not counted.
        if prompt_ids.shape[1] < limit:
            pairs.append((pair, prompt_ids))
        if len(pairs) == args.generation_rows:
            break
    matched = 0
    samples = []
    for (prompt, expected), prompt_ids in pairs:
        generated = greedy_answer(model, tokenizer, prompt_ids, expected, limit, torch)
        if generated.strip() == expected.strip():
            matched += 1
        if len(samples) < args.samples:
            samples.append({"prompt": prompt, "expected": expected, "generated": generated})

    def mean(total):
        return total / tokens if tokens and math.isfinite(total) else None

    return {
        "rows": len(items),
        "tokens": tokens,
        "loss": mean(trained),
        "perplexity": perplexity_of(trained, tokens),
        "baseLoss": mean(base),
        "basePerplexity": perplexity_of(base, tokens),
        "exactMatch": None if args.format == "text" else {"matched": matched, "total": len(pairs)},
        "samples": samples,
    }


def main():
    args = parse_args()
    try:
        results = evaluate(args)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - every failure is reported the same way
        if not isinstance(err, SystemExit):
            traceback.print_exc()
        # One line the evaluator takes as the reason.
        reason = err.code if isinstance(err, SystemExit) else f"{type(err).__name__}: {err}"
        print(f"evaluation failed: {reason}".splitlines()[0], file=sys.stderr)
        return 1
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
