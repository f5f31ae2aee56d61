// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON ({ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} }),
// then the tensors' bytes, offsets relative to the end of the header.
//
// Reading goes through a ByteSource (a file, a fetch with Range requests, a browser File), so only the
// header and then one tensor at a time are read: a checkpoint is never loaded into one buffer.

/** Random access to the bytes of one file. */
export interface ByteSource {
  /** Shown in errors: a path or URL. */
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Read target.length bytes at offset straight into target (sources that can avoid a copy). */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
}

/** Fill `target` with the bytes at `offset`: straight into it where the source can, else through a copy. */
export async function readInto(source: ByteSource, offset: number, target: Uint8Array): Promise<void> {
  if (source.readInto) await source.readInto(offset, target);
  else target.set(await source.read(offset, target.length));
}

export type SafetensorsDType = "F32" | "BF16" | "F16";
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, BF16: 2, F16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorEntry {
  name: string;
  /** Any safetensors dtype; the loader accepts F32, BF16 and F16 and reports others. */
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: ByteSource;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** Largest header accepted (the format's own reference implementation caps it at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * Read and check a file's header. Every problem (bad header, a tensor whose bytes lie past the end of
 * the file, inconsistent sizes) is added to `problems` with the file and tensor named.
 */
export async function readSafetensorsHeader(file: ByteSource, problems: string[]): Promise<SafetensorsHeader> {
  const result: SafetensorsHeader = { tensors: new Map(), metadata: {} };
  if (file.size < 8) {
    problems.push(`${file.name}: truncated file (${file.size} bytes; a safetensors file starts with an 8-byte header length)`);
    return result;
  }
  const lengthBytes = await file.read(0, 8);
  const headerLength = Number(new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > file.size) {
    problems.push(`${file.name}: bad header: its length field says ${headerLength} bytes but the file has ${file.size} (truncated or not safetensors)`);
    return result;
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(await file.read(8, headerLength)));
  } catch (e) {
    problems.push(`${file.name}: bad header: not valid JSON (${(e as Error).message})`);
    return result;
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    problems.push(`${file.name}: bad header: expected a JSON object`);
    return result;
  }
  const dataStart = 8 + headerLength;
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      result.metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = entry?.shape, offsets = entry?.data_offsets;
    const validShape = Array.isArray(shape) && shape.every((n) => Number.isInteger(n) && n >= 0);
    const validOffsets = Array.isArray(offsets) && offsets.length === 2 && offsets.every((n) => Number.isInteger(n) && n >= 0) && offsets[0] <= offsets[1];
    if (typeof entry?.dtype !== "string" || !(entry.dtype in DTYPE_BYTES) || !validShape || !validOffsets) {
      problems.push(`${file.name}: bad header entry for tensor "${name}": ${JSON.stringify(raw).slice(0, 120)}`);
      continue;
    }
    const [begin, end] = offsets as [number, number];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== elements * DTYPE_BYTES[entry.dtype]!) {
      problems.push(`${file.name}: tensor "${name}" has ${end - begin} bytes but ${entry.dtype} [${shape}] needs ${elements * DTYPE_BYTES[entry.dtype]!}`);
      continue;
    }
    if (dataStart + end > file.size) {
      problems.push(`${file.name}: truncated file: tensor "${name}" ends at byte ${dataStart + end} but the file has ${file.size} bytes`);
      continue;
    }
    result.tensors.set(name, { name, dtype: entry.dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end, file });
  }
  return result;
}

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** Raw little-endian bytes. */
  bytes: Uint8Array;
}

/** The pieces of a safetensors file (header, then each tensor's bytes), in order. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = { format: "pt" }): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = JSON.stringify(header);
  const unpadded = new TextEncoder().encode(json).length;
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  const headerBytes = new TextEncoder().encode(json + " ".repeat((8 - ((8 + unpadded) % 8)) % 8));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  return [prefix, headerBytes, ...tensors.map((t) => t.bytes)];
}
