import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

export const SESSION_COOKIE = "studio_session";

/** The cookie holds a digest of the token, so the token itself never sits in a browser's jar. */
export function sessionValue(token: string): string {
  return createHash("sha256").update(`finetune-studio-session:${token}`).digest("hex");
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

/** A request is authorized by `Authorization: Bearer <token>` (CLI) or the session cookie (page). */
export function isAuthorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const header = req.headers.authorization;
  if (header?.startsWith("Bearer ") && equal(header.slice(7), token)) return true;
  const session = cookie(req, SESSION_COOKIE);
  return session !== undefined && equal(session, sessionValue(token));
}

export function checkToken(candidate: string, token: string): boolean {
  return equal(candidate, token);
}
