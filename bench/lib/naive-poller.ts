import { open } from "node:fs/promises";

/**
 * The design this product replaces, kept here only as a baseline: every `intervalMs` read what
 * is new in the log file and check the PID with kill(pid, 0). No file events, no identity check.
 */
export class NaivePoller {
  private offset = 0;
  private partial = "";
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logPath: string,
    private readonly pid: number,
    private readonly onLines: (lines: string[], at: number) => void,
    private readonly onDeath: (at: number) => void,
    private readonly intervalMs = 2_000,
  ) {}

  start() {
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
  }

  private async poll() {
    const file = await open(this.logPath, "r").catch(() => null);
    if (file) {
      try {
        const { size } = await file.stat();
        if (size > this.offset) {
          const buffer = Buffer.alloc(size - this.offset);
          await file.read(buffer, 0, buffer.length, this.offset);
          this.offset = size;
          const text = this.partial + buffer.toString("utf8");
          const lines = text.split("\n");
          this.partial = lines.pop() ?? "";
          if (lines.length) this.onLines(lines, performance.timeOrigin + performance.now());
        }
      } finally {
        await file.close();
      }
    }
    try {
      process.kill(this.pid, 0);
    } catch {
      this.stop();
      this.onDeath(performance.timeOrigin + performance.now());
    }
  }
}
