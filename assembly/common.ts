// Helpers shared by the kernels: the slice of work one thread takes, and 16-bit float widening.
//
// Every exported kernel takes (tid, threads) last: thread `tid` of `threads` computes its share of the
// output, all threads writing disjoint ranges of one shared memory.

/** [start, end) of the tid-th of `threads` near-equal parts of [0, total), in multiples of `align`. */
@inline export function partStart(total: i32, tid: i32, threads: i32, align: i32): i32 {
  const units = (total + align - 1) / align;
  return min<i32>(total, <i32>((<i64>units * tid) / threads) * align);
}

@inline export function partEnd(total: i32, tid: i32, threads: i32, align: i32): i32 {
  return partStart(total, tid + 1, threads, align);
}

/** Storage dtype codes shared with src/backends/wasm (f32 = 0, bf16 = 1, f16 = 2, i32 = 3). */
export const F32: i32 = 0;
export const BF16: i32 = 1;
export const F16: i32 = 2;
export const I32: i32 = 3;

/** bf16 bits -> f32 (the top half of an f32). */
@inline export function bf16ToF32(bits: u32): f32 {
  return reinterpret<f32>(bits << 16);
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
  if (dtype == F32) return load<f32>(ptr + (i << 2));
  const bits = <u32>load<u16>(ptr + (i << 1));
  return dtype == BF16 ? bf16ToF32(bits) : f16ToF32(bits);
}

/**
 * c + a * b on f32x4 lanes. In the relaxed-SIMD builds (compiled with --enable relaxed-simd, where the
 * compile-time constant ASC_FEATURE_RELAXED_SIMD is true) this is f32x4.relaxed_madd: one fused
 * multiply-add where the CPU has FMA, rounding once instead of twice; otherwise mul then add.
 */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? f32x4.relaxed_madd(a, b, c) : f32x4.add(c, f32x4.mul(a, b));
}
