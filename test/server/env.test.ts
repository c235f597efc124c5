import { describe, expect, it } from "vitest";
import { loadEnv } from "../../src/server/env";

describe("environment", () => {
  it("has safe defaults", () => {
    const env = loadEnv({ HOME: "/home/x" });
    expect(env.HOST).toBe("127.0.0.1");
    expect(env.PORT).toBe(3000);
    expect(env.STUDIO_CONCURRENCY).toBe(1);
    expect(env.STUDIO_GPUS).toEqual([]);
    expect(env.STUDIO_ALLOW_COMMAND_TRAINER).toBe(false);
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it("refuses a network address without a token", () => {
    expect(() => loadEnv({ HOST: "0.0.0.0" })).toThrow(/STUDIO_TOKEN/);
    expect(loadEnv({ HOST: "0.0.0.0", STUDIO_TOKEN: "a-long-enough-secret" }).HOST).toBe("0.0.0.0");
  });

  it("names every bad value", () => {
    expect(() =>
      loadEnv({ PORT: "70000", STUDIO_CONCURRENCY: "0", DATABASE_URL: "mysql://x" }),
    ).toThrow(/PORT[\s\S]*DATABASE_URL|DATABASE_URL[\s\S]*PORT/);
  });

  it("parses GPU lists and flags", () => {
    const env = loadEnv({ STUDIO_GPUS: "0, 1,2", STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    expect(env.STUDIO_GPUS).toEqual(["0", "1", "2"]);
    expect(env.STUDIO_ALLOW_COMMAND_TRAINER).toBe(true);
    expect(() => loadEnv({ STUDIO_GPUS: "0;rm -rf" })).toThrow(/GPU/);
  });
});
