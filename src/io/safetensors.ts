// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON ({ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} }),
// then the tensors' bytes, offsets relative to the end of the header.
//
// The header is checked as the format's reference reader (safetensors' `Metadata::validate`) checks it:
// it starts with "{" (it may end in spaces, the padding that aligns the data to 8 bytes), is UTF-8
// with no duplicate names, and the tensors' byte ranges, sorted, tile the data section exactly: the
// first begins at 0, each begins where the previous ended, the last ends at the end of the file. So
// a header length a few bytes off (every tensor shifted), overlapping tensors, holes and trailing
// bytes are all refused rather than read as other tensors' bytes.
//
// Reading goes through a ByteSource (a file, a fetch with Range requests, a browser File), so only the
// header and then one tensor at a time are read: a checkpoint is never loaded into one buffer.

/** Random access to the bytes of one file. */
export interface ByteSource {
  /** Shown in errors: a path or URL. */
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Read target.length bytes at offset into target, with no host array of the whole range. */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
  /**
   * true: readInto is fastest into memory already touched, so the loader zero-fills a new tensor on
   * every thread of the backend before reading into it (where a host's first touch of a page is slow,
   * the faults then run on every core). Node's fileSource and OPFS files read in a Web Worker set it
   * (their reads are the kernel's: a first touch from the kernel was the slowest); a browser's Blob
   * streams do not: their copies fault pages while the browser delivers the next bytes, which measured
   * faster than filling first (bench/NOTES.md, "Loading").
   */
  readonly prefault?: boolean;
}

/** Fill `target` with the bytes at `offset`: through the source's readInto where it has one, else a host array copied in. */
export async function readInto(source: ByteSource, offset: number, target: Uint8Array): Promise<void> {
  if (source.readInto) await source.readInto(offset, target);
  else target.set(await source.read(offset, target.length));
}

export type SafetensorsDType = "F32" | "BF16" | "F16";
const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, BF16: 2, F16: 2, F8_E4M3: 1, F8_E5M2: 1, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

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
 * the file, inconsistent sizes, byte ranges that do not tile the data) is added to `problems` with the
 * file and tensor named; tensors are returned only when there is none.
 */
export async function readSafetensorsHeader(file: ByteSource, problems: string[]): Promise<SafetensorsHeader> {
  const result: SafetensorsHeader = { tensors: new Map(), metadata: {} };
  const problemsBefore = problems.length;
  const bad = (message: string) => problems.push(`${file.name}: ${message}`);
  if (file.size < 8) {
    bad(`truncated file (${file.size} bytes; a safetensors file starts with an 8-byte header length)`);
    return result;
  }
  const lengthBytes = await file.read(0, 8);
  const lengthField = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  const headerLength = Number(lengthField);
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > file.size) {
    // The field as written (a u64 above 2^53 would print rounded as a Number).
    bad(`bad header: its length field says ${lengthField} bytes but the file has ${file.size} (truncated or not safetensors)`);
    return result;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await file.read(8, headerLength));
  } catch {
    bad("bad header: not valid UTF-8");
    return result;
  }
  if (!text.startsWith("{")) {
    bad(`bad header: it must start with "{", got ${JSON.stringify(text.slice(0, 20))} (is the header length, ${headerLength}, right?)`);
    return result;
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    bad(`bad header: not valid JSON (${(e as Error).message})`);
    return result;
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    bad("bad header: expected a JSON object");
    return result;
  }
  // JSON.parse keeps the last of two equal names silently; the format forbids them.
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== null) bad(`bad header: tensor "${duplicate}" is named twice`);
  const dataStart = 8 + headerLength;
  const dataBytes = file.size - dataStart;
  const entries: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      const valid = typeof raw === "object" && raw !== null && !Array.isArray(raw) && Object.values(raw).every((v) => typeof v === "string");
      if (!valid) bad(`bad header: "__metadata__" must be an object of strings, got ${JSON.stringify(raw).slice(0, 120)}`);
      else result.metadata = raw as Record<string, string>;
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = entry?.shape, offsets = entry?.data_offsets;
    const validShape = Array.isArray(shape) && shape.every((n) => Number.isSafeInteger(n) && n >= 0);
    const validOffsets = Array.isArray(offsets) && offsets.length === 2 && offsets.every((n) => Number.isSafeInteger(n) && n >= 0) && offsets[0] <= offsets[1];
    if (typeof entry?.dtype !== "string" || !(entry.dtype in DTYPE_BYTES) || !validShape || !validOffsets) {
      bad(`bad header entry for tensor "${name}": ${JSON.stringify(raw).slice(0, 120)}`);
      continue;
    }
    const [begin, end] = offsets as [number, number];
    const bytes = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[entry.dtype]!;
    if (end - begin !== bytes) {
      bad(`tensor "${name}" has ${end - begin} bytes but ${entry.dtype} [${shape}] needs ${bytes}`);
      continue;
    }
    if (end > dataBytes) {
      bad(`truncated file: tensor "${name}" ends at byte ${dataStart + end} but the file has ${file.size} bytes`);
      continue;
    }
    entries.push({ name, dtype: entry.dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end, file });
  }
  if (problems.length !== problemsBefore) return result;
  // The byte ranges, sorted, must tile the data section: no overlap, no hole, nothing after the last.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = dataStart;
  for (const t of sorted) {
    if (t.begin !== expectedBegin) {
      const previous = sorted[sorted.indexOf(t) - 1];
      bad(
        t.begin < expectedBegin
          ? `tensor "${t.name}" (data_offsets [${t.begin - dataStart}, ${t.end - dataStart}]) overlaps tensor "${previous!.name}", which ends at ${expectedBegin - dataStart}`
          : `${t.begin - expectedBegin} bytes before tensor "${t.name}" (data_offsets [${t.begin - dataStart}, ${t.end - dataStart}]) belong to no tensor`,
      );
      break;
    }
    expectedBegin = t.end;
  }
  if (problems.length === problemsBefore && expectedBegin !== file.size) {
    bad(
      `the tensors' data ends at byte ${expectedBegin} but the file has ${file.size} bytes: the header length (${headerLength}) or the data_offsets are wrong, or bytes were appended`,
    );
  }
  if (problems.length === problemsBefore) for (const t of entries) result.tensors.set(t.name, t);
  return result;
}

/** The first name that appears twice among the top-level keys of a JSON object's text, or null. */
function firstDuplicateKey(json: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else if (c === '"') {
      const start = i;
      for (i++; json[i] !== '"'; i++) if (json[i] === "\\") i++;
      // A string at depth 1 followed by ":" is a top-level key.
      let j = i + 1;
      while (json[j] === " " || json[j] === "\n" || json[j] === "\r" || json[j] === "\t") j++;
      if (depth === 1 && json[j] === ":") {
        const key = JSON.parse(json.slice(start, i + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
      }
    }
  }
  return null;
}

/**
 * Index of the first NaN or infinity among little-endian F32 / BF16 / F16 values, or -1: a value is
 * non-finite exactly when its exponent bits are all ones, so this reads the bits and converts nothing.
 */
export function firstNonFinite(bytes: Uint8Array, dtype: SafetensorsDType): number {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const elementBytes = dtype === "F32" ? 4 : 2;
  // A value is non-finite when its exponent bits are all ones. Masked to the exponent, adding the
  // exponent's lowest bit carries into the bit above it exactly then (the sign bit, masked out, is
  // free to receive it), so one AND, one ADD and one OR test a whole 32-bit word: one f32 or two
  // 16-bit values, with no branch; a block is searched element by element only when its flag is set.
  const [mask, carry] = dtype === "F32" ? [0x7f800000, 0x00800000] : dtype === "BF16" ? [0x7f807f80, 0x00800080] : [0x7c007c00, 0x04000400];
  const words = new Int32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
  const BLOCK = 4096;
  for (let start = 0; start < words.length; start += BLOCK) {
    const end = Math.min(words.length, start + BLOCK);
    // Four words a step into two flags (2.1x one word a step: bench/NOTES.md, "Loading").
    let flags0 = 0, flags1 = 0, i = start;
    for (; i + 4 <= end; i += 4) {
      flags0 |= (((words[i]! & mask) + carry) | ((words[i + 1]! & mask) + carry)) & 0x80008000;
      flags1 |= (((words[i + 2]! & mask) + carry) | ((words[i + 3]! & mask) + carry)) & 0x80008000;
    }
    for (; i < end; i++) flags0 |= ((words[i]! & mask) + carry) & 0x80008000;
    if ((flags0 | flags1) !== 0) return firstNonFiniteElement(aligned, dtype, (start * 4) / elementBytes, (end * 4) / elementBytes);
  }
  // A 16-bit tensor of odd length has one value past the last whole word.
  const all = aligned.byteLength / elementBytes;
  return firstNonFiniteElement(aligned, dtype, (words.length * 4) / elementBytes, all);
}

/** The first non-finite element in [from, to), compared one by one; -1 when there is none. */
function firstNonFiniteElement(bytes: Uint8Array, dtype: SafetensorsDType, from: number, to: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = from; i < to; i++) {
    if (dtype === "F32" ? (view.getUint32(4 * i, true) & 0x7f800000) === 0x7f800000 : (view.getUint16(2 * i, true) & (dtype === "BF16" ? 0x7f80 : 0x7c00)) === (dtype === "BF16" ? 0x7f80 : 0x7c00)) return i;
  }
  return -1;
}

/**
 * Throw, naming the file, the tensor and the element, when `bytes` (the tensor's elements from
 * `firstElement` on, in its file dtype) hold a NaN or an infinity: a trained model has none, and one
 * would silently turn every logit into NaN.
 */
export function assertFinite(entry: TensorEntry, bytes: Uint8Array, firstElement: number): void {
  const at = firstNonFinite(bytes, entry.dtype as SafetensorsDType);
  if (at < 0) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const value = entry.dtype === "F32" ? String(view.getFloat32(4 * at, true)) : `${entry.dtype} bits 0x${view.getUint16(2 * at, true).toString(16)}`;
  throw new Error(
    `${entry.file.name}: tensor "${entry.name}" holds a non-finite weight (${value}) at element ${firstElement + at}; pass allowNonFinite: true to load it anyway`,
  );
}

export interface TensorToWrite {
  name: string;
  /** Float weights, or the integers of quantized ones (I8; U8 for packed int4). */
  dtype: SafetensorsDType | "I8" | "U8";
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
