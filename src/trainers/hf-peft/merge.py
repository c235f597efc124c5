"""Merges an hf-peft task's adapter into its base model and saves the result as a full model.

    python merge.py --task-dir <dir> --source <adapter folder> --out <folder>

The base model and tokenizer are the ones the task trained (config.json); the adapter is read
from --source (the task folder, or one of its checkpoints) with peft.PeftModel.from_pretrained,
folded into the base weights with merge_and_unload(), and saved with save_pretrained(...,
safe_serialization=True) beside the tokenizer, so AutoModelForCausalLM.from_pretrained(out)
loads it with no peft. The merge is done in float32 and the result saved in the dtype the base
was stored in. The studio's exporter (src/trainers/export/main.ts) runs this in a folder of its
own and makes the result visible only once it is whole. Its last line on failure says why.
Nothing is downloaded unless the model is a hub id and HF_HUB_OFFLINE is unset.
"""

import argparse
import os
import sys
import traceback


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", required=True)
    return parser.parse_args()


def stored_dtype(config, torch):
    """The dtype the base's weights were saved in (config.dtype, formerly torch_dtype), if named."""
    for key in ("dtype", "torch_dtype"):
        value = getattr(config, key, None)
        if isinstance(value, str):
            value = getattr(torch, value, None)
        if isinstance(value, torch.dtype):
            return value
    return None


def merge(task_dir, source, out):
    # Beside this script: how every program of the trainer loads a task's model.
    import torch
    from task_model import load_options, load_tokenizer, load_with_adapter, read_task_config
    from transformers import AutoConfig

    model_id = read_task_config(task_dir)["model"]
    tokenizer = load_tokenizer(model_id)
    saved_as = stored_dtype(AutoConfig.from_pretrained(model_id, **load_options(model_id)), torch)
    model = load_with_adapter(model_id, source, dtype=torch.float32)
    lora = sum(1 for name, _ in model.named_parameters() if "lora_" in name)
    merged = model.merge_and_unload()
    if saved_as is not None and saved_as != torch.float32:
        merged = merged.to(saved_as)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    print(f"merged {source} ({lora} LoRA tensors) into {model_id}; saved to {out}")


def main():
    args = parse_args()
    try:
        merge(os.path.abspath(args.task_dir), os.path.abspath(args.source), os.path.abspath(args.out))
    except Exception as err:  # noqa: BLE001 - every failure is reported the same way
        traceback.print_exc()
        # One line the exporter takes as the reason; a full disk may surface as OSError (ENOSPC)
        # or as safetensors' own error ("No space left on device (os error 28)").
        print(f"merge failed: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
