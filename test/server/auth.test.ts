import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/cli/client";
import { checkToken, LoginLimiter, safeEqual } from "../../src/server/auth";
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

describe("token comparison", () => {
  it("is equal only for the same token, for inputs of any length, without throwing", () => {
    const token = "a-test-token-of-some-length";
    expect(checkToken(token, token)).toBe(true);
    for (const candidate of [
      "",
      "a",
      token.slice(0, -1),
      `${token}x`,
      token.toUpperCase(),
      "x".repeat(10_000),
    ]) {
      expect(checkToken(candidate, token), candidate.slice(0, 30)).toBe(false);
    }
    expect(safeEqual("é", "é")).toBe(true);
    expect(safeEqual("\u0000", "")).toBe(false);
  });
});

describe("login limiter", () => {
  it("lets five failures through, then doubles the wait per failure; a success clears the record", () => {
    let now = 0;
    const limiter = new LoginLimiter({ now: () => now });
    for (let i = 0; i < 4; i++) {
      limiter.fail("a");
      expect(limiter.retryAfter("a")).toBe(0);
    }
    limiter.fail("a");
    expect(limiter.retryAfter("a")).toBe(1);
    expect(limiter.retryAfter("b")).toBe(0);
    now += 1_000;
    expect(limiter.retryAfter("a")).toBe(0);
    limiter.fail("a");
    expect(limiter.retryAfter("a")).toBe(2);
    now += 2_000;
    limiter.fail("a");
    expect(limiter.retryAfter("a")).toBe(4);
    for (let i = 0; i < 30; i++) limiter.fail("a");
    expect(limiter.retryAfter("a")).toBe(15 * 60);
    limiter.succeed("a");
    expect(limiter.retryAfter("a")).toBe(0);
  });
});
