/**
 * Text PostgreSQL cannot store: the NUL character (text columns and jsonb refuse it) and lone
 * UTF-16 surrogates (not encodable as UTF-8). Refused at the input, with a 400, rather than
 * met as a database error.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what is looked for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

export function unstorableReason(value: string): string | null {
  const m = UNSTORABLE.exec(value);
  if (!m) return null;
  return m[0] === "\u0000"
    ? "contains a NUL character (\\u0000), which cannot be stored"
    : "contains a lone UTF-16 surrogate (not valid Unicode), which cannot be stored";
}
