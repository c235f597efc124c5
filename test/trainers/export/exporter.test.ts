import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { TaskRow } from "../../../src/server/db/schema";
import { readExport } from "../../../src/server/tasks/task-export";
import { loadBaseModel, TINY_MODEL_ID } from "../../../src/trainers/builtin/base-model";
import { adapterConfigJson, initLoraWeights } from "../../../src/trainers/builtin/lora";
import { mergedModel } from "../../../src/trainers/builtin/merge";
import { TINY_CONFIG } from "../../../src/trainers/builtin/model";
import { Rng } from "../../../src/trainers/builtin/rng";
import { writeSafetensors } from "../../../src/trainers/builtin/safetensors";
import { hashFile, sealCheckpoint } from "../../../src/trainers/checkpoints/folder";
import {
  EXPORT_RECORD_VERSION,
  type ExportRecord,
  parseExportRecord,
} from "../../../src/trainers/export/export-record";
import {
  type ExportRequest,
  exportRequestSchema,
  readProvenance,
} from "../../../src/trainers/export/provenance";
import { hyperparametersSchema } from "../../../src/trainers/protocol";
import { mountTmpfs, unmountTmpfs } from "../../helpers/tmpfs";
import { waitFor } from "../../helpers/wait";

/**
 * The exporter (dist/exporter.js) run for real on task folders of the built-in trainer, made by
 * hand (an adapter with trained-looking weights, a checkpoint sealed by the checkpoint code):
 * what it writes, what a second export does, a checkpoint that does not verify, an exporter
 * SIGKILLed halfway, and a real full disk (tmpfs).
 */

const EXPORTER = join(process.cwd(), "dist", "exporter.js");
const root = mkdtempSync(join(tmpdir(), "exporter-"));
const SETTINGS = { rank: 4, alpha: 8, dropout: 0, targetModules: ["q_proj", "v_proj"] };
let mounted: string | null = null;

afterEach(async () => {
  if (mounted) await unmountTmpfs(mounted);
  mounted = null;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A task folder of a finished built-in LoRA run on `model`, with one checkpoint (step-2). */
async function makeTask(dir: string, model = TINY_MODEL_ID): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const config = {
    taskId: "t",
    attempt: 1,
    trainer: "builtin",
    model,
    dataset: { path: join(root, "rows.jsonl"), format: "alpaca" },
    taskDir: dir,
    hyperparameters: hyperparametersSchema.parse({ loraRank: 4, loraAlpha: 8 }),
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const adapter = initLoraWeights(TINY_CONFIG, SETTINGS, new Rng(1));
  const rng = new Rng(2);
  for (const [name, t] of adapter) {
    if (!name.includes("lora_B")) continue;
    for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.05;
  }
  await writeSafetensors(join(dir, "adapter_model.safetensors"), adapter, { format: "pt" });
  writeFileSync(join(dir, "adapter_config.json"), adapterConfigJson(SETTINGS, model));
  const checkpoint = join(dir, "checkpoints", "step-2");
  mkdirSync(checkpoint, { recursive: true });
  for (const name of ["adapter_model.safetensors", "adapter_config.json"]) {
    cpSync(join(dir, name), join(checkpoint, name));
  }
  await sealCheckpoint(checkpoint, { step: 2, evalLoss: null, trainer: "builtin" });
  return dir;
}

function request(dir: string, source: ExportRequest["source"], model = TINY_MODEL_ID) {
  return exportRequestSchema.parse({
    task: { id: dir.split("/").at(-1), name: "exported" },
    trainer: "builtin",
    mode: "lora",
    baseModel: model,
    dataset: {
      path: join(root, "rows.jsonl"),
      format: "alpaca",
      sha256: null,
      hashedFrom: "unreadable",
    },
    hyperparameters: hyperparametersSchema.parse({ loraRank: 4, loraAlpha: 8 }),
    source,
    studioVersion: "test",
    requestedAt: new Date().toISOString(),
  });
}

const FINAL = { kind: "final", path: ".", step: 5 } as const;
const CHECKPOINT = { kind: "checkpoint", path: "checkpoints/step-2", step: 2 } as const;

/** Writes the request as the studio does, then runs the exporter as the studio starts it. */
function startExport(dir: string, source: ExportRequest["source"], model = TINY_MODEL_ID) {
  const id = randomBytes(8).toString("hex");
  const record: ExportRecord = {
    version: EXPORT_RECORD_VERSION,
    id,
    state: "running",
    request: request(dir, source, model),
    python: null,
    process: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    files: null,
    reason: null,
  };
  writeFileSync(join(dir, "export.json"), JSON.stringify(record));
  const child = spawn(process.execPath, [EXPORTER, "--task-dir", dir, "--export-id", id], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const exited = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, output })),
  );
  return { child, exited };
}

const runExport = (dir: string, source: ExportRequest["source"], model?: string) =>
  startExport(dir, source, model).exited;

const recordOf = (dir: string) => parseExportRecord(readFileSync(join(dir, "export.json"), "utf8"));
const statusOf = (dir: string) =>
  readExport("/nowhere", { id: dir.split("/").at(-1)!, folder: dir } as TaskRow);
/** What an export leaves while under way: its staging folder, an earlier export moved aside. */
const hidden = (dir: string) => readdirSync(dir).filter((n) => n.startsWith(".export-"));

describe("the exporter", () => {
  it("merges the final adapter into export/: a model the loader takes as a base, with provenance whose hashes match", async () => {
    const dir = await makeTask(join(root, "final"));
    const taskFiles = ["adapter_model.safetensors", "adapter_config.json", "config.json"];
    const before = await Promise.all(taskFiles.map((f) => hashFile(join(dir, f))));

    const { code, output } = await runExport(dir, FINAL);
    expect(code, output).toBe(0);
    const exportDir = join(dir, "export");
    expect(output).toContain(`${join(exportDir, "model.safetensors")}\t`);
    expect(readdirSync(exportDir).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "provenance.json",
    ]);
    expect(hidden(dir)).toEqual([]);

    const record = recordOf(dir);
    expect(record).toMatchObject({
      state: "done",
      reason: null,
      process: { pid: expect.any(Number) },
    });
    for (const file of record.files!) {
      expect((await hashFile(join(exportDir, file.name))).size).toBe(file.size);
    }
    expect(await statusOf(dir)).toMatchObject({
      state: "done",
      files: record.files,
      folder: exportDir,
    });

    // The studio's own loader takes it as a base model, and it is exactly the merge.
    const loaded = await loadBaseModel(join(exportDir, "model.safetensors"));
    const expected = await mergedModel(TINY_MODEL_ID, "lora", dir);
    expect(loaded.config).toEqual(TINY_CONFIG);
    for (const [name, tensor] of expected.weights) {
      expect(loaded.weights.get(name)!.data, name).toEqual(tensor.data);
    }
    expect(JSON.parse(readFileSync(join(exportDir, "config.json"), "utf8"))).toMatchObject({
      version: 1,
      architecture: "finetune-studio-builtin",
      ...TINY_CONFIG,
    });

    const provenance = readProvenance(readFileSync(join(exportDir, "provenance.json"), "utf8"));
    expect(provenance).toMatchObject({ version: 1, task: { name: "exported" }, source: FINAL });
    for (const file of [...provenance.files]) {
      expect(await hashFile(join(exportDir, file.name))).toEqual({
        size: file.size,
        sha256: file.sha256,
      });
    }
    expect(provenance.mergedFrom).toEqual([
      { name: "adapter_config.json", ...before[1] },
      { name: "adapter_model.safetensors", ...before[0] },
    ]);
    // The task's own files are as they were.
    expect(await Promise.all(taskFiles.map((f) => hashFile(join(dir, f))))).toEqual(before);
  }, 30_000);

  it("replaces an earlier export whole with a checkpoint's; a checkpoint that does not verify fails and leaves the export as it was", async () => {
    const dir = await makeTask(join(root, "again"));
    expect((await runExport(dir, FINAL)).code).toBe(0);
    const fromCheckpoint = await runExport(dir, CHECKPOINT);
    expect(fromCheckpoint.code, fromCheckpoint.output).toBe(0);
    const provenance = () =>
      readProvenance(readFileSync(join(dir, "export", "provenance.json"), "utf8"));
    expect(provenance().source).toEqual(CHECKPOINT);
    expect(hidden(dir)).toEqual([]);
    const model = await hashFile(join(dir, "export", "model.safetensors"));

    // One byte of the checkpoint's adapter changed, its size the same.
    const adapter = join(dir, "checkpoints", "step-2", "adapter_model.safetensors");
    const bytes = readFileSync(adapter);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(adapter, bytes);
    const refused = await runExport(dir, CHECKPOINT);
    expect(refused.code).toBe(1);
    expect(recordOf(dir)).toMatchObject({
      state: "failed",
      reason: expect.stringMatching(
        /^checkpoint checkpoints\/step-2 does not verify: adapter_model\.safetensors/,
      ),
    });
    expect(await statusOf(dir)).toMatchObject({ state: "failed" });
    expect(await hashFile(join(dir, "export", "model.safetensors"))).toEqual(model);
    expect(hidden(dir)).toEqual([]);
  }, 30_000);

  it("killed halfway (SIGKILL) it counts as failed and the export is as it was; the next export clears what it left and puts back an export moved aside", async () => {
    const dir = await makeTask(join(root, "killed"));
    expect((await runExport(dir, FINAL)).code).toBe(0);
    const model = await hashFile(join(dir, "export", "model.safetensors"));

    const { child, exited } = startExport(dir, CHECKPOINT);
    await waitFor("the staging folder", () => hidden(dir).length > 0, 20_000, 2);
    process.kill(-child.pid!, "SIGKILL");
    await exited;
    expect(recordOf(dir).state).toBe("running");
    expect(await statusOf(dir)).toMatchObject({
      state: "failed",
      reason: expect.stringMatching(
        /^the export process \(pid \d+\) ended before it finished; the task is unchanged/,
      ),
    });
    expect(await hashFile(join(dir, "export", "model.safetensors"))).toEqual(model);
    expect(hidden(dir)).toEqual([expect.stringMatching(/^\.export-staging-[0-9a-f]{16}$/)]);

    // As a stop between the two renames of a replacement leaves it: the export moved aside.
    renameSync(join(dir, "export"), join(dir, ".export-replaced-0000000000000000"));
    // A request that fails on its own (no such checkpoint) still tidies up first.
    const failed = await runExport(dir, {
      kind: "checkpoint",
      path: "checkpoints/step-9",
      step: 9,
    });
    expect(failed.output).toContain("put .export-replaced-0000000000000000 back as export");
    expect(recordOf(dir)).toMatchObject({
      state: "failed",
      reason: "checkpoint checkpoints/step-9 does not verify: does not exist",
    });
    expect(await hashFile(join(dir, "export", "model.safetensors"))).toEqual(model);
    expect(hidden(dir)).toEqual([]);
  }, 30_000);

  it("on a full disk (a real tmpfs) fails naming the free space, removes what it wrote, and leaves the task and its earlier export as they were", async () => {
    const disk = join(root, "disk");
    mkdirSync(disk);
    // One export of builtin:tiny (about 520 KB) fits; a second one beside it does not.
    mountTmpfs(disk, 1);
    mounted = disk;
    const dir = await makeTask(join(disk, "full"));
    expect((await runExport(dir, FINAL)).code).toBe(0);
    const model = await hashFile(join(dir, "export", "model.safetensors"));
    const adapter = await hashFile(join(dir, "adapter_model.safetensors"));

    const full = await runExport(dir, CHECKPOINT);
    expect(full.code).toBe(1);
    const reason = recordOf(dir).reason;
    expect(reason).toMatch(
      new RegExp(
        `^disk full: \\d+ MB free on ${dir} \\(builtin-trainer: Error: ENOSPC: no space left on device.*\\); the task is unchanged$`,
      ),
    );
    expect(await hashFile(join(dir, "export", "model.safetensors"))).toEqual(model);
    expect(await hashFile(join(dir, "adapter_model.safetensors"))).toEqual(adapter);
    expect(hidden(dir)).toEqual([]);

    // A base whose size is known (the exported model, used as a base) is measured first: the
    // export is refused before anything is written.
    const second = await makeTask(join(disk, "second"), join(dir, "export", "model.safetensors"));
    const refused = await runExport(second, FINAL, join(dir, "export", "model.safetensors"));
    expect(refused.code).toBe(1);
    expect(recordOf(second).reason).toMatch(
      new RegExp(
        `^disk full: \\d+ MB free on ${second} \\(the merged model needs about 1 MB\\); the task is unchanged$`,
      ),
    );
    expect(hidden(second)).toEqual([]);
    expect(existsSync(join(second, "export"))).toBe(false);
  }, 30_000);
});
