import { appendFileSync } from "node:fs";
import { type ProgressEvent, progressEventSchema } from "../protocol";

/**
 * Appends protocol events to progress.jsonl. Each line goes out in a single append write,
 * so a reader never sees half a line from us even while we are killed.
 */
export class ProgressLog {
  constructor(private readonly path: string) {}

  write(event: ProgressEvent): void {
    const line = progressEventSchema.parse({ ...event, time: Date.now() / 1000 });
    appendFileSync(this.path, `${JSON.stringify(line)}\n`);
  }
}
