"""What an hf-peft task trains on and with: its settings, its base model and tokenizer, its adapters.

One way to load them for every program of the trainer: train.py (the base it adapts), and the
programs that use a trained adapter afterwards (serve.py, sample.py, merge.py, evaluate.py). The
base model and tokenizer are the ones the task trained (config.json's "model"): a local folder is
read as it is; nothing is downloaded unless the model is a hub id and HF_HUB_OFFLINE is unset.
Packages are imported inside the functions, so importing this module needs none.
"""

import json
import os


def read_task_config(task_dir):
    """config.json of the task folder: the settings of its latest attempt."""
    with open(os.path.join(task_dir, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def load_options(model_id, dtype=None):
    """from_pretrained's options: a local folder never looked up on the hub, the dtype if given."""
    options = {"local_files_only": True} if os.path.isdir(model_id) else {}
    if dtype is not None:
        import transformers
        from packaging.version import Version

        # transformers 4.56 renamed torch_dtype to dtype; 5.x dropped the old name.
        new_name = Version(transformers.__version__) >= Version("4.56")
        options["dtype" if new_name else "torch_dtype"] = dtype
    return options


def load_tokenizer(model_id, need_pad=False):
    """The base's tokenizer; with need_pad, one that pads (with eos when it has no pad token)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, **load_options(model_id))
    if need_pad and tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SystemExit(f"the tokenizer of {model_id} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(model_id, dtype=None):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_id, **load_options(model_id, dtype))


def load_with_adapter(model_id, source, dtype=None):
    """The base model with the adapter saved in `source` (peft.PeftModel), in eval mode.

    `model.disable_adapter()` gives the base alone; `model.get_base_model().config` its config.
    """
    if not os.path.isfile(os.path.join(source, "adapter_config.json")):
        raise SystemExit(f"no adapter in {source} (no adapter_config.json)")
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_base(model_id, dtype), source)
    model.eval()
    return model


def context_length(model):
    """The longest sequence the base reads (positions), 2048 when its config does not say."""
    return int(getattr(model.get_base_model().config, "max_position_embeddings", 2048))


def describe(model_id, source, model):
    """The line a program prints on stderr once the model is loaded."""
    lora = sum(1 for name, _ in model.named_parameters() if "lora_" in name)
    return f"loaded {model_id} with the adapter of {source} ({lora} LoRA tensors)"
