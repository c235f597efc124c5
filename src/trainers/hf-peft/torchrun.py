"""torchrun for the studio: `python torchrun.py <torchrun's arguments>` runs torch.distributed.run
with two changes the studio depends on.

- Every worker stays in this process's process group. torchrun starts each worker in a session
  of its own, so a signal to the trainer's group (pause, cancel, the runner's final cleanup)
  would reach torchrun but not the workers, and a worker could outlive its task holding memory.
  Here the studio's SIGSTOP/SIGCONT pause and resume every worker, its SIGTERM asks every worker
  for a checkpoint at once, and its SIGKILL leaves none behind.
- A worker that fails is named: the reason (its rank, pid, and the signal that killed it or its
  exit code) goes to progress.jsonl as a "failed" event, which the studio puts in the task's
  failure reason, and to the log beside torchrun's own report.

Exits 0 when every worker succeeded, 128 + the signal when the studio stopped it (the workers have
saved a checkpoint and ended by then: torchrun waits up to 30 s for them), 1 when a worker failed.
"""

import json
import os
import subprocess
import sys
import time

# The torchrun internals patched below, as of the torch pinned in requirements.txt.
PATCHED = "torch.distributed.elastic.multiprocessing.subprocess_handler.subprocess_handler"
MAX_REASON = 1000


def keep_workers_in_group():
    import importlib

    handler = importlib.import_module(PATCHED)
    cls = getattr(handler, "SubprocessHandler", None)
    if cls is None or not hasattr(handler, "Popen") or not hasattr(handler, "_get_default_signal"):
        raise SystemExit(
            f"this torch's torchrun is not the one the studio knows ({PATCHED} changed); "
            'run "studio setup hf-peft" for the pinned torch'
        )

    class SameGroupPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            kwargs["start_new_session"] = False
            super().__init__(*args, **kwargs)

    def close(self, death_sig=None):
        # torchrun signals each worker's own group (os.killpg); here the worker itself.
        try:
            self.proc.send_signal(death_sig or handler._get_default_signal())
        except ProcessLookupError:
            pass
        for stream in (self._stdout, self._stderr):
            if stream:
                stream.close()

    handler.Popen = SameGroupPopen
    cls.close = close


def describe(rank, failure):
    how = (
        f"was killed by {failure.signal_name()}"
        if failure.exitcode < 0
        else f"exited with code {failure.exitcode}"
    )
    return f"worker rank {rank} (local rank {failure.local_rank}, pid {failure.pid}) {how}"


def describe_failures(failures):
    """The cause first: a worker killed by a signal other than torchrun's own SIGTERM (sent to
    the others once one failed), else the earliest, then the rest."""

    def order(item):
        rank, failure = item
        killed = failure.exitcode < 0 and failure.signal_name() != "SIGTERM"
        return (not killed, failure.timestamp, rank)

    ranked = sorted(failures.items(), key=order)
    text = describe(*ranked[0])
    if len(ranked) > 1:
        text += "; then " + ", ".join(describe(*item).replace("worker ", "", 1) for item in ranked[1:])
    return text


class Progress:
    """progress.jsonl of the task: what rank 0 (train.py) said, and the "failed" event."""

    def __init__(self, task_dir):
        self.path = os.path.join(task_dir, "progress.jsonl") if task_dir else None
        self.start = self._size()

    def _size(self):
        try:
            return os.path.getsize(self.path) if self.path else 0
        except OSError:
            return 0

    def last_failure(self):
        """The reason of the last "failed" event rank 0 wrote during this run, if any."""
        if not self.path:
            return None
        try:
            with open(self.path, "rb") as f:
                f.seek(self.start)
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        reason = None
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "failed":
                reason = event.get("reason")
        return reason if isinstance(reason, str) else None

    def failed(self, reason):
        if not self.path:
            return
        record = {"event": "failed", "time": time.time(), "reason": reason[:MAX_REASON]}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def main():
    keep_workers_in_group()
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    progress = Progress(os.environ.get("STUDIO_TASK_DIR"))
    try:
        torchrun()
    except ChildFailedError as failed:
        reason = describe_failures(failed.failures)
        said = progress.last_failure()
        if said and reason.startswith("worker rank 0 "):
            reason = f"{reason}: {said}"
        progress.failed(reason)
        print(str(failed), file=sys.stderr)
        print(f"[hf-peft] {reason}", file=sys.stderr, flush=True)
        return 1
    except SignalException as stopped:
        print(f"[hf-peft] torchrun stopped by {stopped.sigval.name}", file=sys.stderr, flush=True)
        return 128 + int(stopped.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
