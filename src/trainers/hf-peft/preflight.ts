import { execFile } from "node:child_process";
import { join } from "node:path";
import { z } from "zod";
import { PACKAGE_ROOT } from "../../platform/package-root";

export const PREFLIGHT_SCRIPT = join(PACKAGE_ROOT, "src", "trainers", "hf-peft", "preflight.py");

export interface PreflightResult {
  /** True when this Python can run the hf-peft trainer. */
  ok: boolean;
  /** What stops it, in words a person can act on. */
  problems: string[];
  /** Everything preflight.py reported (versions, CUDA, warnings), or what went wrong running it. */
  details: Record<string, unknown>;
}

export interface PreflightOptions {
  /** Importing torch can take seconds on a cold disk. */
  timeoutMs?: number;
  scriptPath?: string;
  env?: NodeJS.ProcessEnv;
}

const reportSchema = z.looseObject({ problems: z.array(z.string()) });

/** Runs preflight.py with the given interpreter (no shell) and says whether hf-peft can train. */
export function runPreflight(
  pythonPath: string,
  options: PreflightOptions = {},
): Promise<PreflightResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve) => {
    execFile(
      pythonPath,
      [options.scriptPath ?? PREFLIGHT_SCRIPT],
      { timeout: timeoutMs, env: options.env ?? process.env, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        const failed = (problem: string) =>
          resolve({ ok: false, problems: [problem], details: { stderr: stderr.trim() } });
        if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
          return failed(
            `Python interpreter not found: ${pythonPath} (run "studio setup hf-peft", or set STUDIO_PYTHON to a Python 3 with torch, transformers and peft)`,
          );
        }
        if (error?.killed) {
          return failed(
            `the preflight check with ${pythonPath} took more than ${timeoutMs / 1000} s`,
          );
        }
        const report = parseReport(stdout);
        if (!report) {
          const why = error ? error.message.split("\n")[0] : "it printed no JSON report";
          return failed(`${pythonPath} could not run the preflight check: ${why}`);
        }
        resolve({ ok: report.problems.length === 0, problems: report.problems, details: report });
      },
    );
  });
}

function parseReport(stdout: string) {
  try {
    const parsed = reportSchema.safeParse(JSON.parse(stdout));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
