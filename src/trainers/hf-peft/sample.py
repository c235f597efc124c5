"""Generates text with a finished hf-peft task's adapter on its base model; prints the continuation.

    python sample.py --task-dir <dir> --prompt <text> [--max-new-tokens N] [--temperature T] [--seed S]

The adapter is loaded with peft.PeftModel.from_pretrained from the task folder (where train.py
saved it), the base model and tokenizer from the model the task trained (config.json). A line on
stderr says what was loaded. Nothing is downloaded unless the model is a hub id and
HF_HUB_OFFLINE is unset.
"""

import argparse
import os
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    task_dir = os.path.abspath(args.task_dir)
    # Beside this script: how every program of the trainer loads a task's model.
    from task_model import describe, load_tokenizer, load_with_adapter, read_task_config

    model_id = read_task_config(task_dir)["model"]
    tokenizer = load_tokenizer(model_id)
    model = load_with_adapter(model_id, task_dir)
    print(describe(model_id, task_dir, model), file=sys.stderr)

    import torch
    import transformers

    transformers.set_seed(args.seed)
    inputs = tokenizer(args.prompt, return_tensors="pt")
    sampling = args.temperature > 0
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=args.max_new_tokens,
            do_sample=sampling,
            temperature=args.temperature if sampling else None,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    new_tokens = output[0][inputs["input_ids"].shape[1] :]
    print(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
