#!/usr/bin/env bash
# A manual check of the hf-peft trainer on a machine with torch, transformers and peft (a GPU
# machine, or any CPU: it only takes longer). Not run in CI. Downloads nothing: it builds a tiny
# Llama and a BPE tokenizer of its own, trains on data/sample.jsonl, stops the run with SIGTERM
# once a checkpoint exists, resumes from that checkpoint and checks what each step left behind.
#
#   PYTHON=/path/to/python bash test/trainers/hf-peft-gpu-check.sh
#
# Prints what it saw and ends with "hf-peft check: OK" (exit 0) or the first failed check.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
TRAIN="$REPO/src/trainers/hf-peft/train.py"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/hf-peft-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0}"
deadline=$((SECONDS + 300))

fail() {
  echo "hf-peft check: FAILED: $*"
  for f in "$WORK"/task/training-*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done
  exit 1
}

echo "== preflight"
"$PYTHON" "$REPO/src/trainers/hf-peft/preflight.py"

echo "== building a tiny Llama and tokenizer in $WORK/model"
"$PYTHON" "$REPO/test/fixtures/hf-peft/tiny_llama.py" "$WORK/model" "$REPO/data/sample.jsonl"

mkdir -p "$WORK/task"
cat >"$WORK/task/config.json" <<JSON
{
  "taskId": "check", "attempt": 1, "trainer": "hf-peft", "model": "$WORK/model", "mode": "lora",
  "dataset": {"path": "$REPO/data/sample.jsonl", "format": "alpaca"},
  "taskDir": "$WORK/task",
  "hyperparameters": {
    "epochs": 3, "learningRate": 0.003, "batchSize": 8, "maxLength": 128, "loraRank": 8,
    "loraAlpha": 16, "loraDropout": 0.0, "targetModules": ["q_proj", "v_proj"],
    "warmupRatio": 0.05, "weightDecay": 0, "maxGradNorm": 1, "seed": 42, "evalSplit": 0.1,
    "evalSteps": 20, "saveSteps": 10, "loggingSteps": 5
  },
  "resumeFrom": null, "gpus": [], "command": null
}
JSON
events="$WORK/task/progress.jsonl"

echo "== first run, stopped with SIGTERM after its first checkpoint"
"$PYTHON" "$TRAIN" --task-dir "$WORK/task" >"$WORK/task/training-1.log" 2>&1 &
pid=$!
until grep -q '"event": "checkpoint"' "$events" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || fail "the first run ended before its first checkpoint"
  [ "$SECONDS" -lt "$deadline" ] || { kill -9 "$pid"; fail "no checkpoint within the time limit"; }
  sleep 0.2
done
kill -TERM "$pid"
set +e
wait "$pid"
code=$?
set -e
echo "first run exited with $code"
[ "$code" -eq 143 ] || fail "expected exit 143 after SIGTERM, got $code"
grep -q '"event": "stopped"' "$events" || fail "no stopped event"
checkpoint="$(ls -d "$WORK"/task/checkpoints/checkpoint-* | sort -t- -k2 -n | tail -n 1)"
[ -f "$checkpoint/adapter_model.safetensors" ] || fail "no adapter in $checkpoint"
echo "last checkpoint: $checkpoint"

echo "== second run, resumed from $checkpoint"
timeout $((deadline - SECONDS)) "$PYTHON" "$TRAIN" --task-dir "$WORK/task" --resume-from "$checkpoint" \
  >"$WORK/task/training-2.log" 2>&1 || fail "the resumed run failed (exit $?)"
for f in adapter_config.json adapter_model.safetensors; do
  [ -f "$WORK/task/$f" ] || fail "no $f in the task folder"
done

echo "== what progress.jsonl says"
"$PYTHON" - "$events" "$(basename "$checkpoint")" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
kinds = [e["event"] for e in events]
print("events:", {k: kinds.count(k) for k in dict.fromkeys(kinds)})
for e in events:
    if e["event"] in ("started", "stopped", "checkpoint", "completed"):
        print(" ", e)
started = [e for e in events if e["event"] == "started"]
resumed_step = int(sys.argv[2].split("-")[1])
assert len(started) == 2, "two started events (fresh, resumed)"
assert started[1].get("resumed_from_step") == resumed_step, f"resumed from step {resumed_step}"
losses = [e["loss"] for e in events if e["event"] == "progress" and "loss" in e]
print(f"training loss: first {losses[0]:.3f}, last {losses[-1]:.3f} ({len(losses)} logs)")
done = events[-1]
assert done["event"] == "completed", "the last event is completed"
assert done["step"] == started[0]["total_steps"], "the resumed run finished every step"
assert losses[-1] < losses[0], "the loss went down"
assert done["eval_loss_adapter"] < done["eval_loss_base"], "the adapter beats the base on eval"
print(f"eval loss: base {done['eval_loss_base']:.3f}, adapter {done['eval_loss_adapter']:.3f}")
PY
echo "hf-peft check: OK (${SECONDS}s)"
