// Row-wise normalisations of the reference backend: layer norm, softmax, log-softmax.
// Shapes: x is [N, C] (rows, cols), flat and row-major; every row is independent.

import type { KernelArgs } from "../../core/backend.js";
import { floats, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

// Layer norm without weight or bias (OLMo's non-parametric LayerNorm, `F.layer_norm(x, (C,), eps=1e-5)`).
// The variance is the biased (population) one, as in PyTorch.
export function layerNorm({ x, out, rows, cols, eps, mean, rstd }: Args<"layerNorm">): void {
  const xs = floats(x), o = floats(out);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += xs[base + c]!;
    const mu = sum / cols;
    let squares = 0;
    for (let c = 0; c < cols; c++) squares += (xs[base + c]! - mu) ** 2;
    const inv = 1 / Math.sqrt(squares / cols + eps);
    for (let c = 0; c < cols; c++) o[base + c] = (xs[base + c]! - mu) * inv;
    if (mean) floats(mean)[r] = mu; // saved for the backward pass
    if (rstd) floats(rstd)[r] = inv;
  }
}

export function layerNormBackward({ x, mean, rstd, dout, dx, rows, cols }: Args<"layerNormBackward">): void {
  const xs = floats(x), mu = floats(mean), inv = floats(rstd), g = floats(dout), o = floats(dx);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    // mean(dout) and mean(dout * xhat) over the row.
    let gMean = 0, gxMean = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (xs[base + c]! - mu[r]!) * inv[r]!;
      gMean += g[base + c]!;
      gxMean += g[base + c]! * xhat;
    }
    gMean /= cols;
    gxMean /= cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (xs[base + c]! - mu[r]!) * inv[r]!;
      o[base + c] = inv[r]! * (g[base + c]! - gMean - xhat * gxMean);
    }
  }
}

/** max and log(sum(exp(x - max))) + max of one row: the stable log-sum-exp. */
export function rowLogSumExp(xs: ArrayLike<number>, base: number, cols: number): number {
  let max = -Infinity;
  for (let c = 0; c < cols; c++) max = Math.max(max, xs[base + c]!);
  if (max === -Infinity) return -Infinity; // every entry masked
  let sum = 0;
  for (let c = 0; c < cols; c++) sum += Math.exp(xs[base + c]! - max);
  return max + Math.log(sum);
}

export function softmax({ x, out, rows, cols }: Args<"softmax">): void {
  const xs = floats(x), o = floats(out);
  for (let r = 0; r < rows; r++) {
    const base = r * cols, lse = rowLogSumExp(xs, base, cols);
    for (let c = 0; c < cols; c++) o[base + c] = Math.exp(xs[base + c]! - lse);
  }
}

export function softmaxBackward({ y, dout, dx, rows, cols }: Args<"softmaxBackward">): void {
  const ys = floats(y), g = floats(dout), o = floats(dx);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += g[base + c]! * ys[base + c]!;
    for (let c = 0; c < cols; c++) o[base + c] = ys[base + c]! * (g[base + c]! - dot);
  }
}

export function logSoftmax({ x, out, rows, cols }: Args<"logSoftmax">): void {
  const xs = floats(x), o = floats(out);
  for (let r = 0; r < rows; r++) {
    const base = r * cols, lse = rowLogSumExp(xs, base, cols);
    for (let c = 0; c < cols; c++) o[base + c] = xs[base + c]! - lse;
  }
}

export function logSoftmaxBackward({ y, dout, dx, rows, cols }: Args<"logSoftmaxBackward">): void {
  const ys = floats(y), g = floats(dout), o = floats(dx);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += g[base + c]!;
    for (let c = 0; c < cols; c++) o[base + c] = g[base + c]! - Math.exp(ys[base + c]!) * sum;
  }
}
