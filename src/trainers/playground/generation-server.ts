import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { type GenerationRequest, type ServerMessage, serverMessageSchema } from "./protocol";

/**
 * The client side of one generation server process (protocol.ts): started once, it answers
 * many requests until closed. Each request's tokens come as an async iterable; an error the
 * server reports for a request ends that request only. The process ending ends every request
 * in flight with its last words from stderr.
 */

/** A request the server refused or could not finish; the message is for people. */
export class GenerationError extends Error {}

interface Pending {
  push(message: ServerMessage | { event: "ended"; message: string }): void;
}

const STDERR_KEPT = 20;

export class GenerationServer {
  private readonly child: ChildProcess;
  private readonly pending = new Map<string, Pending>();
  private readonly stderr: string[] = [];
  private endedWith: string | null = null;
  /** Resolves once the model is loaded; rejects with why it could not be. */
  readonly ready: Promise<void>;

  constructor(command: {
    file: string;
    args: string[];
    env?: NodeJS.ProcessEnv;
    /** Each line the server writes to stderr (what it loaded, its warnings), as it comes. */
    onStderrLine?: (line: string) => void;
  }) {
    this.child = spawn(command.file, command.args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: command.env,
    });
    let markReady: () => void = () => {};
    let markFailed: (err: Error) => void = () => {};
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    // Nobody may be waiting yet; the rejection is still seen by whoever awaits `ready`.
    this.ready.catch(() => {});
    // Writing to a server that just died must not throw out of the studio.
    this.child.stdin?.on("error", () => {});
    createInterface({ input: this.child.stderr! }).on("line", (line) => {
      command.onStderrLine?.(line);
      this.stderr.push(line);
      if (this.stderr.length > STDERR_KEPT) this.stderr.shift();
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      let message: ServerMessage;
      try {
        message = serverMessageSchema.parse(JSON.parse(line));
      } catch {
        return; // a stray line (a library's print): not part of the protocol
      }
      if (message.event === "ready") markReady();
      else if (message.event === "fatal") {
        this.endedWith = message.message;
        markFailed(new GenerationError(message.message));
      } else this.pending.get(message.id)?.push(message);
    });
    const ended = (why: string) => {
      this.endedWith ??= why;
      markFailed(new GenerationError(this.endedWith));
      for (const entry of this.pending.values()) {
        entry.push({ event: "ended", message: this.endedWith });
      }
      this.pending.clear();
    };
    this.child.on("error", (err) => ended(`the generation server could not start: ${err.message}`));
    this.child.on("close", (code, signal) => {
      const last = this.stderr.findLast((l) => l.trim() !== "" && !/^\s/.test(l));
      ended(
        `the generation server ended (${signal ?? `exit code ${code}`})${last ? `: ${last.slice(0, 500)}` : ""}`,
      );
    });
  }

  get alive(): boolean {
    return this.endedWith === null;
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** The continuation, piece by piece; aborting `signal` cancels the request on the server. */
  async *generate(
    request: Omit<GenerationRequest, "id">,
    signal?: AbortSignal,
  ): AsyncGenerator<string> {
    await this.ready;
    const id = randomBytes(8).toString("hex");
    const queue: (ServerMessage | { event: "ended"; message: string })[] = [];
    let wake: (() => void) | null = null;
    this.pending.set(id, {
      push: (message) => {
        queue.push(message);
        wake?.();
      },
    });
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    this.child.stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
    let finished = false;
    try {
      while (true) {
        if (signal?.aborted) return;
        const message = queue.shift();
        if (!message) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
          continue;
        }
        if (message.event === "token") yield message.text;
        else if (message.event === "done") {
          finished = true;
          return;
        } else if (message.event === "error" || message.event === "ended") {
          finished = true;
          throw new GenerationError(message.message);
        }
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.pending.delete(id);
      if (!finished && this.alive) {
        // Ended early (aborted, or the consumer stopped reading): the server stops generating.
        this.child.stdin!.write(`${JSON.stringify({ cancel: id })}\n`);
      }
    }
  }

  /** Closes stdin (the server exits when idle) and, after `graceMs`, kills what is left. */
  close(graceMs = 5000): void {
    if (!this.alive) return;
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    timer.unref();
    this.child.once("close", () => clearTimeout(timer));
  }
}
