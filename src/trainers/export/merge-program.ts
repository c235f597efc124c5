import { join } from "node:path";
import { hfPeftScriptPath } from "../launch";
import type { ExportRequest } from "./provenance";

/**
 * Each trainer merges its own adapters, with its own program: the built-in trainer's `merge`
 * mode, or merge.py with the interpreter the hf-peft trainer runs with (peft's
 * merge_and_unload). Which program, with which argv, and what its failure means are decided
 * here (pure); the exporter runs it.
 */

export interface MergePaths {
  taskDir: string;
  /** The folder holding the adapter (or trained weights) to merge. */
  source: string;
  /** The staging folder the merged model is written into. */
  out: string;
}

export interface MergePrograms {
  nodePath: string;
  distDir: string;
  /** hf-peft only. */
  pythonPath: string | null;
}

export function mergeCommand(
  trainer: ExportRequest["trainer"],
  programs: MergePrograms,
  paths: MergePaths,
): { file: string; args: string[] } {
  const args = ["--task-dir", paths.taskDir, "--source", paths.source, "--out", paths.out];
  if (trainer === "builtin") {
    return {
      file: programs.nodePath,
      args: [join(programs.distDir, "builtin-trainer.js"), "merge", ...args],
    };
  }
  if (!programs.pythonPath) throw new Error("an hf-peft merge needs the trainer's Python");
  return {
    file: programs.pythonPath,
    args: [hfPeftScriptPath(programs.distDir, "merge.py"), ...args],
  };
}

const MiB = 1024 * 1024;
const DISK_FULL = /ENOSPC|No space left on device|os error 28/;
/** The line a merge program prints last when it fails (merge.py; the built-in trainer). */
const FAILURE_LINE = /^(merge failed|builtin-trainer): /;

/**
 * Why a merge failed, from how its program ended and its last output lines: a full disk with
 * the free space seen, a signal, or the program's own last word.
 */
export function mergeFailureReason(outcome: {
  code: number | null;
  signal: string | null;
  lines: string[];
  freeBytes: number | null;
  folder: string;
}): string {
  const lines = outcome.lines.map((l) => l.trimEnd()).filter(Boolean);
  const said =
    lines.findLast((l) => FAILURE_LINE.test(l)) ?? lines.findLast((l) => !/^\s/.test(l)) ?? null;
  if (lines.some((l) => DISK_FULL.test(l)))
    return diskFullReason(outcome.freeBytes, outcome.folder, said);
  if (outcome.signal) {
    const hint = outcome.signal === "SIGKILL" ? " (out of memory, or killed from outside)" : "";
    return `the merge was killed by ${outcome.signal}${hint}`;
  }
  return `the merge failed (exit code ${outcome.code})${said ? `: ${said}` : ""}`;
}

/** "disk full: 3 MB free on /x/tasks/abc (…)" */
export function diskFullReason(freeBytes: number | null, folder: string, detail: string | null) {
  const free = freeBytes === null ? "" : `: ${Math.floor(freeBytes / MiB)} MB free on ${folder}`;
  return `disk full${free}${detail ? ` (${detail})` : ""}; the task is unchanged`;
}
