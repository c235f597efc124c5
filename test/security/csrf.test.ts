import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { type RawResponse, raw, trpcBody, trpcPath } from "./http";

/**
 * Cross-site request forgery: a page on another origin can send "simple" requests (form posts,
 * text/plain fetches, EventSource) to the studio's real address, with the real Host. Only the
 * Origin (and Sec-Fetch-Site) tells them from the studio's own page, and with no token (the
 * loopback default) nothing else stands in the way.
 */
describe("CSRF: only the studio's own origin may change things or subscribe", () => {
  let studio: TestStudio;
  let port: number;
  let own: string;
  let taskId: string;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite");
    await studio.start();
    port = studio.port;
    own = `http://127.0.0.1:${port}`;
    taskId = (
      await studio.client.task.create.mutate({ name: "victim", model: "m", dataset: "sample" })
    ).id;
  });
  afterAll(() => studio.dispose());

  const state = async () => ({
    tasks: (await studio.client.task.list.query()).items.map((t) => `${t.id} ${t.status}`),
    datasets: (await studio.client.dataset.list.query()).map((d) => d.id),
  });

  /** The same call in each content type a cross-site page can send without a preflight. */
  function bodies(input: unknown): [string, string][] {
    const json = trpcBody(input);
    const boundary = "----studio-csrf";
    return [
      ["application/json", json],
      ["text/plain", json],
      ["application/x-www-form-urlencoded", `${encodeURIComponent(json)}=`],
      [
        `multipart/form-data; boundary=${boundary}`,
        `--${boundary}\r\ncontent-disposition: form-data; name="json"\r\n\r\n${json}\r\n--${boundary}--\r\n`,
      ],
    ];
  }

  const mutations: [string, unknown][] = [
    ["task.create", { name: "forged", model: "m", dataset: "sample" }],
    [
      "dataset.upload",
      { fileName: "x.jsonl", contentBase64: Buffer.from('{"text":"x"}\n').toString("base64") },
    ],
    ["task.start", { id: "" }],
    ["task.delete", { id: "" }],
    ["session.revokeAll", undefined],
  ];

  async function post(
    procedure: string,
    input: unknown,
    type: string,
    body: string,
    headers: Record<string, string>,
  ) {
    const filled =
      input && typeof input === "object" && "id" in input ? { ...input, id: taskId } : input;
    return raw(port, {
      method: "POST",
      path: trpcPath(procedure),
      headers: { "content-type": type, ...headers },
      body: filled === input ? body : (bodies(filled).find(([t]) => t === type)?.[1] ?? body),
    });
  }

  it("refuses every mutation in every content type from a foreign Origin, and changes nothing", async () => {
    const before = await state();
    for (const origin of [
      "http://evil.example",
      "null",
      `http://127.0.0.1:${port + 1}`,
      `http://localhost:${port}.evil.example`,
    ]) {
      for (const [procedure, input] of mutations) {
        for (const [type, body] of bodies(input)) {
          const res = await post(procedure, input, type, body, { origin });
          expect(res.status, `${origin} ${procedure} ${type}`).toBe(403);
          expect(res.body).toMatch(/cross-origin request refused|opaque origin|malformed Origin/);
        }
      }
    }
    expect(await state()).toEqual(before);
  });

  it("refuses them without an Origin when the browser says the request is cross-site or same-site", async () => {
    const before = await state();
    for (const site of ["cross-site", "same-site"]) {
      for (const [procedure, input] of mutations) {
        for (const [type, body] of bodies(input)) {
          const res = await post(procedure, input, type, body, { "sec-fetch-site": site });
          expect(res.status, `${site} ${procedure} ${type}`).toBe(403);
        }
      }
    }
    expect(await state()).toEqual(before);
  });

  it("refuses sign-in, log-out, queries and downloads from a foreign Origin", async () => {
    const evil = { origin: "http://evil.example" };
    const requests: [string, string][] = [
      ["POST", "/api/login"],
      ["POST", "/api/logout"],
      ["GET", trpcPath("task.list")],
      ["GET", trpcPath("task.get", { id: taskId })],
      ["GET", `/api/tasks/${taskId}/files/config.json`],
    ];
    for (const [method, path] of requests) {
      const res = await raw(port, {
        method,
        path,
        headers: { ...evil, "content-type": "application/x-www-form-urlencoded" },
        body: method === "POST" ? "token=x" : undefined,
      });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
  });

  it("refuses subscriptions (SSE) from another site, with or without an Origin", async () => {
    const path = trpcPath("task.onUpdate", {});
    const accept = { accept: "text/event-stream" };
    const refused: Record<string, string>[] = [
      { origin: "http://evil.example" },
      { origin: "http://evil.example", "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
    ];
    for (const headers of refused) {
      const res = await raw(port, { path, headers: { ...accept, ...headers }, readForMs: 500 });
      expect(res.status, JSON.stringify(headers)).toBe(403);
    }
    const logPath = trpcPath("task.onLog", { id: taskId });
    expect(
      (
        await raw(port, {
          path: logPath,
          headers: { origin: "http://evil.example" },
          readForMs: 500,
        })
      ).status,
    ).toBe(403);
  });

  it("serves the studio's own page and programs: same Origin, same-origin or no Sec-Fetch-Site, the CLI", async () => {
    const accepted: Record<string, string>[] = [
      { origin: own },
      { origin: `http://localhost:${port}` },
      { origin: own, "sec-fetch-site": "same-origin" },
      { "sec-fetch-site": "same-origin" },
      { "sec-fetch-site": "none" },
      {},
    ];
    for (const headers of accepted) {
      const sub = await raw(port, {
        path: trpcPath("task.onUpdate", {}),
        headers: { accept: "text/event-stream", ...headers },
        readForMs: 300,
      });
      expect(sub.status, JSON.stringify(headers)).toBe(200);
      expect(sub.headers["content-type"]).toMatch(/text\/event-stream/);
      const created: RawResponse = await raw(port, {
        method: "POST",
        path: trpcPath("task.create"),
        headers: { "content-type": "application/json", ...headers },
        body: trpcBody({ name: "own page", model: "m", dataset: "sample" }),
      });
      expect(created.status, JSON.stringify(headers)).toBe(200);
    }
    expect(await studio.cli("task", "list")).toMatch(/own page/);
  });
});
