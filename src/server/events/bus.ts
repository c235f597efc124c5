import { EventEmitter } from "node:events";
import type { TaskEventRow, TaskRow } from "../db/schema";
import type { LogLine } from "../logs/log-cursor";

/** What the page needs to redraw one task's row and detail header. */
export type TaskUpdate = Pick<
  TaskRow,
  | "id"
  | "name"
  | "status"
  | "statusReason"
  | "progress"
  | "lastCheckpoint"
  | "currentAttempt"
  | "updatedAt"
> & { event?: TaskEventRow };

export interface LogChunk {
  taskId: string;
  attempt: number;
  lines: LogLine[];
  /** The file restarted at offset 0 (truncated or rotated): the reader should start over. */
  reset?: "truncated" | "rotated";
}

/**
 * In-process fan-out from the supervisor's monitors to open subscriptions. It holds nothing:
 * a subscriber that was away catches up from the database (updates) or the file (log lines).
 */
export class StudioBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publishTask(update: TaskUpdate) {
    this.emitter.emit("task", update);
  }

  publishLog(chunk: LogChunk) {
    this.emitter.emit(`log:${chunk.taskId}`, chunk);
  }

  /** Whether anyone follows this task's log live (the monitor reads faster for them). */
  followsLog(taskId: string): boolean {
    return this.emitter.listenerCount(`log:${taskId}`) > 0;
  }

  get emitterForSubscriptions(): EventEmitter {
    return this.emitter;
  }
}
