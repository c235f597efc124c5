// Death detection: a trainer is killed → the task shows `failed` (seen by a task.onUpdate
// subscriber). Attached (the studio launched it) and re-attached (the studio restarted while the
// trainer ran). Baseline (same run): a loop that checks the pid with kill(pid, 0) every 2 s.
//   npx tsx bench/death-detection.ts [--trials 5]

import type { TaskUpdate } from "../src/server/events/bus";
import { subscribe } from "../test/helpers/sse";
import { numberFlags } from "./lib/args";
import {
  baseUrl,
  benchStudio,
  killGroups,
  STAMP_TRAINER,
  startCommandTask,
} from "./lib/bench-studio";
import { NaivePoller } from "./lib/naive-poller";
import { sleep, wallMs } from "./lib/proc";
import { fmt, median, printTable, quantile, ratio } from "./lib/stats";

const flags = numberFlags({ trials: 5 });
const studio = await benchStudio({ STUDIO_CONCURRENCY: "4" });
const started: number[] = [];

/** Kills one running trainer and returns how long the studio and the 2-s poller took to notice. */
async function trial(reattach: boolean) {
  const task = await startCommandTask(studio, [process.execPath, STAMP_TRAINER, "--rate", "0"]);
  started.push(task.trainerPid);
  if (reattach) {
    await studio.cli("restart");
  }
  const stop = new AbortController();
  const failedAt = (async () => {
    for await (const e of subscribe<TaskUpdate>(
      baseUrl(studio),
      "task.onUpdate",
      {},
      stop.signal,
    )) {
      if (e.data.id === task.id && e.data.status === "failed") return wallMs();
    }
    return Number.NaN;
  })();
  let pollerAt = Number.NaN;
  const poller = new NaivePoller(
    "/nonexistent",
    task.trainerPid,
    () => {},
    (at) => {
      pollerAt = at;
    },
  );
  poller.start();
  // Past the poller's first tick, at a uniformly random phase of its 2-s period, as in life.
  await sleep(2_000 + Math.random() * 2_000);
  const killedAt = wallMs();
  process.kill(-task.trainerPid, "SIGKILL");
  const studioMs = (await failedAt) - killedAt;
  stop.abort();
  while (Number.isNaN(pollerAt)) await sleep(20);
  return { studioMs, pollerMs: pollerAt - killedAt };
}

try {
  const rows = [];
  for (const reattach of [false, true]) {
    const studioMs: number[] = [];
    const pollerMs: number[] = [];
    for (let i = 0; i < flags.trials; i++) {
      const r = await trial(reattach);
      studioMs.push(r.studioMs);
      pollerMs.push(r.pollerMs);
    }
    rows.push({
      case: reattach ? "after re-attach" : "attached",
      trials: flags.trials,
      "studio median ms": fmt(median(studioMs)),
      "studio max ms": fmt(quantile(studioMs, 1)),
      "2s-poller median ms": fmt(median(pollerMs)),
      "2s-poller max ms": fmt(quantile(pollerMs, 1)),
      "median ratio": ratio(median(pollerMs), median(studioMs)),
    });
  }
  printTable("death detection: trainer SIGKILLed → task failed (onUpdate subscriber)", rows);
} finally {
  killGroups(started);
  await studio.dispose();
}
process.exit(0);
