/**
 * The first decision about every request, before any routing: is it addressed to this studio
 * (Host), does it come from this studio's own page or from a program rather than another web
 * site (Origin, Sec-Fetch-Site), and which path does it ask for once decoded (no dot segments,
 * no double encoding). Pure: headers in, a decision out.
 *
 * Why Host: a web page the user visits can point a DNS name of its own at 127.0.0.1 (DNS
 * rebinding); the browser then treats the studio as that site's origin. Its requests still name
 * the attacker's host in `Host`, so a studio that answers only to the names it serves is out of
 * reach. Why Origin: a page on another origin can send simple requests (form posts, text/plain
 * fetches, EventSource) to the studio's real address; browsers mark them with an `Origin` (and
 * `Sec-Fetch-Site`) the page cannot forge.
 */

export interface GateConfig {
  /** The address the studio binds (HOST). */
  bindHost: string;
  /** The port it listens on. */
  port: number;
  /** STUDIO_ALLOWED_HOSTS: names (any port) or name:port, lowercase. */
  allowedHosts: readonly string[];
  /** The machine's own addresses: served too when bound to a wildcard address (0.0.0.0, ::). */
  localAddresses?: readonly string[];
}

export type RouteKind = "trpc" | "login" | "logout" | "download" | "open" | "page";

export type GateDecision =
  | { ok: true; path: string; route: RouteKind }
  | { ok: false; status: 400 | 403 | 405 | 421; reason: string };

export interface GateRequest {
  method?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
}

const LOOPBACK_BINDS = new Set(["127.0.0.1", "::1", "localhost", "[::1]"]);
const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];
const WILDCARD_BINDS = new Set(["0.0.0.0", "::", "[::]"]);

/** A host name as it appears in a URL: lowercase, IPv6 in brackets. */
function hostForm(host: string): string {
  const h = host.toLowerCase();
  return h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
}

export interface Authority {
  hostname: string;
  port: number;
}

/**
 * `name`, `name:port`, `[v6]` or `[v6]:port`, as in a Host header; null when malformed.
 * A missing port is `defaultPort`.
 */
export function parseAuthority(value: string, defaultPort: number): Authority | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(value);
  if (!m) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port > 65535) return null;
  return { hostname: m[1]!.toLowerCase(), port };
}

/** Which host names and ports a studio with this configuration answers to. */
export class ServedHosts {
  private readonly exact = new Set<string>();
  private readonly anyPort = new Set<string>();

  constructor(readonly config: GateConfig) {
    const own = hostForm(config.bindHost);
    const names = new Set<string>([own]);
    if (LOOPBACK_BINDS.has(own) || LOOPBACK_BINDS.has(config.bindHost)) {
      for (const n of LOOPBACK_NAMES) names.add(n);
    }
    if (WILDCARD_BINDS.has(own)) {
      for (const n of LOOPBACK_NAMES) names.add(n);
      for (const a of config.localAddresses ?? []) names.add(hostForm(a));
    }
    for (const n of names) this.exact.add(`${n}:${config.port}`);
    for (const entry of config.allowedHosts) {
      const parsed = parseAuthority(entry, -1);
      if (!parsed) continue;
      if (parsed.port === -1) this.anyPort.add(parsed.hostname);
      else this.exact.add(`${parsed.hostname}:${parsed.port}`);
    }
  }

  has(authority: Authority): boolean {
    return (
      this.anyPort.has(authority.hostname) ||
      this.exact.has(`${authority.hostname}:${authority.port}`)
    );
  }

  /** For messages: what a request may name. */
  describe(): string {
    return [...this.exact, ...this.anyPort].join(", ");
  }
}

const DOWNLOAD = /^\/api\/tasks\/[a-z0-9]{1,64}\/(files|export)\/[A-Za-z0-9_.-]{1,128}$/;

/** Which handler a canonical path goes to; the auth rule for each lives with the handler's caller. */
export function routeOf(path: string): RouteKind {
  if (path === "/api/trpc" || path.startsWith("/api/trpc/")) return "trpc";
  if (path === "/api/login") return "login";
  if (path === "/api/logout") return "logout";
  if (DOWNLOAD.test(path)) return "download";
  // Before a login only the login form and the static files it loads are served.
  if (path === "/login" || path === "/favicon.ico" || path.startsWith("/_next/static/")) {
    return "open";
  }
  return "page";
}

/**
 * The path of a request target, decoded once, for deciding on; or why it is refused. Refused:
 * anything but a path, malformed or double percent-encoding, encoded '/' or '\', dot segments
 * (browsers resolve them before sending, so only a crafted request has them), empty segments
 * (`//host`-like paths), control characters and backslashes.
 */
export function canonicalPath(target: string): { path: string } | { error: string } {
  if (!target.startsWith("/")) return { error: "the request target must be a path" };
  const raw = target.split("?", 1)[0]!.split("#", 1)[0]!;
  if (/%(2f|5c)/i.test(raw)) return { error: "encoded '/' or '\\' in the path" };
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return { error: "malformed percent-encoding in the path" };
  }
  if (/%[0-9a-fA-F]{2}/.test(decoded)) return { error: "double percent-encoding in the path" };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u001f\u007f\\]/.test(decoded)) {
    return { error: "control characters or '\\' in the path" };
  }
  const segments = decoded.split("/").slice(1);
  if (segments.some((s) => s === "." || s === "..")) {
    return { error: "dot segments ('.' or '..') in the path" };
  }
  if (segments.slice(0, -1).some((s) => s === ""))
    return { error: "empty segment ('//') in the path" };
  const path = decoded.length > 1 && decoded.endsWith("/") ? decoded.slice(0, -1) : decoded;
  return { path };
}

function header(req: GateRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/**
 * Requests that change something or read data for a script: every method but GET and HEAD,
 * and everything under /api/ (tRPC queries, subscriptions, downloads). Page navigations are
 * not: following a link to the studio from another site is fine (and lands on the login).
 */
function needsOwnOrigin(method: string, path: string): boolean {
  return (method !== "GET" && method !== "HEAD") || path.startsWith("/api/");
}

/** Checks Origin / Sec-Fetch-Site; null when the request may come from where it comes from. */
export function originRefusal(req: GateRequest, served: ServedHosts): string | null {
  const origin = header(req, "origin");
  if (origin !== undefined) {
    if (origin === "null") return "a request from an opaque origin (Origin: null) is refused";
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return `malformed Origin ${JSON.stringify(origin)}`;
    }
    const defaultPort = url.protocol === "https:" ? 443 : 80;
    const authority = parseAuthority(url.host, defaultPort);
    if (
      (url.protocol !== "http:" && url.protocol !== "https:") ||
      !authority ||
      !served.has(authority)
    ) {
      return `cross-origin request refused: Origin ${origin} is not this studio`;
    }
    return null;
  }
  // No Origin: a program (the CLI, curl) or a same-origin GET. Browsers that omit Origin
  // still say where the request comes from.
  const site = header(req, "sec-fetch-site");
  if (site === "cross-site" || site === "same-site") {
    return `cross-origin request refused: Sec-Fetch-Site is ${site} and there is no Origin`;
  }
  return null;
}

/** Host, then path, then origin: the whole decision before a request reaches any handler. */
export function gateRequest(req: GateRequest, served: ServedHosts): GateDecision {
  const host = header(req, "host");
  if (!host) return { ok: false, status: 400, reason: "a Host header is required" };
  const authority = parseAuthority(host, 80);
  if (!authority)
    return { ok: false, status: 400, reason: `malformed Host header ${JSON.stringify(host)}` };
  if (!served.has(authority)) {
    return {
      ok: false,
      status: 421,
      reason: `this studio does not answer to Host ${JSON.stringify(host)} (it serves ${served.describe()}; the operator adds names with STUDIO_ALLOWED_HOSTS)`,
    };
  }
  const canonical = canonicalPath(req.url ?? "/");
  if ("error" in canonical)
    return { ok: false, status: 400, reason: `bad path: ${canonical.error}` };
  const method = (req.method ?? "GET").toUpperCase();
  if (needsOwnOrigin(method, canonical.path)) {
    const refusal = originRefusal(req, served);
    if (refusal) return { ok: false, status: 403, reason: refusal };
  }
  return { ok: true, path: canonical.path, route: routeOf(canonical.path) };
}
