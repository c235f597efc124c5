import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DatasetError } from "../src/server/datasets/dataset-error";
import { DatasetStore } from "../src/server/datasets/store";

const alpaca = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({ instruction: "Add one.", input: String(i), output: String(i + 1) }),
  ).join("\n");
const bytes = (text: string) => new TextEncoder().encode(text);

async function refusal(promise: Promise<unknown>): Promise<DatasetError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatasetError);
  return err as DatasetError;
}

describe("DatasetStore", () => {
  let base: string;
  let root: string;
  let allowed: string;
  let outside: string;
  let store: DatasetStore;

  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), "studio-dataset-store-"));
    root = join(base, "home", "datasets");
    allowed = join(base, "allowed");
    outside = join(base, "outside");
    mkdirSync(allowed);
    mkdirSync(outside);
    store = new DatasetStore(root, [allowed]);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it("lists the built-in sample before anything is stored", async () => {
    const list = await store.list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      id: "sample",
      source: "builtin",
      format: "alpaca",
      rowCount: 200,
    });
    expect(await store.resolveForTask("sample")).toMatchObject({
      path: list[0]!.path,
      format: "alpaca",
    });
    expect((await store.preview("sample")).rows).toHaveLength(5);
  });

  it("saves a valid upload under a name of its own and lists it with its metadata", async () => {
    const saved = await store.saveUpload("../../evil\u0007name.jsonl", bytes(alpaca(7)));
    expect(saved).toMatchObject({
      name: "evilname.jsonl",
      format: "alpaca",
      rowCount: 7,
      source: "upload",
    });
    expect(saved.id).toMatch(/^ds-[0-9a-f]{16}$/);
    expect(saved.path).toBe(join(root, `${saved.id}.jsonl`));
    expect(saved.sizeBytes).toBe(bytes(alpaca(7)).byteLength);
    expect(readdirSync(root).sort()).toEqual([`${saved.id}.jsonl`, `${saved.id}.meta.json`]);

    expect(await store.get(saved.id)).toEqual(saved);
    expect((await store.list()).map((d) => d.id)).toEqual(["sample", saved.id]);
    const preview = await store.preview(saved.id);
    expect(preview.rows[0]).toEqual({ instruction: "Add one.", input: "0", output: "1" });
    expect(await store.resolveForTask(saved.id)).toEqual({
      path: saved.path,
      format: "alpaca",
      name: "evilname.jsonl",
      rowCount: 7,
    });
  });

  it("lists the newest upload first and survives a new store over the same folder", async () => {
    const first = await store.saveUpload("a.jsonl", bytes(alpaca(1)));
    await new Promise((r) => setTimeout(r, 5));
    const second = await store.saveUpload("b.json", bytes(`[${JSON.stringify({ text: "x" })}]`));
    expect(second.path.endsWith(".json")).toBe(true);
    const again = new DatasetStore(root, [allowed]);
    expect((await again.list()).map((d) => d.id)).toEqual(["sample", second.id, first.id]);
  });

  it("refuses an invalid upload with the report's errors and stores nothing", async () => {
    const err = await refusal(store.saveUpload("bad.jsonl", bytes('{"text": "a"}\n{"text": 1}\n')));
    expect(err.code).toBe("BAD_REQUEST");
    expect(err.message).toMatch(/line 2: "text" must be a string/);
    expect(err.issues).toEqual([{ line: 2, message: '"text" must be a string, not a number' }]);
    expect((await store.list()).map((d) => d.id)).toEqual(["sample"]);
  });

  it("refuses an upload over the size limit", async () => {
    const small = new DatasetStore(root, [], { maxUploadBytes: 100 });
    const err = await refusal(small.saveUpload("big.jsonl", bytes(alpaca(10))));
    expect(err.code).toBe("PAYLOAD_TOO_LARGE");
    expect(err.message).toBe("dataset big.jsonl is 520 B; uploads may be at most 100 B");
  });

  it("registers a file inside an allowed root where it lies", async () => {
    const file = join(allowed, "mine.jsonl");
    writeFileSync(file, alpaca(3));
    const registered = await store.registerPath(file);
    expect(registered).toMatchObject({
      path: file,
      source: "path",
      rowCount: 3,
      name: "mine.jsonl",
    });
    expect(await store.resolveForTask(registered.id)).toMatchObject({
      path: file,
      format: "alpaca",
    });
    expect(await store.resolveForTask(file)).toMatchObject({ path: file, rowCount: 3 });
  });

  it("refuses paths outside the allowed roots, also through .. and symlinks", async () => {
    const secret = join(outside, "secret.jsonl");
    writeFileSync(secret, alpaca(2));
    symlinkSync(secret, join(allowed, "link.jsonl"));
    symlinkSync(outside, join(allowed, "dir-link"));
    for (const path of [
      secret,
      join(allowed, "..", "outside", "secret.jsonl"),
      join(allowed, "link.jsonl"),
      join(allowed, "dir-link", "secret.jsonl"),
      "/etc/passwd",
    ]) {
      // The same answer as for a missing file: a refusal tells nothing about files outside.
      const err = await refusal(store.registerPath(path));
      expect(err.code).toBe("NOT_FOUND");
      expect(err.message).toBe(
        `dataset file ${path} not found, or outside the allowed dataset folders (${allowed})`,
      );
      expect((await refusal(store.resolveForTask(path))).code).toBe("NOT_FOUND");
    }
    expect((await store.list()).map((d) => d.id)).toEqual(["sample"]);
  });

  it("accepts a symlink whose target is inside an allowed root", async () => {
    const file = join(allowed, "real.jsonl");
    writeFileSync(file, alpaca(2));
    symlinkSync(file, join(allowed, "alias.jsonl"));
    expect((await store.registerPath(join(allowed, "alias.jsonl"))).path).toBe(file);
  });

  it("refuses a registered file whose symlink was later pointed outside", async () => {
    const file = join(allowed, "real.jsonl");
    const link = join(allowed, "alias.jsonl");
    writeFileSync(file, alpaca(2));
    writeFileSync(join(outside, "secret.jsonl"), alpaca(2));
    symlinkSync(file, link);
    const registered = await store.registerPath(link);
    rmSync(file);
    symlinkSync(join(outside, "secret.jsonl"), file);
    expect((await refusal(store.resolveForTask(registered.id))).code).toBe("NOT_FOUND");
  });

  it("refuses missing files, folders, relative paths and invalid contents", async () => {
    const missing = join(allowed, "none.jsonl");
    const err404 = await refusal(store.registerPath(missing));
    expect(err404.code).toBe("NOT_FOUND");
    expect(err404.message).toBe(
      `dataset file ${missing} not found, or outside the allowed dataset folders (${allowed})`,
    );
    expect((await refusal(store.registerPath(allowed))).code).toBe("NOT_FOUND");
    mkdirSync(join(allowed, "sub.jsonl"));
    expect((await refusal(store.registerPath(join(allowed, "sub.jsonl")))).message).toMatch(
      /not a file/,
    );
    expect((await refusal(store.registerPath("allowed/x.jsonl"))).message).toMatch(/absolute/);
    writeFileSync(join(allowed, "bad.jsonl"), "{oops");
    const err = await refusal(store.registerPath(join(allowed, "bad.jsonl")));
    expect(err.code).toBe("BAD_REQUEST");
    expect(err.issues[0]!.line).toBe(1);
  });

  it("says no folders are allowed when none are configured", async () => {
    const closed = new DatasetStore(root, []);
    const file = join(allowed, "mine.jsonl");
    writeFileSync(file, alpaca(1));
    expect((await refusal(closed.registerPath(file))).message).toMatch(/STUDIO_DATASET_ROOTS/);
  });

  it("uses a task's path inside the store or the sample's folder without registering it", async () => {
    const saved = await store.saveUpload("a.jsonl", bytes(alpaca(2)));
    expect((await store.resolveForTask(saved.path)).rowCount).toBe(2);
    const sample = (await store.get("sample")).path;
    expect((await store.resolveForTask(sample)).format).toBe("alpaca");
  });

  it("does not find ids that are not its own, however they are spelled", async () => {
    for (const id of ["nope", "ds-0000000000000000", "../sample", "ds-../../x", ""]) {
      expect((await refusal(store.get(id))).code).toBe("NOT_FOUND");
    }
    expect((await refusal(store.resolveForTask("unknown"))).code).toBe("NOT_FOUND");
  });

  it("skips a damaged sidecar instead of failing the whole list", async () => {
    const saved = await store.saveUpload("a.jsonl", bytes(alpaca(1)));
    writeFileSync(join(root, "ds-aaaaaaaaaaaaaaaa.meta.json"), "{not json");
    writeFileSync(join(root, "ds-bbbbbbbbbbbbbbbb.meta.json"), JSON.stringify({ id: "other" }));
    expect((await store.list()).map((d) => d.id)).toEqual(["sample", saved.id]);
  });
});
