import { parseArgs } from "node:util";

/** Numeric `--name value` flags with defaults, e.g. numberFlags({ seconds: 10 }). */
export function numberFlags<T extends Record<string, number>>(defaults: T): T {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.keys(defaults).map((k) => [k, { type: "string" as const }])),
    strict: true,
  });
  const out: Record<string, number> = { ...defaults };
  for (const [key, raw] of Object.entries(values)) {
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error(`--${key} needs a number, got ${raw}`);
    out[key] = n;
  }
  return out as T;
}
