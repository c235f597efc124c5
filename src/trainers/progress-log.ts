import { appendFileSync } from "node:fs";
import { MAX_EVENT_STRING, type ProgressEvent, progressEventSchema } from "./protocol";

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

  /** A "warning" event; a message longer than the protocol takes is cut to fit. */
  warn(kind: string, message: string, step?: number): void {
    const text =
      message.length > MAX_EVENT_STRING ? `${message.slice(0, MAX_EVENT_STRING - 1)}…` : message;
    this.write({ event: "warning", kind, message: text, ...(step === undefined ? {} : { step }) });
  }
}
