import { createTRPCClient, httpLink } from "@trpc/client";
import superjson from "superjson";
import type { AppRouter } from "../server/api/root";
import { loadEnv } from "../server/env";
import { studioPaths } from "../server/home";
import { liveLockHolder } from "../server/home-lock";

/** Where the running studio of this home answers: STUDIO_URL, else the URL its lock file names. */
export function studioUrl(home: string): string | null {
  if (process.env.STUDIO_URL) return process.env.STUDIO_URL.replace(/\/$/, "");
  return liveLockHolder(studioPaths(home).lock)?.url ?? null;
}

export function createClient(url: string) {
  const token = process.env.STUDIO_TOKEN;
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${url}/api/trpc`,
        transformer: superjson,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }),
    ],
  });
}
export type StudioClient = ReturnType<typeof createClient>;

export function home(): string {
  return loadEnv().STUDIO_HOME;
}

/** A client for the studio of this home; a clear error when none is running. */
export function connect(): StudioClient {
  const url = studioUrl(home());
  if (!url) throw new Error(`no studio is running on ${home()}; start one with "studio start"`);
  return createClient(url);
}
