import { describe, expect, it } from "vitest";
import {
  canonicalPath,
  type GateConfig,
  type GateRequest,
  gateRequest,
  parseAuthority,
  routeOf,
  ServedHosts,
} from "../../src/server/http/request-gate";

const loopback = new ServedHosts({ bindHost: "127.0.0.1", port: 3000, allowedHosts: [] });

function req(
  headers: Record<string, string>,
  url = "/api/trpc/task.create",
  method = "POST",
): GateRequest {
  return { method, url, headers };
}

function decide(
  headers: Record<string, string>,
  url?: string,
  method?: string,
  config?: GateConfig,
) {
  return gateRequest(req(headers, url, method), config ? new ServedHosts(config) : loopback);
}

describe("Host: only the names the studio serves (DNS rebinding)", () => {
  it("accepts the bind address and the loopback names, with the studio's port", () => {
    for (const host of ["127.0.0.1:3000", "localhost:3000", "LOCALHOST:3000", "[::1]:3000"]) {
      expect(decide({ host }, "/finetune", "GET"), host).toMatchObject({ ok: true });
    }
  });

  it("refuses any other name, another port, a missing port, a missing or malformed Host", () => {
    const refused: [Record<string, string>, number, RegExp][] = [
      [{ host: "evil.example:3000" }, 421, /does not answer to Host "evil\.example:3000"/],
      [{ host: "evil.example" }, 421, /STUDIO_ALLOWED_HOSTS/],
      [{ host: "127.0.0.1:3001" }, 421, /127\.0\.0\.1:3001/],
      [{ host: "127.0.0.1" }, 421, /Host/],
      [{ host: "localhost.:3000" }, 421, /Host/],
      [{ host: "127.0.0.1.nip.io:3000" }, 421, /Host/],
      [{ host: "2130706433:3000" }, 421, /Host/],
      [{}, 400, /Host header is required/],
      [{ host: "" }, 400, /Host header is required/],
      [{ host: "a b:3000" }, 400, /malformed Host/],
      [{ host: "127.0.0.1:3000@evil.example" }, 400, /malformed Host/],
      [{ host: "127.0.0.1:99999" }, 400, /malformed Host/],
    ];
    for (const [headers, status, reason] of refused) {
      const d = decide(headers, "/finetune", "GET");
      expect(d, JSON.stringify(headers)).toMatchObject({ ok: false, status });
      expect(!d.ok && d.reason, JSON.stringify(headers)).toMatch(reason);
    }
  });

  it("adds STUDIO_ALLOWED_HOSTS: a bare name for any port, name:port for that port only", () => {
    const config = {
      bindHost: "127.0.0.1",
      port: 3000,
      allowedHosts: ["studio.example.org", "gpu-box:8443", "[fd00::5]:3000"],
    };
    expect(decide({ host: "studio.example.org" }, "/", "GET", config).ok).toBe(true);
    expect(decide({ host: "Studio.Example.org:443" }, "/", "GET", config).ok).toBe(true);
    expect(decide({ host: "gpu-box:8443" }, "/", "GET", config).ok).toBe(true);
    expect(decide({ host: "gpu-box:3000" }, "/", "GET", config).ok).toBe(false);
    expect(decide({ host: "[fd00::5]:3000" }, "/", "GET", config).ok).toBe(true);
    expect(decide({ host: "sub.studio.example.org" }, "/", "GET", config).ok).toBe(false);
  });

  it("serves loopback names only when bound to loopback; a wildcard bind adds the machine's addresses", () => {
    const lan = { bindHost: "10.0.0.5", port: 3000, allowedHosts: [] };
    expect(decide({ host: "10.0.0.5:3000" }, "/", "GET", lan).ok).toBe(true);
    expect(decide({ host: "localhost:3000" }, "/", "GET", lan).ok).toBe(false);
    const any = {
      bindHost: "0.0.0.0",
      port: 3000,
      allowedHosts: [],
      localAddresses: ["10.0.0.5", "fe80::1"],
    };
    for (const host of ["0.0.0.0:3000", "127.0.0.1:3000", "10.0.0.5:3000", "[fe80::1]:3000"]) {
      expect(decide({ host }, "/", "GET", any).ok, host).toBe(true);
    }
    expect(decide({ host: "evil.example:3000" }, "/", "GET", any).ok).toBe(false);
    const v6 = { bindHost: "::1", port: 3000, allowedHosts: [] };
    expect(decide({ host: "[::1]:3000" }, "/", "GET", v6).ok).toBe(true);
    expect(decide({ host: "localhost:3000" }, "/", "GET", v6).ok).toBe(true);
  });

  it("parses authorities as Host headers carry them", () => {
    expect(parseAuthority("Example.org", 80)).toEqual({ hostname: "example.org", port: 80 });
    expect(parseAuthority("[::1]:8080", 80)).toEqual({ hostname: "[::1]", port: 8080 });
    expect(parseAuthority("::1", 80)).toBeNull();
    expect(parseAuthority("x:", 80)).toBeNull();
  });
});

describe("Origin: only the studio's own pages may change things or subscribe (CSRF)", () => {
  const host = "127.0.0.1:3000";

  it("accepts a same-origin Origin, another served name, and no Origin (the CLI)", () => {
    for (const origin of ["http://127.0.0.1:3000", "http://localhost:3000", "https://[::1]:3000"]) {
      expect(decide({ host, origin }).ok, origin).toBe(true);
    }
    expect(decide({ host }).ok).toBe(true);
    expect(decide({ host, "sec-fetch-site": "same-origin" }).ok).toBe(true);
    expect(decide({ host, "sec-fetch-site": "none" }).ok).toBe(true);
  });

  it("refuses a foreign, opaque or malformed Origin on every method and /api/ path", () => {
    const origins = [
      "http://evil.example",
      "http://127.0.0.1:3001",
      "http://127.0.0.1",
      "null",
      "file://",
      "ftp://127.0.0.1:3000",
      "http://127.0.0.1:3000.evil.example",
      "not a url",
    ];
    const targets: [string, string][] = [
      ["POST", "/api/trpc/task.create"],
      ["POST", "/api/trpc/dataset.upload"],
      ["POST", "/api/login"],
      ["POST", "/api/logout"],
      ["GET", "/api/trpc/task.onLog?input=%7B%7D"],
      ["GET", "/api/trpc/task.list"],
      ["GET", "/api/tasks/abc/files/config.json"],
      ["PUT", "/finetune"],
      ["DELETE", "/"],
    ];
    for (const origin of origins) {
      for (const [method, url] of targets) {
        const d = decide({ host, origin }, url, method);
        expect(d, `${origin} ${method} ${url}`).toMatchObject({ ok: false, status: 403 });
        expect(!d.ok && d.reason).toMatch(/Origin|origin/);
      }
    }
  });

  it("refuses cross-site and same-site requests that carry no Origin", () => {
    for (const site of ["cross-site", "same-site"]) {
      const post = decide({ host, "sec-fetch-site": site });
      expect(post).toMatchObject({ ok: false, status: 403 });
      expect(!post.ok && post.reason).toMatch(new RegExp(`Sec-Fetch-Site is ${site}`));
      expect(decide({ host, "sec-fetch-site": site }, "/api/trpc/task.onUpdate", "GET").ok).toBe(
        false,
      );
    }
  });

  it("lets page navigations from anywhere through (they land on the login)", () => {
    const headers = { host, "sec-fetch-site": "cross-site" };
    expect(decide(headers, "/finetune", "GET").ok).toBe(true);
    expect(decide({ host, origin: "http://evil.example" }, "/login", "GET").ok).toBe(true);
  });
});

describe("paths: decoded once, no dot segments, no double encoding (one auth decision for all)", () => {
  it("refuses every spelling of a climb out of /_next/", () => {
    const tricks = [
      "/_next/../finetune",
      "/_next/./../finetune",
      "/_next/%2e%2e/finetune",
      "/_next/%2E%2E/finetune",
      "/_next/.%2e/finetune",
      "/_next/%252e%252e/finetune",
      "/_next/%25252e%25252e/finetune",
      "/_next/static/..%2ffinetune",
      "/_next/static/..%2Ffinetune",
      "/_next/static/..%5cfinetune",
      "/_next/static/..\\finetune",
      "/_next/static/%2e%2e%2f%2e%2e%2ffinetune",
      "//_next/static/x",
      "/_next//static/x",
      "/login/../finetune",
      "/login/..",
      "/./finetune",
      "/finetune%00",
      "/finetune%",
      "/finetune%zz",
      "http://127.0.0.1:3000/finetune",
      "*",
    ];
    for (const url of tricks) {
      const d = decide({ host: "127.0.0.1:3000" }, url, "GET");
      expect(d, url).toMatchObject({ ok: false, status: 400 });
      expect(!d.ok && d.reason, url).toMatch(/path/);
    }
  });

  it("keeps ordinary paths, with their queries and harmless encodings", () => {
    expect(canonicalPath("/finetune?task=abc")).toEqual({ path: "/finetune" });
    expect(canonicalPath("/finetune/")).toEqual({ path: "/finetune" });
    expect(canonicalPath("/")).toEqual({ path: "/" });
    expect(canonicalPath("/_next/static/chunks/app/%5Bid%5D/page.js")).toEqual({
      path: "/_next/static/chunks/app/[id]/page.js",
    });
    expect(canonicalPath("/api/trpc/task.onLog?input=%7B%22id%22%3A%22..%2F..%22%7D")).toEqual({
      path: "/api/trpc/task.onLog",
    });
    expect(canonicalPath("/a.b/..c/c..")).toEqual({ path: "/a.b/..c/c.." });
  });

  it("routes by the decoded path: only the login form and its static files are open", () => {
    expect(routeOf("/api/trpc/task.list")).toBe("trpc");
    expect(routeOf("/api/login")).toBe("login");
    expect(routeOf("/api/logout")).toBe("logout");
    expect(routeOf("/api/tasks/abc123/files/config.json")).toBe("download");
    expect(routeOf("/api/tasks/abc123/export/model.safetensors")).toBe("download");
    expect(routeOf("/api/tasks/abc123/export/sub/model.safetensors")).toBe("page");
    expect(routeOf("/login")).toBe("open");
    expect(routeOf("/favicon.ico")).toBe("open");
    expect(routeOf("/_next/static/chunks/main.js")).toBe("open");
    for (const path of [
      "/finetune",
      "/",
      "/_next/image",
      "/_next/data/x.json",
      "/loginx",
      "/api/x",
    ]) {
      expect(routeOf(path), path).toBe("page");
    }
    // %5f is "_": decoded before routing, so it is the same path and the same decision.
    const d = decide({ host: "127.0.0.1:3000" }, "/%5fnext/static/x.js", "GET");
    expect(d).toMatchObject({ ok: true, path: "/_next/static/x.js", route: "open" });
  });
});
