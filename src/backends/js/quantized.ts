// Quantized-weight kernels of the reference backend: the definitions of src/core/quantize.ts, run as
// plain loops over the buffers. Shapes: W [N, K] quantized (values i8, scales f32 or f16), a [M, K],
// out [M, N]; the embedding gathers rows of a quantized [V, C] table.

import type { KernelArgs } from "../../core/backend.js";
import { dequantizeHost, quantizeActivationRow, quantizedScale, quantizedValue, quantizeHost, type QuantizedHost } from "../../core/quantize.js";
import { checkId, floats, ints, widened, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

/** The values and scales of a quantized weight, as the host functions take them. */
function quantized(values: JsBuffer, scales: JsBuffer): QuantizedHost {
  if (values.dtype !== "i8") throw new Error(`js backend: quantized values must be i8, got ${values.dtype}`);
  if (scales.dtype !== "f32" && scales.dtype !== "f16") throw new Error(`js backend: quantized scales must be f32 or f16, got ${scales.dtype}`);
  return { values: values.data as Int8Array, scales: scales.data as Float32Array | Uint16Array };
}

export function quantize({ x, xDType, values, scales, scheme, rows, cols }: Args<"quantize">): void {
  const q = quantizeHost(scheme, widened(x, xDType).subarray(0, rows * cols), rows, cols);
  (values.data as Int8Array).set(q.values);
  (scales.data as Float32Array | Uint16Array).set(q.scales);
}

export function dequantize({ values, scales, out, scheme, rows, cols }: Args<"dequantize">): void {
  floats(out).set(dequantizeHost(scheme, quantized(values, scales), rows, cols));
}

export function matmulQuantized({ a, values, scales, out, scheme, m, k, n }: Args<"matmulQuantized">): void {
  const x = floats(a), o = floats(out), w = quantized(values, scales);
  const blocks = Math.ceil(k / 32);
  const rows = Array.from({ length: m }, (_, i) => quantizeActivationRow(x, i * k, k));
  const q = new Int8Array(k), d = new Float64Array(blocks); // row j of W: its integers and block scales
  for (let j = 0; j < n; j++) {
    for (let p = 0; p < k; p++) q[p] = quantizedValue(scheme, w.values, n, k, j, p);
    for (let b = 0; b < blocks; b++) d[b] = quantizedScale(scheme, w.scales, n, k, j, b * 32);
    for (let i = 0; i < m; i++) {
      const row = rows[i]!;
      let acc = 0;
      for (let b = 0; b < blocks; b++) {
        let dot = 0; // an exact integer sum
        for (let p = b * 32; p < Math.min(k, (b + 1) * 32); p++) dot += row.q[p]! * q[p]!;
        acc += row.scales[b]! * d[b]! * dot;
      }
      o[i * n + j] = acc;
    }
  }
}

export function embeddingQuantized({ values, scales, scheme, ids, out, count, vocab, dim }: Args<"embeddingQuantized">): void {
  const idx = ints(ids), o = floats(out), w = quantized(values, scales);
  for (let t = 0; t < count; t++) {
    const id = idx[t]!;
    checkId("embedding", "token id", id, t, vocab);
    for (let c = 0; c < dim; c++) o[t * dim + c] = quantizedValue(scheme, w.values, vocab, dim, id, c) * quantizedScale(scheme, w.scales, vocab, dim, id, c);
  }
}
