import { parseSystemSample } from "../../runner/record-schemas";
import type { SystemSample } from "../../runner/system-sample";
import { readLinesBefore } from "../logs/log-cursor";

/** The most recent samples read: about 3 hours at the runner's 5-second pace. */
const RECENT_SAMPLES = 2_000;

/**
 * The recent end of a task's system.jsonl, as points for the page's charts: lines that are not
 * a sample (garbled, half-written) are skipped, and at most `maxPoints` are returned, evenly
 * thinned, the latest always kept.
 */
export async function readSystemSamples(path: string, maxPoints: number): Promise<SystemSample[]> {
  const { lines } = await readLinesBefore(path, Number.MAX_SAFE_INTEGER, RECENT_SAMPLES);
  const samples = lines.map((l) => parseSystemSample(l.text)).filter((s) => s !== null);
  return thin(samples, maxPoints);
}

/** Every k-th item, counted back from the last, so that at most `max` remain. */
export function thin<T>(items: T[], max: number): T[] {
  if (items.length <= max) return items;
  const every = Math.ceil(items.length / max);
  return items.filter((_, i) => (items.length - 1 - i) % every === 0);
}
