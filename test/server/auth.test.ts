import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/cli/client";
import { TestStudio } from "../helpers/studio";

const TOKEN = "a-test-token-of-some-length";

describe("access token", () => {
  let studio: TestStudio;
  let base: string;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_TOKEN: TOKEN });
    await studio.start();
    base = `http://127.0.0.1:${studio.port}`;
  });
  afterAll(() => studio.dispose());

  it("refuses tRPC calls without the token and accepts the CLI's bearer token", async () => {
    const saved = process.env.STUDIO_TOKEN;
    delete process.env.STUDIO_TOKEN;
    await expect(createClient(base).studio.info.query()).rejects.toMatchObject({
      data: { code: "UNAUTHORIZED" },
    });
    process.env.STUDIO_TOKEN = TOKEN;
    try {
      expect((await createClient(base).studio.info.query()).database).toBe("pglite");
    } finally {
      if (saved === undefined) delete process.env.STUDIO_TOKEN;
      else process.env.STUDIO_TOKEN = saved;
    }
    expect(await studio.cli("status")).toMatch(/running/);
  });

  it("sends the page to the login form until the token is given, then sets an HttpOnly cookie", async () => {
    const page = await fetch(`${base}/finetune`, { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/login");
    expect((await fetch(`${base}/login`)).status).toBe(200);

    const wrong = await fetch(`${base}/api/login`, {
      method: "POST",
      body: new URLSearchParams({ token: "wrong-token-wrong-token" }),
      redirect: "manual",
    });
    expect(wrong.headers.get("location")).toBe("/login?error=1");
    expect(wrong.headers.get("set-cookie")).toBeNull();

    const right = await fetch(`${base}/api/login`, {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN }),
      redirect: "manual",
    });
    const cookie = right.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).not.toContain(TOKEN);
    const session = cookie.split(";")[0]!;
    const allowed = await fetch(`${base}/finetune`, { headers: { cookie: session } });
    expect(allowed.status).toBe(200);
    const download = await fetch(`${base}/api/tasks/tnosuchtask/files/training.log`);
    expect(download.status).toBe(401);
  });
});

describe("binding to the network", () => {
  it("is refused without a token, with the reason", async () => {
    const studio = await TestStudio.create("pglite", { HOST: "0.0.0.0" });
    try {
      await expect(studio.cli("start")).rejects.toThrow(
        /HOST: binding to 0\.0\.0\.0.*STUDIO_TOKEN/,
      );
    } finally {
      await studio.dispose();
    }
  });
});
