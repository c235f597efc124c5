import { basename, isAbsolute, relative } from "node:path";

/** Whether `path` lies strictly inside `root`; both must already be resolved (realpath). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

const DATASET_ID = /^ds-[0-9a-f]{16}$/;

/** Ids name files in the store, so only the shape the store itself makes is accepted. */
export function isStoredDatasetId(id: string): boolean {
  return DATASET_ID.test(id);
}

/** A name to show for an uploaded file: its base name, without control characters, not too long. */
export function displayName(fileName: string): string {
  const base = basename(fileName.replaceAll("\\", "/"));
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, "").trim();
  return (clean || "dataset").slice(0, 200);
}
