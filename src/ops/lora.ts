// A linear layer with a LoRA update (Hu et al. 2021; PEFT's lora.Linear), as ONE recorded op.
//
// Shape legend: N = rows of x (B * T), K = in features, M = out features, r = rank, s = alpha / r.
//
//   forward:   x' = x * mask                  [N, K]   dropout on the adapter's input only (mask: 0 or 1/(1-p))
//              h  = s (x' A^T)                [N, r]   saved for backward: tiny
//              y  = x W^T + h B^T             [N, M]
//   backward:  dB = dy^T h                    [M, r]
//              dh = s (dy B)                  [N, r]
//              dA = dh^T x'                   [r, K]
//              dx = dy W + (dh A) * mask      [N, K]   through dequant(W) for a quantized base
//
// Written out as one op, rather than composed of linear / scale / add (which record their own
// backward), for memory: composed, every adapted layer would keep x W^T, the update, and their sum
// alive until the backward pass (three [N, M] tensors, half of a LoRA block's activations); here only
// y and h remain (x is kept by whatever made it). s is applied to the rank-r h instead of the [N, M]
// update (PEFT scales the update): the same product, one rounding apart, and no pass over [N, M].
// The base weight W is frozen: no gradient, whatever its dtype.

import { noGrad, record } from "../core/autograd.js";
import type { Weight } from "../core/quantize.js";
import { scope, type Tensor } from "../core/tensor.js";
import { add, mul, scale } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { linear, linearInputGradient } from "./quantized.js";
import { reshape } from "./shape.js";
import { fmt } from "./util.js";

/**
 * y = x W^T + s · dropout(x) A^T B^T for x [..., K], a frozen weight W [M, K] (float or quantized),
 * trainable A [r, K] and B [M, r], and `mask` (x's shape) when dropout is on; gradients for x, A and B.
 */
export function loraLinear(x: Tensor, weight: Weight, a: Tensor, b: Tensor, s: number, mask: Tensor | null = null): Tensor {
  const [M, K] = weight.shape;
  const r = a.shape[0]!;
  if (a.shape.length !== 2 || a.shape[1] !== K || b.shape.length !== 2 || b.shape[0] !== M || b.shape[1] !== r) {
    throw new Error(`loraLinear: A ${fmt(a)} and B ${fmt(b)} do not fit the weight [${M}, ${K}]: expected A [r, ${K}] and B [${M}, r]`);
  }
  if (mask && mask.shape.join() !== x.shape.join()) throw new Error(`loraLinear: the dropout mask ${fmt(mask)} must have x's shape ${fmt(x)}`);
  const adapterInput = () => (mask ? mul(x, mask) : x);
  const [y, h] = noGrad(() =>
    scope(() => {
      const h = scale(linear(adapterInput(), a), s);
      return [add(linear(x, weight), linear(h, b)), h];
    }),
  );
  const backward = (dy: Tensor) => {
    const rows = [-1, M];
    const dy2 = reshape(dy, rows), h2 = reshape(h, [-1, r]);
    const dB = matmul(dy2, h2, { transA: true });
    const dh = scale(matmul(dy2, b), s);
    const dA = matmul(dh, reshape(adapterInput(), [-1, K]), { transA: true });
    if (!x.requiresGrad) return [null, dA, dB];
    const dxAdapter = reshape(matmul(dh, a), x.shape);
    return [add(linearInputGradient(dy, weight), mask ? mul(dxAdapter, mask) : dxAdapter), dA, dB];
  };
  return record("loraLinear", y, [x, a, b], backward, [h]);
}
