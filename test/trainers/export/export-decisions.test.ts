import { describe, expect, it } from "vitest";
import { pinnedDatasetSha256 } from "../../../src/server/datasets/pinned";
import { type ExportRecord, parseExportRecord } from "../../../src/trainers/export/export-record";
import {
  EXPORT_START_GRACE_MS,
  type ExportObservation,
  judgeExport,
} from "../../../src/trainers/export/export-state";
import { mergeCommand, mergeFailureReason } from "../../../src/trainers/export/merge-program";
import {
  type ExportRequest,
  exportRequestSchema,
  exportSourceSchema,
  PROVENANCE_FILE,
  provenanceOf,
  readProvenance,
} from "../../../src/trainers/export/provenance";
import { hyperparametersSchema } from "../../../src/trainers/protocol";

/** The export's pure parts: provenance, the state a person is told, the merge program and its failures. */

const SHA = "a".repeat(64);
const request: ExportRequest = exportRequestSchema.parse({
  task: { id: "abc123", name: "demo" },
  trainer: "builtin",
  mode: "lora",
  baseModel: "builtin:tiny",
  dataset: {
    path: `/h/datasets/pinned/${SHA}/rows.jsonl`,
    format: "alpaca",
    sha256: SHA,
    hashedFrom: "pinned-copy",
  },
  hyperparameters: hyperparametersSchema.parse({ epochs: 2, loraRank: 4 }),
  source: { kind: "checkpoint", path: "checkpoints/step-20", step: 20 },
  studioVersion: "0.1.0",
  requestedAt: "2026-01-02T03:04:05.000Z",
});
const file = (name: string, size = 1) => ({ name, size, sha256: "b".repeat(64) });

describe("provenance", () => {
  it("keeps the request, what was merged and every file but itself, by name, with a version", () => {
    const provenance = provenanceOf(
      request,
      [file("adapter_model.safetensors"), file("adapter_config.json")],
      [file("model.safetensors", 10), file(PROVENANCE_FILE), file("config.json", 2)],
      new Date("2026-01-02T03:05:00.000Z"),
    );
    expect(provenance).toMatchObject({
      version: 1,
      task: { id: "abc123", name: "demo" },
      baseModel: "builtin:tiny",
      dataset: { sha256: SHA, hashedFrom: "pinned-copy" },
      hyperparameters: { epochs: 2, loraRank: 4 },
      source: { kind: "checkpoint", path: "checkpoints/step-20", step: 20 },
      studioVersion: "0.1.0",
      exportedAt: "2026-01-02T03:05:00.000Z",
    });
    expect(provenance.mergedFrom.map((f) => f.name)).toEqual([
      "adapter_config.json",
      "adapter_model.safetensors",
    ]);
    expect(provenance.files.map((f) => f.name)).toEqual(["config.json", "model.safetensors"]);
    expect(readProvenance(JSON.stringify(provenance))).toEqual(provenance);
  });

  it("refuses a provenance.json from a newer studio by name, and one that is not whole", () => {
    const provenance = provenanceOf(request, [], [], new Date());
    expect(() => readProvenance(JSON.stringify({ ...provenance, version: 2 }))).toThrow(
      "provenance.json is version 2, from a newer studio; this one reads up to 1",
    );
    expect(() => readProvenance(JSON.stringify({ ...provenance, task: undefined }))).toThrow();
  });

  it("accepts the final adapter and checkpoint folders as sources, nothing that leaves the task folder", () => {
    const path = (p: string) =>
      exportSourceSchema.safeParse({ kind: "final", path: p, step: null }).success;
    expect([".", "checkpoints/step-5", "checkpoints/checkpoint-92"].map(path)).toEqual([
      true,
      true,
      true,
    ]);
    expect(
      [
        "..",
        "../x",
        "/etc",
        "checkpoints/../../etc",
        "checkpoints/.tmp-1",
        "checkpoints/a/b",
        "x",
        "",
      ].map(path),
    ).toEqual([false, false, false, false, false, false, false, false]);
  });

  it("reads a pinned dataset's hash from its path alone; any other path has none", () => {
    expect(pinnedDatasetSha256(`/home/s/datasets/pinned/${SHA}/rows.jsonl`)).toBe(SHA);
    expect(pinnedDatasetSha256("/home/s/datasets/ds-0123456789abcdef.jsonl")).toBeNull();
    expect(pinnedDatasetSha256(`/home/s/other/pinned/${SHA}/rows.jsonl`)).toBeNull();
    expect(pinnedDatasetSha256("/home/s/datasets/pinned/not-a-hash/rows.jsonl")).toBeNull();
  });
});

describe("the export's state", () => {
  const started = "2026-01-02T03:04:05.000Z";
  const record = (over: Partial<ExportRecord>): ExportRecord => ({
    version: 1,
    id: "0123456789abcdef",
    state: "running",
    request,
    python: null,
    process: { bootId: "boot", pid: 42, startTime: "100" },
    startedAt: started,
    finishedAt: null,
    files: null,
    reason: null,
    ...over,
  });
  const seen = (over: Partial<ExportObservation>): ExportObservation => ({
    record: null,
    liveness: null,
    now: new Date(Date.parse(started) + 5_000),
    missingFiles: [],
    folder: "/h/tasks/abc123/export",
    lastLogLine: null,
    ...over,
  });
  const known = { id: "0123456789abcdef", source: request.source, startedAt: started };

  it("is none without a record, and a failure naming the record when it cannot be read", () => {
    expect(judgeExport(seen({}))).toEqual({ state: "none" });
    expect(judgeExport(seen({ record: { problem: "cannot be read: not JSON" } }))).toEqual({
      state: "failed",
      finishedAt: null,
      reason: "the export record cannot be read: not JSON",
    });
  });

  it("is running while its process lives, and while a requested one may still be starting", () => {
    expect(judgeExport(seen({ record: record({}), liveness: "alive" }))).toEqual({
      ...known,
      state: "running",
    });
    expect(judgeExport(seen({ record: record({ process: null }) }))).toEqual({
      ...known,
      state: "running",
    });
    const late = new Date(Date.parse(started) + EXPORT_START_GRACE_MS);
    expect(
      judgeExport(
        seen({ record: record({ process: null }), now: late, lastLogLine: "node: not found" }),
      ),
    ).toEqual({
      ...known,
      state: "failed",
      finishedAt: null,
      reason: "the export process did not start within 30 s (export.log: node: not found)",
    });
  });

  it.each([
    ["gone", ""],
    ["zombie", ""],
    ["reused", ""],
    ["other-boot", " (the machine restarted)"],
  ] as const)("is failed when the process that was exporting is %s", (liveness, note) => {
    expect(judgeExport(seen({ record: record({}), liveness, lastLogLine: "Killed" }))).toEqual({
      ...known,
      state: "failed",
      finishedAt: null,
      reason: `the export process (pid 42) ended before it finished${note}; the task is unchanged (export.log: Killed)`,
    });
  });

  it("is done with its files, unless some are gone; failed says the recorded reason", () => {
    const files = [
      { name: "model.safetensors", size: 10 },
      { name: "provenance.json", size: 2 },
    ];
    const done = record({ state: "done", finishedAt: "2026-01-02T03:05:00.000Z", files });
    expect(judgeExport(seen({ record: done }))).toEqual({
      ...known,
      state: "done",
      finishedAt: "2026-01-02T03:05:00.000Z",
      files,
    });
    expect(judgeExport(seen({ record: done, missingFiles: ["model.safetensors"] }))).toMatchObject({
      state: "failed",
      reason:
        "model.safetensors of the export is no longer in /h/tasks/abc123/export; export again",
    });
    const failed = record({ state: "failed", finishedAt: started, reason: "disk full" });
    expect(judgeExport(seen({ record: failed, liveness: "gone" }))).toEqual({
      ...known,
      state: "failed",
      finishedAt: started,
      reason: "disk full",
    });
  });

  it("reads its own record format and refuses a newer one by name", () => {
    const text = JSON.stringify(record({}));
    expect(parseExportRecord(text)).toEqual(record({}));
    expect(() => parseExportRecord(JSON.stringify({ ...record({}), version: 7 }))).toThrow(
      "export.json is version 7, from a newer studio; this one reads up to 1",
    );
    expect(() => parseExportRecord(JSON.stringify({ ...record({}), id: "../x" }))).toThrow();
  });
});

describe("the merge program", () => {
  const paths = {
    taskDir: "/h/tasks/t",
    source: "/h/tasks/t",
    out: "/h/tasks/t/.export-staging-1",
  };
  const programs = {
    nodePath: "/usr/bin/node",
    distDir: "/app/dist",
    pythonPath: "/venv/bin/python",
  };

  it("is each trainer's own: the built-in trainer's merge mode, or merge.py with the trainer's Python", () => {
    const tail = ["--task-dir", "/h/tasks/t", "--source", "/h/tasks/t", "--out", paths.out];
    expect(mergeCommand("builtin", programs, paths)).toEqual({
      file: "/usr/bin/node",
      args: ["/app/dist/builtin-trainer.js", "merge", ...tail],
    });
    expect(mergeCommand("hf-peft", programs, paths)).toEqual({
      file: "/venv/bin/python",
      args: ["/app/src/trainers/hf-peft/merge.py", ...tail],
    });
    expect(() => mergeCommand("hf-peft", { ...programs, pythonPath: null }, paths)).toThrow(
      "an hf-peft merge needs the trainer's Python",
    );
  });

  const outcome = { code: 1, signal: null, freeBytes: 3 * 1024 * 1024, folder: "/h/tasks/t" };

  it("names a full disk with the free space, whichever way the program said it", () => {
    expect(
      mergeFailureReason({
        ...outcome,
        lines: [
          "Traceback (most recent call last):",
          '  File "merge.py", line 60, in merge',
          'safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })',
          "merge failed: SafetensorError: Error while serializing: IoError(No space left on device)",
          "",
        ],
      }),
    ).toBe(
      "disk full: 3 MB free on /h/tasks/t (merge failed: SafetensorError: Error while serializing: IoError(No space left on device)); the task is unchanged",
    );
    expect(
      mergeFailureReason({
        ...outcome,
        freeBytes: null,
        lines: [
          "builtin-trainer: Error: ENOSPC: no space left on device, write",
          "    at async writeFile (node:internal/fs/promises:1:1)",
        ],
      }),
    ).toBe(
      "disk full (builtin-trainer: Error: ENOSPC: no space left on device, write); the task is unchanged",
    );
  });

  it("names a signal, else the program's own last word and its exit code", () => {
    expect(mergeFailureReason({ ...outcome, code: null, signal: "SIGKILL", lines: [] })).toBe(
      "the merge was killed by SIGKILL (out of memory, or killed from outside)",
    );
    expect(mergeFailureReason({ ...outcome, code: null, signal: "SIGTERM", lines: ["x"] })).toBe(
      "the merge was killed by SIGTERM",
    );
    expect(
      mergeFailureReason({
        ...outcome,
        lines: [
          "builtin-trainer: Error: the adapter adapts m.k_proj, which the base model does not have",
          "    at mergeLora (merge.ts:40:11)",
          "    at main (main.ts:1:1)",
        ],
      }),
    ).toBe(
      "the merge failed (exit code 1): builtin-trainer: Error: the adapter adapts m.k_proj, which the base model does not have",
    );
    expect(mergeFailureReason({ ...outcome, code: 2, lines: ["usage: merge.py", "  --out"] })).toBe(
      "the merge failed (exit code 2): usage: merge.py",
    );
    expect(mergeFailureReason({ ...outcome, code: 1, lines: [] })).toBe(
      "the merge failed (exit code 1)",
    );
  });
});
