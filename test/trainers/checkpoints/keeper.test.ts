import { createHash } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifyCheckpoint } from "../../../src/trainers/checkpoints/folder";
import {
  CheckpointKeeper,
  type CheckpointStyle,
  NoCheckpointError,
  type RunShape,
} from "../../../src/trainers/checkpoints/keeper";

/** The keeper on real folders and files: commits, retention, resume after real corruption. */

const root = mkdtempSync(join(tmpdir(), "checkpoint-keeper-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const STYLE: CheckpointStyle = {
  trainer: "builtin",
  prefix: "step-",
  savesAtEnd: false,
  finalFiles: ["weights.bin"],
};

let tasks = 0;
function keeper(run: Partial<RunShape> = {}) {
  const taskDir = join(root, `task-${++tasks}`);
  mkdirSync(join(taskDir, "checkpoints"), { recursive: true });
  const warnings: { kind: string; message: string; step?: number }[] = [];
  const lines: string[] = [];
  const saved: string[] = [];
  const k = new CheckpointKeeper(
    taskDir,
    STYLE,
    { totalSteps: 100, saveSteps: 1, keepLast: 3, evaluates: false, ...run },
    {
      saved: (step, path) => saved.push(`${step} ${path}`),
      warn: (kind, message, step) => warnings.push({ kind, message, step }),
      print: (line) => lines.push(line),
    },
  );
  return { k, taskDir, warnings, lines, saved };
}

/** Writes a two-file checkpoint the way the built-in trainer does: hashed from memory. */
function writer(step: number) {
  return async (dir: string) => {
    const files = { "weights.bin": `weights of step ${step}`, "state.json": `{"step":${step}}` };
    return Object.entries(files).map(([path, text]) => {
      writeFileSync(join(dir, path), text);
      return { path, size: text.length, sha256: createHash("sha256").update(text).digest("hex") };
    });
  };
}

async function commit(k: CheckpointKeeper, step: number, evalLoss: number | null = null) {
  return k.commit({
    staged: k.stagingPath(step),
    step,
    evalLoss,
    write: writer(step),
    diskWarned: false,
  });
}

const names = (taskDir: string) => readdirSync(join(taskDir, "checkpoints")).sort();

describe("CheckpointKeeper.commit", () => {
  it("keeps each checkpoint's weights for the task's evaluation set before retention removes it", async () => {
    const adapter = (step: number) => async (dir: string) =>
      Object.entries({
        "adapter_model.safetensors": `adapter of step ${step}`,
        "adapter_config.json": "{}",
        "optimizer.pt": `moments of step ${step}`,
      }).map(([path, text]) => {
        writeFileSync(join(dir, path), text);
        return { path, size: text.length, sha256: createHash("sha256").update(text).digest("hex") };
      });
    const scored = keeper({ keepLast: 1 });
    // What task.json says of a task with an evaluation set (src/server/tasks/task-record.ts).
    writeFileSync(
      join(scored.taskDir, "task.json"),
      JSON.stringify({ version: 3, evaluationSet: { version: 1, path: "/d/held.jsonl" } }),
    );
    const unscored = keeper({ keepLast: 1 });
    writeFileSync(
      join(unscored.taskDir, "task.json"),
      JSON.stringify({ version: 3, evaluationSet: null }),
    );
    for (const { k } of [scored, unscored]) {
      for (const step of [1, 2]) {
        await k.commit({
          staged: k.stagingPath(step),
          step,
          evalLoss: null,
          write: adapter(step),
          diskWarned: false,
        });
      }
    }
    expect(names(scored.taskDir)).toEqual(["step-2"]);
    const kept = join(scored.taskDir, "eval", "checkpoints");
    expect(readdirSync(kept).sort()).toEqual(["step-1", "step-2"]);
    // The weights only (no optimizer state), as they were, though step-1 itself is gone.
    expect(readdirSync(join(kept, "step-1")).sort()).toEqual([
      "adapter_config.json",
      "adapter_model.safetensors",
    ]);
    expect(readFileSync(join(kept, "step-1", "adapter_model.safetensors"), "utf8")).toBe(
      "adapter of step 1",
    );
    expect(readdirSync(unscored.taskDir)).not.toContain("eval");
  });

  it("puts a sealed, verified checkpoint in place and leaves no staging folder", async () => {
    const { k, taskDir, lines, saved } = keeper();
    const result = await commit(k, 7, 1.5);
    expect(saved).toEqual(["7 checkpoints/step-7"]);
    expect(result.path).toBe("checkpoints/step-7");
    expect(result.disk?.verdict).toBe("fits");
    expect(names(taskDir)).toEqual(["step-7"]);
    const verified = await verifyCheckpoint(join(taskDir, "checkpoints", "step-7"), 7);
    if (verified.kind !== "verified") throw new Error(JSON.stringify(verified));
    expect(verified.manifest).toMatchObject({
      version: 1,
      step: 7,
      evalLoss: 1.5,
      trainer: "builtin",
    });
    expect(verified.manifest.files.map((f) => f.path)).toEqual(["weights.bin", "state.json"]);
    expect(lines).toEqual([
      expect.stringMatching(/^saved checkpoints\/step-7 \(2 files, 1 KB, verified\)$/),
    ]);
  });

  it("keeps the last N and the best eval loss, removing the rest once the new one is in", async () => {
    const { k, taskDir, lines } = keeper({ keepLast: 2, evaluates: true });
    const losses = [3, 1, 2, 2.5, 2.2];
    for (const [i, loss] of losses.entries()) await commit(k, i + 1, loss);
    expect(names(taskDir)).toEqual(["step-2", "step-4", "step-5"]);
    expect(lines).toContain(
      "removed checkpoints/step-1: older than the last 2 and not the best eval loss (step-2)",
    );
  });

  it("removes checkpoints past the new step, left by an attempt that went further", async () => {
    const { k, taskDir } = keeper();
    for (const step of [10, 20]) await commit(k, step);
    await commit(k, 5);
    expect(names(taskDir)).toEqual(["step-5"]);
  });

  it("replaces a folder of the same step (an earlier attempt's) whole", async () => {
    const { k, taskDir } = keeper();
    await commit(k, 5);
    writeFileSync(join(taskDir, "checkpoints", "step-5", "stray.txt"), "from before");
    await commit(k, 5);
    expect(readdirSync(join(taskDir, "checkpoints", "step-5")).sort()).toEqual([
      "manifest.json",
      "state.json",
      "weights.bin",
    ]);
    expect(names(taskDir)).toEqual(["step-5"]);
  });

  it("discards a checkpoint whose files are not what was written, keeping every older one", async () => {
    const { k, taskDir, warnings, saved } = keeper({ keepLast: 1 });
    await commit(k, 1);
    const result = await k.commit({
      staged: k.stagingPath(2),
      step: 2,
      evalLoss: null,
      write: async (dir) => {
        const entries = await writer(2)(dir);
        // What reached the disk differs from what was hashed in memory.
        writeFileSync(join(dir, "weights.bin"), "weights of step 9");
        return entries;
      },
      diskWarned: false,
    });
    expect(result).toEqual({ path: null, disk: null });
    expect(saved).toEqual(["1 checkpoints/step-1"]);
    expect(names(taskDir)).toEqual(["step-1"]);
    expect(warnings).toEqual([
      {
        kind: "checkpoint-unverified",
        step: 2,
        message:
          "the checkpoint at step 2 was discarded: weights.bin does not match its sha256 in the manifest; the earlier checkpoints are kept",
      },
    ]);
  });

  it("discards a checkpoint the trainer cannot load, or one it found not to load", async () => {
    const { k, taskDir, warnings } = keeper();
    await commit(k, 1);
    const loads = async () => {
      throw new Error("bad header");
    };
    const failed = await k.commit({
      staged: k.stagingPath(2),
      step: 2,
      evalLoss: null,
      write: writer(2),
      loads,
      diskWarned: false,
    });
    expect(failed.path).toBeNull();
    // The Python trainer checks its staged folder itself and says why.
    mkdirSync(k.stagingPath(3));
    writeFileSync(join(k.stagingPath(3), "weights.bin"), "x");
    const refused = await k.commit({
      staged: k.stagingPath(3),
      step: 3,
      evalLoss: null,
      loadFailure: "the adapter does not load (truncated)",
      diskWarned: false,
    });
    expect(refused.path).toBeNull();
    expect(names(taskDir)).toEqual(["step-1"]);
    expect(warnings.map((w) => w.message)).toEqual([
      "the checkpoint at step 2 was discarded: it does not load: bad header; the earlier checkpoints are kept",
      "the checkpoint at step 3 was discarded: the adapter does not load (truncated); the earlier checkpoints are kept",
    ]);
  });

  it("seals a folder the trainer filled itself, hashing what is on disk", async () => {
    const { k, taskDir } = keeper();
    const staged = k.stagingPath(4);
    mkdirSync(join(staged, "nested"), { recursive: true });
    writeFileSync(join(staged, "weights.bin"), "abc");
    writeFileSync(join(staged, "nested", "rng.pth"), "rng");
    const result = await k.commit({ staged, step: 4, evalLoss: null, diskWarned: false });
    expect(result.path).toBe("checkpoints/step-4");
    const verified = await verifyCheckpoint(join(taskDir, "checkpoints", "step-4"), 4);
    if (verified.kind !== "verified") throw new Error(JSON.stringify(verified));
    expect(verified.manifest.files).toEqual([
      { path: "nested/rng.pth", size: 3, sha256: createHash("sha256").update("rng").digest("hex") },
      { path: "weights.bin", size: 3, sha256: createHash("sha256").update("abc").digest("hex") },
    ]);
  });

  it("clears what a stopped writer left, and nothing else", async () => {
    const { k, taskDir, lines } = keeper();
    await commit(k, 1);
    for (const name of [
      ".tmp-step-2-99",
      ".replaced-step-1-99",
      ".removing-step-0-99",
      ".tmp-hf",
    ]) {
      mkdirSync(join(taskDir, "checkpoints", name));
    }
    mkdirSync(join(taskDir, "checkpoints", "mine"));
    await k.clearLeftovers();
    expect(names(taskDir)).toEqual(["mine", "step-1"]);
    expect(lines.filter((l) => l.startsWith("removed"))).toHaveLength(4);
  });
});

describe("CheckpointKeeper.chooseResume", () => {
  async function threeCheckpoints() {
    const made = keeper();
    for (const step of [10, 20, 30]) await commit(made.k, step);
    const path = (step: number) => join(made.taskDir, "checkpoints", `step-${step}`);
    return { ...made, path };
  }

  it("takes the one asked for when it verifies, with no warning", async () => {
    const { k, path, warnings } = await threeCheckpoints();
    const choice = await k.chooseResume(path(30));
    expect(choice).toMatchObject({ path: path(30), step: 30 });
    expect(choice.sizes).toMatchObject({ checkpointFiles: 3, finalFiles: 1 });
    expect(warnings).toEqual([]);
  });

  it.each([
    [
      "cut short",
      (dir: string) => truncateSync(join(dir, "weights.bin"), 3),
      "weights.bin is 3 bytes, the manifest says 18",
    ],
    [
      "with a byte changed",
      (dir: string) => writeFileSync(join(dir, "weights.bin"), "weights of step 31"),
      "weights.bin does not match its sha256 in the manifest",
    ],
    ["with a file gone", (dir: string) => rmSync(join(dir, "state.json")), "state.json is missing"],
    [
      "with its manifest cut short",
      (dir: string) => truncateSync(join(dir, "manifest.json"), 40),
      "manifest.json is not JSON (cut short?)",
    ],
    [
      "with a manifest from a newer release",
      (dir: string) => {
        const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
        writeFileSync(join(dir, "manifest.json"), JSON.stringify({ ...m, version: 2 }));
      },
      "manifest.json is version 2, from a newer release (this one reads version 1)",
    ],
    ["gone", (dir: string) => rmSync(dir, { recursive: true }), "does not exist"],
  ])("falls back from the newest %s, naming it and why", async (_, damage, reason) => {
    const { k, path, warnings, lines } = await threeCheckpoints();
    damage(path(30));
    const choice = await k.chooseResume(path(30));
    expect(choice).toMatchObject({ path: path(20), step: 20 });
    const message = `resuming from checkpoints/step-20 instead: checkpoints/step-30: ${reason}`;
    expect(warnings).toEqual([{ kind: "resume-fallback", message, step: 20 }]);
    expect(lines).toContain(`resume: ${message}`);
  });

  it("accepts a checkpoint from before manifests as it is, if it loads", async () => {
    const { k, path, lines, warnings } = await threeCheckpoints();
    rmSync(join(path(30), "manifest.json"));
    const loaded: string[] = [];
    const choice = await k.chooseResume(path(30), { loads: async (dir) => void loaded.push(dir) });
    expect(choice.path).toBe(path(30));
    expect(choice.sizes).toEqual({
      checkpointBytes: 18 + 11,
      checkpointFiles: 2,
      finalBytes: 18,
      finalFiles: 1,
    });
    expect(loaded).toEqual([path(30)]);
    expect(warnings).toEqual([]);
    expect(lines).toContain(
      "resume: checkpoints/step-30 has no manifest (written before checkpoints had one): used as it is",
    );
  });

  it("passes over one that does not load, and those the caller found not to load", async () => {
    const { k, path, warnings } = await threeCheckpoints();
    const choice = await k.chooseResume(path(30), {
      rejected: [{ path: path(30), reason: "does not load (bad header)" }],
      loads: async (dir) => {
        if (dir === path(20)) throw new Error("truncated");
      },
    });
    expect(choice.path).toBe(path(10));
    expect(warnings.map((w) => w.message)).toEqual([
      "resuming from checkpoints/step-10 instead: checkpoints/step-30: does not load (bad header); checkpoints/step-20: does not load (truncated)",
    ]);
  });

  it("never takes a later one, and says why none will do", async () => {
    const { k, path } = await threeCheckpoints();
    truncateSync(join(path(10), "weights.bin"), 0);
    const attempt = k.chooseResume(path(10));
    await expect(attempt).rejects.toBeInstanceOf(NoCheckpointError);
    await expect(attempt).rejects.toThrow(
      "no checkpoint to resume from verifies (checkpoints/step-10: weights.bin is 0 bytes, the manifest says 18)",
    );
  });

  it("refuses a folder whose manifest is another step's", async () => {
    const { k, path, warnings } = await threeCheckpoints();
    rmSync(path(30), { recursive: true });
    renameSync(path(20), path(30));
    const choice = await k.chooseResume(path(30));
    expect(choice.path).toBe(path(10));
    expect(warnings.map((w) => w.message)).toEqual([
      "resuming from checkpoints/step-10 instead: checkpoints/step-30: manifest.json is for step 20, the folder for step 30",
    ]);
  });
});
