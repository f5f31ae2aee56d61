// Rotary position embedding (RoPE), half-split layout, as HF `apply_rotary_pos_emb` with `rotate_half`:
//   out = x * cos + rotate_half(x) * sin,  rotate_half([x1, x2]) = [-x2, x1]
// Shape legend: x: [B, H, T, D] (batch, heads, time, head dim; D even). Row t has position
// positionOffset + t, so decoding with a KV cache passes the number of cached tokens as the offset.
// The rotation is orthogonal, so the backward pass is the same rotation by the negative angle.

import { record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { buf, emptyLike, expectDType, expectRank, kernelsFor } from "./util.js";

export interface RotaryOptions {
  /** Base of the frequencies (rope_theta; 10000 for OLMo). */
  theta?: number;
  /** Position of the first row (tokens already in the KV cache). */
  positionOffset?: number;
}

export function rotaryEmbedding(x: Tensor, options: RotaryOptions = {}): Tensor {
  const { theta = 10000, positionOffset = 0 } = options;
  const kernels = kernelsFor("rotaryEmbedding", x);
  expectDType("rotaryEmbedding", "x", x, "f32");
  expectRank("rotaryEmbedding", "x", x, 4, "[batch, heads, time, headDim]");
  const [batch, heads, seqLen, headDim] = x.shape as [number, number, number, number];
  if (headDim % 2 !== 0) throw new Error(`rotaryEmbedding: head dimension must be even, got ${headDim}`);
  if (!Number.isInteger(positionOffset) || positionOffset < 0) {
    throw new Error(`rotaryEmbedding: positionOffset must be a non-negative integer, got ${positionOffset}`);
  }
  if (!(theta > 0)) throw new Error(`rotaryEmbedding: theta must be positive, got ${theta}`);
  const geometry = { batchHeads: batch * heads, seqLen, headDim, positionOffset, theta };
  const out = emptyLike(x);
  kernels.rotaryEmbedding({ x: buf(x), out: buf(out), ...geometry, inverse: false });
  return record("rotaryEmbedding", out, [x], (g) => {
    const dx = emptyLike(g);
    kernelsFor("rotaryEmbedding backward", g).rotaryEmbedding({ x: buf(g), out: buf(dx), ...geometry, inverse: true });
    return [dx];
  });
}
