// Ops on quantized weights (the schemes: src/core/quantize.ts).
//
//   quantize(W, scheme)   W: [N, K] f32 / bf16 / f16  ->  QuantizedWeight (values i8, scales)
//   dequantize(Wq)        -> f32 [N, K]
//   linear(x, W)          x: [..., K], W: [N, K] plain or quantized  ->  x W^T: [..., N]
//   embedding rows of a quantized table: see embedding.ts
//
// A quantized weight is frozen: linear's backward gives x its gradient, dX = dY dequant(W) (f32, the
// weight dequantized for the one product and freed after), and W none. That is what adapters trained
// on a quantized base need.

import { record } from "../core/autograd.js";
import { QuantizedWeight, quantizeProblem, type QuantScheme, type Weight } from "../core/quantize.js";
import { Tensor } from "../core/tensor.js";
import { cast } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { reshape } from "./shape.js";
import { buf, emptyLike, expectDType, expectRank, fmt, kernelsFor } from "./util.js";

/**
 * W quantized with `scheme`; W is not changed. With `into` (a weight of that scheme and W's shape, such
 * as a part of a fused weight), the result is written there and returned.
 */
export function quantize(weight: Tensor, scheme: QuantScheme, into?: QuantizedWeight): QuantizedWeight {
  const kernels = kernelsFor("quantize", weight);
  expectDType("quantize", "weight", weight, "f32", "bf16", "f16");
  expectRank("quantize", "weight", weight, 2, "[out, in]");
  const [rows, cols] = weight.shape as [number, number];
  const problem = quantizeProblem(scheme, rows, cols);
  if (problem) throw new Error(`quantize: ${problem}`);
  if (into && (into.scheme !== scheme || into.shape[0] !== rows || into.shape[1] !== cols)) {
    throw new Error(`quantize: cannot write an ${scheme} [${rows}, ${cols}] weight into an ${into.describe()}`);
  }
  const out = into ?? QuantizedWeight.empty(scheme, [rows, cols], weight.backend);
  kernels.quantize({ x: buf(weight), xDType: weight.dtype as "f32" | "bf16" | "f16", values: buf(out.values), scales: buf(out.scales), scheme, rows, cols });
  return out;
}

/** dequant(W) as a new f32 tensor [N, K]. */
export function dequantize(weight: QuantizedWeight): Tensor {
  const kernels = kernelsFor("dequantize", weight.values, weight.scales);
  const [rows, cols] = weight.shape;
  const out = emptyLike(weight.values, [rows, cols], "f32");
  kernels.dequantize({ values: buf(weight.values), scales: buf(weight.scales), out: buf(out), scheme: weight.scheme, rows, cols });
  return out;
}

/** x W^T for a bias-free linear layer: x [..., K], W [N, K] (a tensor, or quantized) -> [..., N]. */
export function linear(x: Tensor, weight: Weight): Tensor {
  if (weight instanceof Tensor) return matmul(x, weight, { transB: true });
  const [n, k] = weight.shape;
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) {
    throw new Error(`linear: x ${fmt(x)} does not end in the ${k} inputs of the ${weight.describe()}`);
  }
  const input = x.dtype === "f32" ? x : cast(x, "f32");
  const kernels = kernelsFor("linear", input, weight.values, weight.scales);
  const m = input.size / k;
  const out = emptyLike(input, [...x.shape.slice(0, -1), n], "f32");
  kernels.matmulQuantized({ a: buf(input), values: buf(weight.values), scales: buf(weight.scales), out: buf(out), scheme: weight.scheme, m, k, n });
  return record("linear", out, [input], (g) => [linearInputGradient(g, weight)]);
}

/** dy W: the gradient of x through a frozen linear layer y = x W^T (x [..., K], W [M, K] plain or quantized, dy [..., M]). */
export function linearInputGradient(dy: Tensor, weight: Weight): Tensor {
  const [n, k] = weight.shape;
  const rows = reshape(dy, [-1, n]), shape = [...dy.shape.slice(0, -1), k];
  if (weight instanceof Tensor) return reshape(matmul(rows, weight), shape);
  // dequant(W) lives for this one product only.
  const dense = dequantize(weight);
  const dx = matmul(rows, dense);
  dense.dispose();
  return reshape(dx, shape);
}
