// The reference backend: plain TypeScript loops, one kernel per op, correctness above speed.
// Every faster backend is tested against this one. With precision "f64" the f32 tensors are held in
// Float64Arrays, turning the same kernels into the double-precision oracle used by gradient checks.

import type { Backend, KernelTable } from "../../core/backend.js";
import type { DType, HostArray } from "../../core/dtype.js";
import { attention, attentionBackward } from "./attention.js";
import type { JsBuffer } from "./buffer.js";
import { adamw, binary, cast, clamp, clampBackward, fill, scale, silu, siluBackward } from "./elementwise.js";
import { embedding, embeddingBackward } from "./embedding.js";
import { broadcast, permute, slice, sliceAssign, sum } from "./layout.js";
import { crossEntropy, crossEntropyBackward } from "./loss.js";
import { matmul } from "./matmul.js";
import { layerNorm, layerNormBackward, logSoftmax, logSoftmaxBackward, softmax, softmaxBackward } from "./normalization.js";
import { dequantize, embeddingQuantized, matmulQuantized, quantize } from "./quantized.js";
import { rotaryEmbedding } from "./rope.js";

export type { JsBuffer } from "./buffer.js";

const kernels: KernelTable<JsBuffer> = {
  fill, cast, binary, scale, silu, siluBackward, clamp, clampBackward,
  matmul,
  layerNorm, layerNormBackward, softmax, softmaxBackward, logSoftmax, logSoftmaxBackward,
  rotaryEmbedding,
  attention, attentionBackward,
  embedding, embeddingBackward, crossEntropy, crossEntropyBackward,
  sum, broadcast, permute, slice, sliceAssign,
  adamw,
  quantize, dequantize, matmulQuantized, embeddingQuantized,
};

export interface JsBackendOptions {
  /** Precision of f32 tensors' storage and arithmetic: "f32" (default) or "f64" for gradient checks. */
  precision?: "f32" | "f64";
}

export function createJsBackend(options: JsBackendOptions = {}): Backend<JsBuffer> {
  const precision = options.precision ?? "f32";
  const newArray = (dtype: DType, size: number): JsBuffer["data"] => {
    switch (dtype) {
      case "f32":
        return precision === "f64" ? new Float64Array(size) : new Float32Array(size);
      case "i32":
        return new Int32Array(size);
      case "bf16":
      case "f16":
        return new Uint16Array(size);
      case "i8":
        return new Int8Array(size);
    }
  };
  const toHost = (buffer: JsBuffer, dtype: DType, size: number): HostArray => {
    if (buffer.dtype !== dtype) throw new Error(`js backend: buffer holds ${buffer.dtype}, download asked for ${dtype}`);
    const data = buffer.data.subarray(0, size);
    // f64-precision buffers are rounded to f32 on the way out, so callers always see HostArray types.
    return data instanceof Float64Array ? Float32Array.from(data) : (data.slice() as HostArray);
  };
  let inUse = 0, peak = 0;
  return {
    name: precision === "f64" ? "js-f64" : "js",
    allocate: (dtype, size) => {
      const data = newArray(dtype, size);
      inUse += data.byteLength;
      peak = Math.max(peak, inUse);
      return { dtype, data };
    },
    free: (buffer) => {
      // The typed array itself is garbage-collected; only the count changes.
      inUse -= buffer.data.byteLength;
    },
    upload: (buffer, dtype, data) => {
      if (buffer.dtype !== dtype) throw new Error(`js backend: buffer holds ${buffer.dtype}, upload gave ${dtype}`);
      buffer.data.set(data);
    },
    // f64-precision f32 buffers do not hold f32 bits, so they take the upload path.
    rawBytes: (buffer, dtype, size) =>
      buffer.dtype !== dtype || buffer.data instanceof Float64Array ? null : new Uint8Array(buffer.data.buffer, buffer.data.byteOffset, size * buffer.data.BYTES_PER_ELEMENT),
    view: (buffer, dtype, start, size) => {
      if (buffer.dtype !== dtype) throw new Error(`js backend: buffer holds ${buffer.dtype}, view asked for ${dtype}`);
      if (start + size > buffer.data.length) throw new Error(`js backend: a view of elements [${start}, ${start + size}) of a buffer of ${buffer.data.length}`);
      return { dtype, data: buffer.data.subarray(start, start + size) };
    },
    download: async (buffer, dtype, size) => toHost(buffer, dtype, size),
    downloadSync: toHost,
    kernels,
    // Kernels run when called and nothing is kept for reuse: no queue to wait for, nothing to release.
    sync: async () => {},
    memoryUsage: () => ({ inUse, reserved: inUse, peak, limit: Infinity }),
    dispose: () => {},
  };
}

/** Read an f64-precision buffer without rounding (for gradient checks on the js-f64 backend). */
export function downloadF64(buffer: JsBuffer): Float64Array {
  return Float64Array.from(buffer.data);
}
