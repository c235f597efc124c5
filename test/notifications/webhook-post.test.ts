import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postWebhook } from "../../src/server/notifications/webhook-post";

/** A real receiver: each path answers its own way; what it received is kept. */
let server: Server;
let base: string;
const received: { path: string; headers: IncomingMessage["headers"]; body: string }[] = [];

const routes: Record<string, (res: ServerResponse) => void> = {
  "/ok": (res) => res.writeHead(204).end(),
  "/boom": (res) => res.writeHead(500, { "content-type": "text/plain" }).end("database\nis down"),
  "/busy": (res) => res.writeHead(429, { "retry-after": "7" }).end(),
  "/moved": (res) => res.writeHead(301, { location: "https://elsewhere.example/hook" }).end(),
  "/hang": () => {},
  // the status came; the body never ends: the answer still counts
  "/slow-body": (res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("partial");
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body });
      routes[req.url ?? ""]?.(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const post = (path: string, timeoutMs = 2_000, signal = new AbortController().signal) =>
  postWebhook({
    url: `${base}${path}`,
    body: '{"hello":"world"}',
    headers: { "content-type": "application/json", "x-studio-delivery": "d-1" },
    timeoutMs,
    signal,
  });

describe("one webhook try, against a real receiver", () => {
  it("posts the body and headers as given, and reports the answer", async () => {
    expect(await post("/ok")).toEqual({
      kind: "answered",
      status: 204,
      retryAfterMs: null,
      detail: "No Content",
    });
    const last = received.at(-1)!;
    expect(last.body).toBe('{"hello":"world"}');
    expect(last.headers["x-studio-delivery"]).toBe("d-1");
    expect(last.headers["content-type"]).toBe("application/json");
  });

  it("keeps the start of an error's body, on one line, and a Retry-After", async () => {
    expect(await post("/boom")).toMatchObject({
      status: 500,
      detail: "Internal Server Error: database is down",
    });
    expect(await post("/busy")).toMatchObject({ status: 429, retryAfterMs: 7_000 });
  });

  it("does not follow a redirect, and says where it points", async () => {
    const before = received.length;
    expect(await post("/moved")).toMatchObject({
      status: 301,
      detail:
        "redirected to https://elsewhere.example/hook; set STUDIO_WEBHOOK_URL to the address it points to",
    });
    expect(received.length).toBe(before + 1);
  });

  it("a receiver that does not answer in time is a timeout", async () => {
    const started = Date.now();
    expect(await post("/hang", 300)).toEqual({ kind: "timeout", afterMs: 300 });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("an answer whose body does not end still counts", async () => {
    expect(await post("/slow-body", 300)).toMatchObject({ kind: "answered", status: 200 });
  });

  it("no receiver at all is named", async () => {
    // a port that was just free: nothing listens there
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const result = await postWebhook({
      url: `http://127.0.0.1:${port}/`,
      body: "{}",
      headers: {},
      timeoutMs: 2_000,
      signal: new AbortController().signal,
    });
    expect(result).toMatchObject({
      kind: "unreachable",
      error: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it("the studio's stop aborts a try in flight", async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const result = await post("/hang", 5_000, stop.signal);
    expect(result.kind).toBe("unreachable");
    expect(stop.signal.aborted).toBe(true);
  });
});
