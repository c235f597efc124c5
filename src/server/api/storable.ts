import { unstorableReason } from "../../shared/storable-text";

/** The first string (or object key) in an input that PostgreSQL could not store, with its path. */
export function unstorableText(
  value: unknown,
  path: string[] = [],
  depth = 0,
): { path: string; message: string } | null {
  if (typeof value === "string") {
    const message = unstorableReason(value);
    return message ? { path: path.join("."), message } : null;
  }
  if (depth > 64 || value === null || typeof value !== "object") return null;
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : value instanceof Date || value instanceof Map || value instanceof Set
      ? []
      : Object.entries(value);
  for (const [key, child] of entries) {
    const keyProblem = unstorableReason(key);
    if (keyProblem) return { path: [...path, "(key)"].join("."), message: keyProblem };
    const found = unstorableText(child, [...path, key], depth + 1);
    if (found) return found;
  }
  return null;
}
