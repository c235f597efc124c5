import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  removeStaleTempFiles,
  writeFileAtomic,
  writeFileAtomicAsync,
  writeJsonAtomic,
} from "../../src/platform/atomic-write";
import { mountTmpfs, unmountTmpfs } from "../helpers/tmpfs";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "atomic-write-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("atomic writes", () => {
  it("replace a file whole, leaving no temp file", async () => {
    const path = join(dir, "record.json");
    writeJsonAtomic(path, { version: 1 });
    writeFileAtomic(path, "two\n");
    expect(readFileSync(path, "utf8")).toBe("two\n");
    await writeFileAtomicAsync(path, new Uint8Array([51, 10]));
    expect(readFileSync(path, "utf8")).toBe("3\n");
    expect(readdirSync(dir)).toEqual(["record.json"]);
  });

  it("of one file at once from one process never share a temp file", async () => {
    const path = join(dir, "pinned.jsonl");
    const bodies = Array.from({ length: 20 }, (_, i) => `${String(i).repeat(100_000)}\n`);
    await Promise.all(bodies.map((body) => writeFileAtomicAsync(path, body)));
    expect(bodies).toContain(readFileSync(path, "utf8"));
    expect(readdirSync(dir)).toEqual(["pinned.jsonl"]);
  });

  it("on a full disk fail, keeping the old file and no temp file", async () => {
    const disk = join(dir, "disk");
    mkdirSync(disk);
    mountTmpfs(disk, 1);
    try {
      const path = join(disk, "exit.json");
      writeJsonAtomic(path, { old: true });
      const big = "x".repeat(2 * 1024 * 1024);
      expect(() => writeFileAtomic(path, big)).toThrow(/ENOSPC/);
      await expect(writeFileAtomicAsync(path, big)).rejects.toThrow(/ENOSPC/);
      expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ old: true });
      expect(readdirSync(disk)).toEqual(["exit.json"]);
    } finally {
      await unmountTmpfs(disk);
    }
  });
});

describe("removeStaleTempFiles", () => {
  it("removes the temp files of writers that are gone, in either naming, and keeps the rest", () => {
    const gone = 4_194_304; // above any pid this kernel hands out
    const names = [
      `.exit.json.${gone}-3.tmp`,
      `.exit.json.${gone}.tmp`,
      `.runner.json.${process.pid}-1.tmp`,
      "exit.json",
      "notes.tmp",
    ];
    for (const name of names) writeFileSync(join(dir, name), "");
    expect(removeStaleTempFiles(dir).sort()).toEqual(
      [`.exit.json.${gone}-3.tmp`, `.exit.json.${gone}.tmp`].sort(),
    );
    expect(readdirSync(dir).sort()).toEqual(
      [`.runner.json.${process.pid}-1.tmp`, "exit.json", "notes.tmp"].sort(),
    );
  });
});
