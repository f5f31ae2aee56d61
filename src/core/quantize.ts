// Quantized weights: the two schemes, their exact arithmetic, and the weight type that holds them.
//
// A linear layer's weight W is [N, K] (out, in), as torch.nn.Linear stores it. Quantizing keeps small
// integers q and a few f32-or-f16 scales; the weight is then dequant(W) = q * scale. Every backend's
// kernels compute exactly what the host functions below compute (the reference backend calls them).
//
// int8 — bitsandbytes' LLM.int8 weight format (what transformers saves for load_in_8bit=True):
//   per row n:   SCB[n] = max_k |W[n, k]|                                      (f32, "scales" [N])
//                q[n, k] = roundHalfEven(f32(W[n, k] * f32(127 / SCB[n])))     (i8 in [-127, 127])
//   dequant:     W[n, k] ~ q[n, k] * f32(SCB[n] / 127)
//   A row of zeros has SCB = 0 and q = 0. bitsandbytes computes the factor as 127 * f32(1 / SCB) (its
//   CPU backend; CUDA's __fdividef also multiplies by a reciprocal): that lands about 1 weight in 10,000
//   one step apart (scripts/golden/make_quantize_fixtures.py lists them for its fixture), so a saved
//   8-bit folder's q is always used as stored, never recomputed. A row whose absmax is below 127 / FLT_MAX
//   (3.7e-37) has an infinite factor: its nonzero elements become +-127 (dequantized to about absmax,
//   which is as good as zero) and its zeros 0.
//
// int4 — groups of 32 consecutive inputs of a row, one scale each, symmetric (ggml's Q4_0 layout):
//   per group g: m = the element of largest magnitude (the first one on ties), sign kept
//                d[n, g] = f16(m / -8)                                          (f16, "scales" [N, K/32])
//                q[n, k] = clamp(roundHalfEven(f32(W[n, k] / f32(d))), -8, 7)   (0 where d = 0)
//   dequant:     W[n, k] ~ q[n, k] * d[n, g]
//   Dividing m by -8 (not by 7) puts the largest element exactly on -8 and uses all 16 levels; the
//   scale is f16 as in Q4_0 (1 bit of scale per weight instead of 2: decode reads 10% fewer bytes).
//   Packing: byte i of a group's 16 holds element i in its low nibble and element i + 16 in its high
//   nibble, each stored as q + 8 (0..15). K must be a multiple of 32. "values" [N, K/2] and "scales"
//   [N, K/32] hold those bytes and scales with the rows interleaved four at a time (int4ByteOffset,
//   int4ScaleIndex): rows 4b..4b+3 form a quad (the last quad holds what is left, R = 1..4 rows),
//   and each group of a quad is 16R bytes, the rows' 4-byte words side by side:
//     [row 0 bytes 0-3, row 1 bytes 0-3, .., row R-1 bytes 0-3, row 0 bytes 4-7, .., row R-1 bytes 12-15]
//   with the quad's R scales of that group side by side. A 16-byte vector then holds 8 weights of
//   each of four rows: one i8 dot product per vector leaves each row's sums in its own lanes, so the
//   decode GEMV needs no shuffles to separate rows and groups (llama.cpp's Q4_0x4 repack interleaves
//   four rows' 4-byte chunks for its CPU kernels too; measured in bench/NOTES.md, "Quantized weights").
//   Q4_0 rounds x/d + 8.5 down (half up); here both schemes round half to even like torch.round.
//   A group whose largest magnitude is 524,160 or more (8 x the largest f16) has an infinite scale and
//   cannot be represented: no trained weight is that large.
//
// Activations (the x of x W^T) are quantized too, per block of 32 consecutive inputs of a row (the
// last block of a row may be shorter), as ggml's Q8_0 does for its quantized dot products:
//   s = f32(max|x| / 127),  qx = roundHalfEven(f32(x * f32(127 / max|x|)))     (0 where max|x| = 0)
// so each block's dot product is a sum of integer products, exact in i32:
//   int8:  out[m, n] = f32(SCB[n] / 127) * sum over blocks b of  s[m, b] * sum_{k in b} qx[m, k] q[n, k]
//   int4:  out[m, n] = sum over blocks b of  s[m, b] * d[n, b] * sum_{k in b} qx[m, k] q[n, k]
// The sums over blocks are f32 in whatever order a kernel finds fastest. Integer products are what
// makes the decode GEMV fast (integer dot products: i16 for int8, i8 for int4; no float conversions
// per weight); the error this adds is measured against bf16 in bench/quantized.ts and in the README.
//
// The backward pass of a quantized linear layer (for adapters trained on a frozen base) is
// dX = dY dequant(W) in f32, with no activation quantization and no weight gradient.

import { f16ToF32, f32ToF16, type QuantScheme } from "./dtype.js";
import { Tensor, type AnyBackend } from "./tensor.js";

export type { QuantScheme } from "./dtype.js";

export const QUANT_SCHEMES: readonly QuantScheme[] = ["int8", "int4"];

/** Inputs per int4 scale, and per activation scale. */
export const QUANT_GROUP = 32;

/** Rows int4 interleaves (int4ByteOffset). */
export const INT4_ROWS_INTERLEAVED = 4;

/** Round to the nearest integer, ties to the even one (torch.round, numpy.rint, f32.nearest). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties go up here
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The shapes of a quantized [rows, cols] weight's two tensors: packed values (i8) and scales. */
export function quantizedShapes(scheme: QuantScheme, rows: number, cols: number): { values: [number, number]; scales: number[]; scalesDType: "f32" | "f16" } {
  return scheme === "int8"
    ? { values: [rows, cols], scales: [rows], scalesDType: "f32" }
    : { values: [rows, cols / 2], scales: [rows, cols / QUANT_GROUP], scalesDType: "f16" };
}

/** Why a [rows, cols] weight cannot take this scheme, or null when it can. */
export function quantizeProblem(scheme: QuantScheme, rows: number, cols: number): string | null {
  if (!QUANT_SCHEMES.includes(scheme)) return `unknown quantization scheme ${JSON.stringify(scheme)}; expected "int8" or "int4"`;
  if (!(rows > 0 && cols > 0)) return `cannot quantize an empty [${rows}, ${cols}] weight`;
  if (scheme === "int4" && cols % QUANT_GROUP !== 0) {
    return `int4 quantizes groups of ${QUANT_GROUP} inputs, but the weight has ${cols} inputs per row (not a multiple of ${QUANT_GROUP}); use int8 for it`;
  }
  return null;
}

/** Quantized values of a [rows, cols] f32 matrix: i8 bytes (int4: two per byte) and scales (int8: f32 SCB; int4: f16 bits). */
export interface QuantizedHost {
  values: Int8Array;
  scales: Float32Array | Uint16Array;
}

const f32 = Math.fround;

/** The definition of both schemes (see the top of this file), on host arrays. */
export function quantizeHost(scheme: QuantScheme, x: ArrayLike<number>, rows: number, cols: number): QuantizedHost {
  const problem = quantizeProblem(scheme, rows, cols);
  if (problem) throw new Error(`quantize: ${problem}`);
  return scheme === "int8" ? quantizeInt8(x, rows, cols) : quantizeInt4(x, rows, cols);
}

function quantizeInt8(x: ArrayLike<number>, rows: number, cols: number): QuantizedHost {
  const values = new Int8Array(rows * cols), scales = new Float32Array(rows);
  for (let n = 0; n < rows; n++) {
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(x[n * cols + k]!));
    scales[n] = absmax;
    if (absmax === 0) continue;
    const inverse = f32(127 / f32(absmax));
    for (let k = 0; k < cols; k++) values[n * cols + k] = Math.max(-127, Math.min(127, roundHalfEven(f32(x[n * cols + k]! * inverse))));
  }
  return { values, scales };
}

function quantizeInt4(x: ArrayLike<number>, rows: number, cols: number): QuantizedHost {
  const groups = cols / QUANT_GROUP, half = QUANT_GROUP / 2;
  const values = new Int8Array((rows * cols) / 2), scales = new Uint16Array(rows * groups);
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < groups; g++) {
      const start = n * cols + g * QUANT_GROUP;
      let m = 0;
      for (let i = 0; i < QUANT_GROUP; i++) if (Math.abs(x[start + i]!) > Math.abs(m)) m = x[start + i]!;
      const bits = f32ToF16(f32(m / -8));
      scales[int4ScaleIndex(rows, cols, n, g)] = bits;
      const d = f16ToF32(bits);
      const nibble = (i: number) => (d === 0 ? 0 : Math.max(-8, Math.min(7, roundHalfEven(f32(x[start + i]! / d))))) + 8;
      // 128..255 wrap to negative i8: the same bits.
      for (let i = 0; i < half; i++) values[int4ByteOffset(rows, cols, n, g, i)] = nibble(i) | (nibble(i + half) << 4);
    }
  }
  return { values, scales };
}

/**
 * int4: the position in "values" of byte i (0..15) of row n's group g: elements i (low nibble) and
 * i + 16 (high nibble) of that group. Rows are interleaved four at a time, in quads (top of this file).
 */
export function int4ByteOffset(rows: number, cols: number, n: number, g: number, i: number): number {
  const first = n - (n % INT4_ROWS_INTERLEAVED), quadRows = Math.min(INT4_ROWS_INTERLEAVED, rows - first), groups = cols / QUANT_GROUP;
  return first * groups * 16 + g * 16 * quadRows + Math.floor(i / 4) * 4 * quadRows + (n - first) * 4 + (i % 4);
}

/** int4: the index in "scales" of row n's group g (interleaved like the values). */
export function int4ScaleIndex(rows: number, cols: number, n: number, g: number): number {
  const first = n - (n % INT4_ROWS_INTERLEAVED), quadRows = Math.min(INT4_ROWS_INTERLEAVED, rows - first);
  return first * (cols / QUANT_GROUP) + g * quadRows + (n - first);
}

/** The integer q of element k of row n of a [rows, cols] quantized weight (int4: unpacked from its nibble). */
export function quantizedValue(scheme: QuantScheme, values: Int8Array, rows: number, cols: number, n: number, k: number): number {
  if (scheme === "int8") return values[n * cols + k]!;
  const i = k % QUANT_GROUP, half = QUANT_GROUP / 2;
  const byte = values[int4ByteOffset(rows, cols, n, Math.floor(k / QUANT_GROUP), i % half)]! & 0xff;
  return (i < half ? byte & 0x0f : byte >> 4) - 8;
}

/** The scale element k of row n is multiplied by: f32(SCB / 127) for int8, d for int4. */
export function quantizedScale(scheme: QuantScheme, scales: Float32Array | Uint16Array, rows: number, cols: number, n: number, k: number): number {
  return scheme === "int8" ? f32(scales[n]! / 127) : f16ToF32(scales[int4ScaleIndex(rows, cols, n, Math.floor(k / QUANT_GROUP))]!);
}

/** dequant(W) as f32, [rows, cols]. */
export function dequantizeHost(scheme: QuantScheme, q: QuantizedHost, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) out[n * cols + k] = quantizedValue(scheme, q.values, rows, cols, n, k) * quantizedScale(scheme, q.scales, rows, cols, n, k);
  }
  return out;
}

/** One activation row quantized per block of 32 (see the top of this file): integers and one scale per block. */
export function quantizeActivationRow(x: ArrayLike<number>, start: number, cols: number): { q: Int8Array; scales: Float32Array } {
  const blocks = Math.ceil(cols / QUANT_GROUP);
  const q = new Int8Array(cols), scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(cols, (b + 1) * QUANT_GROUP);
    let absmax = 0;
    for (let k = b * QUANT_GROUP; k < end; k++) absmax = Math.max(absmax, Math.abs(f32(x[start + k]!)));
    if (absmax === 0) continue;
    scales[b] = f32(absmax / 127);
    const inverse = f32(127 / absmax);
    for (let k = b * QUANT_GROUP; k < end; k++) q[k] = Math.max(-127, Math.min(127, roundHalfEven(f32(f32(x[start + k]!) * inverse))));
  }
  return { q, scales };
}

/**
 * A weight held quantized: `values` (i8: int8 [N, K], int4 two per byte [N, K/2]) and `scales`
 * (int8: f32 SCB [N]; int4: f16 [N, K/32]) of a logical [N, K] matrix; int4's rows are interleaved
 * four at a time in both (int4ByteOffset), so a range of its rows is a slice only in whole quads
 * (FusedRows). Read by the quantized ops (linear, embedding); it has no gradient of its own.
 */
export class QuantizedWeight {
  /** Set when this weight is one of the row ranges of a fused weight (FusedRows). */
  fused: FusedRows | null = null;

  constructor(
    readonly scheme: QuantScheme,
    readonly shape: readonly [number, number],
    readonly values: Tensor,
    readonly scales: Tensor,
  ) {
    const expected = quantizedShapes(scheme, shape[0], shape[1]);
    if (values.dtype !== "i8" || values.shape.join() !== expected.values.join() || scales.dtype !== expected.scalesDType || scales.shape.join() !== expected.scales.join()) {
      throw new Error(
        `QuantizedWeight: a [${shape}] ${scheme} weight needs values i8 [${expected.values}] and scales ${expected.scalesDType} [${expected.scales}], ` +
          `got ${values.describe()} and ${scales.describe()}`,
      );
    }
  }

  /** A `scheme` weight of `shape` on `backend`, its contents unspecified (for a kernel or an upload to fill). */
  static empty(scheme: QuantScheme, shape: readonly [number, number], backend: AnyBackend): QuantizedWeight {
    const shapes = quantizedShapes(scheme, shape[0], shape[1]);
    const values = Tensor.empty(shapes.values, "i8", backend);
    try {
      return new QuantizedWeight(scheme, shape, values, Tensor.empty(shapes.scales, shapes.scalesDType, backend));
    } catch (e) {
      values.dispose(); // out of memory between the two: nothing may stay behind for a retry
      throw e;
    }
  }

  get backend() {
    return this.values.backend;
  }

  /** Bytes held: values and scales. */
  get bytes(): number {
    return this.values.size + this.scales.size * (this.scales.dtype === "f32" ? 4 : 2);
  }

  describe(): string {
    return `${this.scheme} weight [${this.shape.join(", ")}]`;
  }

  /**
   * Free it. A part of a fused weight (FusedRows) frees the whole one's handle too: the fused path is
   * over, and the bytes go once no part holds them.
   */
  dispose(): void {
    this.fused?.whole.dispose();
    this.values.dispose();
    this.scales.dispose();
  }
}

/**
 * Quantized weights stored as consecutive row ranges of one, `whole`: a layer's q, k and v, or its gate
 * and up, as the loader places them where the backend can view a buffer at an offset (Backend.view).
 * A decode step of one token then computes the parts with one GEMV over `whole`: a few long streams of
 * weights instead of many short ones, and one meeting of the threads instead of one per part
 * (bench/NOTES.md, "Fused projections"); everything else (LoRA, saving, a prompt's GEMMs) uses the
 * parts as before.
 * Rows are interleaved within their quad only, so int4's parts, of whole quads, are row ranges too.
 */
export class FusedRows {
  constructor(
    readonly whole: QuantizedWeight,
    readonly parts: readonly QuantizedWeight[],
  ) {}

  /**
   * Whether `weights` are still exactly these parts, in order, each still a range of the whole: none was
   * replaced in the weight map, disposed, or given other bytes (Tensor.assign) that the whole would not see.
   */
  holds(weights: readonly unknown[]): boolean {
    const { values, scales } = this.whole;
    return (
      weights.length === this.parts.length &&
      this.parts.every((p, i) => weights[i] === p && p.values.sharesStorageWith(values) && p.scales.sharesStorageWith(scales))
    );
  }
}

/**
 * Empty `scheme` weights of rows[i] x cols, stored as the row ranges of one fused weight (FusedRows), for
 * the caller to fill; null where they cannot be: the backend has no views, or an int4 part is not
 * whole quads (rows a multiple of INT4_ROWS_INTERLEAVED).
 */
export function emptyFusedRows(scheme: QuantScheme, rows: readonly number[], cols: number, backend: AnyBackend): QuantizedWeight[] | null {
  if (!backend.view || (scheme === "int4" && rows.some((r) => r % INT4_ROWS_INTERLEAVED !== 0))) return null;
  const total = rows.reduce((a, b) => a + b, 0);
  const shapes = quantizedShapes(scheme, total, cols);
  const whole = QuantizedWeight.empty(scheme, [total, cols], backend), { values, scales } = whole;
  // Per row: values hold values[1] elements, scales one (int8) or scales[1] (int4).
  const valuesPerRow = shapes.values[1], scalesPerRow = shapes.scales[1] ?? 1;
  let start = 0;
  const parts = rows.map((r) => {
    const part = quantizedShapes(scheme, r, cols);
    const weight = new QuantizedWeight(scheme, [r, cols], values.viewRange(start * valuesPerRow, part.values), scales.viewRange(start * scalesPerRow, part.scales));
    start += r;
    return weight;
  });
  const fused = new FusedRows(whole, parts);
  for (const part of parts) part.fused = fused;
  return parts;
}

/** A model weight: a plain tensor, or one held quantized. */
export type Weight = Tensor | QuantizedWeight;

/** Bytes a weight holds on its backend. */
export function weightBytes(weight: Weight): number {
  if (weight instanceof QuantizedWeight) return weight.bytes;
  return weight.size * (weight.dtype === "f32" || weight.dtype === "i32" ? 4 : weight.dtype === "i8" ? 1 : 2);
}
