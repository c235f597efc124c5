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


class BadRequest(ValueError):
    """A request line that cannot be served; its id when it had a usable one."""

    def __init__(self, request_id, message):
        super().__init__(message)
        self.request_id = request_id


# Each field of a generation request, with what it must be (generationRequestSchema in
# src/trainers/playground/protocol.ts, which the studio checks before sending).
def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


FIELDS = {
    "side": (lambda v: v in ("base", "adapter"), '"base" or "adapter"'),
    "prompt": (lambda v: isinstance(v, str), "a string"),
    "maxNewTokens": (lambda v: is_int(v) and v >= 1, "an integer of at least 1"),
    "temperature": (lambda v: is_number(v) and v >= 0, "a number of at least 0"),
    "topP": (lambda v: is_number(v) and 0 < v <= 1, "a number above 0 and at most 1"),
    "seed": (lambda v: is_int(v) and v >= 0, "an integer of at least 0"),
}


def parse_request(line):
    """A request line: {"cancel": id} or a generation request; BadRequest says what is wrong."""
    try:
        request = json.loads(line)
    except ValueError:
        raise BadRequest("", "a request line is not JSON") from None
    if not isinstance(request, dict):
        raise BadRequest("", "a request line is not a JSON object")
    if "cancel" in request:
        if not isinstance(request["cancel"], str):
            raise BadRequest("", '"cancel" must name a request id (a string)')
        return request
    request_id = request.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise BadRequest("", 'a request needs an "id" (a non-empty string)')
    for name, (valid, what) in FIELDS.items():
        if name not in request:
            raise BadRequest(request_id, f'the request has no "{name}" ({what})')
        if not valid(request[name]):
            got = json.dumps(request[name])[:80]
            raise BadRequest(request_id, f'"{name}" must be {what}, not {got}')
    return request


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
        # Beside this script: how every program of the trainer loads a task's model.
        import torch
        from task_model import (
            context_length,
            describe,
            load_tokenizer,
            load_with_adapter,
            read_task_config,
        )

        model_id = read_task_config(task_dir)["model"]
        tokenizer = load_tokenizer(model_id)
        model = load_with_adapter(model_id, source)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - every cause is reported the same way
        send({"event": "fatal", "message": f"cannot load the model: {error}"})
        return 1
    limit = context_length(model)
    print(describe(model_id, source, model), file=sys.stderr)
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
                request = parse_request(line)
            except BadRequest as error:
                send({"event": "error", "id": error.request_id, "message": str(error)})
                continue
            if "cancel" in request:
                for gen in [g for g in active if g.id == request["cancel"]]:
                    active.remove(gen)
                    send({"event": "error", "id": gen.id, "message": "cancelled"})
                continue
            try:
                active.append(Generation(request, tokenizer, torch, limit))
            except ValueError as error:
                send({"event": "error", "id": request["id"], "message": str(error)})
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
