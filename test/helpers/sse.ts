import superjson from "superjson";
import type { LogLine } from "../../src/server/logs/log-cursor";

/** One server-sent event as it came over the wire (tRPC sends `connected`, `ping`, data, `serialized-error`, `return`). */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/**
 * The URL of a tRPC subscription, encoded as `httpSubscriptionLink` does it: the input
 * serialized with superjson (the server's transformer), as JSON, in the query string.
 */
export function subscriptionUrl(baseUrl: string, path: string, input: unknown): string {
  const encoded = encodeURIComponent(JSON.stringify(superjson.serialize(input)));
  return `${baseUrl.replace(/\/$/, "")}/api/trpc/${path}?input=${encoded}`;
}

/** Splits a text/event-stream body into events (Node 20 has no EventSource). */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end < 0) break;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event: SseEvent = { event: "message", data: "" };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon === 0) continue;
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
        else if (field === "data") data.push(value);
      }
      event.data = data.join("\n");
      if (data.length || event.id !== undefined) yield event;
    }
  }
}

/** A tRPC error sent inside a subscription stream (the HTTP status is already 200 then). */
export class SubscriptionError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * Follows a tRPC subscription: yields each data event (deserialized) with its id. Ends when the
 * server ends the stream or `signal` aborts; throws a SubscriptionError for an error event and
 * a plain Error for an HTTP error status.
 */
export async function* subscribe<T>(
  baseUrl: string,
  path: string,
  input: unknown,
  signal?: AbortSignal,
): AsyncGenerator<{ id?: string; data: T }> {
  const response = await fetch(subscriptionUrl(baseUrl, path, input), {
    headers: { accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || !response.body) {
    throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  }
  try {
    for await (const event of readSse(response.body)) {
      if (event.event === "message") {
        yield { id: event.id, data: superjson.deserialize<T>(JSON.parse(event.data)) };
      } else if (event.event === "serialized-error") {
        const error = superjson.deserialize<{ message: string; data?: { code?: string } }>(
          JSON.parse(event.data),
        );
        throw new SubscriptionError(error.message, error.data?.code ?? "UNKNOWN");
      } else if (event.event === "return") {
        return;
      }
    }
  } catch (err) {
    if (signal?.aborted && !(err instanceof SubscriptionError)) return;
    throw err;
  }
}

/**
 * `task.onLog` from a given event id (a byte offset; null = from the start of the log),
 * with the wall-clock time (ms) each batch arrived. Resuming with the last id seen continues after it.
 */
export async function* followLog(
  baseUrl: string,
  taskId: string,
  lastEventId: string | null,
  signal?: AbortSignal,
): AsyncGenerator<{ id: string; lines: LogLine[]; receivedAt: number }> {
  for await (const event of subscribe<LogLine[]>(
    baseUrl,
    "task.onLog",
    { id: taskId, lastEventId },
    signal,
  )) {
    yield {
      id: event.id ?? String(event.data.at(-1)?.offset),
      lines: event.data,
      // Wall clock, so that it compares with a time stamp written by another process.
      receivedAt: performance.timeOrigin + performance.now(),
    };
  }
}

/**
 * How one connection of a subscription ended: with tRPC's `return` event (the subscription is
 * over: tRPC's client stops there), or cut (the body ended or broke off without it: the
 * browser's EventSource connects again, sending the last event id it received).
 */
export type ConnectionEnd = "return" | "cut";

/**
 * Follows a tRPC subscription as the browser's EventSource does (Node 20 has none): after a cut
 * it connects again with the last event id it received in the `Last-Event-ID` header, and keeps
 * trying while the studio is away. Keeps every data event and how each connection ended; an
 * error event or an HTTP error (where an EventSource gives up) ends it, kept in `error`.
 */
export class EventSourceFollower<T> {
  readonly received: { id?: string; data: T }[] = [];
  readonly ends: ConnectionEnd[] = [];
  /** Connections the studio answered (tRPC's `connected` event). */
  connections = 0;
  error: string | null = null;
  private lastEventId: string | null = null;
  private readonly stopper = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    private readonly baseUrl: string,
    private readonly path: string,
    private readonly input: unknown,
  ) {
    this.done = this.loop();
  }

  private async loop() {
    while (!this.stopper.signal.aborted) {
      let end: ConnectionEnd | null = null;
      try {
        end = await this.connect();
      } catch (err) {
        if (err instanceof SubscriptionError) {
          this.error = err.message;
          return;
        }
        // not answered: the studio is down or not listening yet
      }
      if (this.stopper.signal.aborted) return;
      if (end) this.ends.push(end);
      if (end === "return") return;
      // The browser waits a few seconds before it connects again; a tenth of one will do here.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** One connection: how it ended, or null when the studio never answered it. */
  private async connect(): Promise<ConnectionEnd | null> {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
    const response = await fetch(subscriptionUrl(this.baseUrl, this.path, this.input), {
      headers,
      signal: this.stopper.signal,
    });
    if (!response.ok || !response.body) {
      throw new SubscriptionError(`HTTP ${response.status}`, String(response.status));
    }
    let answered = false;
    try {
      for await (const event of readSse(response.body)) {
        // an EventSource keeps the id of any event that names one ("" clears it)
        if (event.id !== undefined) this.lastEventId = event.id;
        if (event.event === "connected") {
          answered = true;
          this.connections++;
        } else if (event.event === "return") {
          return "return";
        } else if (event.event === "serialized-error") {
          throw new SubscriptionError(event.data, "serialized-error");
        } else if (event.event === "message") {
          this.received.push({
            id: event.id,
            data: superjson.deserialize<T>(JSON.parse(event.data)),
          });
        }
      }
    } catch (err) {
      if (err instanceof SubscriptionError) throw err;
      // the body broke off
    }
    return answered ? "cut" : null;
  }

  async stop() {
    this.stopper.abort();
    await this.done;
  }
}
