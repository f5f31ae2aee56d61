// Causal scaled-dot-product attention of the reference backend, fused: the scores of one query row
// are computed, normalised and applied to v without storing a [Tq, Tk] matrix per head. The backward
// pass recomputes the probabilities from the saved log-sum-exp (as FlashAttention does).
//
// Shapes: q: [B, H, Tq, D]; k, v: [B, G, S, D], first Tk of S rows used; out: [B, H, Tq, D]; lse: [B, H, Tq].
// Query head h reads key/value head h / (H / G) (grouped-query attention; G = H is plain MHA).
// Query t has absolute position (Tk - Tq) + t and, when causal, sees keys 0 ..= that position.

import type { AttentionGeometry, KernelArgs } from "../../core/backend.js";
import { floats, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

/** Calls visit(qBase, kvBase, row, visibleKeys) for every query row of every (batch, head). */
function forEachQueryRow(g: AttentionGeometry, visit: (qBase: number, kvBase: number, row: number, visibleKeys: number) => void): void {
  const groupSize = g.heads / g.kvHeads;
  for (let b = 0; b < g.batch; b++) {
    for (let h = 0; h < g.heads; h++) {
      const kvHead = Math.floor(h / groupSize);
      const kvBase = (b * g.kvHeads + kvHead) * g.kvCapacity * g.headDim;
      for (let t = 0; t < g.queryLen; t++) {
        const row = (b * g.heads + h) * g.queryLen + t;
        const visibleKeys = g.causal ? Math.min(g.keyLen, g.keyLen - g.queryLen + t + 1) : g.keyLen;
        visit(row * g.headDim, kvBase, row, visibleKeys);
      }
    }
  }
}

/** scale * q[qBase..] . k[kBase + j * D ..] for the first `count` keys. */
function scores(q: ArrayLike<number>, k: ArrayLike<number>, qBase: number, kvBase: number, count: number, d: number, scale: number): Float64Array {
  const s = new Float64Array(count);
  for (let j = 0; j < count; j++) {
    let dot = 0;
    for (let c = 0; c < d; c++) dot += q[qBase + c]! * k[kvBase + j * d + c]!;
    s[j] = scale * dot;
  }
  return s;
}

export function attention(args: Args<"attention">): void {
  const q = floats(args.q), k = floats(args.k), v = floats(args.v), out = floats(args.out);
  const lse = args.lse ? floats(args.lse) : null;
  const d = args.headDim;
  forEachQueryRow(args, (qBase, kvBase, row, visible) => {
    const s = scores(q, k, qBase, kvBase, visible, d, args.scale);
    let max = -Infinity;
    for (let j = 0; j < visible; j++) max = Math.max(max, s[j]!);
    let sum = 0;
    for (let j = 0; j < visible; j++) sum += Math.exp(s[j]! - max);
    const rowLse = max + Math.log(sum);
    for (let c = 0; c < d; c++) out[qBase + c] = 0;
    for (let j = 0; j < visible; j++) {
      const p = Math.exp(s[j]! - rowLse);
      for (let c = 0; c < d; c++) out[qBase + c] += p * v[kvBase + j * d + c]!;
    }
    if (lse) lse[row] = rowLse; // saved for the backward pass
  });
}

// With p = softmax(s), s = scale * q k^T, o = p v:
//   dv_j += p_j do;  dp_j = do . v_j;  ds_j = p_j (dp_j - do . o);  dq += scale ds_j k_j;  dk_j += scale ds_j q.
export function attentionBackward(args: Args<"attentionBackward">): void {
  const q = floats(args.q), k = floats(args.k), v = floats(args.v), out = floats(args.out);
  const lse = floats(args.lse), dout = floats(args.dout);
  const dq = floats(args.dq), dk = floats(args.dk), dv = floats(args.dv);
  const d = args.headDim;
  dq.fill(0, 0, args.batch * args.heads * args.queryLen * d);
  dk.fill(0, 0, args.batch * args.kvHeads * args.kvCapacity * d);
  dv.fill(0, 0, args.batch * args.kvHeads * args.kvCapacity * d);
  forEachQueryRow(args, (qBase, kvBase, row, visible) => {
    const s = scores(q, k, qBase, kvBase, visible, d, args.scale);
    let doDotO = 0;
    for (let c = 0; c < d; c++) doDotO += dout[qBase + c]! * out[qBase + c]!;
    for (let j = 0; j < visible; j++) {
      const p = Math.exp(s[j]! - lse[row]!);
      const kvRow = kvBase + j * d;
      let dp = 0;
      for (let c = 0; c < d; c++) dp += dout[qBase + c]! * v[kvRow + c]!;
      const ds = p * (dp - doDotO);
      for (let c = 0; c < d; c++) {
        dv[kvRow + c] += p * dout[qBase + c]!;
        dq[qBase + c] += args.scale * ds * k[kvRow + c]!;
        dk[kvRow + c] += args.scale * ds * q[qBase + c]!;
      }
    }
  });
}
