import { createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { and, eq, gt, lt, sql } from "drizzle-orm";
import type { Db } from "./db/client";
import { type SessionRow, sessions } from "./db/schema";

export const SESSION_COOKIE = "studio_session";

/** Per process: digests are compared, never the strings, so neither length nor content leaks. */
const COMPARE_KEY = randomBytes(32);

/** Constant-time equality of two strings of any lengths (HMAC digests, then timingSafeEqual). */
export function safeEqual(a: string, b: string): boolean {
  const x = createHmac("sha256", COMPARE_KEY).update(a).digest();
  const y = createHmac("sha256", COMPARE_KEY).update(b).digest();
  return timingSafeEqual(x, y);
}

export function checkToken(candidate: string, token: string): boolean {
  return safeEqual(candidate, token);
}

/**
 * What sessions remember of the token they were opened with: a slow, salted digest, so a copy
 * of the database does not make guessing the token cheap. Computed once at start.
 */
export function tokenFingerprint(token: string): string {
  return scryptSync(token, "finetune-studio/session-token-fingerprint/v1", 24).toString("hex");
}

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

export function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

export function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  return header?.startsWith("Bearer ") ? header.slice(7) : undefined;
}

/** A session as it is listed: never its secret. */
export interface SessionInfo {
  id: string;
  client: string;
  userAgent: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

function infoOf(row: SessionRow): SessionInfo {
  const { id, client, userAgent, createdAt, lastSeenAt, expiresAt } = row;
  return { id, client, userAgent, createdAt, lastSeenAt, expiresAt };
}

/** Shape of a session secret as the cookie carries it: 32 random bytes, base64url. */
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/**
 * Page sessions in the database: a random secret per login (the cookie), stored as its
 * SHA-256 (a 256-bit random value needs no slow hash), with a sliding expiry; listed and
 * revoked by a public id. Only sessions opened with the current token count.
 */
export class SessionStore {
  private readonly fingerprint: string;
  private readonly ttlMs: number;
  /** last_seen is written at most this often per session (and always before half the TTL). */
  private readonly touchEveryMs: number;
  private readonly revokedListeners = new Set<(ids: string[] | "all") => void>();

  constructor(
    /** Read at each use: the studio replaces its connection when its supervision epoch changes. */
    private readonly database: { readonly db: Db },
    token: string,
    ttlHours: number,
  ) {
    this.fingerprint = tokenFingerprint(token);
    this.ttlMs = ttlHours * 3_600_000;
    this.touchEveryMs = Math.min(60_000, this.ttlMs / 10);
  }

  get ttlSeconds(): number {
    return Math.max(1, Math.floor(this.ttlMs / 1000));
  }

  /** At start: sessions of another token, or past their expiry, are deleted. */
  async prune(): Promise<number> {
    const gone = await this.database.db
      .delete(sessions)
      .where(
        sql`${sessions.tokenFingerprint} <> ${this.fingerprint} or ${sessions.expiresAt} <= now()`,
      )
      .returning({ id: sessions.id });
    return gone.length;
  }

  /** Opens a session; returns the secret for the cookie (shown once, never stored). */
  async create(client: string, userAgent: string): Promise<{ secret: string; id: string }> {
    const secret = randomBytes(32).toString("base64url");
    const id = `s-${randomBytes(6).toString("hex")}`;
    const now = new Date();
    await this.database.db.insert(sessions).values({
      id,
      secretHash: sha256(secret),
      tokenFingerprint: this.fingerprint,
      client: client.slice(0, 100),
      userAgent: userAgent.slice(0, 200),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: new Date(now.getTime() + this.ttlMs),
    });
    return { secret, id };
  }

  /** The live session a cookie secret opens, moving its expiry forward; null otherwise. */
  async authenticate(secret: string): Promise<SessionInfo | null> {
    if (!SECRET.test(secret)) return null;
    const [row] = await this.database.db
      .select()
      .from(sessions)
      .where(
        and(
          eq(sessions.secretHash, sha256(secret)),
          eq(sessions.tokenFingerprint, this.fingerprint),
          gt(sessions.expiresAt, sql`now()`),
        ),
      );
    if (!row) return null;
    const now = Date.now();
    if (now - row.lastSeenAt.getTime() >= this.touchEveryMs) {
      const lastSeenAt = new Date(now);
      const expiresAt = new Date(now + this.ttlMs);
      await this.database.db
        .update(sessions)
        .set({ lastSeenAt, expiresAt })
        .where(eq(sessions.id, row.id));
      return infoOf({ ...row, lastSeenAt, expiresAt });
    }
    return infoOf(row);
  }

  /** Live sessions of the current token, newest first. */
  async list(): Promise<SessionInfo[]> {
    const rows = await this.database.db
      .select()
      .from(sessions)
      .where(
        and(eq(sessions.tokenFingerprint, this.fingerprint), gt(sessions.expiresAt, sql`now()`)),
      )
      .orderBy(sql`${sessions.createdAt} desc`);
    return rows.map(infoOf);
  }

  /** Ends one session by id; false when there is none. */
  async revoke(id: string): Promise<boolean> {
    const gone = await this.database.db
      .delete(sessions)
      .where(eq(sessions.id, id))
      .returning({ id: sessions.id });
    if (gone.length) this.emit([id]);
    return gone.length > 0;
  }

  /** Ends the session a cookie secret belongs to (log out). */
  async revokeSecret(secret: string): Promise<string | null> {
    if (!SECRET.test(secret)) return null;
    const [gone] = await this.database.db
      .delete(sessions)
      .where(eq(sessions.secretHash, sha256(secret)))
      .returning({ id: sessions.id });
    if (gone) this.emit([gone.id]);
    return gone?.id ?? null;
  }

  /** Ends every session; returns how many were live. */
  async revokeAll(): Promise<number> {
    const gone = await this.database.db.delete(sessions).returning({ id: sessions.id });
    this.emit("all");
    return gone.length;
  }

  /** Deletes expired rows (they already open nothing). */
  async deleteExpired(): Promise<void> {
    await this.database.db.delete(sessions).where(lt(sessions.expiresAt, sql`now()`));
  }

  /** Told about revocations, so open streams of a revoked session can be closed. */
  onRevoked(listener: (ids: string[] | "all") => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  private emit(ids: string[] | "all") {
    for (const listener of this.revokedListeners) listener(ids);
  }
}

export interface LimiterOptions {
  /** Failures allowed before any wait. */
  freeFailures?: number;
  /** The first wait; each further failure doubles it. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A client's record is forgotten after this long without a failure. */
  forgetAfterMs?: number;
  now?: () => number;
}

/**
 * Failed token checks per client address: after `freeFailures`, every attempt waits
 * (exponential backoff, 429 with Retry-After), right token or not, until the wait is over.
 * A success clears the record.
 */
export class LoginLimiter {
  private readonly clients = new Map<
    string,
    { failures: number; blockedUntil: number; last: number }
  >();
  private readonly freeFailures: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly forgetAfterMs: number;
  private readonly now: () => number;

  constructor(options: LimiterOptions = {}) {
    this.freeFailures = options.freeFailures ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 1_000;
    this.maxDelayMs = options.maxDelayMs ?? 15 * 60_000;
    this.forgetAfterMs = options.forgetAfterMs ?? 60 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Seconds the client must wait before its next attempt; 0 when it may try now. */
  retryAfter(client: string): number {
    const record = this.clients.get(client);
    if (!record) return 0;
    const wait = record.blockedUntil - this.now();
    return wait > 0 ? Math.ceil(wait / 1000) : 0;
  }

  fail(client: string) {
    const now = this.now();
    this.sweep(now);
    const record = this.clients.get(client) ?? { failures: 0, blockedUntil: 0, last: now };
    record.failures += 1;
    record.last = now;
    const over = record.failures - this.freeFailures;
    if (over >= 0) {
      record.blockedUntil = now + Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** over);
    }
    this.clients.set(client, record);
  }

  succeed(client: string) {
    this.clients.delete(client);
  }

  private sweep(now: number) {
    if (this.clients.size < 10_000) return;
    for (const [client, record] of this.clients) {
      if (now - record.last > this.forgetAfterMs && record.blockedUntil < now) {
        this.clients.delete(client);
      }
    }
  }
}
