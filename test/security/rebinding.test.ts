import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnv } from "../../src/server/env";
import { TestStudio } from "../helpers/studio";
import { raw, trpcBody, trpcPath } from "./http";

/**
 * DNS rebinding: a page on evil.example re-points its name at 127.0.0.1, so the browser sends
 * the studio requests whose Host is evil.example. With no token (the loopback default) the
 * Host is all that tells them apart from the studio's own page.
 */
describe("DNS rebinding: a studio answers only to the hosts it serves", () => {
  let studio: TestStudio;
  let port: number;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_ALLOWED_HOSTS: "studio.test" });
    await studio.start();
    port = studio.port;
  });
  afterAll(() => studio.dispose());

  const count = async () => (await studio.client.task.list.query()).items.length;

  it("refuses the issue's attack (task.create with Host and Origin evil.example) and creates nothing", async () => {
    const before = await count();
    const res = await raw(port, {
      method: "POST",
      path: trpcPath("task.create"),
      headers: {
        host: "evil.example",
        origin: "http://evil.example",
        "content-type": "application/json",
      },
      body: trpcBody({ name: "x", model: "builtin:tiny", dataset: "sample" }),
    });
    expect(res.status).toBe(421);
    expect(res.body).toMatch(/does not answer to Host \\?"evil\.example\\?"/);
    expect(await count()).toBe(before);
  });

  it("refuses every kind of request under a foreign Host: queries, subscriptions, page, downloads", async () => {
    const targets = [
      trpcPath("task.list"),
      trpcPath("dataset.list"),
      trpcPath("task.onUpdate", {}),
      "/finetune",
      "/",
      "/login",
      "/_next/static/x.js",
      "/api/tasks/abc/files/training.log",
    ];
    for (const host of [
      "evil.example",
      `evil.example:${port}`,
      "127.0.0.1.evil.example",
      `127.0.0.1:${port + 1}`,
    ]) {
      for (const path of targets) {
        const res = await raw(port, { path, headers: { host }, readForMs: 2_000 });
        expect(res.status, `${host} ${path}`).toBe(421);
      }
    }
  });

  it("answers its own names: the bind address, localhost, [::1] and STUDIO_ALLOWED_HOSTS", async () => {
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      "studio.test",
      `studio.test:${port}`,
    ]) {
      const list = await raw(port, { path: trpcPath("task.list"), headers: { host } });
      expect(list.status, host).toBe(200);
      const page = await raw(port, { path: "/finetune", headers: { host } });
      expect(page.status, host).toBe(200);
    }
  });

  it("keeps the CLI working unchanged", async () => {
    const created = await studio.cliJson<{ id: string }>(
      "task",
      "create",
      "--name",
      "cli",
      "--dataset",
      "sample",
    );
    expect(created.id).toMatch(/^[a-z0-9]+$/);
    expect(await studio.cli("task", "list")).toMatch(/cli/);
  });
});

describe("STUDIO_ALLOWED_HOSTS", () => {
  it("takes names and addresses with optional ports, and names a bad entry", () => {
    expect(
      loadEnv({ STUDIO_ALLOWED_HOSTS: " Studio.Example.org, gpu-box:8443,[fd00::5]:3000 ,," })
        .STUDIO_ALLOWED_HOSTS,
    ).toEqual(["studio.example.org", "gpu-box:8443", "[fd00::5]:3000"]);
    expect(loadEnv({}).STUDIO_ALLOWED_HOSTS).toEqual([]);
    for (const bad of [
      "http://studio.example.org",
      "*.example.org",
      "studio.example.org/",
      "a b",
      "evil.example:port",
    ]) {
      expect(() => loadEnv({ STUDIO_ALLOWED_HOSTS: bad }), bad).toThrow(
        /STUDIO_ALLOWED_HOSTS.*each allowed host is a name or an address/s,
      );
    }
  });
});
