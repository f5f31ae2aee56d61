// Row-wise normalisations of the WebGPU backend: layer norm (kernels/normalization.wgsl), softmax and
// log-softmax (kernels/normalization-softmax.wgsl), forward and backward. One workgroup per row;
// operands larger than one storage binding (large logits) go in blocks of rows (runRows).

import type { KernelArgs } from "../../core/backend.js";
import { runRows } from "./blocks.js";
import type { GpuBuffer, GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

export function layerNorm(gpu: GpuRuntime, { x, out, rows, cols, eps, mean, rstd }: Args<"layerNorm">): void {
  // Mean and rstd are [rows] arrays split with the rows; without them, placeholders take their bindings.
  const stats: Record<string, [GpuBuffer, number]> = mean && rstd ? { meanOut: [mean, 4], rstdOut: [rstd, 4] } : {};
  const placeholders: Record<string, GpuBuffer> = mean && rstd ? {} : { meanOut: gpu.placeholder("meanOut"), rstdOut: gpu.placeholder("rstdOut") };
  runRows(gpu, "normalization", "layerNorm", rows, { x: [x, cols * 4], out: [out, cols * 4], ...stats }, placeholders, (_, count) => ({
    rows: count, cols, eps, saveStats: mean && rstd ? 1 : 0,
  }));
}

export function layerNormBackward(gpu: GpuRuntime, { x, mean, rstd, dout, dx, rows, cols }: Args<"layerNormBackward">): void {
  runRows(gpu, "normalization", "layerNormBackward", rows,
    { x: [x, cols * 4], meanIn: [mean, 4], rstdIn: [rstd, 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {},
    (_, count) => ({ rows: count, cols, eps: 0, saveStats: 0 }));
}

const softmaxParams = (cols: number) => (_: number, rows: number) => ({ rows, cols });

export function softmax(gpu: GpuRuntime, { x, out, rows, cols }: Args<"softmax">): void {
  runRows(gpu, "normalization-softmax", "softmax", rows, { x: [x, cols * 4], out: [out, cols * 4] }, {}, softmaxParams(cols));
}

export function softmaxBackward(gpu: GpuRuntime, { y, dout, dx, rows, cols }: Args<"softmaxBackward">): void {
  runRows(gpu, "normalization-softmax", "softmaxBackward", rows, { y: [y, cols * 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {}, softmaxParams(cols));
}

export function logSoftmax(gpu: GpuRuntime, { x, out, rows, cols }: Args<"logSoftmax">): void {
  runRows(gpu, "normalization-softmax", "logSoftmax", rows, { x: [x, cols * 4], out: [out, cols * 4] }, {}, softmaxParams(cols));
}

export function logSoftmaxBackward(gpu: GpuRuntime, { y, dout, dx, rows, cols }: Args<"logSoftmaxBackward">): void {
  runRows(gpu, "normalization-softmax", "logSoftmaxBackward", rows, { y: [y, cols * 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {}, softmaxParams(cols));
}
