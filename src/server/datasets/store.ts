import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, extname, isAbsolute, join, relative } from "node:path";
import { z } from "zod";
import { writeFileAtomicAsync } from "../../platform/atomic-write";
import { PACKAGE_ROOT } from "../../platform/package-root";
import {
  type DatasetReport,
  type DatasetRow,
  describeReportErrors,
  validateDataset,
} from "../../trainers/dataset";
import { datasetFormatSchema } from "../../trainers/protocol";
import { DatasetError } from "./dataset-error";
import {
  displayName,
  isInside,
  isStoredDatasetId,
  openExact,
  openInside,
  PathRefusal,
} from "./safe-paths";

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
    await writeFileAtomicAsync(path, bytes);
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

  /** Where pinned copies live: `pinned/<sha256 of the content>/<file name>`. */
  get pinnedRoot(): string {
    return join(this.root, "pinned");
  }

  /**
   * What a new task trains on: the dataset (an id, or a path as `resolveForTask` takes it) read
   * once, validated, and copied into the store under its content hash. The task keeps that
   * copy, so changing or swapping the original later (for a link out of the allowed folders)
   * changes nothing the task reads; `verifyPinned` checks the copy again before a start.
   */
  async pinForTask(idOrPath: string): Promise<ResolvedDataset> {
    const { bytes, path: source } = await this.bytesForTask(idOrPath);
    const report = validateDataset(bytes, source);
    const format = usableFormat(displayName(source), report);
    const sha = createHash("sha256").update(bytes).digest("hex");
    const name = pinnedFileName(source);
    const path = join(this.pinnedRoot, sha, name);
    if ((await this.verifyPinned(path)) !== null) {
      await mkdir(join(this.pinnedRoot, sha), { recursive: true });
      await writeFileAtomicAsync(path, bytes);
    }
    return { path, format, name: displayName(source), rowCount: report.rowCount };
  }

  /**
   * Null when a task's dataset file may be used now; otherwise why not. A pinned copy must be
   * a plain file exactly where it was written (no link anywhere) whose content still has the
   * hash it is filed under. A task created before pinning existed must still point inside the
   * allowed folders, as at its creation. A task created through another studio on the same
   * database has its copy under that studio's home (`…/datasets/pinned/<sha>/<name>`): it is
   * held to the same checks there.
   */
  /** This studio's pinned folder, or another home's when `path` is a pinned copy there. */
  private pinnedRootOf(path: string): string {
    const candidate = dirname(dirname(path));
    const isPinnedFolder =
      basename(candidate) === "pinned" && basename(dirname(candidate)) === "datasets";
    return isPinnedFolder && isAbsolute(candidate) ? candidate : this.pinnedRoot;
  }

  async verifyPinned(path: string): Promise<string | null> {
    const root = this.pinnedRootOf(path);
    const rel = relative(root, path);
    const pinned = /^([0-9a-f]{64})\/([A-Za-z0-9._-]{1,120})$/.exec(rel);
    if (!pinned) {
      try {
        await this.readInside(path, this.taskRoots());
        return null;
      } catch (err) {
        if (err instanceof DatasetError)
          return `dataset ${path} can no longer be used: ${err.message}`;
        throw err;
      }
    }
    let bytes: Buffer;
    try {
      const { handle } = await openInside(root, rel);
      try {
        bytes = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (!(err instanceof PathRefusal)) throw err;
      return err.kind === "missing"
        ? `the dataset copy pinned for this task is gone (${path})`
        : `the dataset copy pinned for this task is no longer a plain file: ${err.message}`;
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== pinned[1]) {
      return `the dataset copy pinned for this task changed since the task was created (sha256 ${pinned[1]!.slice(0, 12)}… expected, ${sha.slice(0, 12)}… found)`;
    }
    return null;
  }

  /** The bytes a new task would train on, read once through a descriptor that was checked. */
  private async bytesForTask(idOrPath: string): Promise<{ bytes: Buffer; path: string }> {
    const looksLikePath = idOrPath.includes("/") || idOrPath.includes("\\");
    const sidecar = looksLikePath ? null : await this.sidecarFor(idOrPath);
    if (sidecar?.source === "builtin") {
      return this.readInside(sidecar.path, [join(this.sampleFile, "..")]);
    }
    if (sidecar?.source === "upload") return this.readInside(sidecar.path, [this.root]);
    const roots = sidecar ? this.allowedRoots : this.taskRoots();
    return this.readInside(sidecar?.path ?? idOrPath, roots);
  }

  private taskRoots(): string[] {
    return [this.root, join(this.sampleFile, ".."), ...this.allowedRoots];
  }

  private async inspectPath(
    absPath: string,
    roots: string[],
  ): Promise<Omit<Sidecar, "id" | "source">> {
    const { bytes, path: real } = await this.readInside(absPath, roots);
    const report = validateDataset(bytes, real);
    return {
      name: displayName(real),
      path: real,
      format: usableFormat(absPath, report),
      rowCount: report.rowCount,
      sizeBytes: bytes.byteLength,
      createdAt: new Date().toISOString(),
      preview: report.preview,
    };
  }

  /**
   * Reads a file given by path when it lies inside one of `roots` (after resolving links and
   * `..`). A path that does not exist and one outside the roots get the same answer, so the
   * answer tells nothing about files elsewhere on the machine. The bytes come from a
   * descriptor whose real path was checked, so a swap after the check reads nothing else.
   */
  private async readInside(
    absPath: string,
    roots: string[],
  ): Promise<{ bytes: Buffer; path: string }> {
    if (!isAbsolute(absPath)) {
      throw new DatasetError("BAD_REQUEST", `dataset path must be absolute: ${absPath}`);
    }
    const realRoots = await realRootsOf(roots);
    if (realRoots.length === 0) {
      throw new DatasetError(
        "FORBIDDEN",
        `dataset path ${absPath} refused: no dataset folders are allowed (the operator sets STUDIO_DATASET_ROOTS)`,
      );
    }
    const refused = new DatasetError(
      "NOT_FOUND",
      `dataset file ${absPath} not found, or outside the allowed dataset folders (${roots.join(", ")})`,
    );
    let real: string;
    try {
      real = await realpath(absPath);
    } catch {
      throw refused;
    }
    if (!realRoots.some((root) => isInside(root, real))) throw refused;
    let opened: Awaited<ReturnType<typeof openExact>>;
    try {
      opened = await openExact(real);
    } catch (err) {
      if (!(err instanceof PathRefusal)) throw err;
      if (err.kind === "not-file") {
        throw new DatasetError("BAD_REQUEST", `dataset path is not a file: ${absPath}`);
      }
      // It changed between resolving and opening.
      throw refused;
    }
    const { handle, size } = opened;
    try {
      if (size > this.maxUploadBytes) {
        throw new DatasetError(
          "PAYLOAD_TOO_LARGE",
          `dataset ${absPath} is ${formatSize(size)}; datasets may be at most ${formatSize(this.maxUploadBytes)}`,
        );
      }
      const bytes = await handle.readFile();
      if (bytes.byteLength > this.maxUploadBytes) {
        throw new DatasetError(
          "PAYLOAD_TOO_LARGE",
          `dataset ${absPath} grew past ${formatSize(this.maxUploadBytes)} while it was read`,
        );
      }
      return { bytes, path: real };
    } finally {
      await handle.close();
    }
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
      const { handle } = await openInside(this.root, `${id}${SIDECAR_SUFFIX}`);
      const text = await handle.readFile("utf8").finally(() => handle.close());
      const parsed = sidecarSchema.safeParse(JSON.parse(text));
      return parsed.success && parsed.data.id === id ? parsed.data : null;
    } catch {
      // Missing or damaged: not listed, and get() says not found.
      return null;
    }
  }

  private async writeSidecar(sidecar: Sidecar) {
    await writeFileAtomicAsync(
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

/** The pinned copy's file name: the source's, in characters safe anywhere, its extension kept. */
function pinnedFileName(source: string): string {
  const ext = extname(source).toLowerCase() === ".json" ? ".json" : ".jsonl";
  const stem = basename(source, extname(source))
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^\.+/, "_")
    .slice(0, 100);
  return `${stem || "dataset"}${ext}`;
}

function newId(): string {
  return `ds-${randomBytes(8).toString("hex")}`;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
