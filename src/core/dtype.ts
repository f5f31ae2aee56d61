// Data types.
//
// Compute dtypes are what kernels do arithmetic in: f32 for activations and gradients, i32 for token
// ids. Storage dtypes (bf16, f16) hold weights at half the bytes; kernels that read weights (matmul's
// second operand, the embedding table) widen them to f32 as they load, and `cast` widens a whole tensor.
//
// Conversions are exact where the target can represent the value, and f32 -> bf16 / f16 rounds to the
// nearest value with ties to even, as PyTorch's `tensor.to(torch.bfloat16)` and `.half()` do.

export type ComputeDType = "f32" | "i32";
export type StorageDType = "bf16" | "f16";
/** Raw signed bytes: the integers of quantized weights (src/core/quantize.ts), int4 two to a byte. */
export type ByteDType = "i8";
export type DType = ComputeDType | StorageDType | ByteDType;
/** The schemes of quantized weights (their arithmetic: src/core/quantize.ts). */
export type QuantScheme = "int8" | "int4";

/** Bytes per element. */
export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, i32: 4, bf16: 2, f16: 2, i8: 1 };

/** The typed array that holds each dtype's raw bits on the host. */
export type HostArray<D extends DType = DType> = D extends "f32"
  ? Float32Array
  : D extends "i32"
    ? Int32Array
    : D extends "i8"
      ? Int8Array
      : Uint16Array;

// One 4-byte scratch cell viewed as f32 and u32 for bit-level conversions.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN (PyTorch's `round_to_nearest_even`). */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  if (Number.isNaN(value)) return 0x7fc0 | ((bits >>> 16) & 0x8000);
  // Add 0x7fff plus the lowest kept bit: rounds half-way cases towards the even result.
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** bf16 bits -> f32 value (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** f32 -> IEEE half bits, round to nearest even, overflow to infinity, subnormals kept. */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // inf or NaN
  // Unbiased exponent re-biased for half (bias 15).
  let halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // too large: infinity
  if (halfExponent <= 0) {
    // Subnormal half (or zero). Shift the implicit-1 mantissa right, rounding to nearest even.
    if (halfExponent < -10) return sign; // below half the smallest subnormal: rounds to zero
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfMantissa = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const roundUp = remainder > halfway || (remainder === halfway && (halfMantissa & 1) === 1);
    return sign | (halfMantissa + (roundUp ? 1 : 0));
  }
  const halfMantissa = mantissa >>> 13;
  const remainder = mantissa & 0x1fff;
  let result = sign | (halfExponent << 10) | halfMantissa;
  if (remainder > 0x1000 || (remainder === 0x1000 && (halfMantissa & 1) === 1)) result += 1; // may carry into exponent: correct
  return result;
}

/** IEEE half bits -> f32 value (exact). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Widen raw storage bits (bf16 or f16) to an f32 array. */
export function widenToF32(bits: Uint16Array, dtype: StorageDType): Float32Array {
  const out = new Float32Array(bits.length);
  const convert = dtype === "bf16" ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < bits.length; i++) out[i] = convert(bits[i]!);
  return out;
}

/** Narrow f32 values to storage bits (bf16 or f16), round to nearest even. */
export function narrowFromF32(values: ArrayLike<number>, dtype: StorageDType): Uint16Array {
  const out = new Uint16Array(values.length);
  const convert = dtype === "bf16" ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]!);
  return out;
}
