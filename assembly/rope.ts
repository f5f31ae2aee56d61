// Rotary position embedding, half-split ("rotate_half") layout, as HF OLMo. x, out: [BH, T, D].
// inverse = 1 rotates by the negative angle (the backward pass). Threads take whole (bh, t) rows.
// inv_freq and the angles are rounded to f32 as HF computes them; cos and sin are taken in f64.

import { partEnd, partStart, Pointer } from "./common";

export function rotaryEmbedding(
  x: Pointer, out: Pointer, batchHeads: i32, seqLen: i32, headDim: i32, positionOffset: i32, theta: f64, inverse: i32,
  tid: i32, threads: i32,
): void {
  const half = headDim / 2;
  const rows = batchHeads * seqLen;
  const sign: f64 = inverse != 0 ? -1 : 1;
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const t = r % seqLen;
    const base = x + ((<usize>r * <usize>headDim) << 2);
    const outBase = out + ((<usize>r * <usize>headDim) << 2);
    for (let i = 0; i < half; i++) {
      const invFreq = <f32>(1 / <f32>Math.pow(theta, <f64>(<f32>(<f64>(2 * i) / <f64>headDim))));
      const angle = <f64>(<f32>(<f64>(positionOffset + t) * <f64>invFreq));
      const cos = Math.cos(angle), sin = sign * Math.sin(angle);
      const x1 = <f64>load<f32>(base + (<usize>i << 2)), x2 = <f64>load<f32>(base + (<usize>(i + half) << 2));
      store<f32>(outBase + (<usize>i << 2), <f32>(x1 * cos - x2 * sin));
      store<f32>(outBase + (<usize>(i + half) << 2), <f32>(x2 * cos + x1 * sin));
    }
  }
}
