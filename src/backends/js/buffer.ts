// Buffers of the reference backend: plain typed arrays.
//
// f32 tensors live in a Float32Array, or in a Float64Array when the backend is created with
// precision "f64": the same kernels then compute in double precision, which is what the
// finite-difference gradient checks need. i32 lives in an Int32Array; bf16 and f16 keep their raw
// 16-bit patterns in a Uint16Array and are widened when a kernel reads them. Below: typed views of a
// buffer, and the range check of the ids kernels read from one.

import { widenToF32, type DType, type StorageDType } from "../../core/dtype.js";

export type FloatArray = Float32Array | Float64Array;

export interface JsBuffer {
  readonly dtype: DType;
  readonly data: FloatArray | Int32Array | Uint16Array | Int8Array;
}

/** The f32 values of a float buffer (the array itself, not a copy). */
export function floats(buffer: JsBuffer): FloatArray {
  if (buffer.dtype !== "f32") throw new Error(`js backend: expected an f32 buffer, got ${buffer.dtype}`);
  return buffer.data as FloatArray;
}

/** The i32 values of an integer buffer. */
export function ints(buffer: JsBuffer): Int32Array {
  if (buffer.dtype !== "i32") throw new Error(`js backend: expected an i32 buffer, got ${buffer.dtype}`);
  return buffer.data as Int32Array;
}

/** f32 values of a buffer stored as f32, bf16 or f16 (storage dtypes are widened into a new array). */
export function widened(buffer: JsBuffer, dtype: "f32" | StorageDType): FloatArray {
  if (buffer.dtype !== dtype) throw new Error(`js backend: buffer holds ${buffer.dtype}, kernel was told ${dtype}`);
  return dtype === "f32" ? floats(buffer) : widenToF32(buffer.data as Uint16Array, dtype);
}

/** Throw when an id a kernel read (a token or target id) is outside [0, limit). */
export function checkId(kernel: string, what: string, id: number, position: number, limit: number): void {
  if (!(id >= 0 && id < limit)) {
    throw new RangeError(`${kernel}: ${what} ${id} at position ${position} is out of range [0, ${limit})`);
  }
}
