// Causal scaled-dot-product attention, fused into one kernel per direction.
//
// Shape legend: q: [B, H, Tq, D]; k, v: [B, G, S, D] (G key/value heads, H % G == 0), of which the
// first Tk rows per head are keys (Tk = options.keyLength, default S: a preallocated KV cache has
// S = its capacity); out: [B, H, Tq, D]. With a KV cache, Tk > Tq and the queries are the last Tq
// positions.
// The same as torch's `F.scaled_dot_product_attention(q, k, v, is_causal=True)` when Tq == Tk.

import { needsGrad, record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { buf, emptyLike, expectDType, expectRank, fmt, kernelsFor } from "./util.js";

export interface AttentionOptions {
  /** Multiplies q k^T; default 1 / sqrt(D). */
  scale?: number;
  /** Mask future positions (default true). */
  causal?: boolean;
  /** Rows of k and v that hold keys (default: all of them). */
  keyLength?: number;
}

export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const kernels = kernelsFor("attention", q, k, v);
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    expectDType("attention", name, t, "f32");
    expectRank("attention", name, t, 4, "[batch, heads, time, headDim]");
  }
  const [batch, heads, queryLen, headDim] = q.shape as [number, number, number, number];
  const [kBatch, kvHeads, kvCapacity, kDim] = k.shape as [number, number, number, number];
  const keyLen = options.keyLength ?? kvCapacity;
  if (!Number.isInteger(keyLen) || keyLen < 0 || keyLen > kvCapacity) {
    throw new Error(`attention: keyLength ${keyLen} must be an integer in [0, ${kvCapacity}] for k ${fmt(k)}`);
  }
  const shapesAgree =
    kBatch === batch && kDim === headDim && v.shape.every((n, i) => n === k.shape[i]) && kvHeads > 0 && heads % kvHeads === 0;
  if (!shapesAgree) {
    throw new Error(
      `attention: q ${fmt(q)}, k ${fmt(k)}, v ${fmt(v)} do not fit: expected k and v of shape [${batch}, G, Tk, ${headDim}] with ${heads} % G == 0`,
    );
  }
  const { scale = 1 / Math.sqrt(headDim), causal = true } = options;
  if (causal && keyLen < queryLen) {
    throw new Error(`attention: causal attention needs at least as many keys (${keyLen}) as queries (${queryLen})`);
  }
  const geometry = { batch, heads, kvHeads, queryLen, keyLen, kvCapacity, headDim, scale, causal };
  const out = emptyLike(q);
  // Each row's log-sum-exp lets the backward pass rebuild the probabilities without storing them.
  const lse = needsGrad(q, k, v) ? emptyLike(q, [batch, heads, queryLen]) : undefined;
  kernels.attention({ q: buf(q), k: buf(k), v: buf(v), out: buf(out), lse: lse && buf(lse), ...geometry });
  return record(
    "attention",
    out,
    [q, k, v],
    (g) => {
      const dq = emptyLike(q), dk = emptyLike(k), dv = emptyLike(v);
      kernelsFor("attention backward", q, g).attentionBackward({
        q: buf(q), k: buf(k), v: buf(v), out: buf(out), lse: buf(lse!), dout: buf(g),
        dq: buf(dq), dk: buf(dk), dv: buf(dv), ...geometry,
      });
      return [dq, dk, dv];
    },
    lse ? [lse] : [],
  );
}
