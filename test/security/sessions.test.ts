import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessions } from "../../src/server/db/schema";
import { loadEnv } from "../../src/server/env";
import { testDatabaseKinds } from "../helpers/databases";
import { subscriptionUrl } from "../helpers/sse";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";
import { raw, trpcPath } from "./http";

const TOKEN = "the-first-token-of-this-test";
const NEW_TOKEN = "a-second-token-after-rotation";
/** 7.2 s: long enough for each test's steps, short enough to watch a session expire. */
const TTL_HOURS = 0.002;
const TTL_MS = TTL_HOURS * 3_600_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One database (PostgreSQL when set): sessions are rows like any other; nul.test.ts checks both
// databases refuse what they cannot store.
describe.each([testDatabaseKinds().at(-1)!])(
  "sessions on %s: random, expiring, revocable",
  (kind) => {
    let studio: TestStudio;
    let port: number;
    let origin: string;

    beforeAll(async () => {
      studio = await TestStudio.create(kind, {
        STUDIO_TOKEN: TOKEN,
        STUDIO_SESSION_TTL_HOURS: String(TTL_HOURS),
      });
      await studio.start();
      port = studio.port;
      origin = `http://127.0.0.1:${port}`;
    });
    afterAll(() => studio.dispose());

    /** Signs in as the page's form does; returns the cookie pair ("studio_session=..."). */
    async function login(token = TOKEN, localAddress?: string) {
      const res = await raw(port, {
        method: "POST",
        path: "/api/login",
        headers: { origin, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token }).toString(),
        localAddress,
      });
      return { res, cookie: String(res.headers["set-cookie"] ?? "").split(";")[0]! };
    }

    async function pageStatus(cookie: string) {
      return (await raw(port, { path: "/finetune", headers: { cookie } })).status;
    }

    async function currentSession(cookie: string): Promise<{ id: string } | null> {
      const res = await raw(port, { path: trpcPath("session.current"), headers: { cookie } });
      if (res.status !== 200) return null;
      return JSON.parse(res.body).result.data.json.session;
    }

    const cli = <T>(...args: string[]) => studio.cliJson<T>(...args);

    it("gives each login its own random session, never derived from the token", async () => {
      const a = await login();
      const b = await login();
      expect(a.res.status).toBe(303);
      const header = String(a.res.headers["set-cookie"]);
      expect(header).toMatch(/HttpOnly/);
      expect(header).toMatch(/SameSite=Strict/);
      expect(header).toMatch(new RegExp(`Max-Age=${Math.floor(TTL_HOURS * 3600)}`));
      expect(a.cookie).toMatch(/^studio_session=[A-Za-z0-9_-]{43}$/);
      expect(a.cookie).not.toBe(b.cookie);
      expect(header).not.toContain(TOKEN);
      expect(await pageStatus(a.cookie)).toBe(200);
      expect(await pageStatus(b.cookie)).toBe(200);
      // The old cookie anyone with the token could compute offline opens nothing.
      const offline = createHash("sha256").update(`finetune-studio-session:${TOKEN}`).digest("hex");
      expect(await pageStatus(`studio_session=${offline}`)).toBe(303);
      expect(await pageStatus("studio_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).toBe(
        303,
      );
    });

    it("lists sessions and revokes one with the CLI; its open stream ends, the others go on", async () => {
      const a = await login();
      const b = await login();
      const idA = (await currentSession(a.cookie))!.id;
      const idB = (await currentSession(b.cookie))!.id;
      const listed = await cli<{ id: string; client: string }[]>("sessions", "list");
      expect(listed.map((s) => s.id)).toEqual(expect.arrayContaining([idA, idB]));
      expect(listed.find((s) => s.id === idA)!.client).toBe("127.0.0.1");
      expect(JSON.stringify(listed)).not.toContain(a.cookie.split("=")[1]!);
      expect(await currentSession(b.cookie)).toEqual(expect.objectContaining({ id: idB }));

      const stream = await fetch(subscriptionUrl(origin, "task.onUpdate", {}), {
        headers: { cookie: a.cookie, accept: "text/event-stream" },
      });
      expect(stream.status).toBe(200);
      const reading = stream.text().then(
        () => "ended",
        () => "ended",
      );

      expect(await cli("sessions", "revoke", idA)).toEqual({ revoked: [idA] });
      expect(await pageStatus(b.cookie)).toBe(200);
      expect(await Promise.race([reading, sleep(3_000).then(() => "still open")])).toBe("ended");
      expect(await pageStatus(a.cookie)).toBe(303);
      expect(
        (await raw(port, { path: trpcPath("task.list"), headers: { cookie: a.cookie } })).status,
      ).toBe(401);
      await expect(studio.cli("sessions", "revoke", idA)).rejects.toThrow(/no session with id/);
      await expect(studio.cli("sessions", "revoke")).rejects.toThrow(/give a session id, or --all/);
    });

    it("logs out from the page (POST /api/logout), and only from the studio's own origin", async () => {
      const { cookie } = await login();
      const forged = await raw(port, {
        method: "POST",
        path: "/api/logout",
        headers: { cookie, origin: "http://evil.example" },
      });
      expect(forged.status).toBe(403);
      expect(await pageStatus(cookie)).toBe(200);
      const out = await raw(port, {
        method: "POST",
        path: "/api/logout",
        headers: { cookie, origin },
      });
      expect(out.status).toBe(303);
      expect(out.headers.location).toBe("/login");
      expect(String(out.headers["set-cookie"])).toMatch(/^studio_session=; .*Max-Age=0/);
      expect(await pageStatus(cookie)).toBe(303);
      expect((await raw(port, { path: "/api/logout", headers: { cookie } })).status).toBe(405);
    });

    it("expires a session left unused for the TTL, and keeps one in use alive (sliding)", async () => {
      const used = await login();
      const idle = await login();
      // Used every 0.8 s for longer than the TTL: still valid.
      const until = Date.now() + TTL_MS * 1.3;
      while (Date.now() < until) {
        expect(await currentSession(used.cookie)).not.toBeNull();
        await sleep(800);
      }
      expect(await pageStatus(used.cookie)).toBe(200);
      expect(await pageStatus(idle.cookie)).toBe(303);
      expect(
        (await raw(port, { path: trpcPath("task.list"), headers: { cookie: idle.cookie } })).status,
      ).toBe(401);
      // Then left alone for longer than the TTL: gone, and no longer listed.
      const usedId = (await currentSession(used.cookie))!.id;
      await sleep(TTL_MS + 800);
      expect(await pageStatus(used.cookie)).toBe(303);
      const listed = await cli<{ id: string }[]>("sessions", "list");
      expect(listed.map((s) => s.id)).not.toContain(usedId);
    });

    it("limits failed sign-ins per client: 429 with Retry-After, even for the right token, until the wait is over", async () => {
      const client = "127.0.0.2";
      for (let i = 0; i < 5; i++) {
        const wrong = await login("wrong-token-wrong-token", client);
        expect(wrong.res.status, `attempt ${i + 1}`).toBe(303);
        expect(wrong.res.headers.location).toBe("/login?error=1");
      }
      const blocked = await login(TOKEN, client);
      expect(blocked.res.status).toBe(429);
      const wait = Number(blocked.res.headers["retry-after"]);
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(blocked.res.body).toMatch(/too many failed sign-ins/);
      // Another client is not held up.
      expect((await login(TOKEN, "127.0.0.3")).res.headers.location).toBe("/finetune");
      // 200 guesses at once: five are checked, the rest are turned away unchecked (a few more
      // may be checked if the batch outlasts a wait, which then doubles).
      const started = Date.now();
      const guesses = await Promise.all(
        Array.from({ length: 200 }, (_, i) => login(`guess-${i}-guess-guess-guess`, "127.0.0.4")),
      );
      const checked = guesses.filter((g) => g.res.status === 303).length;
      expect(checked).toBeGreaterThanOrEqual(5);
      expect(checked).toBeLessThanOrEqual(
        5 + Math.ceil(Math.log2((Date.now() - started) / 1000 + 1)),
      );
      expect(guesses.filter((g) => g.res.status !== 303).every((g) => g.res.status === 429)).toBe(
        true,
      );
      await sleep(wait * 1000 + 100);
      const after = await login(TOKEN, client);
      expect(after.res.headers.location).toBe("/finetune");
      expect(await pageStatus(after.cookie)).toBe(200);
    });

    it("limits wrong bearer tokens the same way; the CLI with the right token is unaffected", async () => {
      const client = "127.0.0.5";
      const call = (token: string) =>
        raw(port, {
          path: trpcPath("task.list"),
          headers: { authorization: `Bearer ${token}` },
          localAddress: client,
        });
      for (let i = 0; i < 5; i++) expect((await call("wrong-token-wrong-token")).status).toBe(401);
      const blocked = await call(TOKEN);
      expect(blocked.status).toBe(429);
      expect(blocked.headers["retry-after"]).toMatch(/^\d+$/);
      expect(JSON.parse(blocked.body).error.json.message).toMatch(/too many failed token checks/);
      expect(await studio.cli("task", "list")).toBeDefined();
    });

    it("revokes every session with --all, and every session when the token changes", async () => {
      const a = await login();
      const b = await login();
      const all = await cli<{ revoked: number }>("sessions", "revoke", "--all");
      expect(all.revoked).toBeGreaterThanOrEqual(2);
      expect(await pageStatus(a.cookie)).toBe(303);
      expect(await pageStatus(b.cookie)).toBe(303);

      const kept = await login();
      expect(await pageStatus(kept.cookie)).toBe(200);
      await studio.stop();
      // Stored: the SHA-256 of the secret, never the secret itself.
      const secret = kept.cookie.split("=")[1]!;
      const rows = await studio.withDatabase((db) => db.select().from(sessions));
      expect(rows.map((r) => r.secretHash)).toContain(
        createHash("sha256").update(secret).digest("hex"),
      );
      expect(JSON.stringify(rows)).not.toContain(secret);
      expect(JSON.stringify(rows)).not.toContain(TOKEN);

      studio.env.STUDIO_TOKEN = NEW_TOKEN;
      await studio.start();
      await waitFor("the studio to answer", async () => (await pageStatus(kept.cookie)) > 0);
      expect(await pageStatus(kept.cookie)).toBe(303);
      expect(await cli("sessions", "list")).toEqual([]);
      const fresh = await login(NEW_TOKEN);
      expect(await pageStatus(fresh.cookie)).toBe(200);
    });
  },
);

describe("STUDIO_SESSION_TTL_HOURS", () => {
  it("defaults to a week, takes fractions, refuses zero, negatives and words", () => {
    expect(loadEnv({}).STUDIO_SESSION_TTL_HOURS).toBe(168);
    expect(loadEnv({ STUDIO_SESSION_TTL_HOURS: "0.5" }).STUDIO_SESSION_TTL_HOURS).toBe(0.5);
    for (const bad of ["0", "-1", "week", "100000"]) {
      expect(() => loadEnv({ STUDIO_SESSION_TTL_HOURS: bad }), bad).toThrow(
        /STUDIO_SESSION_TTL_HOURS/,
      );
    }
  });
});
