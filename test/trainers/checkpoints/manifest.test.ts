import { describe, expect, it } from "vitest";
import {
  type CheckpointManifest,
  type FileObservation,
  judgeFiles,
  MANIFEST_VERSION,
  manifestSizes,
  readManifest,
} from "../../../src/trainers/checkpoints/manifest";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

function manifest(overrides: Partial<CheckpointManifest> = {}): CheckpointManifest {
  return {
    version: MANIFEST_VERSION,
    step: 100,
    evalLoss: 1.25,
    trainer: "builtin",
    createdAt: "2026-01-01T00:00:00.000Z",
    files: [
      { path: "adapter_model.safetensors", size: 1000, sha256: SHA_A },
      { path: "optimizer.safetensors", size: 2000, sha256: SHA_B },
    ],
    ...overrides,
  };
}

const text = (value: unknown) => ({ kind: "text" as const, text: JSON.stringify(value) });

describe("readManifest", () => {
  it("reads a manifest whose step is the folder's", () => {
    expect(readManifest(text(manifest()), 100)).toEqual({ kind: "manifest", manifest: manifest() });
    expect(readManifest(text(manifest({ evalLoss: null })), null)).toMatchObject({
      kind: "manifest",
    });
  });

  it("takes a folder without a manifest for one from a release before manifests", () => {
    expect(readManifest({ kind: "missing" }, 100)).toEqual({ kind: "legacy" });
  });

  it.each([
    [{ kind: "unreadable", problem: "EACCES" } as const, "manifest.json cannot be read (EACCES)"],
    [
      { kind: "text", text: '{"version": 1, "st' } as const,
      "manifest.json is not JSON (cut short?)",
    ],
    [{ kind: "text", text: "" } as const, "manifest.json is not JSON (cut short?)"],
    [text(null), "manifest.json: "],
    [text([]), "manifest.json: "],
    [
      text({ ...manifest(), version: 2 }),
      "manifest.json is version 2, from a newer release (this one reads version 1)",
    ],
    [text({ ...manifest(), version: 0 }), "manifest.json: version: "],
    [text({ ...manifest(), version: "1" }), "manifest.json: version: "],
    [text({ ...manifest(), step: -1 }), "manifest.json: step: "],
    [text({ ...manifest(), step: 1.5 }), "manifest.json: step: "],
    [text({ ...manifest(), evalLoss: "low" }), "manifest.json: evalLoss: "],
    [text({ ...manifest(), files: [] }), "manifest.json: files: "],
    [
      text(manifest({ files: [{ path: "../escape", size: 1, sha256: SHA_A }] })),
      "manifest.json: files.0.path: ",
    ],
    [
      text(manifest({ files: [{ path: "/abs", size: 1, sha256: SHA_A }] })),
      "manifest.json: files.0.path: must be relative",
    ],
    [
      text(manifest({ files: [{ path: "a//b", size: 1, sha256: SHA_A }] })),
      "manifest.json: files.0.path: ",
    ],
    [
      text(manifest({ files: [{ path: "manifest.json", size: 1, sha256: SHA_A }] })),
      "manifest.json: files.0.path: the manifest does not list itself",
    ],
    [
      text(manifest({ files: [{ path: "a", size: 1, sha256: "A".repeat(64) }] })),
      "manifest.json: files.0.sha256: 64 lowercase hex digits",
    ],
    [
      text(manifest({ files: [{ path: "a", size: -1, sha256: SHA_A }] })),
      "manifest.json: files.0.size: ",
    ],
    [
      text(
        manifest({
          files: [
            { path: "a", size: 1, sha256: SHA_A },
            { path: "a", size: 1, sha256: SHA_A },
          ],
        }),
      ),
      "manifest.json: files: lists a file twice",
    ],
    [text(manifest({ step: 90 })), "manifest.json is for step 90, the folder for step 100"],
  ])("refuses %j: %s", (source, reason) => {
    const read = readManifest(source, 100);
    expect(read.kind).toBe("invalid");
    expect(read.kind === "invalid" && read.reason.startsWith(reason)).toBe(true);
  });
});

describe("judgeFiles", () => {
  const present = (size: number, sha256: string | null): FileObservation => ({
    kind: "present",
    size,
    sha256,
  });
  const both = (a: FileObservation, b: FileObservation) =>
    new Map([
      ["adapter_model.safetensors", a],
      ["optimizer.safetensors", b],
    ]);

  it("passes files of the listed sizes and hashes", () => {
    expect(judgeFiles(manifest(), both(present(1000, SHA_A), present(2000, SHA_B)))).toEqual({
      ok: true,
    });
  });

  it("ignores files the manifest does not list", () => {
    const observed = both(present(1000, SHA_A), present(2000, SHA_B));
    observed.set("README.md", present(5, SHA_A));
    expect(judgeFiles(manifest(), observed)).toEqual({ ok: true });
  });

  it.each([
    [both({ kind: "missing" }, present(2000, SHA_B)), "adapter_model.safetensors is missing"],
    [
      new Map([["optimizer.safetensors", present(2000, SHA_B)]]),
      "adapter_model.safetensors is missing",
    ],
    [
      both({ kind: "unreadable", problem: "EIO" }, present(2000, SHA_B)),
      "adapter_model.safetensors cannot be read (EIO)",
    ],
    [
      both(present(500, null), present(2000, SHA_B)),
      "adapter_model.safetensors is 500 bytes, the manifest says 1000",
    ],
    [
      both(present(1000, SHA_B), present(2000, SHA_B)),
      "adapter_model.safetensors does not match its sha256 in the manifest",
    ],
    [both(present(1000, null), present(2000, SHA_B)), "adapter_model.safetensors was not hashed"],
    [
      both(present(1000, SHA_A), present(2001, null)),
      "optimizer.safetensors is 2001 bytes, the manifest says 2000",
    ],
    [
      both({ kind: "missing" }, present(1, null)),
      "adapter_model.safetensors is missing; optimizer.safetensors is 1 bytes, the manifest says 2000",
    ],
  ])("fails %#: %s", (observed, reason) => {
    expect(judgeFiles(manifest(), observed)).toEqual({ ok: false, reason });
  });

  it("names the first three problems and counts the rest", () => {
    const files = ["a", "b", "c", "d", "e"].map((path) => ({ path, size: 1, sha256: SHA_A }));
    expect(judgeFiles(manifest({ files }), new Map())).toEqual({
      ok: false,
      reason: "a is missing; b is missing; c is missing; and 2 more",
    });
  });
});

describe("manifestSizes", () => {
  it("counts every file (and the manifest) and the final ones apart", () => {
    expect(manifestSizes(manifest(), ["adapter_model.safetensors", "adapter_config.json"])).toEqual(
      { checkpointBytes: 3000, checkpointFiles: 3, finalBytes: 1000, finalFiles: 1 },
    );
    expect(manifestSizes(manifest(), [])).toMatchObject({ finalBytes: 0, finalFiles: 0 });
  });
});
