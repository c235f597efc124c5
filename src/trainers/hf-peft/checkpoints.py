"""The hf-peft trainer's checkpoints, kept by the studio's checkpoint tool.

Both trainers keep, verify and choose checkpoints by one piece of code, the studio's
CheckpointKeeper (src/trainers/checkpoints/keeper.ts): this trainer runs it as the Node program
dist/checkpoint-tool.js, which answers in JSON on stdout, prints its lines on stderr (the
training log) and writes its "checkpoint" and "warning" events to progress.jsonl itself. What only Python can do is done
here: checking that an adapter loads with safetensors.

The Trainer writes each checkpoint into checkpoints/.tmp-hf/checkpoint-N (a hidden staging
folder, see STAGING); the tool seals it with a manifest, verifies it and renames it to
checkpoints/checkpoint-N, then removes the checkpoints no longer kept.
"""

import json
import os
import shutil
import signal
import subprocess

# Under checkpoints/. Hidden, so nothing takes it for a checkpoint, and named like the staging
# folders the tool removes when a run starts (STAGING_PREFIX in src/trainers/checkpoints/folder.ts).
STAGING = ".tmp-hf"
ADAPTER_FILE = "adapter_model.safetensors"


def tool_command():
    """The Node binary and the tool: from the studio's environment, else this checkout's dist/."""
    node = os.environ.get("STUDIO_NODE") or shutil.which("node")
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.environ.get("STUDIO_CHECKPOINT_TOOL") or os.path.normpath(
        os.path.join(here, "..", "..", "..", "dist", "checkpoint-tool.js")
    )
    if not node:
        raise SystemExit("checkpoints need Node.js: set STUDIO_NODE or put node on PATH")
    if not os.path.isfile(tool):
        raise SystemExit(
            f"the checkpoint tool is missing: {tool} (build it with node scripts/build-node.mjs)"
        )
    return [node, tool]


def adapter_load_problem(folder):
    """None when the checkpoint's adapter loads with safetensors, else why not."""
    try:
        from safetensors.torch import load_file

        load_file(os.path.join(folder, ADAPTER_FILE))
        return None
    except Exception as err:  # any failure to load is the answer, not a crash
        return " ".join(f"{type(err).__name__}: {err}".split())[:300]


class CheckpointTool:
    """One task's checkpoints through the tool; `report` is False on every process but rank 0."""

    def __init__(self, task_dir, report=True):
        self.task_dir = task_dir
        self.report = report
        self.command = tool_command()
        self.total_steps = 0
        self.evaluates = False
        self.disk_warned = False

    @property
    def staging_dir(self):
        return os.path.join(self.task_dir, "checkpoints", STAGING)

    def _run(self, command, *args):
        argv = [*self.command, command, "--task-dir", self.task_dir, *args]
        # stderr is inherited: the tool's lines go to the training log.
        result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        # A stop's SIGTERM reaches the tool too (the runner signals the whole group). The tool
        # ignores it once it runs; ended by it, it had not begun, so it is run again.
        if result.returncode in (-signal.SIGTERM, -signal.SIGINT):
            result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"the checkpoint tool failed ({command}, exit code {result.returncode})"
            )
        return json.loads(result.stdout)

    def _shape(self):
        return ["--total-steps", str(self.total_steps), *(["--evaluates"] if self.evaluates else [])]

    def choose_resume(self, requested):
        """The newest checkpoint, from `requested` down, that verifies and loads; a dict with its
        path, step and sizes. Exits with the reasons when none does."""
        rejected = []
        while True:
            answer = self._run(
                "resume",
                "--requested",
                requested,
                "--rejected",
                json.dumps(rejected),
                *([] if self.report else ["--quiet"]),
            )
            if "error" in answer:
                raise SystemExit(f"cannot resume: {answer['error']}")
            problem = adapter_load_problem(answer["path"])
            if problem is None:
                return answer
            rejected.append({"path": answer["path"], "reason": f"does not load ({problem})"})

    def start(self, step, resumed_from, trainable_bytes):
        """Clears what a stopped writer left and forecasts the disk, from the size of the
        checkpoint resumed from or, on a fresh start, of the trainable weights; exits when not
        even one checkpoint fits."""
        if resumed_from:
            size_args = ["--resumed-from", resumed_from]
        else:
            size_args = ["--trainable-bytes", str(trainable_bytes)]
        answer = self._run("start", "--step", str(step), *self._shape(), *size_args)
        if answer["verdict"]["verdict"] == "no-room":
            raise SystemExit(answer["verdict"]["message"])
        self.disk_warned = answer["warned"]

    def commit(self, step, eval_loss):
        """Seals, verifies and puts in place the checkpoint the Trainer staged for `step`; its
        path relative to the task folder, or None when it was discarded (the tool said why)."""
        staged = os.path.join(self.staging_dir, f"checkpoint-{step}")
        problem = adapter_load_problem(staged)
        answer = self._run(
            "commit",
            "--staged",
            staged,
            "--step",
            str(step),
            *self._shape(),
            *(["--eval-loss", repr(eval_loss)] if eval_loss is not None else []),
            *(["--load-failure", f"the adapter does not load ({problem})"] if problem else []),
            *(["--warned"] if self.disk_warned else []),
        )
        if answer["disk"] is not None:
            self.disk_warned = answer["disk"]["verdict"] == "short"
        return answer["path"]
