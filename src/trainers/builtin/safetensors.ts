import { readFile } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomicAsync } from "../../platform/atomic-write";

/**
 * The safetensors format, F32 only: an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the raw little-endian data.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export type TensorMap = Map<string, NamedTensor>;

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

const tensorEntrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().min(0)),
  data_offsets: z.tuple([z.number().int().min(0), z.number().int().min(0)]),
});

export function encodeSafetensors(
  tensors: TensorMap,
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  // Sorted names give the same bytes for the same weights, whatever order they were added in.
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const tensor = tensors.get(name)!;
    const expected = tensor.shape.reduce((a, b) => a * b, 1);
    if (expected !== tensor.data.length) {
      throw new Error(`tensor ${name}: shape ${tensor.shape} does not hold ${tensor.data.length}`);
    }
    const bytes = tensor.data.length * 4;
    header[name] = { dtype: "F32", shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerJson = JSON.stringify(header);
  // The data section starts 8-byte aligned, padded with spaces as the reference writer does.
  headerJson += " ".repeat((8 - ((8 + Buffer.byteLength(headerJson)) % 8)) % 8);
  const headerBytes = Buffer.from(headerJson, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let position = 8 + headerBytes.length;
  for (const name of names) {
    const data = tensors.get(name)!.data;
    for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i]!, position + i * 4);
    position += data.length * 4;
  }
  return out;
}

export function decodeSafetensors(bytes: Buffer): SafetensorsFile {
  if (bytes.length < 8) throw new Error("not a safetensors file: shorter than 8 bytes");
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (8 + headerLength > bytes.length) throw new Error("safetensors header runs past the file");
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<
    string,
    unknown
  >;
  const dataStart = 8 + headerLength;
  const tensors: TensorMap = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = z.record(z.string(), z.string()).parse(value);
      continue;
    }
    const entry = tensorEntrySchema.parse(value);
    if (entry.dtype !== "F32") throw new Error(`tensor ${name}: dtype ${entry.dtype} is not F32`);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > bytes.length) {
      throw new Error(`tensor ${name}: byte range does not match its shape`);
    }
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = bytes.readFloatLE(dataStart + begin + i * 4);
    tensors.set(name, { shape: entry.shape, data });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFile(path));
}

/** Written atomically: readers see the old file or the new one, never half. */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomicAsync(path, encodeSafetensors(tensors, metadata));
}
