import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { raw } from "./http";

const TOKEN = "a-token-for-the-path-tricks";

/**
 * The auth decision is made once, on the decoded path, before routing: no spelling of a path
 * reaches the page (or anything else) without a login.
 */
describe("path tricks never reach the page without a login", () => {
  let studio: TestStudio;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_TOKEN: TOKEN });
    await studio.start();
  });
  afterAll(() => studio.dispose());

  const get = (path: string) => raw(studio.port, { path });

  it("refuses dot segments and encoded or double-encoded climbs out of the open paths (400)", async () => {
    for (const path of [
      "/_next/../finetune",
      "/_next/%2e%2e/finetune",
      "/_next/%2E%2E/finetune",
      "/_next/.%2e/finetune",
      "/_next/%252e%252e/finetune",
      "/_next/%25252e%25252e/finetune",
      "/_next/static/../../finetune",
      "/_next/static/..%2f..%2ffinetune",
      "/_next/static/%2e%2e%5c%2e%2e%5cfinetune",
      "/_next/static/..\\..\\finetune",
      "/login/../finetune",
      "/login/%2e%2e/finetune",
      "/favicon.ico/../finetune",
      "/api/trpc/../../finetune",
      "/api/login/../../finetune",
      "/%5fnext/../finetune",
      "/./finetune",
      "//finetune",
      "/_next//../finetune",
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      expect(res.body, path).toMatch(/bad path: /);
      expect(res.body, path).not.toMatch(/<html/i);
    }
  });

  it("sends every other spelling of a protected path to the login", async () => {
    for (const path of [
      "/finetune",
      "/finetune/",
      "/%66inetune",
      "/",
      "/?x=/login",
      "/_next/image?url=/finetune",
      "/_next/data/x/finetune.json",
      "/loginx",
      "/api/nothing",
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(303);
      expect(res.headers.location, path).toBe("/login");
    }
    expect((await get("/api/tasks/abc/files/config.json")).status).toBe(401);
    expect((await get("/api/trpc/task.list")).status).toBe(401);
  });

  it("serves the login form and the static files it loads without a login", async () => {
    expect((await get("/login")).status).toBe(200);
    const chunk = readdirSync(join(import.meta.dirname, "../../.next/static/chunks")).find((f) =>
      f.endsWith(".js"),
    )!;
    const res = await get(`/_next/static/chunks/${chunk}`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/javascript/);
  });
});
