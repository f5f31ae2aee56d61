// Quantized weights: quantize, dequantize, the embedding gather and the matmul, computing what
// src/core/quantize.ts defines (the reference backend runs those definitions as plain loops).
//
//   W [N, K] quantized: values i8 (int8 [N, K]; int4 two per byte [N, K/2]) and scales (int8: f32 SCB
//   [N]; int4: f16 d [N, K/32]); a: f32 [M, K]; out: f32 [M, N]; the embedding table is [V, C].
//   int4 interleaves its rows four at a time, in quads (src/core/quantize.ts): row n's group g is four
//   4-byte words, 4R bytes apart, where R is the number of rows in n's quad (int4Group, int4Scale).
//
// quantize, dequantize and the embedding are bit-identical to the definitions: they do the same f32
// operations (f32 division and multiplication round correctly in WebAssembly, f32x4.nearest rounds
// half to even like roundHalfEven, and i32x4.trunc_sat turns NaN into 0 as storing NaN into an
// Int8Array does). The matmul differs from the reference only in the order of its f32 sums.

import { bf16Low, DTYPE_BF16, DTYPE_F32, f16ToF32, f32ToF16, loadAsF32, madd, partEnd, partStart, Pointer, QUANT_INT4, QUANT_INT8 } from "./common";
import { gemm, matmulWorkspaceBytes, NR } from "./gemm";

/** Inputs per int4 scale and per activation scale (QUANT_GROUP in src/core/quantize.ts). */
const GROUP = 32;

// ---------------------------------------------------------------------------------------------------
// Loading and converting four lanes

/** Four f16 values (the low 16 bits of each i32 lane) as f32x4, exact (f16ToF32 in common.ts, on lanes). */
@inline function f16x4ToF32(h: v128): v128 {
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const magnitude = v128.and(h, i32x4.splat(0x7fff));
  const shifted = i32x4.shl(magnitude, 13);
  // Exponent and mantissa moved into an f32's fields, times 2^112 to rebias the exponent (15 -> 127):
  // exact for normal and subnormal halves. Infinity and NaN keep an all-ones exponent instead.
  const finite = f32x4.mul(shifted, f32x4.splat(5.192296858534828e33));
  const special = v128.or(shifted, i32x4.splat(0x7f800000));
  return v128.or(v128.bitselect(special, finite, i32x4.ge_s(magnitude, i32x4.splat(0x7c00))), sign);
}

/** Elements i..i+3 of an f32 / bf16 / f16 buffer as f32x4. */
@inline function load4AsF32(ptr: usize, dtype: i32, i: usize): v128 {
  if (dtype == DTYPE_F32) return v128.load(ptr + (i << 2));
  if (dtype == DTYPE_BF16) return bf16Low(v128.load64_zero(ptr + (i << 1)));
  return f16x4ToF32(i32x4.extend_low_i16x8_u(v128.load64_zero(ptr + (i << 1))));
}

@inline function horizontalMax(v: v128): f32 {
  return max<f32>(max<f32>(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max<f32>(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/** roundHalfEven(x) clamped to [lo, hi] as i32 lanes; NaN becomes 0 (f32x4.min / max keep NaN, trunc_sat zeroes it). */
@inline function roundClamp(x: v128, lo: f32, hi: f32): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.max(f32x4.min(f32x4.nearest(x), f32x4.splat(hi)), f32x4.splat(lo)));
}

// ---------------------------------------------------------------------------------------------------
// int4's interleaved rows (src/core/quantize.ts, int4ByteOffset and int4ScaleIndex)

/** The rows in row n's quad: 4, or what is left in the last quad. */
@inline function int4QuadRows(rows: i32, n: i32): i32 {
  return min<i32>(4, rows - (n & ~3));
}

/** The address of row n's group g: its first 4-byte word; word v is 4 v R bytes further on. */
@inline function int4Group(values: usize, rows: i32, groups: i32, n: i32, g: i32): usize {
  return values + ((<usize>(n & ~3) * <usize>groups) << 4) + <usize>(g * 16 * int4QuadRows(rows, n) + ((n & 3) << 2));
}

/** The address of row n's group g's f16 scale. */
@inline function int4Scale(scales: usize, rows: i32, groups: i32, n: i32, g: i32): usize {
  return scales + ((<usize>(n & ~3) * <usize>groups + <usize>(g * int4QuadRows(rows, n) + (n & 3))) << 1);
}

/** Row n's group g as one vector: byte i holds elements i (low nibble) and i + 16 (high nibble). */
@inline function loadInt4Group(values: usize, rows: i32, groups: i32, n: i32, g: i32): v128 {
  const p = int4Group(values, rows, groups, n, g), step = <usize>(int4QuadRows(rows, n) << 2);
  const v = v128.load32_lane(p + step, v128.load32_zero(p), 1);
  return v128.load32_lane(p + 3 * step, v128.load32_lane(p + 2 * step, v, 2), 3);
}

/** Store row n's group g (the 16 bytes of loadInt4Group) in its four interleaved words. */
@inline function storeInt4Group(values: usize, rows: i32, groups: i32, n: i32, g: i32, packed: v128): void {
  const p = int4Group(values, rows, groups, n, g), step = <usize>(int4QuadRows(rows, n) << 2);
  v128.store32_lane(p, packed, 0);
  v128.store32_lane(p + step, packed, 1);
  v128.store32_lane(p + 2 * step, packed, 2);
  v128.store32_lane(p + 3 * step, packed, 3);
}

// ---------------------------------------------------------------------------------------------------
// quantize: x [rows, cols] (f32 / bf16 / f16) -> values and scales. Threads split the rows.

export function quantize(x: Pointer, xDType: i32, values: Pointer, scales: Pointer, scheme: i32, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    if (scheme == QUANT_INT8) quantizeRowInt8(x, xDType, values, scales, r, cols);
    else quantizeRowInt4(x, xDType, values, scales, r, rows, cols);
  }
}

/** int8: SCB = max |x| of the row; q = roundHalfEven(x * f32(127 / SCB)), 0 where SCB = 0. */
function quantizeRowInt8(x: usize, dtype: i32, values: usize, scales: usize, r: i32, cols: i32): void {
  const start = <usize>r * <usize>cols, c16 = cols & ~15;
  let m0 = f32x4.splat(0), m1 = f32x4.splat(0);
  for (let c = 0; c < c16; c += 8) {
    // f32x4.max keeps NaN, as Math.max does in the definition.
    m0 = f32x4.max(m0, f32x4.abs(load4AsF32(x, dtype, start + <usize>c)));
    m1 = f32x4.max(m1, f32x4.abs(load4AsF32(x, dtype, start + <usize>c + 4)));
  }
  let absmax = horizontalMax(f32x4.max(m0, m1));
  for (let c = c16; c < cols; c++) absmax = max<f32>(absmax, abs<f32>(loadAsF32(x, dtype, start + <usize>c)));
  store<f32>(scales + (<usize>r << 2), absmax);
  const out = values + start;
  if (absmax == 0) {
    memory.fill(out, 0, <usize>cols);
    return;
  }
  const inverse: f32 = 127 / absmax;
  const scale = f32x4.splat(inverse);
  for (let c = 0; c < c16; c += 16) {
    const i = start + <usize>c;
    const q0 = roundClamp(f32x4.mul(load4AsF32(x, dtype, i), scale), -127, 127);
    const q1 = roundClamp(f32x4.mul(load4AsF32(x, dtype, i + 4), scale), -127, 127);
    const q2 = roundClamp(f32x4.mul(load4AsF32(x, dtype, i + 8), scale), -127, 127);
    const q3 = roundClamp(f32x4.mul(load4AsF32(x, dtype, i + 12), scale), -127, 127);
    v128.store(out + <usize>c, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
  }
  for (let c = c16; c < cols; c++) {
    const q = roundClamp(f32x4.splat(loadAsF32(x, dtype, start + <usize>c) * inverse), -127, 127);
    store<i8>(out + <usize>c, <i8>i32x4.extract_lane(q, 0));
  }
}

/**
 * int4, per group of 32: m = the element of largest magnitude (the first on ties), d = f16(m / -8),
 * q = clamp(roundHalfEven(x / d), -8, 7) (0 where d = 0), stored as q + 8 in nibbles: byte i holds
 * element i low, element i + 16 high.
 */
function quantizeRowInt4(x: usize, dtype: i32, values: usize, scales: usize, r: i32, rows: i32, cols: i32): void {
  const groups = cols / GROUP;
  for (let g = 0; g < groups; g++) {
    const start = <usize>r * <usize>cols + <usize>(g * GROUP);
    const v0 = load4AsF32(x, dtype, start), v1 = load4AsF32(x, dtype, start + 4), v2 = load4AsF32(x, dtype, start + 8), v3 = load4AsF32(x, dtype, start + 12);
    const v4 = load4AsF32(x, dtype, start + 16), v5 = load4AsF32(x, dtype, start + 20), v6 = load4AsF32(x, dtype, start + 24), v7 = load4AsF32(x, dtype, start + 28);
    const a0 = f32x4.abs(v0), a1 = f32x4.abs(v1), a2 = f32x4.abs(v2), a3 = f32x4.abs(v3);
    const a4 = f32x4.abs(v4), a5 = f32x4.abs(v5), a6 = f32x4.abs(v6), a7 = f32x4.abs(v7);
    // pmax(acc, v) keeps acc where v is NaN (acc < NaN is false): NaN never becomes m, as in the
    // definition's strict > test. The accumulators start at 0, so they never hold NaN themselves.
    const zero = f32x4.splat(0);
    let e = f32x4.pmax(f32x4.pmax(f32x4.pmax(f32x4.pmax(zero, a0), a2), a4), a6);
    let o = f32x4.pmax(f32x4.pmax(f32x4.pmax(f32x4.pmax(zero, a1), a3), a5), a7);
    const largest = horizontalMax(f32x4.pmax(e, o));
    let m: f32 = 0; // all zeros (or NaN): m stays 0, as in the definition (not a -0 element)
    if (largest > 0) {
      const l = f32x4.splat(largest);
      const hits = i32x4.bitmask(f32x4.eq(a0, l)) | (i32x4.bitmask(f32x4.eq(a1, l)) << 4) | (i32x4.bitmask(f32x4.eq(a2, l)) << 8) |
        (i32x4.bitmask(f32x4.eq(a3, l)) << 12) | (i32x4.bitmask(f32x4.eq(a4, l)) << 16) | (i32x4.bitmask(f32x4.eq(a5, l)) << 20) |
        (i32x4.bitmask(f32x4.eq(a6, l)) << 24) | (i32x4.bitmask(f32x4.eq(a7, l)) << 28);
      m = loadAsF32(x, dtype, start + <usize>ctz<u32>(hits));
    }
    const bits = f32ToF16(m / -8);
    store<u16>(int4Scale(scales, rows, groups, r, g), <u16>bits);
    const d = f16ToF32(bits);
    if (d == 0) {
      storeInt4Group(values, rows, groups, r, g, i8x16.splat(<i8>0x88)); // q + 8 = 8 in both nibbles
      continue;
    }
    const dv = f32x4.splat(d);
    const low = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(nibbles(v0, dv), nibbles(v1, dv)), i16x8.narrow_i32x4_u(nibbles(v2, dv), nibbles(v3, dv)));
    const high = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(nibbles(v4, dv), nibbles(v5, dv)), i16x8.narrow_i32x4_u(nibbles(v6, dv), nibbles(v7, dv)));
    // high holds 0..15 per byte: shifting its 16-bit lanes left by 4 moves no bit across a byte.
    storeInt4Group(values, rows, groups, r, g, v128.or(low, i16x8.shl(high, 4)));
  }
}

/** q + 8 for four elements: clamp(roundHalfEven(x / d), -8, 7) + 8; 0 where x / d is NaN (the definition's NaN | bits). */
@inline function nibbles(v: v128, d: v128): v128 {
  const ratio = f32x4.div(v, d);
  const q = i32x4.add(roundClamp(ratio, -8, 7), i32x4.splat(8));
  return v128.and(q, f32x4.eq(ratio, ratio));
}

// ---------------------------------------------------------------------------------------------------
// dequantize and the embedding: rows of W as f32, q * scale.

/** out[0 .. cols) = dequant(W)[r, :] of a [rows, cols] W (int4: cols a multiple of 32). */
function dequantizeRow(values: usize, scales: usize, scheme: i32, r: i32, rows: i32, cols: i32, out: usize): void {
  if (scheme == QUANT_INT8) {
    const row = values + <usize>r * <usize>cols;
    const scale: f32 = load<f32>(scales + (<usize>r << 2)) / 127;
    const s = f32x4.splat(scale);
    const c16 = cols & ~15;
    for (let c = 0; c < c16; c += 16) {
      const q = v128.load(row + <usize>c), o = out + (<usize>c << 2);
      const lo = i16x8.extend_low_i8x16_s(q), hi = i16x8.extend_high_i8x16_s(q);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), s));
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), s), 16);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), s), 32);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), s), 48);
    }
    for (let c = c16; c < cols; c++) store<f32>(out + (<usize>c << 2), <f32>load<i8>(row + <usize>c) * scale);
    return;
  }
  const groups = cols / GROUP;
  for (let g = 0; g < groups; g++) dequantizeInt4Group(values, scales, rows, groups, r, g, out + (<usize>g << 7));
}

/** Row r's group g of a [rows, groups * 32] int4 W, dequantized: 32 f32 at o. */
@inline function dequantizeInt4Group(values: usize, scales: usize, rows: i32, groups: i32, r: i32, g: i32, o: usize): void {
  const d = f32x4.splat(f16ToF32(<u32>load<u16>(int4Scale(scales, rows, groups, r, g))));
  const packed = loadInt4Group(values, rows, groups, r, g), eight = i8x16.splat(8), mask = i8x16.splat(15);
  storeInt8AsF32(o, i8x16.sub(v128.and(packed, mask), eight), d);
  storeInt8AsF32(o + 64, i8x16.sub(v128.and(i16x8.shr_u(packed, 4), mask), eight), d);
}

/** Sixteen i8 lanes times `scale`, stored as 16 f32. */
@inline function storeInt8AsF32(o: usize, q: v128, scale: v128): void {
  const lo = i16x8.extend_low_i8x16_s(q), hi = i16x8.extend_high_i8x16_s(q);
  v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), scale));
  v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), scale), 16);
  v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), scale), 32);
  v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), scale), 48);
}

/** out = dequant(W), f32 [rows, cols]. Threads split the rows. */
export function dequantize(values: Pointer, scales: Pointer, out: Pointer, scheme: i32, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) dequantizeRow(values, scales, scheme, r, rows, cols, out + ((<usize>r * <usize>cols) << 2));
}

/**
 * out[t, :] = dequant(table)[ids[t], :]; ids: i32 [N], table [V, C], out: f32 [N, C]. An id out of
 * range makes the kernel return its position + 1 (0 means success), as the embedding kernel does.
 */
export function embeddingQuantized(values: Pointer, scales: Pointer, scheme: i32, ids: Pointer, out: Pointer, count: i32, vocab: i32, dim: i32, tid: i32, threads: i32): i32 {
  const t1 = partEnd(count, tid, threads, 1);
  for (let t = partStart(count, tid, threads, 1); t < t1; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    if (id < 0 || id >= vocab) return t + 1;
    dequantizeRow(values, scales, scheme, id, vocab, dim, out + ((<usize>t * <usize>dim) << 2));
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Activations quantized per block of 32 (the x of x W^T):
//   s = f32(max|x| / 127),  qx = roundHalfEven(x * f32(127 / max|x|))  (0 where max|x| = 0).

/** Block [p, end) of the row at x: its max |x| (NaN if it holds one, as Math.max gives). */
@inline function blockAbsmax(x: usize, p: i32, end: i32): f32 {
  let absmax: f32 = 0;
  if (end - p == GROUP) {
    const xp = x + (<usize>p << 2);
    const m0 = f32x4.max(f32x4.max(f32x4.abs(v128.load(xp)), f32x4.abs(v128.load(xp, 16))), f32x4.max(f32x4.abs(v128.load(xp, 32)), f32x4.abs(v128.load(xp, 48))));
    const m1 = f32x4.max(f32x4.max(f32x4.abs(v128.load(xp, 64)), f32x4.abs(v128.load(xp, 80))), f32x4.max(f32x4.abs(v128.load(xp, 96)), f32x4.abs(v128.load(xp, 112))));
    absmax = horizontalMax(f32x4.max(f32x4.max(m0, m1), f32x4.splat(0)));
  } else {
    for (let i = p; i < end; i++) absmax = max<f32>(absmax, abs<f32>(load<f32>(x + (<usize>i << 2))));
  }
  return absmax;
}

/**
 * Row x (k floats) quantized into q16 (i16, k rounded up to 32, zero-padded; int8 in its GEMV's order,
 * int8Slot), q8 (i8, the same, in order),
 * per-block scales s (f32) and, for int4, per-block corrections (8 sum(qx) as two i16 values, splat to eight lanes by the GEMV, see
 * below: the int4 GEMV multiplies by the stored nibbles q + 8 and takes the 8 sum(qx) back off).
 */
function quantizeActivationRow(x: usize, k: i32, q16: usize, q8: usize, s: usize, corrections: usize, scheme: i32): void {
  // int8 reads the i16 values; int4 the i8 ones and the corrections (and the i16 ones in the plain build).
  const wide = scheme == QUANT_INT8 || !ASC_FEATURE_RELAXED_SIMD, int4 = scheme == QUANT_INT4;
  const blocks = (k + GROUP - 1) / GROUP;
  for (let b = 0; b < blocks; b++) {
    const p = b * GROUP, end = min<i32>(k, p + GROUP);
    if (end - p == GROUP && quantizeFullBlock(x + (<usize>p << 2), q16 + (<usize>p << 1), q8 + <usize>p, s + (<usize>b << 2), corrections + <usize>b * CORRECTION_BYTES, wide, int4)) continue;
    const absmax = blockAbsmax(x, p, end);
    const zero = absmax == 0;
    store<f32>(s + (<usize>b << 2), zero ? 0 : absmax / 127);
    const inverse = f32x4.splat(zero ? 0 : 127 / absmax);
    let sum = i32x4.splat(0);
    // Lanes past the row's end (in its last block) are 0, so the block is always 32 wide.
    for (let i = p; i < p + GROUP; i += 8) {
      let v0: v128, v1: v128;
      if (i + 8 <= end) {
        v0 = v128.load(x + (<usize>i << 2));
        v1 = v128.load(x + (<usize>i << 2), 16);
      } else {
        v0 = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(at(x, i, end)), 1, at(x, i + 1, end)), 2, at(x, i + 2, end)), 3, at(x, i + 3, end));
        v1 = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(at(x, i + 4, end)), 1, at(x, i + 5, end)), 2, at(x, i + 6, end)), 3, at(x, i + 7, end));
      }
      const q0 = roundClamp(f32x4.mul(v0, inverse), -127, 127), q1 = roundClamp(f32x4.mul(v1, inverse), -127, 127);
      sum = storeQuantized(q0, q1, q16 + (<usize>i << 1), q8 + <usize>i, sum, wide, int4, i);
    }
    if (int4) store<i32>(corrections + <usize>b * CORRECTION_BYTES, int4Correction(sum));
  }
}

/**
 * Eight activations' integers q0, q1 (i32 lanes), positions i .. i + 7 of their row, stored as i16 at
 * q16 and / or i8 at q8; returns sum + their lanes. int8 stores its i16 values in the order its GEMV
 * multiplies them (dotInt8): position i + j's value goes int8Slot(i + j) bytes into the row (q16 points
 * where position i would be in position order; i is a multiple of 8).
 */
@inline function storeQuantized(q0: v128, q1: v128, q16: usize, q8: usize, sum: v128, wide: bool, int4: bool, i: i32): v128 {
  if (wide && !int4) {
    // int8 (the only scheme that is wide and not int4): its own order, nothing else stored.
    const even = v128.shuffle<i32>(q0, q1, 0, 2, 4, 6), odd = i32x4.shl(v128.shuffle<i32>(q0, q1, 1, 3, 5, 7), 8);
    // The 16-position run's even slots start at q16 - 2 (i & 8); these four at q16 - (i & 8).
    const both = i16x8.narrow_i32x4_s(even, odd), half = q16 - <usize>(i & 8);
    v128.store64_lane(half, both, 0);
    v128.store64_lane(half + 16, both, 1);
  } else {
    const q = i16x8.narrow_i32x4_s(q0, q1);
    if (wide) v128.store(q16, q);
    if (int4) v128.store64_lane(q8, i8x16.narrow_i16x8_s(q, q), 0);
  }
  return i32x4.add(sum, i32x4.add(q0, q1));
}

/**
 * Byte offset of position p's i16 value in an int8 activation row (storeQuantized): each run of 16
 * positions takes 32 bytes, its 8 even positions' values first and then its 8 odd ones' (times 256).
 */
@inline function int8Slot(p: i32): usize {
  return (<usize>(p & ~15) << 1) + (<usize>(p & 1) << 4) + (<usize>((p & 15) >> 1) << 1);
}

/**
 * A block's int4 correction from `sum`, whose lane j holds the block's qx at positions with (position
 * mod 4) = j. The int4 GEMV's i16 lanes 2r and 2r+1 sum the products at positions mod 4 in {0, 1} and
 * {2, 3} (gemvInt4), so its correction is 8 times those two sums, alternating, as two i16 values.
 */
@inline function int4Correction(sum: v128): i32 {
  const even = 8 * (i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1)), odd = 8 * (i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3));
  return (even & 0xffff) | (odd << 16);
}

/**
 * quantizeActivationRow's work for a whole block of 32 at xp whose largest magnitude is finite, nonzero
 * and at least 127 / FLT_MAX (so 127 / max|x| is finite): the common case, without the min / max / trunc_sat
 * that guard the others (each several x86 instructions for wasm's NaN rules). Returns false, having
 * written nothing, for any other block. The same bits as the general path:
 *  - max|x| as the largest of the magnitudes' bit patterns (sign cleared: for finite floats, integer
 *    order is float order), one integer max per vector;
 *  - |x * f32(127 / max|x|)| <= 127 (1 + 2^-23), so no clamp can act, and adding 1.5 x 2^23 rounds it
 *    to an integer half to even (the sum lies in [2^23, 2^24), where f32's step is 1): the integer is
 *    the sum's bits less those of 1.5 x 2^23.
 */
@inline function quantizeFullBlock(xp: usize, q16: usize, q8: usize, s: usize, correction: usize, wide: bool, int4: bool): bool {
  const magnitude = i32x4.splat(0x7fffffff);
  const m0 = i32x4.max_u(i32x4.max_u(v128.and(v128.load(xp), magnitude), v128.and(v128.load(xp, 16), magnitude)), i32x4.max_u(v128.and(v128.load(xp, 32), magnitude), v128.and(v128.load(xp, 48), magnitude)));
  const m1 = i32x4.max_u(i32x4.max_u(v128.and(v128.load(xp, 64), magnitude), v128.and(v128.load(xp, 80), magnitude)), i32x4.max_u(v128.and(v128.load(xp, 96), magnitude), v128.and(v128.load(xp, 112), magnitude)));
  const m = i32x4.max_u(m0, m1);
  const bits = max<u32>(max<u32>(i32x4.extract_lane(m, 0), i32x4.extract_lane(m, 1)), max<u32>(i32x4.extract_lane(m, 2), i32x4.extract_lane(m, 3)));
  if (bits == 0 || bits >= 0x7f800000) return false; // zero, or an infinity / NaN in the block
  const absmax = reinterpret<f32>(bits), inverse: f32 = 127 / absmax;
  if (!(inverse < Infinity)) return false; // max|x| below 127 / FLT_MAX
  store<f32>(s, absmax / 127);
  const inv = f32x4.splat(inverse), magic = f32x4.splat(12582912), magicBits = i32x4.splat(0x4b400000);
  let sum = i32x4.splat(0);
  for (let i = 0; i < GROUP; i += 8) {
    const xi = xp + (<usize>i << 2);
    const q0 = i32x4.sub(f32x4.add(f32x4.mul(v128.load(xi), inv), magic), magicBits);
    const q1 = i32x4.sub(f32x4.add(f32x4.mul(v128.load(xi, 16), inv), magic), magicBits);
    sum = storeQuantized(q0, q1, q16 + (<usize>i << 1), q8 + <usize>i, sum, wide, int4, i);
  }
  if (int4) store<i32>(correction, int4Correction(sum));
  return true;
}

/** x[i], or 0 past the row's end. */
@inline function at(x: usize, i: i32, end: i32): f32 {
  return i < end ? load<f32>(x + (<usize>i << 2)) : 0;
}

/** Rows [i0, i0 + mc), columns [p0, p0 + kc) of a [M, K] quantized and dequantized (qx * s) into dst [mc, kc]. */
export function quantizeDequantizeRows(dst: usize, a: usize, k: i32, i0: i32, mc: i32, p0: i32, kc: i32): void {
  for (let r = 0; r < mc; r++) {
    const x = a + ((<usize>(i0 + r) * <usize>k) << 2), o = dst + ((<usize>r * <usize>kc) << 2);
    for (let p = p0; p < p0 + kc; p += GROUP) {
      const end = min<i32>(k, p + GROUP);
      const absmax = blockAbsmax(x, p, end);
      const zero = absmax == 0;
      const scale: f32 = zero ? 0 : absmax / 127, inverse: f32 = zero ? 0 : 127 / absmax;
      const sv = f32x4.splat(scale), iv = f32x4.splat(inverse);
      let i = p;
      for (; i + 4 <= end; i += 4) {
        const q = roundClamp(f32x4.mul(v128.load(x + (<usize>i << 2)), iv), -127, 127);
        v128.store(o + (<usize>(i - p0) << 2), f32x4.mul(f32x4.convert_i32x4_s(q), sv));
      }
      for (; i < end; i++) {
        const q = roundClamp(f32x4.splat(load<f32>(x + (<usize>i << 2)) * inverse), -127, 127);
        store<f32>(o + (<usize>(i - p0) << 2), <f32>i32x4.extract_lane(q, 0) * scale);
      }
    }
  }
}

/** Rows [j0, j0 + rows), columns [p0, p0 + kc) of dequant(W) (W [n, k]) into dst [rows, kc] (p0 a multiple of 32). */
export function dequantizeRows(dst: usize, values: usize, scales: usize, scheme: i32, k: i32, n: i32, j0: i32, rows: i32, p0: i32, kc: i32): void {
  for (let r = 0; r < rows; r++) {
    const o = dst + ((<usize>r * <usize>kc) << 2), j = j0 + r;
    if (scheme == QUANT_INT8) {
      const row = values + <usize>j * <usize>k + <usize>p0;
      const scale: f32 = load<f32>(scales + (<usize>j << 2)) / 127;
      const s = f32x4.splat(scale);
      let c = 0;
      for (; c + 16 <= kc; c += 16) storeInt8AsF32(o + (<usize>c << 2), v128.load(row + <usize>c), s);
      for (; c < kc; c++) store<f32>(o + (<usize>c << 2), <f32>load<i8>(row + <usize>c) * scale);
    } else {
      const groups = k / GROUP;
      for (let g = p0 / GROUP; g < (p0 + kc) / GROUP; g++) dequantizeInt4Group(values, scales, n, groups, j, g, o + (<usize>(g * GROUP - p0) << 2));
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// matmulQuantized: out [M, N] = Qx(a) dequant(W)^T.
//
// Up to GEMV_MAX_ROWS rows of a take the GEMV: each thread quantizes a's rows into its workspace once,
// then streams its share of W's rows once, with integer dot products per block of 32 (no float work
// per weight). More rows take the packed GEMM of gemm.ts, whose packing dequantizes W to f32 and
// quantizes-then-dequantizes a (qx * s): the same products, summed in f32.

/**
 * The most rows of a the GEMV takes. Its time grows with each row (each re-reads the weights from the
 * cache and repeats the integer work); the GEMM's is dominated up to a few dozen rows by dequantizing
 * all of W while packing. The GEMV stays ahead through 24 rows for both schemes on OLMo-1B's shapes
 * (bench/quantized.ts, bench/NOTES.md).
 */
const GEMV_MAX_ROWS = 32;

/**
 * Bytes of a per-block int4 correction in the workspace: the two i16 values of 8 sum(qx) (even, odd
 * lane pairs, quantizeActivationRow), splat-loaded into eight lanes by the GEMV. Four bytes, not the
 * sixteen of a whole vector: K 8192's activations then stay nearer L1 (the down projection ran 2-4% faster).
 */
const CORRECTION_BYTES: usize = 4;

/**
 * Bytes of a thread's workspace the GEMV's quantized activations take (gemvQuantized): per row i16 and
 * i8 values and the block scales, and int4's corrections.
 */
@inline function gemvWorkspaceBytes(m: i32, k: i32, scheme: i32): usize {
  const blocks = <usize>((k + GROUP - 1) / GROUP);
  const correction: usize = scheme == QUANT_INT4 ? CORRECTION_BYTES : <usize>0;
  return <usize>m * (blocks * GROUP * 3 + blocks * (4 + correction));
}

export function matmulQuantized(
  a: Pointer, values: Pointer, scales: Pointer, out: Pointer, scheme: i32, m: i32, k: i32, n: i32, finiteScales: i32, workspace: Pointer, tid: i32, threads: i32,
): void {
  const ws = workspace + <usize>tid * matmulWorkspaceBytes();
  if (m <= GEMV_MAX_ROWS && gemvWorkspaceBytes(m, k, scheme) <= matmulWorkspaceBytes()) {
    // int4's rows are interleaved four at a time, so its threads split whole quads.
    const align = scheme == QUANT_INT4 ? 4 : 1;
    const n0 = partStart(n, tid, threads, align), n1 = partEnd(n, tid, threads, align);
    if (n0 < n1) gemvQuantized(a, values, scales, out, scheme, m, k, n, finiteScales, n0, n1, ws);
  } else {
    const n0 = partStart(n, tid, threads, NR), n1 = partEnd(n, tid, threads, NR);
    if (n0 < n1) gemm(a, values, DTYPE_F32, out, m, k, n, false, true, n0, n1, ws, scales, scheme);
  }
}

@inline function horizontalSum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/**
 * Columns [n0, n1) of out [M, N] for M <= GEMV_MAX_ROWS. Four weight rows (int8) or four quads of four
 * rows (int4) are read side by side from the four quarters of [n0, n1): four sequential streams far
 * apart in memory, which one core reads faster than one stream (bench/NOTES.md; gemvRows in gemv.ts
 * does the same). The rows of a after the first read the weights again from the cache.
 */
function gemvQuantized(
  a: usize, values: usize, scales: usize, out: usize, scheme: i32, m: i32, k: i32, n: i32, finiteScales: i32, n0: i32, n1: i32, ws: usize,
): void {
  const blocks = (k + GROUP - 1) / GROUP, kp = blocks * GROUP;
  // Workspace: per row of a, qx as i16 [kp] (int8: in int8Slot order, odd positions times 256) and i8 [kp],
  // s [blocks] and int4's corrections [blocks].
  const q16 = ws, q8 = q16 + <usize>m * <usize>kp * 2, sv = q8 + <usize>m * <usize>kp;
  const corr = sv + <usize>m * <usize>blocks * 4;
  for (let i = 0; i < m; i++) {
    const s = sv + <usize>i * <usize>blocks * 4, c = corr + <usize>i * <usize>blocks * CORRECTION_BYTES;
    quantizeActivationRow(a + ((<usize>i * <usize>k) << 2), k, q16 + <usize>i * <usize>kp * 2, q8 + <usize>i * <usize>kp, s, c, scheme);
  }
  if (scheme == QUANT_INT4) {
    const quadsExact = finiteScales != 0 && activationScalesSmall(sv, m * blocks);
    gemvInt4(values, scales, out, m, k, n, n0, n1, q8, q16, sv, corr, quadsExact);
    return;
  }
  // Each thread folds its own copy of the scales (the workspace is per thread).
  if (foldInt8Scales(sv, m * blocks)) gemvInt8(values, scales, out, m, k, n, n0, n1, q16, sv, true);
  else gemvInt8(values, scales, out, m, k, n, n0, n1, q16, sv, false);
}

/**
 * int8's dots come 256 times too large (dotInt8). Where every block scale s of a is 0, infinite, NaN or
 * at least 2^-118, s 2^-8 is exact, and a block's term (256 dot)(s 2^-8) is the real number dot s,
 * rounded once as the definition's is: the scales are multiplied by 2^-8 in place and true is returned.
 * Otherwise (some block of a whose largest |x| is below 127 x 2^-118, about 4e-34) they stay, and the
 * GEMV divides each block's dot by 256 (an exact shift) before scaling it: the same results either way.
 */
function foldInt8Scales(s: usize, count: i32): bool {
  for (let b = 0; b < count; b++) {
    const scale = load<f32>(s + (<usize>b << 2));
    if (scale > 0 && scale < INT8_FOLD_MIN) return false;
  }
  for (let b = 0; b < count; b++) store<f32>(s + (<usize>b << 2), load<f32>(s + (<usize>b << 2)) * <f32>0.00390625);
  return true;
}

/** 2^-118: the smallest scale s whose s 2^-8 is a normal float (foldInt8Scales). */
const INT8_FOLD_MIN: f32 = 3.009265538105056e-36;

/** int8's GEMV: columns [n0, n1) of out for the m rows of a quantized at q16 / sv; `folded`: foldInt8Scales's answer (a constant at each call). */
@inline function gemvInt8(values: usize, scales: usize, out: usize, m: i32, k: i32, n: i32, n0: i32, n1: i32, q16: usize, sv: usize, folded: bool): void {
  const blocks = (k + GROUP - 1) / GROUP, kp = blocks * GROUP;
  const quarter = (n1 - n0) >> 2;
  for (let t = 0; t < quarter; t++) {
    const j0 = n0 + t, j1 = j0 + quarter, j2 = j1 + quarter, j3 = j2 + quarter;
    for (let i = 0; i < m; i++) {
      const x16 = q16 + <usize>i * <usize>kp * 2, s = sv + <usize>i * <usize>blocks * 4, o = out + ((<usize>i * <usize>n) << 2);
      gemvInt8Rows4(values, scales, x16, s, k, j0, j1, j2, j3, o, folded);
    }
  }
  // The rows the quarters left over, one at a time.
  for (let j = n0 + 4 * quarter; j < n1; j++) {
    for (let i = 0; i < m; i++) {
      const x16 = q16 + <usize>i * <usize>kp * 2, s = sv + <usize>i * <usize>blocks * 4;
      store<f32>(out + ((<usize>i * <usize>n + <usize>j) << 2), gemvInt8Row(values, scales, x16, s, k, j, folded));
    }
  }
}

/**
 * int8: 256 times the integer dot (as i32x4 partial sums) of 32 weights at w with 32 activations at x
 * (i16, in int8Slot order). A vector of 16 weights as eight i16 lanes holds an even weight in each
 * lane's low byte and an odd one in its high byte: shifting left by 8 gives the even weights times 256,
 * shifting right (arithmetic) by 8 the odd weights, one instruction each where sign-extending both
 * halves takes three. The activations come ordered to match, the odd positions' times 256, so every
 * product is 256 w qx: at most 2^15 * 127 a product and 2^8 * 32 * 128 * 127 < 2^31 a block, and exact
 * in f32 (the dot has at most 20 significant bits). The block scales carry the 2^-8 back
 * (foldInt8Scales).
 */
@inline function dotInt8(w: usize, x: usize): v128 {
  const lo = v128.load(w), hi = v128.load(w, 16);
  const d0 = i32x4.dot_i16x8_s(i16x8.shl(lo, 8), v128.load(x));
  const d1 = i32x4.dot_i16x8_s(i16x8.shr_s(lo, 8), v128.load(x, 16));
  const d2 = i32x4.dot_i16x8_s(i16x8.shl(hi, 8), v128.load(x, 32));
  const d3 = i32x4.dot_i16x8_s(i16x8.shr_s(hi, 8), v128.load(x, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

/**
 * A block's dot from dotInt8 or tailDotInt8 (256 times the integer dot), as the scales at hand expect it:
 * as it is where they were folded (foldInt8Scales), else divided by 256 (exact: every lane is a multiple).
 */
@inline function blockDot(dot256: v128, folded: bool): v128 {
  return folded ? dot256 : i32x4.shr_s(dot256, 8);
}

/**
 * int8: out[j] for rows j0..j3: per block, f32(integer dot) * s_b accumulated; times SCB / 127 at the
 * end. `folded`: the scales s carry 2^-8 (foldInt8Scales; a constant at each call site).
 */
@inline function gemvInt8Rows4(values: usize, scales: usize, x16: usize, s: usize, k: i32, j0: i32, j1: i32, j2: i32, j3: i32, o: usize, folded: bool): void {
  const r0 = values + <usize>j0 * <usize>k, r1 = values + <usize>j1 * <usize>k, r2 = values + <usize>j2 * <usize>k, r3 = values + <usize>j3 * <usize>k;
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
  const k32 = k & ~(GROUP - 1);
  for (let p = 0; p < k32; p += GROUP) {
    const xp = x16 + (<usize>p << 1), sb = v128.load32_splat(s + (<usize>(p >> 5) << 2)), wp = <usize>p;
    f0 = madd(f32x4.convert_i32x4_s(blockDot(dotInt8(r0 + wp, xp), folded)), sb, f0);
    f1 = madd(f32x4.convert_i32x4_s(blockDot(dotInt8(r1 + wp, xp), folded)), sb, f1);
    f2 = madd(f32x4.convert_i32x4_s(blockDot(dotInt8(r2 + wp, xp), folded)), sb, f2);
    f3 = madd(f32x4.convert_i32x4_s(blockDot(dotInt8(r3 + wp, xp), folded)), sb, f3);
  }
  let s0 = horizontalSum(f0), s1 = horizontalSum(f1), s2 = horizontalSum(f2), s3 = horizontalSum(f3);
  if (k32 < k) {
    const sb = load<f32>(s + (<usize>(k32 >> 5) << 2));
    s0 += <f32>tailDotInt8(r0, x16, k32, k, folded) * sb;
    s1 += <f32>tailDotInt8(r1, x16, k32, k, folded) * sb;
    s2 += <f32>tailDotInt8(r2, x16, k32, k, folded) * sb;
    s3 += <f32>tailDotInt8(r3, x16, k32, k, folded) * sb;
  }
  store<f32>(o + (<usize>j0 << 2), s0 * (load<f32>(scales + (<usize>j0 << 2)) / 127));
  store<f32>(o + (<usize>j1 << 2), s1 * (load<f32>(scales + (<usize>j1 << 2)) / 127));
  store<f32>(o + (<usize>j2 << 2), s2 * (load<f32>(scales + (<usize>j2 << 2)) / 127));
  store<f32>(o + (<usize>j3 << 2), s3 * (load<f32>(scales + (<usize>j3 << 2)) / 127));
}

/** The integer dot of a row's weights [p0, k) (a last, partial block) with qx, times 256 where `folded` (as dotInt8 gives it). */
@inline function tailDotInt8(row: usize, x16: usize, p0: i32, k: i32, folded: bool): i32 {
  let dot = 0;
  // Even positions' weights times 256, as dotInt8's shift left gives them; the odd positions' qx carry the 256.
  for (let p = p0; p < k; p++) dot += (<i32>load<i8>(row + <usize>p) << (8 - ((p & 1) << 3))) * <i32>load<i16>(x16 + int8Slot(p));
  return folded ? dot : dot >> 8;
}

@inline function gemvInt8Row(values: usize, scales: usize, x16: usize, s: usize, k: i32, j: i32, folded: bool): f32 {
  const row = values + <usize>j * <usize>k, k32 = k & ~(GROUP - 1);
  let f = f32x4.splat(0);
  for (let p = 0; p < k32; p += GROUP) {
    f = madd(f32x4.convert_i32x4_s(blockDot(dotInt8(row + <usize>p, x16 + (<usize>p << 1)), folded)), v128.load32_splat(s + (<usize>(p >> 5) << 2)), f);
  }
  let sum = horizontalSum(f);
  if (k32 < k) sum += <f32>tailDotInt8(row, x16, k32, k, folded) * load<f32>(s + (<usize>(k32 >> 5) << 2));
  return sum * (load<f32>(scales + (<usize>j << 2)) / 127);
}

// ---------------------------------------------------------------------------------------------------
// The int4 GEMV. A quad (four rows interleaved, src/core/quantize.ts) keeps each group as four vectors
// (16 bytes each); vector v holds bytes 4v..4v+3 of each row's group in lanes 4r..4r+3, so its low
// nibbles are elements 4v..4v+3 of every row and its high nibbles elements 16+4v..16+4v+3. Multiplied
// by those four activations repeated four times (one 4-byte splat load), one i8 dot product leaves
// row r's sums in i16 lanes 2r and 2r+1: the group's eight dot products (16 integer products in each
// i16 lane) add up lane by lane, and one pairwise widening gives the four rows' dots in the four i32
// lanes. Scaling then takes one multiply-add per group for four rows (the four rows' f16 scales are
// side by side too).

/**
 * Four f16 scales at ptr as f32x4, times 2^-112 exactly, for finite halves only (an infinity or NaN
 * comes out finite, with magnitude 2^-96 or more: gemvInt4 calls it only for weights whose scales are
 * all finite). Each half goes to the top of an i32 lane (one interleave with zeros), an arithmetic
 * shift by 3 lines its exponent and mantissa up with an f32's and the mask clears the three copies of
 * the sign it made: the f32 read from those bits is the half times 2^-112, exactly (normal or
 * subnormal). gemvInt4Quads multiplies the activation scale by 2^112 instead (ACTIVATION_SCALE_LIMIT).
 */
@inline function finiteF16x4Times2ToMinus112(ptr: usize): v128 {
  const top = v128.shuffle<i16>(i16x8.splat(0), v128.load64_zero(ptr), 0, 8, 1, 9, 2, 10, 3, 11);
  return v128.and(i32x4.shr_s(top, 3), i32x4.splat(0x8fffffff));
}

/** 2^112: what finiteF16x4Times2ToMinus112 leaves out, folded into the activation scale. */
const TWO_TO_112: f32 = 5.192296858534828e33;

/**
 * The activation scales gemvInt4Quads takes (s * 2^112 stays finite and exact below it). For each
 * group it then computes (d 2^-112) (s 2^112), both factors exact: the same real number d s as the
 * definition's d * s, rounded once to f32 as that is, so the products are bit-identical. A call where
 * any row of a has a scale this large (|x| >= 2^16 * 127), or a NaN or infinite one, computes all its
 * rows with gemvInt4Row.
 */
const ACTIVATION_SCALE_LIMIT: f32 = 65536;

/** Whether every one of the `count` activation scales at s is below ACTIVATION_SCALE_LIMIT (NaN is not). */
function activationScalesSmall(s: usize, count: i32): bool {
  for (let g = 0; g < count; g++) if (!(load<f32>(s + (<usize>g << 2)) < ACTIVATION_SCALE_LIMIT)) return false;
  return true;
}

/**
 * int4, relaxed build: the four rows' integer dots of one group of a full quad (64 bytes at w), as
 * i32x4, correction included. The stored nibbles (q + 8, 0..15) are valid 7-bit operands of
 * relaxed_dot_i8x16_i7x16 (its second operand). An i16 lane sums 16 products of at most 15 * 127
 * in magnitude (30480, within i16); subtracting c (the group's correction, 8 sum(qx) split over the
 * lanes as the products are, quantizeActivationRow) leaves the lane's sum of q qx with |q| <= 8, at
 * most 16256: the subtraction may wrap on the way, but its result fits, so the lane ends exact.
 *
 * Workaround: i32x4.relaxed_dot_i8x16_i7x16_add_s, the one-instruction form (with AVX-VNNI) of a
 * product and the widening, returns twice the dot and drops the addend under Node 20 (V8 11.3), so
 * the i16x8 form is used.
 */
@inline function dotInt4QuadRelaxed(w: usize, x8: usize, c: usize): v128 {
  const mask = i8x16.splat(15);
  const p0 = v128.load(w), p1 = v128.load(w, 16), p2 = v128.load(w, 32), p3 = v128.load(w, 48);
  let acc = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8), v128.and(p0, mask));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 16), v128.and(i16x8.shr_u(p0, 4), mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 4), v128.and(p1, mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 20), v128.and(i16x8.shr_u(p1, 4), mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 8), v128.and(p2, mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 24), v128.and(i16x8.shr_u(p2, 4), mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 12), v128.and(p3, mask)));
  acc = i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x8, 28), v128.and(i16x8.shr_u(p3, 4), mask)));
  return i32x4.extadd_pairwise_i16x8_s(i16x8.sub(acc, v128.load32_splat(c)));
}

/**
 * int4, plain build: the same dots, nibbles and activations (x16, i16) widened: each half vector of
 * nibbles is two rows, and i32x4.dot_i16x8_s against the four activations repeated twice (one 8-byte
 * splat load) leaves each row's sums in two i32 lanes.
 */
@inline function dotInt4QuadPlain(w: usize, x16: usize, c: usize): v128 {
  const mask = i8x16.splat(15);
  let rows01 = i32x4.splat(0), rows23 = i32x4.splat(0);
  for (let v = 0; v < 4; v++) {
    const packed = v128.load(w + (<usize>v << 4)), lo = v128.and(packed, mask), hi = v128.and(i16x8.shr_u(packed, 4), mask);
    const xlo = v128.load64_splat(x16 + (<usize>v << 3)), xhi = v128.load64_splat(x16 + 32 + (<usize>v << 3));
    rows01 = i32x4.add(rows01, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), xlo), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), xhi)));
    rows23 = i32x4.add(rows23, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), xlo), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), xhi)));
  }
  const dots = i32x4.add(v128.shuffle<i32>(rows01, rows23, 0, 2, 4, 6), v128.shuffle<i32>(rows01, rows23, 1, 3, 5, 7));
  return i32x4.sub(dots, i32x4.extadd_pairwise_i16x8_s(v128.load32_splat(c)));
}

@inline function dotInt4Quad(w: usize, x8: usize, x16: usize, c: usize): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? dotInt4QuadRelaxed(w, x8, c) : dotInt4QuadPlain(w, x16, c);
}

/**
 * int4: out[i, n0..n1) for every row i of a. Whole quads, four at a time from the four quarters of the
 * range (four streams); then the quads the quarters left; then a last quad of fewer than four rows
 * (only where N is not a multiple of 4), row by row. Where the quads' arithmetic would not be exact
 * (quadsExact false), every row is computed by gemvInt4Row: exact, and slower. That is where some scale
 * of the weight is an infinity or a NaN, which finiteF16x4Times2ToMinus112 gets wrong (a group whose
 * largest magnitude passes 8 x 65504 overflows its f16 scale; the host knows which weights have one,
 * src/backends/wasm/index.ts: checking each group's scales in the quads' loop cost 8-20%), or where
 * some activation scale reaches ACTIVATION_SCALE_LIMIT.
 */
function gemvInt4(
  values: usize, scales: usize, out: usize, m: i32, k: i32, n: i32, n0: i32, n1: i32, q8: usize, q16: usize, sv: usize, corr: usize, quadsExact: bool,
): void {
  const quad0 = n0 >> 2, quad1 = quadsExact ? n1 >> 2 : quad0, quarter = (quad1 - quad0) >> 2;
  for (let t = 0; t < quarter; t++) {
    const u = quad0 + t;
    for (let i = 0; i < m; i++) gemvInt4Quads(values, scales, out, k, n, i, q8, q16, sv, corr, u, u + quarter, u + 2 * quarter, u + 3 * quarter, 4);
  }
  for (let u = quad0 + 4 * quarter; u < quad1; u++) {
    for (let i = 0; i < m; i++) gemvInt4Quads(values, scales, out, k, n, i, q8, q16, sv, corr, u, u, u, u, 1);
  }
  for (let j = quad1 << 2; j < n1; j++) {
    for (let i = 0; i < m; i++) store<f32>(out + ((<usize>i * <usize>n + <usize>j) << 2), gemvInt4Row(values, scales, k, n, i, q8, sv, corr, j));
  }
}

/** int4: out[i, rows of quads ua..ud] for row i of a (count 4: four quads; count 1: quad ua alone), where gemvInt4's quadsExact holds. */
@inline function gemvInt4Quads(
  values: usize, scales: usize, out: usize, k: i32, n: i32, i: i32, q8: usize, q16: usize, sv: usize, corr: usize,
  ua: i32, ub: i32, uc: i32, ud: i32, count: i32,
): void {
  const groups = k / GROUP, kp = groups * GROUP;
  const x8 = q8 + <usize>i * <usize>kp, x16 = q16 + <usize>i * <usize>kp * 2, s = sv + <usize>i * <usize>groups * 4;
  const c = corr + <usize>i * <usize>groups * CORRECTION_BYTES;
  // A quad is 64 bytes of values and 8 bytes of scales (four f16) per group. The pointers step through
  // the groups (V8 recomputes products of loop invariants every iteration).
  let wa = values + <usize>ua * <usize>groups * 64, wb = values + <usize>ub * <usize>groups * 64;
  let wc = values + <usize>uc * <usize>groups * 64, wd = values + <usize>ud * <usize>groups * 64;
  let da = scales + <usize>ua * <usize>groups * 8, db = scales + <usize>ub * <usize>groups * 8;
  let dc = scales + <usize>uc * <usize>groups * 8, dd = scales + <usize>ud * <usize>groups * 8;
  let xg8 = x8, xg16 = x16, cg = c, sg = s;
  let fa = f32x4.splat(0), fb = f32x4.splat(0), fc = f32x4.splat(0), fd = f32x4.splat(0);
  const end = x8 + (<usize>groups << 5);
  while (xg8 < end) {
    const sx = f32x4.mul(v128.load32_splat(sg), f32x4.splat(TWO_TO_112)); // the group's activation scale, times 2^112
    fa = madd(f32x4.convert_i32x4_s(dotInt4Quad(wa, xg8, xg16, cg)), f32x4.mul(finiteF16x4Times2ToMinus112(da), sx), fa);
    if (count == 4) {
      fb = madd(f32x4.convert_i32x4_s(dotInt4Quad(wb, xg8, xg16, cg)), f32x4.mul(finiteF16x4Times2ToMinus112(db), sx), fb);
      fc = madd(f32x4.convert_i32x4_s(dotInt4Quad(wc, xg8, xg16, cg)), f32x4.mul(finiteF16x4Times2ToMinus112(dc), sx), fc);
      fd = madd(f32x4.convert_i32x4_s(dotInt4Quad(wd, xg8, xg16, cg)), f32x4.mul(finiteF16x4Times2ToMinus112(dd), sx), fd);
      wb += 64, wc += 64, wd += 64, db += 8, dc += 8, dd += 8;
    }
    wa += 64, da += 8, xg8 += 32, xg16 += 64, cg += CORRECTION_BYTES, sg += 4;
  }
  const o = out + ((<usize>i * <usize>n) << 2);
  v128.store(o + (<usize>ua << 4), fa);
  if (count == 4) {
    v128.store(o + (<usize>ub << 4), fb);
    v128.store(o + (<usize>uc << 4), fc);
    v128.store(o + (<usize>ud << 4), fd);
  }
}

/** int4: out[i, j] alone, any row j (of a full quad or not), each group's d converted exactly. */
function gemvInt4Row(values: usize, scales: usize, k: i32, n: i32, i: i32, q8: usize, sv: usize, corr: usize, j: i32): f32 {
  const groups = k / GROUP, kp = groups * GROUP;
  const x8 = q8 + <usize>i * <usize>kp, s = sv + <usize>i * <usize>groups * 4;
  const c = corr + <usize>i * <usize>groups * CORRECTION_BYTES;
  let sum: f32 = 0;
  for (let g = 0; g < groups; g++) {
    const packed = loadInt4Group(values, n, groups, j, g), mask = i8x16.splat(15);
    const lo = v128.and(packed, mask), hi = v128.and(i16x8.shr_u(packed, 4), mask);
    const xlo = v128.load(x8 + (<usize>g << 5)), xhi = v128.load(x8 + (<usize>g << 5), 16);
    const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), i16x8.extend_low_i8x16_s(xlo));
    const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), i16x8.extend_high_i8x16_s(xlo));
    const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), i16x8.extend_low_i8x16_s(xhi));
    const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), i16x8.extend_high_i8x16_s(xhi));
    const dots = i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
    const correction = <i32>load<i16>(c + <usize>g * CORRECTION_BYTES) + <i32>load<i16>(c + <usize>g * CORRECTION_BYTES, 2); // 8 sum(qx)
    const total = i32x4.extract_lane(dots, 0) + i32x4.extract_lane(dots, 1) + i32x4.extract_lane(dots, 2) + i32x4.extract_lane(dots, 3) - correction;
    sum += <f32>total * (load<f32>(s + (<usize>g << 2)) * f16ToF32(<u32>load<u16>(int4Scale(scales, n, groups, j, g))));
  }
  return sum;
}
