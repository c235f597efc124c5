import { constants } from "node:fs";
import { access, realpath, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";
import { type PreflightResult, runPreflight } from "./preflight";

/**
 * A preflight result and what it depends on: the interpreter's file and the folders its packages
 * are installed into. Installing or removing a package changes such a folder, so a result is
 * reused exactly as long as none of them changed.
 */
export interface PreflightEntry {
  result: PreflightResult;
  fingerprint: string[];
}

/**
 * Caches preflight results per interpreter, so that a start request does not import torch
 * (seconds) each time. Concurrent checks of one interpreter share one run.
 */
export class PreflightCache {
  private readonly entries = new Map<string, PreflightEntry>();
  private readonly running = new Map<string, Promise<PreflightEntry | PreflightResult>>();

  constructor(
    private readonly run: (python: string) => Promise<PreflightResult> = (python) =>
      runPreflight(python),
  ) {}

  /** Takes a result checked elsewhere (the setup's record) for as long as its fingerprint holds. */
  remember(python: string, entry: PreflightEntry) {
    if (!this.entries.has(python)) this.entries.set(python, entry);
  }

  /** The cached entry of an interpreter, if any (it may be stale: `check` says). */
  entry(python: string): PreflightEntry | undefined {
    return this.entries.get(python);
  }

  async check(python: string): Promise<PreflightResult> {
    const cached = this.entries.get(python);
    if (cached) {
      const now = await interpreterFingerprint(python, siteDirsOf(cached.result));
      if (now && sameFingerprint(now, cached.fingerprint)) return cached.result;
      this.entries.delete(python);
    }
    let pending = this.running.get(python);
    if (!pending) {
      pending = this.checkNow(python).finally(() => this.running.delete(python));
      this.running.set(python, pending);
    }
    const outcome = await pending;
    return "fingerprint" in outcome ? outcome.result : outcome;
  }

  /** Runs the check; a result is kept only when its interpreter could be fingerprinted. */
  private async checkNow(python: string): Promise<PreflightEntry | PreflightResult> {
    const result = await this.run(python);
    const fingerprint = await interpreterFingerprint(python, siteDirsOf(result));
    if (!fingerprint) return result;
    const entry = { result, fingerprint };
    this.entries.set(python, entry);
    return entry;
  }
}

function siteDirsOf(result: PreflightResult): string[] {
  const dirs = result.details.site_dirs;
  return Array.isArray(dirs) ? dirs.filter((d): d is string => typeof d === "string") : [];
}

function sameFingerprint(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((part, i) => part === b[i]);
}

/**
 * The interpreter's real file (found on PATH for a bare name, as a launch would) and each site
 * folder, with inode, size and modification time; a folder that does not exist yet counts as
 * absent. Null when the interpreter cannot be found.
 */
export async function interpreterFingerprint(
  python: string,
  siteDirs: string[],
): Promise<string[] | null> {
  const file = await findExecutable(python);
  if (!file) return null;
  const real = await realpath(file).catch(() => null);
  if (!real) return null;
  const parts = [`python ${file} -> ${await fileFacts(real)}`];
  for (const dir of siteDirs) parts.push(`site ${await fileFacts(dir)}`);
  return parts;
}

async function fileFacts(path: string): Promise<string> {
  const st = await stat(path, { bigint: true }).catch(() => null);
  return st ? `${path} ${st.ino} ${st.size} ${st.mtimeNs}` : `${path} absent`;
}

/** What `execFile(name)` would run: the path itself when it has a slash, else the first on PATH. */
async function findExecutable(name: string): Promise<string | null> {
  const candidates = name.includes("/")
    ? [name]
    : (process.env.PATH ?? "")
        .split(delimiter)
        .filter((dir) => isAbsolute(dir))
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    const ok = await access(candidate, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (ok) return candidate;
  }
  return null;
}
