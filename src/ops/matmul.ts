// Matrix multiply, batched, either operand transposed.
//
//   a: [...batch, M, K]  (or [...batch, K, M] with transA)
//   b: [...batch, K, N]  (or [...batch, N, K] with transB)
//   out: [...batch, M, N]
// Either operand may have no batch axes and is then shared by every batch entry (x @ W^T with
// x: [B, T, C] and W: [C_out, C] is matmul(x, W, { transB: true })). b may be a bf16 / f16 weight.
//
// Backward, with op(a) = a or a^T:  d op(a) = dC op(b)^T,  d op(b) = op(a)^T dC.

import { record } from "../core/autograd.js";
import type { KernelTable } from "../core/backend.js";
import type { Tensor } from "../core/tensor.js";
import { cast } from "./elementwise.js";
import { reshape } from "./shape.js";
import { sum } from "./reduce.js";
import { buf, emptyLike, expectDType, fmt, kernelsFor, sameShape, sizeOf } from "./util.js";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false } = options;
  const kernels = kernelsFor("matmul", a, b);
  expectDType("matmul", "a", a, "f32", "bf16", "f16");
  expectDType("matmul", "b", b, "f32", "bf16", "f16");
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`matmul: both operands need at least 2 axes, got a ${fmt(a)} and b ${fmt(b)}`);
  }
  // Only b may be a storage dtype in the kernel (weights); a is widened first, and the widened copy
  // lives as long as the graph node that may read it.
  if (a.dtype !== "f32") {
    const wide = cast(a, "f32");
    return matmulF32(kernels, wide, b, transA, transB, [wide]);
  }
  return matmulF32(kernels, a, b, transA, transB, []);
}

function matmulF32(kernels: KernelTable<unknown>, a: Tensor, b: Tensor, transA: boolean, transB: boolean, saved: Tensor[]): Tensor {
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const m = transA ? aCols : aRows, k = transA ? aRows : aCols;
  const kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  if (k !== kb || (aBatch.length > 0 && bBatch.length > 0 && !sameShape(aBatch, bBatch))) {
    throw new Error(
      `matmul: cannot multiply a ${fmt(a)}${transA ? " (transposed)" : ""} by b ${fmt(b)}${transB ? " (transposed)" : ""}: ` +
        (k !== kb ? `inner sizes ${k} and ${kb} differ` : `batch axes [${aBatch}] and [${bBatch}] differ`),
    );
  }
  const batchShape = aBatch.length > 0 ? aBatch : bBatch;
  const batch = sizeOf(batchShape);
  const out = emptyLike(a, [...batchShape, m, n], "f32");
  kernels.matmul({
    a: buf(a), b: buf(b), out: buf(out), bDType: b.dtype as "f32" | "bf16" | "f16",
    batch, m, k, n, transA, transB,
    aBatchStride: aBatch.length > 0 ? m * k : 0,
    bBatchStride: bBatch.length > 0 ? k * n : 0,
  });
  const backward = (g: Tensor) => [
    a.requiresGrad ? unbroadcastBatch(gradA(g, b, transA, transB), a.shape) : null,
    b.requiresGrad ? unbroadcastBatch(gradB(g, a, transA, transB, b.shape), b.shape) : null,
  ];
  return record("matmul", out, [a, b], backward, saved);
}

/** Gradient with respect to a (in a's own layout). */
function gradA(g: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  // d op(a) = g op(b)^T; when a was transposed, da = (g op(b)^T)^T = op(b) g^T.
  return transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
}

/** Gradient with respect to b (in b's own layout). */
function gradB(g: Tensor, a: Tensor, transA: boolean, transB: boolean, bShape: readonly number[]): Tensor {
  // A weight shared by a batch of row blocks ([B, T, K] @ W): fold the batch into the rows, so one
  // product sums the per-batch gradients instead of materialising [B, ...W] and summing it after.
  if (bShape.length === 2 && a.shape.length > 2 && !transA) {
    a = reshape(a, [-1, a.shape[a.shape.length - 1]!]);
    g = reshape(g, [-1, g.shape[g.shape.length - 1]!]);
  }
  // d op(b) = op(a)^T g; when b was transposed, db = g^T op(a).
  return transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
}

/** An operand shared across the batch gets the sum of its per-batch gradients. */
function unbroadcastBatch(grad: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  return sum(reshape(grad, [-1, ...shape]), 0);
}
