// Row-wise normalisations over the last axis: OLMo's non-parametric layer norm, softmax, log-softmax.
// Shape legend: x: [..., C]; every leading index is an independent row of C values.

import { needsGrad, record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { buf, emptyLike, expectDType, fmt, kernelsFor } from "./util.js";

function rowsAndCols(op: string, x: Tensor): { rows: number; cols: number } {
  if (x.shape.length === 0) throw new Error(`${op}: x must have at least one axis, got ${fmt(x)}`);
  const cols = x.shape[x.shape.length - 1]!;
  return { rows: cols === 0 ? 0 : x.size / cols, cols };
}

/**
 * Layer norm without weight or bias: (x - mean) / sqrt(var + eps) over the last axis, as OLMo's
 * `LayerNorm` (HF `OlmoLayerNorm`: `F.layer_norm(x, normalized_shape, None, None, eps=1e-5)`).
 */
export function layerNorm(x: Tensor, eps = 1e-5): Tensor {
  const kernels = kernelsFor("layerNorm", x);
  expectDType("layerNorm", "x", x, "f32");
  const { rows, cols } = rowsAndCols("layerNorm", x);
  const out = emptyLike(x);
  // Per-row mean and 1/std, saved for the backward pass only when it will run.
  const saveStats = needsGrad(x);
  const mean = saveStats ? emptyLike(x, [rows]) : undefined;
  const rstd = saveStats ? emptyLike(x, [rows]) : undefined;
  kernels.layerNorm({ x: buf(x), out: buf(out), rows, cols, eps, mean: mean && buf(mean), rstd: rstd && buf(rstd) });
  const saved = mean && rstd ? [mean, rstd] : [];
  return record(
    "layerNorm",
    out,
    [x],
    (g) => {
      const dx = emptyLike(x);
      kernelsFor("layerNorm backward", x, g).layerNormBackward({
        x: buf(x), mean: buf(mean!), rstd: buf(rstd!), dout: buf(g), dx: buf(dx), rows, cols,
      });
      return [dx];
    },
    saved,
  );
}

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  const kernels = kernelsFor("softmax", x);
  expectDType("softmax", "x", x, "f32");
  const { rows, cols } = rowsAndCols("softmax", x);
  const y = emptyLike(x);
  kernels.softmax({ x: buf(x), out: buf(y), rows, cols });
  return record("softmax", y, [x], (g) => {
    const dx = emptyLike(x);
    kernelsFor("softmax backward", y, g).softmaxBackward({ y: buf(y), dout: buf(g), dx: buf(dx), rows, cols });
    return [dx];
  });
}

/** log(softmax(x)) over the last axis, computed stably. */
export function logSoftmax(x: Tensor): Tensor {
  const kernels = kernelsFor("logSoftmax", x);
  expectDType("logSoftmax", "x", x, "f32");
  const { rows, cols } = rowsAndCols("logSoftmax", x);
  const y = emptyLike(x);
  kernels.logSoftmax({ x: buf(x), out: buf(y), rows, cols });
  return record("logSoftmax", y, [x], (g) => {
    const dx = emptyLike(x);
    kernelsFor("logSoftmax backward", y, g).logSoftmaxBackward({ y: buf(y), dout: buf(g), dx: buf(dx), rows, cols });
    return [dx];
  });
}
