import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  MAX_REPORTED_ERRORS,
  readDatasetTexts,
  rowToText,
  validateDataset,
} from "../src/trainers/dataset";

const utf8 = (text: string) => new TextEncoder().encode(text);
const jsonl = (...rows: unknown[]) => utf8(rows.map((r) => JSON.stringify(r)).join("\n"));
const check = (text: string, name = "d.jsonl", limits = {}) =>
  validateDataset(utf8(text), name, limits);

describe("validateDataset: formats", () => {
  it("detects alpaca rows, with and without input", () => {
    const report = validateDataset(
      jsonl(
        { instruction: "Add.", input: "1 + 2", output: "3" },
        { instruction: "Say hi.", output: "hi" },
      ),
      "a.jsonl",
    );
    expect(report).toMatchObject({ format: "alpaca", rowCount: 2, errors: [], errorCount: 0 });
    expect(report.preview[1]).toEqual({ instruction: "Say hi.", output: "hi" });
  });

  it("detects chat rows", () => {
    const report = validateDataset(
      jsonl({
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "2+2?" },
          { role: "assistant", content: "4" },
        ],
      }),
      "c.jsonl",
    );
    expect(report).toMatchObject({ format: "chat", rowCount: 1, errorCount: 0 });
  });

  it("detects text rows and keeps extra fields out of the way", () => {
    const report = validateDataset(jsonl({ text: "hello", source: "web" }), "t.jsonl");
    expect(report).toMatchObject({ format: "text", rowCount: 1, errorCount: 0 });
  });

  it("reads a JSON array and numbers each row by the line it starts on", () => {
    const text = `[\n  {"text": "a"},\n  {"text": "b"},\n  {\n    "text": 3\n  }\n]\n`;
    const report = check(text, "t.json");
    expect(report.rowCount).toBe(2);
    expect(report.errors).toEqual([{ line: 4, message: '"text" must be a string, not a number' }]);
  });

  it("handles commas, brackets and escaped quotes inside strings when numbering array rows", () => {
    const text = `[{"text": "a, [b] \\" {c}"},\n{"text": ""}]`;
    expect(check(text, "t.json").errors).toEqual([{ line: 2, message: '"text" is empty' }]);
  });

  it("accepts CRLF line ends, blank lines and a byte order mark", () => {
    const report = check('\uFEFF{"text": "a"}\r\n\r\n{"text": "b"}\r\n');
    expect(report).toMatchObject({ format: "text", rowCount: 2, errorCount: 0 });
  });

  it("shows at most five rows in the preview", () => {
    const rows = Array.from({ length: 9 }, (_, i) => ({ text: `row ${i}` }));
    const report = validateDataset(jsonl(...rows), "t.jsonl");
    expect(report.rowCount).toBe(9);
    expect(report.preview).toEqual(rows.slice(0, 5));
  });
});

describe("validateDataset: problems, with their lines", () => {
  it.each([
    ["bad JSON", '{"text": "a"}\n{"text": ', 2, /not valid JSON/],
    [
      "a row that is not an object",
      '{"text": "a"}\n[1, 2]',
      2,
      /must be a JSON object, not an array/,
    ],
    ["a string row", '"hello"', 1, /must be a JSON object, not a string/],
    [
      "an unrecognised row",
      '{"prompt": "a", "completion": "b"}',
      1,
      /unrecognised row \(fields: prompt, completion\)/,
    ],
    ["a missing output", '{"instruction": "a"}', 1, /missing "output"/],
    ["a missing instruction", '{"output": "a"}', 1, /missing "instruction"/],
    [
      "a numeric output",
      '{"instruction": "a", "output": 5}',
      1,
      /"output" must be a string, not a number/,
    ],
    [
      "a null input",
      '{"instruction": "a", "input": null, "output": "b"}',
      1,
      /"input" must be a string, not null/,
    ],
    ["a blank instruction", '{"instruction": "  ", "output": "b"}', 1, /"instruction" is empty/],
    [
      "messages that are not an array",
      '{"messages": "hi"}',
      1,
      /"messages" must be an array, not a string/,
    ],
    ["no messages", '{"messages": []}', 1, /"messages" has no entries/],
    [
      "an unknown role",
      '{"messages": [{"role": "bot", "content": "x"}]}',
      1,
      /"messages\[0\]\.role" must be one of "system", "user", "assistant", not "bot"/,
    ],
    [
      "a missing content",
      '{"messages": [{"role": "assistant"}]}',
      1,
      /missing "messages\[0\]\.content"/,
    ],
    [
      "no assistant turn",
      '{"messages": [{"role": "user", "content": "x"}]}',
      1,
      /at least one assistant message/,
    ],
    ["an empty text", '{"text": ""}', 1, /"text" is empty/],
  ])("reports %s", (_, text, line, message) => {
    const report = check(text);
    expect(report.errorCount).toBe(1);
    expect(report.errors[0]!.line).toBe(line);
    expect(report.errors[0]!.message).toMatch(message);
  });

  it("refuses mixed formats, naming the line that set the format", () => {
    const report = check('{"text": "a"}\n{"instruction": "b", "output": "c"}\n{"text": "d"}');
    expect(report.format).toBe("text");
    expect(report.rowCount).toBe(2);
    expect(report.errors).toEqual([
      {
        line: 2,
        message:
          "this row is in alpaca format but the rows before it are text (line 1); a dataset holds one format",
      },
    ]);
  });

  it("reports an empty file, and one with only blank lines", () => {
    expect(check("").errors).toEqual([{ line: 0, message: "the file is empty" }]);
    expect(check("\n \n\t\n").errors).toEqual([{ line: 0, message: "the file is empty" }]);
    expect(check("[]", "e.json").errors).toEqual([{ line: 0, message: "the file holds no rows" }]);
  });

  it("reports bytes that are not UTF-8 on the line where they are", () => {
    const bytes = new Uint8Array([...utf8('{"text": "a"}\n{"text": "'), 0xff, 0xfe, ...utf8('"}')]);
    const report = validateDataset(bytes, "d.jsonl");
    expect(report.format).toBeNull();
    expect(report.errors).toEqual([
      { line: 2, message: "the file is not UTF-8 text (save it as UTF-8)" },
    ]);
  });

  it("reports bad JSON in an array on the line of the mistake", () => {
    const report = check('[\n{"text": "a"},\n{"text": }\n]', "d.json");
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]!.line).toBe(3);
    expect(report.errors[0]!.message).toMatch(/not valid JSON/);
  });

  it("reports every broken row of an array, and broken brackets around them", () => {
    const report = check('[{"text": "a"},\n{"text": ],\n{"text": "b"},\n]', "d.json");
    expect(report.rowCount).toBe(2);
    expect(report.errors.map((e) => e.line)).toEqual([2, 4]);
    expect(report.errors[1]!.message).toMatch(/stray comma/);
    expect(check('[{"text": "a"}\n', "d.json").errors).toEqual([
      { line: 2, message: "not valid JSON (the array is never closed with ])" },
    ]);
    expect(check('[{"text": "a"}] x', "d.json").errors[0]!.message).toMatch(
      /text after the closing/,
    );
    expect(check('[{"text": "a"}}', "d.json").errors[0]!.message).toMatch(/a } without its {/);
  });

  it("refuses a .json file that is a single object", () => {
    expect(check('{"text": "a"}', "d.json").rowCount).toBe(1);
    expect(check('{"rows": 1}', "d.json").errors[0]!.message).toMatch(/unrecognised row/);
  });

  it("refuses other file types", () => {
    expect(check('{"text": "a"}', "d.csv").errors).toEqual([
      {
        line: 0,
        message: 'unsupported file type ".csv": use JSON Lines (.jsonl) or a JSON array (.json)',
      },
    ]);
    expect(check('{"text": "a"}', "README").errors[0]!.message).toMatch(/"README"/);
  });

  it("refuses a field over the length limit", () => {
    const report = check(
      `{"text": "short"}\n{"text": "${"x".repeat(11)}"}\n{"messages": [{"role": "assistant", "content": "${"y".repeat(11)}"}]}`,
      "d.jsonl",
      { maxFieldChars: 10 },
    );
    expect(report.errors.map((e) => [e.line, e.message])).toEqual([
      [2, '"text" is too long: at most 10 characters in a field'],
      [
        3,
        "this row is in chat format but the rows before it are text (line 1); a dataset holds one format",
      ],
    ]);
    const chat = check(
      `{"messages": [{"role": "assistant", "content": "${"y".repeat(11)}"}]}`,
      "c.jsonl",
      {
        maxFieldChars: 10,
      },
    );
    expect(chat.errors[0]!.message).toBe(
      '"messages[0].content" is too long: at most 10 characters in a field',
    );
  });

  it("stops at the row limit", () => {
    const report = check('{"text": "a"}\n{"text": "b"}\n{"text": "c"}', "d.jsonl", { maxRows: 2 });
    expect(report.rowCount).toBe(2);
    expect(report.errors).toEqual([{ line: 3, message: "too many rows: at most 2 are allowed" }]);
  });

  it("keeps the first errors and counts the rest", () => {
    const report = check(Array.from({ length: 50 }, () => "{").join("\n"));
    expect(report.errorCount).toBe(50);
    expect(report.errors).toHaveLength(MAX_REPORTED_ERRORS);
    expect(report.errors.map((e) => e.line)).toEqual(
      Array.from({ length: MAX_REPORTED_ERRORS }, (_, i) => i + 1),
    );
  });
});

describe("rowToText", () => {
  it("fills the alpaca template, leaving out an empty input", () => {
    expect(rowToText({ instruction: "Add.", input: "1 + 2", output: "3" }, "alpaca")).toBe(
      "### Instruction:\nAdd.\n### Input:\n1 + 2\n### Response:\n3",
    );
    expect(rowToText({ instruction: "Hi.", input: " ", output: "hi" }, "alpaca")).toBe(
      "### Instruction:\nHi.\n### Response:\nhi",
    );
    expect(rowToText({ instruction: "Hi.", output: "hi" }, "alpaca")).toBe(
      "### Instruction:\nHi.\n### Response:\nhi",
    );
  });

  it("tags each chat turn with its role", () => {
    const row = {
      messages: [
        { role: "system" as const, content: "Be brief." },
        { role: "user" as const, content: "2+2?" },
        { role: "assistant" as const, content: "4" },
      ],
    };
    expect(rowToText(row, "chat")).toBe("<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n4");
  });

  it("passes plain text through", () => {
    expect(rowToText({ text: "as is\n" }, "text")).toBe("as is\n");
  });
});

describe("readDatasetTexts", () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-datasets-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("returns every row's training text", async () => {
    const path = join(dir, "ok.jsonl");
    writeFileSync(path, '{"text": "a"}\n{"text": "b"}\n');
    expect(await readDatasetTexts(path, "text")).toEqual(["a", "b"]);
  });

  it("throws with the lines of the problems", async () => {
    const path = join(dir, "bad.jsonl");
    writeFileSync(path, '{"text": "a"}\n{"text": 1}\n');
    await expect(readDatasetTexts(path, "text")).rejects.toThrow(
      `dataset ${path} is not usable:\n  line 2: "text" must be a string, not a number`,
    );
  });

  it("throws when the file's format is not the task's", async () => {
    const path = join(dir, "text.jsonl");
    writeFileSync(path, '{"text": "a"}\n');
    await expect(readDatasetTexts(path, "alpaca")).rejects.toThrow(
      /is in text format, but the task says alpaca/,
    );
  });

  it("throws a clear error for a missing file", async () => {
    await expect(readDatasetTexts(join(dir, "nope.jsonl"), "text")).rejects.toThrow(/ENOENT/);
  });

  it("reads the sample dataset that ships with the studio", async () => {
    const texts = await readDatasetTexts(
      join(import.meta.dirname, "../data/sample.jsonl"),
      "alpaca",
    );
    expect(texts.length).toBeGreaterThanOrEqual(150);
    for (const text of texts) expect(text.length).toBeLessThanOrEqual(120);
  });
});
