import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, realpath, rename, stat, writeFile } from "node:fs/promises";
import { extname, isAbsolute, join } from "node:path";
import { z } from "zod";
import {
  type DatasetReport,
  type DatasetRow,
  describeReportErrors,
  validateDataset,
} from "../../trainers/dataset";
import { datasetFormatSchema } from "../../trainers/protocol";
import { PACKAGE_ROOT } from "../package-root";
import { DatasetError } from "./dataset-error";
import { displayName, isInside, isStoredDatasetId } from "./safe-paths";

export const DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
export const SAMPLE_DATASET_ID = "sample";
const SIDECAR_SUFFIX = ".meta.json";

const datasetInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** Absolute path of the data a trainer reads. */
  path: z.string(),
  format: datasetFormatSchema,
  rowCount: z.number().int(),
  sizeBytes: z.number().int(),
  createdAt: z.string(),
  /** upload: a copy the store owns; path: a file registered where it lies; builtin: ships with the studio. */
  source: z.enum(["upload", "path", "builtin"]),
});
export type DatasetInfo = z.infer<typeof datasetInfoSchema>;

/** The sidecar next to each stored dataset: what is listed, and the preview rows of its report. */
const sidecarSchema = datasetInfoSchema.extend({ preview: z.array(z.unknown()) });
type Sidecar = z.infer<typeof sidecarSchema>;

export interface DatasetPreview {
  dataset: DatasetInfo;
  rows: DatasetRow[];
}

/** What a task is created with: the file a trainer will read and its format. */
export type ResolvedDataset = Pick<DatasetInfo, "path" | "format" | "name" | "rowCount">;

export interface DatasetStoreOptions {
  maxUploadBytes?: number;
  /** The dataset listed as "sample"; data/sample.jsonl of the install by default. */
  sampleFile?: string;
}

/**
 * Datasets under STUDIO_HOME/datasets: each is `<id>.meta.json` (a sidecar, written last, so a
 * half-saved upload is never listed) plus, for uploads, the data as `<id>.jsonl` or `<id>.json`.
 * No stored file name comes from the person uploading; ids are checked before they touch a path.
 */
export class DatasetStore {
  readonly root: string;
  /** Folders (besides this store) whose files may be registered or used by path. */
  readonly allowedRoots: string[];
  private readonly maxUploadBytes: number;
  private readonly sampleFile: string;
  private sample: Promise<Sidecar> | null = null;

  constructor(root: string, allowedRoots: string[] = [], options: DatasetStoreOptions = {}) {
    this.root = root;
    this.allowedRoots = allowedRoots;
    this.maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
    this.sampleFile = options.sampleFile ?? join(PACKAGE_ROOT, "data", "sample.jsonl");
  }

  /** Validates and keeps an uploaded file; refuses it, with the report's errors, when invalid. */
  async saveUpload(fileName: string, bytes: Uint8Array): Promise<DatasetInfo> {
    if (bytes.byteLength > this.maxUploadBytes) {
      throw new DatasetError(
        "PAYLOAD_TOO_LARGE",
        `dataset ${displayName(fileName)} is ${formatSize(bytes.byteLength)}; uploads may be at most ${formatSize(this.maxUploadBytes)}`,
      );
    }
    const report = validateDataset(bytes, fileName);
    const format = usableFormat(displayName(fileName), report);
    const id = newId();
    const extension = extname(fileName).toLowerCase() === ".json" ? ".json" : ".jsonl";
    await mkdir(this.root, { recursive: true });
    const path = join(this.root, `${id}${extension}`);
    await writeAtomic(path, bytes);
    const sidecar: Sidecar = {
      id,
      name: displayName(fileName),
      path,
      format,
      rowCount: report.rowCount,
      sizeBytes: bytes.byteLength,
      createdAt: new Date().toISOString(),
      source: "upload",
      preview: report.preview,
    };
    await this.writeSidecar(sidecar);
    return infoOf(sidecar);
  }

  /**
   * Lists a file where it lies, without copying it. Only files inside `allowedRoots` (after
   * resolving symlinks and `..`) are accepted, so a task can never be pointed at /etc/shadow.
   */
  async registerPath(absPath: string, allowedRoots = this.allowedRoots): Promise<DatasetInfo> {
    const inspected = await this.inspectPath(absPath, allowedRoots);
    const sidecar: Sidecar = { ...inspected, id: newId(), source: "path" };
    await mkdir(this.root, { recursive: true });
    await this.writeSidecar(sidecar);
    return infoOf(sidecar);
  }

  /** Every dataset, the built-in sample first, then the newest first. */
  async list(): Promise<DatasetInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      names = [];
    }
    const stored: DatasetInfo[] = [];
    for (const name of names) {
      if (!name.endsWith(SIDECAR_SUFFIX)) continue;
      const sidecar = await this.readSidecar(name.slice(0, -SIDECAR_SUFFIX.length));
      if (sidecar) stored.push(infoOf(sidecar));
    }
    stored.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return [infoOf(await this.sampleSidecar()), ...stored];
  }

  /** One dataset by id; throws NOT_FOUND. */
  async get(id: string): Promise<DatasetInfo> {
    return infoOf(await this.sidecarFor(id));
  }

  /** A dataset with its first rows, for the page to show before a task is created. */
  async preview(id: string): Promise<DatasetPreview> {
    const sidecar = await this.sidecarFor(id);
    return { dataset: infoOf(sidecar), rows: sidecar.preview as DatasetRow[] };
  }

  /**
   * What a new task's config.json gets: from a dataset id, or from an absolute path inside the
   * store, the sample's folder or the allowed roots. Checked again now, since a registered
   * file or a symlink may have changed since it was listed.
   */
  async resolveForTask(idOrPath: string): Promise<ResolvedDataset> {
    const looksLikePath = idOrPath.includes("/") || idOrPath.includes("\\");
    const sidecar = looksLikePath ? null : await this.sidecarFor(idOrPath);
    if (sidecar && sidecar.source !== "path") return resolvedOf(sidecar);
    const roots = sidecar ? this.allowedRoots : this.taskRoots();
    return resolvedOf(await this.inspectPath(sidecar?.path ?? idOrPath, roots));
  }

  private taskRoots(): string[] {
    return [this.root, join(this.sampleFile, ".."), ...this.allowedRoots];
  }

  private async inspectPath(
    absPath: string,
    roots: string[],
  ): Promise<Omit<Sidecar, "id" | "source">> {
    if (!isAbsolute(absPath)) {
      throw new DatasetError("BAD_REQUEST", `dataset path must be absolute: ${absPath}`);
    }
    let real: string;
    try {
      real = await realpath(absPath);
    } catch {
      throw new DatasetError("NOT_FOUND", `dataset file not found: ${absPath}`);
    }
    const realRoots = await realRootsOf(roots);
    if (!realRoots.some((root) => isInside(root, real))) {
      throw new DatasetError(
        "FORBIDDEN",
        realRoots.length === 0
          ? `dataset path ${absPath} refused: no dataset folders are allowed (the operator sets STUDIO_DATASET_ROOTS)`
          : `dataset path ${absPath} is outside the allowed dataset folders (${roots.join(", ")})`,
      );
    }
    const info = await stat(real);
    if (!info.isFile())
      throw new DatasetError("BAD_REQUEST", `dataset path is not a file: ${absPath}`);
    if (info.size > this.maxUploadBytes) {
      throw new DatasetError(
        "PAYLOAD_TOO_LARGE",
        `dataset ${absPath} is ${formatSize(info.size)}; datasets may be at most ${formatSize(this.maxUploadBytes)}`,
      );
    }
    const report = validateDataset(await readFile(real), real);
    return {
      name: displayName(real),
      path: real,
      format: usableFormat(absPath, report),
      rowCount: report.rowCount,
      sizeBytes: info.size,
      createdAt: new Date().toISOString(),
      preview: report.preview,
    };
  }

  private async sidecarFor(id: string): Promise<Sidecar> {
    if (id === SAMPLE_DATASET_ID) return this.sampleSidecar();
    const sidecar = isStoredDatasetId(id) ? await this.readSidecar(id) : null;
    if (!sidecar) throw new DatasetError("NOT_FOUND", `no dataset with id ${JSON.stringify(id)}`);
    return sidecar;
  }

  private sampleSidecar(): Promise<Sidecar> {
    this.sample ??= (async () => {
      const bytes = await readFile(this.sampleFile);
      const report = validateDataset(bytes, this.sampleFile);
      const created = await stat(this.sampleFile);
      return {
        id: SAMPLE_DATASET_ID,
        name: "Sample: arithmetic, words and capitals (built-in)",
        path: this.sampleFile,
        format: usableFormat(this.sampleFile, report),
        rowCount: report.rowCount,
        sizeBytes: bytes.byteLength,
        createdAt: created.mtime.toISOString(),
        source: "builtin" as const,
        preview: report.preview,
      };
    })();
    // A failed read is not cached, so a later call tries again.
    this.sample.catch(() => {
      this.sample = null;
    });
    return this.sample;
  }

  private async readSidecar(id: string): Promise<Sidecar | null> {
    if (!isStoredDatasetId(id)) return null;
    try {
      const text = await readFile(join(this.root, `${id}${SIDECAR_SUFFIX}`), "utf8");
      const parsed = sidecarSchema.safeParse(JSON.parse(text));
      return parsed.success && parsed.data.id === id ? parsed.data : null;
    } catch {
      // Missing or damaged: not listed, and get() says not found.
      return null;
    }
  }

  private async writeSidecar(sidecar: Sidecar) {
    await writeAtomic(
      join(this.root, `${sidecar.id}${SIDECAR_SUFFIX}`),
      new TextEncoder().encode(`${JSON.stringify(sidecar, null, 2)}\n`),
    );
  }
}

function infoOf(sidecar: Sidecar): DatasetInfo {
  const { preview: _, ...info } = sidecar;
  return info;
}

function resolvedOf(dataset: ResolvedDataset): ResolvedDataset {
  const { path, format, name, rowCount } = dataset;
  return { path, format, name, rowCount };
}

function usableFormat(name: string, report: DatasetReport) {
  if (report.errorCount > 0 || report.format === null) {
    throw new DatasetError("BAD_REQUEST", describeReportErrors(name, report), report.errors);
  }
  return report.format;
}

async function realRootsOf(roots: string[]): Promise<string[]> {
  const real: string[] = [];
  for (const root of roots) {
    try {
      real.push(await realpath(root));
    } catch {
      // A root that does not exist (yet) contains nothing.
    }
  }
  return real;
}

function newId(): string {
  return `ds-${randomBytes(8).toString("hex")}`;
}

async function writeAtomic(path: string, bytes: Uint8Array) {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, bytes, { flag: "wx" });
  await rename(temp, path);
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
