import type { IncomingMessage, ServerResponse } from "node:http";
import { networkInterfaces } from "node:os";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { appRouter } from "../api/root";
import type { Context } from "../api/trpc";
import {
  bearer,
  checkToken,
  cookie,
  LoginLimiter,
  SESSION_COOKIE,
  type SessionInfo,
  type SessionStore,
} from "../auth";
import { serveDownload, taskFilesRoot } from "../downloads";
import type { StudioServices } from "../services";
import { gateRequest, ServedHosts } from "./request-gate";

export interface StudioHttpOptions {
  services: StudioServices;
  /** Null when no STUDIO_TOKEN is set: then every request that passes the gate is allowed. */
  sessions: SessionStore | null;
  handleNext: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  log: (message: string) => void;
  limiter?: LoginLimiter;
}

/** Who a request is, decided once per request. */
interface Auth {
  authorized: boolean;
  session: SessionInfo | null;
  /** Seconds to wait: too many failed token checks from this client. */
  retryAfter?: number;
}

function clientOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "";
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error("request body too large");
  }
  return body;
}

const TRPC_CODES: Record<number, [string, number]> = {
  400: ["BAD_REQUEST", -32600],
  401: ["UNAUTHORIZED", -32001],
  403: ["FORBIDDEN", -32003],
  405: ["METHOD_NOT_SUPPORTED", -32005],
  421: ["FORBIDDEN", -32003],
  429: ["TOO_MANY_REQUESTS", -32029],
};

/**
 * A refusal with its reason: as a tRPC error (transformer-shaped, so the CLI prints the
 * reason) for a single tRPC call, as plain text otherwise.
 */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  reason: string,
  headers: Record<string, string> = {},
) {
  const url = req.url ?? "";
  const [code, rpc] = TRPC_CODES[status] ?? ["BAD_REQUEST", -32600];
  if (url.startsWith("/api/trpc/") && !/[?&]batch=/.test(url)) {
    const body = JSON.stringify({
      error: { json: { message: reason, code: rpc, data: { code, httpStatus: status } } },
    });
    res.writeHead(status, { ...headers, "content-type": "application/json" }).end(body);
    return;
  }
  res
    .writeHead(status, { ...headers, "content-type": "text/plain; charset=utf-8" })
    .end(`${reason}\n`);
}

function sessionCookie(secret: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}`;
}

const CLEARED_COOKIE = `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;

/**
 * Every request of the studio goes through `handle`: the gate (Host, Origin, path), then one
 * authentication decision, then the handler of its route. Nothing is routed before the gate,
 * and no route decides about access on its own.
 */
export function createStudioHttp(options: StudioHttpOptions) {
  const { services, sessions, handleNext, log } = options;
  const { env } = services;
  const limiter = options.limiter ?? new LoginLimiter();
  let served = servedFor(env.PORT);
  const auths = new WeakMap<IncomingMessage, Auth>();
  /** Open responses per session, so that revoking a session also ends its open streams. */
  const openBySession = new Map<string, Set<ServerResponse>>();
  /** Open tRPC responses: the event streams among them are cut at shutdown (cutStreams). */
  const openTrpc = new Set<ServerResponse>();

  // Expired sessions open nothing; their rows go now and then (by the supervising studio).
  if (sessions && !services.readOnly) {
    setInterval(() => {
      sessions.deleteExpired().catch((err) => log(`deleting expired sessions failed: ${err}`));
    }, 3_600_000).unref();
  }

  sessions?.onRevoked((ids) => {
    const victims = ids === "all" ? [...openBySession.keys()] : ids;
    for (const id of victims) {
      for (const res of openBySession.get(id) ?? []) res.destroy();
      openBySession.delete(id);
    }
  });

  function servedFor(port: number) {
    const localAddresses = Object.values(networkInterfaces())
      .flat()
      .map((a) => a?.address)
      .filter((a): a is string => !!a);
    return new ServedHosts({
      bindHost: env.HOST,
      port,
      allowedHosts: env.STUDIO_ALLOWED_HOSTS,
      localAddresses,
    });
  }

  const handleTrpc = createHTTPHandler({
    router: appRouter,
    basePath: "/api/trpc/",
    // A dataset upload travels as base64 inside one call.
    maxBodySize: 80 * 1024 * 1024,
    createContext: ({ req }): Context => {
      const auth = auths.get(req);
      return {
        ...services,
        authorized: auth?.authorized ?? false,
        session: auth?.session ?? null,
        sessions,
      };
    },
  });

  async function authenticate(req: IncomingMessage): Promise<Auth> {
    if (!env.STUDIO_TOKEN || !sessions) return { authorized: true, session: null };
    const presented = bearer(req);
    if (presented !== undefined) {
      const client = clientOf(req);
      const wait = limiter.retryAfter(client);
      if (wait > 0) return { authorized: false, session: null, retryAfter: wait };
      if (checkToken(presented, env.STUDIO_TOKEN)) {
        limiter.succeed(client);
        return { authorized: true, session: null };
      }
      limiter.fail(client);
      return { authorized: false, session: null };
    }
    const secret = cookie(req, SESSION_COOKIE);
    const session = secret ? await sessions.authenticate(secret) : null;
    return { authorized: session !== null, session };
  }

  async function handleLogin(req: IncomingMessage, res: ServerResponse) {
    const client = clientOf(req);
    const form = new URLSearchParams(await readBody(req, 4096));
    const token = form.get("token") ?? "";
    // Checked after the body is in and right before the token: from here to the record of a
    // failure nothing waits, so parallel guesses cannot slip past the limit together.
    const wait = limiter.retryAfter(client);
    if (wait > 0) {
      refuse(req, res, 429, `too many failed sign-ins from ${client}; try again in ${wait} s`, {
        "retry-after": String(wait),
      });
      return;
    }
    if (!env.STUDIO_TOKEN || !sessions || !checkToken(token, env.STUDIO_TOKEN)) {
      if (env.STUDIO_TOKEN) limiter.fail(client);
      res.writeHead(303, { location: "/login?error=1" }).end();
      return;
    }
    limiter.succeed(client);
    const { secret, id } = await sessions.create(client, String(req.headers["user-agent"] ?? ""));
    log(`session ${id} opened from ${client}`);
    res
      .writeHead(303, {
        location: "/finetune",
        "set-cookie": sessionCookie(secret, sessions.ttlSeconds),
      })
      .end();
  }

  async function handleLogout(req: IncomingMessage, res: ServerResponse) {
    const secret = cookie(req, SESSION_COOKIE);
    const id = secret && sessions ? await sessions.revokeSecret(secret) : null;
    if (id) log(`session ${id} logged out`);
    res.writeHead(303, { location: "/login", "set-cookie": CLEARED_COOKIE }).end();
  }

  function track(session: SessionInfo | null, res: ServerResponse) {
    if (!session) return;
    const open = openBySession.get(session.id) ?? new Set<ServerResponse>();
    openBySession.set(session.id, open);
    open.add(res);
    res.once("close", () => {
      open.delete(res);
      if (open.size === 0 && openBySession.get(session.id) === open) {
        openBySession.delete(session.id);
      }
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const decision = gateRequest(req, served);
    if (!decision.ok) {
      refuse(req, res, decision.status, decision.reason);
      return;
    }
    const method = req.method ?? "GET";
    switch (decision.route) {
      case "login":
        if (method !== "POST")
          return refuse(req, res, 405, "sign in with a POST", { allow: "POST" });
        return handleLogin(req, res);
      case "logout":
        if (method !== "POST")
          return refuse(req, res, 405, "log out with a POST", { allow: "POST" });
        return handleLogout(req, res);
      case "open":
        return handleNext(req, res);
    }
    const auth = await authenticate(req);
    if (auth.retryAfter) {
      refuse(req, res, 429, `too many failed token checks; try again in ${auth.retryAfter} s`, {
        "retry-after": String(auth.retryAfter),
      });
      return;
    }
    track(auth.session, res);
    switch (decision.route) {
      case "trpc":
        auths.set(req, auth);
        openTrpc.add(res);
        res.once("close", () => openTrpc.delete(res));
        return handleTrpc(req, res);
      case "download":
        if (!auth.authorized) return refuse(req, res, 401, "unauthorized");
        return serveDownload(
          (taskId) => taskFilesRoot(services.database.db, env.STUDIO_HOME, taskId),
          decision.path,
          res,
          req,
        );
      case "page":
        if (!auth.authorized) {
          res.writeHead(303, { location: "/login" }).end();
          return;
        }
        // The cookie's lifetime follows the session's sliding expiry.
        if (auth.session && sessions) {
          const secret = cookie(req, SESSION_COOKIE);
          if (secret) res.setHeader("set-cookie", sessionCookie(secret, sessions.ttlSeconds));
        }
        return handleNext(req, res);
    }
  }

  return {
    handle(req: IncomingMessage, res: ServerResponse) {
      route(req, res).catch((err) => {
        log(`request error (${req.method} ${req.url?.split("?")[0]}): ${err}`);
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    },
    /** Once listening: the port requests must name (PORT may have been 0). */
    listening(port: number) {
      served = servedFor(port);
    },
    /**
     * At shutdown: cuts every open event stream, as a dropped connection would, instead of
     * ending it. Ended with tRPC's "return" event, a subscription is over for the page's client;
     * cut, the browser's EventSource reconnects by itself (to the next studio, after a restart)
     * with the last event id it received, and the stream resumes after it. Calls in flight finish.
     */
    cutStreams() {
      for (const res of openTrpc) {
        if (String(res.getHeader("content-type")).startsWith("text/event-stream")) res.destroy();
      }
    },
  };
}
