import { createTRPCClient, httpLink } from "@trpc/client";
import superjson from "superjson";
import { liveLockHolder } from "../platform/home-lock";
import type { AppRouter } from "../server/api/root";
import { loadEnv } from "../server/env";
import { studioPaths } from "../server/home";
import { type FoundStudio, findRunningStudios } from "./studio-discovery";

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

/** The studio a command talks to, and how it was found (for the messages that name it). */
export interface StudioTarget {
  url: string;
  /** "STUDIO_URL", or the home whose lock file named the URL. */
  via: string;
  /** The studio's home; null when only its URL is known (STUDIO_URL). */
  home: string | null;
}

/** Set by `connect`: an error that reached no studio says which one it tried. */
let lastTarget: StudioTarget | null = null;
export function lastStudioTarget(): StudioTarget | null {
  return lastTarget;
}

const studioText = (studio: FoundStudio) =>
  `${studio.url} (home ${studio.home}, pid ${studio.pid})`;

/**
 * Which studio to talk to: STUDIO_URL; else the one holding STUDIO_HOME (the server's own
 * lock file names its URL). With STUDIO_HOME not set and no studio on the default home, a studio
 * of this person running on another home is found (see studio-discovery.ts) and named on
 * stderr, so a command typed in any terminal reaches the studio started in another; several
 * are listed, not guessed between.
 */
export function locateStudio(): StudioTarget {
  const studioHome = home();
  const url = studioUrl(studioHome);
  if (process.env.STUDIO_URL && url) return { url, via: "STUDIO_URL", home: null };
  if (url) return { url, via: `home ${studioHome}`, home: studioHome };
  // STUDIO_HOME set: that studio was meant, and no other is offered.
  const others = process.env.STUDIO_HOME ? [] : findRunningStudios();
  if (others.length === 1) {
    const [only] = others as [FoundStudio];
    console.error(
      `studio: using the studio at ${studioText(only)}; set STUDIO_HOME or STUDIO_URL to choose`,
    );
    return { url: only.url, via: `home ${only.home}`, home: only.home };
  }
  const elsewhere = others.length
    ? `; studios running on other homes: ${others.map(studioText).join(", ")}; set STUDIO_HOME to one of them`
    : '; start one with "studio start"';
  throw new Error(`no studio is running on ${studioHome}${elsewhere}`);
}

/** A client for the studio this command is meant for; a clear error when none is running. */
export function connect(): StudioClient {
  lastTarget = locateStudio();
  return createClient(lastTarget.url);
}
