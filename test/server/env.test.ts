import { describe, expect, it } from "vitest";
import { loadEnv, streamMaxSeconds } from "../../src/server/env";

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
    const bad = {
      PORT: "70000",
      STUDIO_CONCURRENCY: "0",
      DATABASE_URL: "mysql://x",
      STUDIO_DIVERGENCE_ACTION: "panic",
      STUDIO_STALL_SLOW_SECONDS: "-1",
    };
    let message = "";
    try {
      loadEnv(bad);
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of Object.keys(bad)) expect(message).toContain(name);
  });

  it("reads how long a live stream lasts on its own as loadEnv does, a refused value as unset", () => {
    expect(loadEnv({}).STUDIO_STREAM_MAX_SECONDS).toBe(900);
    for (const [value, seconds] of [
      [undefined, 900],
      ["2", 2],
      ["86400", 86_400],
      ["0", 900],
      ["1.5", 900],
      ["soon", 900],
    ] as const) {
      expect(streamMaxSeconds({ STUDIO_STREAM_MAX_SECONDS: value })).toBe(seconds);
      if (seconds !== 900 || value === undefined) {
        expect(loadEnv({ STUDIO_STREAM_MAX_SECONDS: value }).STUDIO_STREAM_MAX_SECONDS).toBe(
          seconds,
        );
      } else {
        expect(() => loadEnv({ STUDIO_STREAM_MAX_SECONDS: value })).toThrow(
          /STUDIO_STREAM_MAX_SECONDS/,
        );
      }
    }
  });

  it("parses GPU lists and flags", () => {
    const env = loadEnv({ STUDIO_GPUS: "0, 1,2", STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    expect(env.STUDIO_GPUS).toEqual(["0", "1", "2"]);
    expect(env.STUDIO_ALLOW_COMMAND_TRAINER).toBe(true);
    expect(() => loadEnv({ STUDIO_GPUS: "0;rm -rf" })).toThrow(/GPU/);
  });

  it("takes a webhook: http(s), a secret only with it, a known format", () => {
    const env = loadEnv({
      STUDIO_WEBHOOK_URL: "https://hooks.example.org/T1/B2/x?y=1",
      STUDIO_WEBHOOK_SECRET: "whsec-0123456789abcdef",
      STUDIO_WEBHOOK_FORMAT: "slack",
    });
    expect(env).toMatchObject({
      STUDIO_WEBHOOK_URL: "https://hooks.example.org/T1/B2/x?y=1",
      STUDIO_WEBHOOK_FORMAT: "slack",
      STUDIO_WEBHOOK_MAX_ATTEMPTS: 15,
      STUDIO_WEBHOOK_BACKOFF_SECONDS: 10,
    });
    expect(loadEnv({}).STUDIO_WEBHOOK_URL).toBeUndefined();
    expect(loadEnv({ STUDIO_WEBHOOK_URL: "" }).STUDIO_WEBHOOK_URL).toBeUndefined();
    expect(loadEnv({ STUDIO_WEBHOOK_URL: "http://127.0.0.1:9/h" }).STUDIO_WEBHOOK_FORMAT).toBe(
      "json",
    );
    for (const [value, message] of [
      ["ftp://example.org/hook", "STUDIO_WEBHOOK_URL must be an http:// or https:// URL"],
      ["hooks.example.org/x", "STUDIO_WEBHOOK_URL must be an http:// or https:// URL"],
      ["https://user:pw@example.org/x", "STUDIO_WEBHOOK_URL must not hold a user name or password"],
    ]) {
      expect(() => loadEnv({ STUDIO_WEBHOOK_URL: value })).toThrow(message);
    }
    expect(() =>
      loadEnv({ STUDIO_WEBHOOK_URL: "https://example.org/x", STUDIO_WEBHOOK_FORMAT: "xml" }),
    ).toThrow("STUDIO_WEBHOOK_FORMAT must be json or slack");
    expect(() =>
      loadEnv({ STUDIO_WEBHOOK_URL: "https://example.org/x", STUDIO_WEBHOOK_SECRET: "short" }),
    ).toThrow("STUDIO_WEBHOOK_SECRET must be at least 16 characters");
    expect(() => loadEnv({ STUDIO_WEBHOOK_SECRET: "whsec-0123456789abcdef" })).toThrow(
      "STUDIO_WEBHOOK_SECRET is set but STUDIO_WEBHOOK_URL is not",
    );
    expect(() => loadEnv({ STUDIO_WEBHOOK_MAX_ATTEMPTS: "0" })).toThrow(
      /STUDIO_WEBHOOK_MAX_ATTEMPTS/,
    );
    expect(() => loadEnv({ STUDIO_PUBLIC_URL: "studio.example.org" })).toThrow(
      "STUDIO_PUBLIC_URL must be an http:// or https:// URL",
    );
  });
});
