import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { z } from "zod";
import type { DatasetFormat } from "./protocol";

/**
 * Training datasets: JSON Lines or a JSON array whose rows are all in one of three formats.
 *   alpaca: {"instruction": "...", "input": "...", "output": "..."}   (input optional)
 *   chat:   {"messages": [{"role": "user", "content": "..."}, ...]}
 *   text:   {"text": "..."}
 * Parsing and validation are pure (bytes in, report out) so that the studio can check an upload
 * before storing it and a trainer can refuse bad data before spending minutes loading a model.
 */

const alpacaRowSchema = z.object({
  instruction: z.string().trim().min(1),
  input: z.string().optional(),
  output: z.string().trim().min(1),
});
const chatRowSchema = z.object({
  messages: z
    .array(
      z.object({
        role: z.enum(["system", "user", "assistant"]),
        content: z.string(),
      }),
    )
    .min(1)
    .refine((messages) => messages.some((m) => m.role === "assistant"), {
      message: "needs at least one assistant message to learn from",
    }),
});
const textRowSchema = z.object({ text: z.string().trim().min(1) });

export type AlpacaRow = z.infer<typeof alpacaRowSchema>;
export type ChatRow = z.infer<typeof chatRowSchema>;
export type TextRow = z.infer<typeof textRowSchema>;
export type DatasetRow = AlpacaRow | ChatRow | TextRow;

const rowSchemas = { alpaca: alpacaRowSchema, chat: chatRowSchema, text: textRowSchema };

export interface DatasetIssue {
  /** 1-based line in the file; 0 for a problem with the file as a whole. */
  line: number;
  message: string;
}

export interface DatasetReport {
  /** The one format every row is in; null when no row could be recognised. */
  format: DatasetFormat | null;
  /** Rows that passed validation. */
  rowCount: number;
  /** The first few valid rows, as parsed. */
  preview: DatasetRow[];
  /** The first MAX_REPORTED_ERRORS problems, in file order. */
  errors: DatasetIssue[];
  /** How many problems there were in all (errors may hold fewer). */
  errorCount: number;
}

export interface DatasetLimits {
  maxRows?: number;
  /** Longest string allowed in any field, in UTF-16 code units. */
  maxFieldChars?: number;
}

export const DEFAULT_MAX_ROWS = 1_000_000;
export const DEFAULT_MAX_FIELD_CHARS = 100_000;
export const MAX_REPORTED_ERRORS = 20;
const PREVIEW_ROWS = 5;
const SUPPORTED_EXTENSIONS = new Set([".jsonl", ".ndjson", ".json"]);

/** Checks a dataset file's bytes; never throws. The dataset is usable when `errorCount` is 0. */
export function validateDataset(
  bytes: Uint8Array,
  fileName: string,
  limits: DatasetLimits = {},
): DatasetReport {
  return parseDataset(bytes, fileName, limits).report;
}

interface ParsedDataset {
  report: DatasetReport;
  rows: DatasetRow[];
}

function parseDataset(bytes: Uint8Array, fileName: string, limits: DatasetLimits): ParsedDataset {
  const maxRows = limits.maxRows ?? DEFAULT_MAX_ROWS;
  const maxFieldChars = limits.maxFieldChars ?? DEFAULT_MAX_FIELD_CHARS;
  const issues = new IssueList();
  const rows: DatasetRow[] = [];
  let format: DatasetFormat | null = null;
  let formatLine = 0;
  const result = (): ParsedDataset => ({
    report: {
      format,
      rowCount: rows.length,
      preview: rows.slice(0, PREVIEW_ROWS),
      errors: issues.reported,
      errorCount: issues.count,
    },
    rows,
  });

  const extension = extname(fileName).toLowerCase();
  if (!SUPPORTED_EXTENSIONS.has(extension)) {
    issues.add(
      0,
      `unsupported file type "${extension || fileName}": use JSON Lines (.jsonl) or a JSON array (.json)`,
    );
    return result();
  }
  const text = decodeUtf8(bytes, issues);
  if (text === null) return result();
  if (text.trim() === "") {
    issues.add(0, "the file is empty");
    return result();
  }

  for (const entry of splitEntries(text, issues)) {
    if (rows.length >= maxRows) {
      issues.add(entry.line, `too many rows: at most ${maxRows} are allowed`);
      break;
    }
    const detected = detectFormat(entry.value);
    if (typeof detected !== "string") {
      issues.add(entry.line, detected.problem);
      continue;
    }
    if (format === null) {
      format = detected;
      formatLine = entry.line;
    } else if (detected !== format) {
      issues.add(
        entry.line,
        `this row is in ${detected} format but the rows before it are ${format} (line ${formatLine}); a dataset holds one format`,
      );
      continue;
    }
    const parsed = rowSchemas[detected].safeParse(entry.value);
    if (!parsed.success) {
      issues.add(entry.line, describeIssue(parsed.error.issues[0]!, entry.value));
      continue;
    }
    const tooLong = longestFieldOver(parsed.data, maxFieldChars);
    if (tooLong) {
      issues.add(
        entry.line,
        `"${tooLong}" is too long: at most ${maxFieldChars} characters in a field`,
      );
      continue;
    }
    rows.push(parsed.data);
  }
  if (rows.length === 0 && issues.count === 0) issues.add(0, "the file holds no rows");
  return result();
}

/**
 * The text a model trains on for one row.
 * Keep in sync with row_to_text in src/trainers/hf-peft/train.py: both trainers must see the
 * same templates so that an adapter trained by one is prompted the same way as by the other.
 */
export function rowToText(row: DatasetRow, format: DatasetFormat): string {
  switch (format) {
    case "alpaca": {
      const { instruction, input, output } = row as AlpacaRow;
      const inputPart = input?.trim() ? `### Input:\n${input}\n` : "";
      return `### Instruction:\n${instruction}\n${inputPart}### Response:\n${output}`;
    }
    case "chat":
      return (row as ChatRow).messages.map((m) => `<|${m.role}|>\n${m.content}`).join("\n");
    case "text":
      return (row as TextRow).text;
  }
}

/** For trainers: every row's training text; throws a readable Error when the file is not usable. */
export async function readDatasetTexts(path: string, format: DatasetFormat): Promise<string[]> {
  const bytes = await readFile(path);
  const { report, rows } = parseDataset(bytes, path, {});
  if (report.errorCount > 0) throw new Error(describeReportErrors(path, report));
  if (report.format !== format) {
    throw new Error(`dataset ${path} is in ${report.format} format, but the task says ${format}`);
  }
  return rows.map((row) => rowToText(row, format));
}

/** One message listing a report's problems, for errors thrown at people. */
export function describeReportErrors(name: string, report: DatasetReport): string {
  const lines = report.errors.map((e) =>
    e.line > 0 ? `  line ${e.line}: ${e.message}` : `  ${e.message}`,
  );
  const more = report.errorCount - report.errors.length;
  if (more > 0) lines.push(`  … and ${more} more`);
  return `dataset ${name} is not usable:\n${lines.join("\n")}`;
}

class IssueList {
  reported: DatasetIssue[] = [];
  count = 0;
  add(line: number, message: string) {
    this.count++;
    if (this.reported.length < MAX_REPORTED_ERRORS) this.reported.push({ line, message });
  }
}

function decodeUtf8(bytes: Uint8Array, issues: IssueList): string | null {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  try {
    return decoder.decode(bytes);
  } catch {
    issues.add(firstNonUtf8Line(bytes), "the file is not UTF-8 text (save it as UTF-8)");
    return null;
  }
}

/** Decodes line by line to say where the first invalid byte is. */
function firstNonUtf8Line(bytes: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let start = 0;
  let line = 1;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    try {
      decoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
    line++;
  }
  return 0;
}

interface Entry {
  line: number;
  value: unknown;
}

/** The file's rows with the line each starts on: JSON Lines, or a JSON array when it starts with "[". */
function splitEntries(text: string, issues: IssueList): Entry[] {
  if (text.trimStart().startsWith("[")) return splitJsonArray(text, issues);
  const entries: Entry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    try {
      entries.push({ line: i + 1, value: JSON.parse(line) });
    } catch (err) {
      issues.add(i + 1, `not valid JSON (${jsonErrorDetail(err)})`);
    }
  }
  return entries;
}

/**
 * Rows of a JSON array. Each top-level element is cut out by a small scanner and parsed on its
 * own, so that every broken row is reported on its own line, not only the first mistake.
 */
function splitJsonArray(text: string, issues: IssueList): Entry[] {
  const scan = scanArrayElements(text);
  const entries: Entry[] = [];
  for (const element of scan.elements) {
    if (element.text === "") {
      issues.add(element.line, "an empty row in the array (a stray comma?)");
      continue;
    }
    try {
      entries.push({ line: element.line, value: JSON.parse(element.text) });
    } catch (err) {
      issues.add(element.line, `not valid JSON (${jsonErrorDetail(err)})`);
    }
  }
  if (scan.problem) issues.add(scan.problem.line, scan.problem.message);
  return entries;
}

interface ArrayScan {
  elements: { line: number; text: string }[];
  problem: DatasetIssue | null;
}

/** Splits `[a, b, ...]` into its top-level elements (with their first line) without parsing them. */
function scanArrayElements(text: string): ArrayScan {
  const elements: ArrayScan["elements"] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  let startLine = 1;
  let closed = false;
  const cut = (end: number) => {
    const element = text.slice(start, end).trim();
    if (element !== "" || elements.length > 0) {
      elements.push({ line: startLine === -1 ? line : startLine, text: element });
    }
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\n") line++;
    if (closed) {
      if (!/\s/.test(ch)) {
        return {
          elements,
          problem: { line, message: "not valid JSON (text after the closing ])" },
        };
      }
      continue;
    }
    if (start !== -1 && depth === 1 && startLine === -1 && !/\s/.test(ch)) startLine = line;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "[" || ch === "{") {
      depth++;
      if (depth === 1) {
        start = i + 1;
        startLine = -1;
      }
    } else if (ch === "}" && depth === 1) {
      return { elements, problem: { line, message: "not valid JSON (a } without its {)" } };
    } else if (ch === "]" || ch === "}") {
      depth--;
      if (depth === 0) {
        cut(i);
        closed = true;
      }
    } else if (ch === "," && depth === 1) {
      cut(i);
      start = i + 1;
      startLine = -1;
    }
  }
  if (!closed) {
    return {
      elements,
      problem: { line, message: "not valid JSON (the array is never closed with ])" },
    };
  }
  return { elements, problem: null };
}

function jsonErrorDetail(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function detectFormat(value: unknown): DatasetFormat | { problem: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { problem: `a row must be a JSON object, not ${kindOf(value)}` };
  }
  if ("messages" in value) return "chat";
  if ("instruction" in value || "output" in value) return "alpaca";
  if ("text" in value) return "text";
  const keys = Object.keys(value);
  return {
    problem: `unrecognised row (fields: ${keys.length ? keys.join(", ") : "none"}); expected "instruction"/"output" (alpaca), "messages" (chat) or "text"`,
  };
}

function describeIssue(issue: z.core.$ZodIssue, row: unknown): string {
  const field = issue.path
    .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
    .join("");
  const name = field.replace(/^\./, "") || "row";
  const value = valueAt(row, issue.path);
  switch (issue.code) {
    case "invalid_type":
      return value === undefined
        ? `missing "${name}"`
        : `"${name}" must be ${article(issue.expected)}, not ${kindOf(value)}`;
    case "too_small":
      return Array.isArray(value) ? `"${name}" has no entries` : `"${name}" is empty`;
    case "invalid_value":
      return `"${name}" must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, not ${JSON.stringify(value)}`;
    default:
      return `"${name}" ${issue.message}`;
  }
}

function valueAt(row: unknown, path: PropertyKey[]): unknown {
  let value = row;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return article(typeof value);
}

function longestFieldOver(row: DatasetRow, max: number): string | null {
  if ("messages" in row) {
    const i = row.messages.findIndex((m) => m.content.length > max);
    return i === -1 ? null : `messages[${i}].content`;
  }
  for (const [key, value] of Object.entries(row)) {
    if (typeof value === "string" && value.length > max) return key;
  }
  return null;
}
