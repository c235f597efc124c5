"""Serves text generation for the studio's playground: an hf-peft task's base model and its adapter.

    python serve.py --task-dir <dir> --source <dir>

The base model and tokenizer (the model the task trained, from config.json) and the adapter (in
--source: the task folder or one of its checkpoints) are loaded once. Requests come on stdin and
answers go to stdout, one JSON object a line (src/trainers/playground/protocol.ts): "ready" once
loaded (or "fatal"), then for each request its "token"s as they are drawn and one "done" or
"error". Requests in flight take turns, a token each; side "base" runs with the adapter disabled.
Sampling draws from a generator seeded by the request, so the same seed gives the same text;
temperature 0 is greedy. Closing stdin ends the server.
"""

import argparse
import json
import os
import queue
import sys
import threading

PROTOCOL_VERSION = 1


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--source", required=True)
    return parser.parse_args()


def read_requests(lines):
    """stdin in a thread of its own, so requests arrive while others generate."""
    for line in sys.stdin:
        lines.put(line)
    lines.put(None)


class Generation:
    """One request's state: its tokens so far, its cache, its seeded generator."""

    def __init__(self, request, tokenizer, torch, limit):
        self.id = request["id"]
        self.side = request["side"]
        self.settings = request
        ids = tokenizer(request["prompt"], return_tensors="pt")["input_ids"]
        if ids.shape[1] >= limit:
            raise ValueError(
                f"the prompt is {ids.shape[1]} tokens; this model reads at most {limit - 1}"
            )
        self.pending = ids
        self.past = None
        self.count = 0
        self.tokens = []
        self.printed = ""
        self.generator = torch.Generator().manual_seed(int(request["seed"]))


def pick(logits, settings, generator, torch):
    temperature = float(settings["temperature"])
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    ordered, order = torch.sort(probs, descending=True)
    # Keep the most likely tokens up to and including the one whose mass reaches top-p.
    before = torch.cumsum(ordered, dim=-1) - ordered
    kept = ordered.masked_fill(before >= float(settings["topP"]), 0.0)
    choice = torch.multinomial(kept / kept.sum(), 1, generator=generator)
    return int(order[choice])


def step(model, tokenizer, gen, torch):
    """Draws one token; returns the text it completes (possibly empty), or None when finished."""
    if gen.count >= int(gen.settings["maxNewTokens"]):
        return None
    with torch.no_grad():
        if gen.side == "base":
            with model.disable_adapter():
                out = model(input_ids=gen.pending, past_key_values=gen.past, use_cache=True)
        else:
            out = model(input_ids=gen.pending, past_key_values=gen.past, use_cache=True)
    gen.past = out.past_key_values
    token = pick(out.logits[0, -1], gen.settings, gen.generator, torch)
    gen.count += 1
    if token == tokenizer.eos_token_id:
        return None
    gen.tokens.append(token)
    gen.pending = torch.tensor([[token]])
    text = tokenizer.decode(gen.tokens, skip_special_tokens=True)
    # A token that ends inside a character decodes to U+FFFD: wait for the rest.
    if text.endswith("\ufffd"):
        return ""
    piece, gen.printed = text[len(gen.printed) :], text
    return piece


def main():
    args = parse_args()
    task_dir = os.path.abspath(args.task_dir)
    source = os.path.abspath(args.source)
    try:
        with open(os.path.join(task_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_id = config["model"]
        load_kwargs = {"local_files_only": True} if os.path.isdir(model_id) else {}
        tokenizer = AutoTokenizer.from_pretrained(model_id, **load_kwargs)
        base = AutoModelForCausalLM.from_pretrained(model_id, **load_kwargs)
        model = PeftModel.from_pretrained(base, source)
        model.eval()
    except Exception as error:  # noqa: BLE001 - every cause is reported the same way
        send({"event": "fatal", "message": f"cannot load the model: {error}"})
        return 1
    limit = int(getattr(base.config, "max_position_embeddings", 2048))
    lora = sum(1 for name, _ in model.named_parameters() if "lora_" in name)
    print(f"loaded {model_id} with the adapter of {source} ({lora} LoRA tensors)", file=sys.stderr)
    send({"event": "ready", "version": PROTOCOL_VERSION})

    lines = queue.Queue()
    threading.Thread(target=read_requests, args=(lines,), daemon=True).start()
    active = []
    closed = False
    while not closed or active:
        while True:
            try:
                line = lines.get(block=not active and not closed)
            except queue.Empty:
                break
            if line is None:
                closed = True
                break
            try:
                request = json.loads(line)
            except ValueError:
                send({"event": "error", "id": "", "message": "a request line is not JSON"})
                continue
            if isinstance(request.get("cancel"), str):
                for gen in [g for g in active if g.id == request["cancel"]]:
                    active.remove(gen)
                    send({"event": "error", "id": gen.id, "message": "cancelled"})
                continue
            try:
                active.append(Generation(request, tokenizer, torch, limit))
            except (KeyError, TypeError, ValueError) as error:
                send({"event": "error", "id": str(request.get("id", "")), "message": str(error)})
        for gen in list(active):
            try:
                piece = step(model, tokenizer, gen, torch)
            except Exception as error:  # noqa: BLE001 - confined to its request
                active.remove(gen)
                send({"event": "error", "id": gen.id, "message": str(error)})
                continue
            if piece is None:
                active.remove(gen)
                send({"event": "done", "id": gen.id, "tokens": gen.count})
            elif piece:
                send({"event": "token", "id": gen.id, "text": piece})
    return 0


if __name__ == "__main__":
    sys.exit(main())
