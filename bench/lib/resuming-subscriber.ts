import type { LogLine } from "../../src/server/logs/log-cursor";
import { followLog } from "../../test/helpers/sse";
import { sleep } from "./proc";

/**
 * A client that follows one task's log over task.onLog as a browser tab would: when the stream
 * breaks (the studio died or restarted) it reconnects with the last event id it received.
 * It keeps every line it was given, duplicates included, so a checker can count them.
 */
export class ResumingSubscriber {
  readonly received: LogLine[] = [];
  reconnects = 0;
  private lastEventId: string | null = null;
  private readonly stopper = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    private readonly baseUrl: string,
    readonly taskId: string,
  ) {
    this.done = this.loop();
  }

  private async loop() {
    while (!this.stopper.signal.aborted) {
      try {
        for await (const batch of followLog(
          this.baseUrl,
          this.taskId,
          this.lastEventId,
          this.stopper.signal,
        )) {
          this.received.push(...batch.lines);
          this.lastEventId = batch.id;
        }
      } catch {
        // The studio is down or going down: try again shortly.
      }
      if (!this.stopper.signal.aborted) {
        this.reconnects++;
        await sleep(100);
      }
    }
  }

  async stop() {
    this.stopper.abort();
    await this.done;
  }
}
