// What the kernels share: the codes the host passes, the types of their buffer arguments, the slice of
// work one thread takes, 16-bit float conversions, and the four-lane multiply-add and exp.
//
// Every exported kernel takes (tid, threads) last: thread `tid` of `threads` computes its share of the
// output, all threads writing disjoint ranges of one shared memory.

/**
 * A buffer argument: the address of bytes in the shared memory that the kernel reads or writes. It is
 * a usize to the compiler; the name is for scripts/build.mjs, which reads each exported kernel's
 * signature and has the host check, before every call, that each Pointer argument's buffer holds the
 * bytes the kernel touches (src/backends/wasm/boundary.ts).
 */
export type Pointer = usize;
/** A buffer argument the caller may leave out by passing 0 (outputs saved only for a backward pass). */
export type OptionalPointer = usize;

// The codes the host passes, under the names test/codes.test.ts reads; src/backends/codes.ts holds the
// host's copy.
/** Storage dtypes. */
export const DTYPE_F32: i32 = 0;
export const DTYPE_BF16: i32 = 1;
export const DTYPE_F16: i32 = 2;
export const DTYPE_I32: i32 = 3;
export const DTYPE_I8: i32 = 4;
// The scheme of a quantized weight (src/core/quantize.ts).
export const QUANT_INT8: i32 = 0;
export const QUANT_INT4: i32 = 1;
/** The operation of the binary kernel. */
export const BINARY_ADD: i32 = 0;
export const BINARY_SUB: i32 = 1;
export const BINARY_MUL: i32 = 2;
/** The largest rank the layout kernels take (their per-thread coordinate blocks hold this many). */
export const MAX_RANK: i32 = 8;

/** [start, end) of the tid-th of `threads` near-equal parts of [0, total), in multiples of `align`. */
@inline export function partStart(total: i32, tid: i32, threads: i32, align: i32): i32 {
  const units = (total + align - 1) / align;
  return min<i32>(total, <i32>((<i64>units * tid) / threads) * align);
}

@inline export function partEnd(total: i32, tid: i32, threads: i32, align: i32): i32 {
  return partStart(total, tid + 1, threads, align);
}

/** bf16 bits -> f32 (the top half of an f32). */
@inline export function bf16ToF32(bits: u32): f32 {
  return reinterpret<f32>(bits << 16);
}

/** Widen 8 bf16 values (one v128) to two f32x4: each bf16 is the top half of an f32. */
@inline export function bf16Low(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}
@inline export function bf16High(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
}

/** IEEE half bits -> f32, exact. */
export function f16ToF32(bits: u32): f32 {
  const sign: u32 = (bits & 0x8000) << 16;
  const exponent: u32 = (bits >> 10) & 0x1f;
  const mantissa: u32 = bits & 0x3ff;
  if (exponent == 0) {
    const magnitude: f32 = <f32>mantissa * 5.9604644775390625e-8; // mantissa * 2^-24, exact
    return reinterpret<f32>(reinterpret<u32>(magnitude) | sign);
  }
  if (exponent == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (mantissa << 13));
  return reinterpret<f32>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/** f32 -> bf16 bits, round to nearest even (NaN stays quiet NaN), as PyTorch. */
export function f32ToBf16(value: f32): u32 {
  const bits = reinterpret<u32>(value);
  if (value != value) return 0x7fc0 | ((bits >> 16) & 0x8000);
  return ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) & 0xffff;
}

/** f32 -> IEEE half bits, round to nearest even, overflow to infinity, subnormals kept. */
export function f32ToF16(value: f32): u32 {
  const bits = reinterpret<u32>(value);
  const sign: u32 = (bits >> 16) & 0x8000;
  const exponent: i32 = <i32>((bits >> 23) & 0xff);
  let mantissa: u32 = bits & 0x7fffff;
  if (exponent == 0xff) return sign | 0x7c00 | (mantissa != 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = <u32>(14 - halfExponent);
    const halfMantissa = mantissa >> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway: u32 = 1 << (shift - 1);
    const up = remainder > halfway || (remainder == halfway && (halfMantissa & 1) == 1);
    return sign | (halfMantissa + (up ? 1 : 0));
  }
  const halfMantissa = mantissa >> 13;
  const remainder = mantissa & 0x1fff;
  let result = sign | (<u32>halfExponent << 10) | halfMantissa;
  if (remainder > 0x1000 || (remainder == 0x1000 && (halfMantissa & 1) == 1)) result += 1;
  return result;
}

/** Element i of a buffer of dtype f32 / bf16 / f16, as f32. */
@inline export function loadAsF32(ptr: usize, dtype: i32, i: usize): f32 {
  if (dtype == DTYPE_F32) return load<f32>(ptr + (i << 2));
  const bits = <u32>load<u16>(ptr + (i << 1));
  return dtype == DTYPE_BF16 ? bf16ToF32(bits) : f16ToF32(bits);
}

/**
 * c + a * b on f32x4 lanes. In the relaxed-SIMD builds (compiled with --enable relaxed-simd, where the
 * compile-time constant ASC_FEATURE_RELAXED_SIMD is true) this is f32x4.relaxed_madd: one fused
 * multiply-add where the CPU has FMA, rounding once instead of twice; otherwise mul then add.
 */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? f32x4.relaxed_madd(a, b, c) : f32x4.add(c, f32x4.mul(a, b));
}

/**
 * e^x on four f32 lanes, within about 1 ulp of the exact value for x in [-87.3, 88.3] (test/exp.test.ts
 * measures the largest error over that range and asserts its bound). Range reduction: x = n ln2 + r
 * with n = round(x / ln2), |r| <= ln2 / 2 (ln2 split into a short high part and a low correction so
 * n ln2 is subtracted exactly); e^r by the degree-6 polynomial of the Cephes library's expf; then 2^n
 * added into the exponent bits. Below -87.3 the result is 0 (e^x < 1.2e-38 there: the subnormal range
 * is not kept); above 88.3 it is e^88.3 (3e38), not infinity, which the callers (softmax, sigmoid)
 * never distinguish. NaN stays NaN.
 *
 * Cheap instructions only, since softmax, cross-entropy and SiLU call it for every element: pmin /
 * pmax (one x64 instruction each, where min / max need several for their NaN rules; with x first, a
 * NaN x passes through), and rounding by adding 1.5 * 2^23, which leaves round(t) both as a float
 * (after subtracting it again) and in the low bits of the sum's integer view (after subtracting the
 * sum's bits), for |t| < 2^22, instead of nearest + trunc_sat.
 */
@inline export function expF32x4(x: v128): v128 {
  const clamped = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.3)), f32x4.splat(88.3));
  const shifter = f32x4.splat(12582912); // 1.5 * 2^23
  const t = madd(clamped, f32x4.splat(1.44269504089), shifter);
  const n = f32x4.sub(t, shifter);
  let r = madd(n, f32x4.splat(-0.693359375), clamped);
  r = madd(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  const er = f32x4.add(madd(f32x4.mul(p, r), r, r), f32x4.splat(1));
  // 2^n: n + 127 in the exponent field of a float (n in [-126, 127] after the clamp).
  const scale = i32x4.shl(i32x4.add(i32x4.sub(t, shifter), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(er, scale), f32x4.lt(x, f32x4.splat(-87.3)));
}
