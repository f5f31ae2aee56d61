// Rotary position embedding of the reference backend, half-split ("rotate_half") layout as in
// HF `OlmoRotaryEmbedding` + `apply_rotary_pos_emb`.
// Shapes: x, out: [BH, T, D] where BH = batch * heads, T = sequence, D = head dimension (even).

import type { KernelArgs } from "../../core/backend.js";
import { floats, type JsBuffer } from "./buffer.js";

export function rotaryEmbedding(args: KernelArgs<JsBuffer>["rotaryEmbedding"]): void {
  const { batchHeads, seqLen, headDim, positionOffset, theta, inverse } = args;
  const xs = floats(args.x), o = floats(args.out);
  const half = headDim / 2;
  // HF computes inv_freq = 1 / theta^(arange(0, D, 2) / D) and the angles position * inv_freq in
  // float32; Math.fround reproduces those roundings so cos and sin match PyTorch's.
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
  const sign = inverse ? -1 : 1;
  for (let bh = 0; bh < batchHeads; bh++) {
    for (let t = 0; t < seqLen; t++) {
      const base = (bh * seqLen + t) * headDim;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround((positionOffset + t) * invFreq[i]!);
        const cos = Math.cos(angle), sin = sign * Math.sin(angle);
        const x1 = xs[base + i]!, x2 = xs[base + i + half]!;
        o[base + i] = x1 * cos - x2 * sin;
        o[base + i + half] = x2 * cos + x1 * sin;
      }
    }
  }
}
