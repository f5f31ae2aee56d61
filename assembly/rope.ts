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
  const r0 = partStart(rows, tid, threads, 1), r1 = partEnd(rows, tid, threads, 1);
  if (r0 >= r1) return;
  // Row r is (bh, t) = (r / seqLen, r % seqLen). The angle depends on t and i only, so each (t, i)
  // takes its pow, cos and sin once for every head of this thread's rows (in decode, 16-32 heads
  // share one position), instead of once per element: the transcendental calls were nearly all of
  // this kernel's time.
  for (let t = 0; t < seqLen; t++) {
    // This thread's rows at position t: bh in [bh0, bh1).
    const bh0 = r0 <= t ? 0 : (r0 - t + seqLen - 1) / seqLen;
    const bh1 = r1 - 1 < t ? 0 : (r1 - 1 - t) / seqLen + 1;
    if (bh0 >= bh1) continue; // none (a thread's rows can be fewer than the positions)
    for (let i = 0; i < half; i++) {
      const invFreq = <f32>(1 / <f32>Math.pow(theta, <f64>(<f32>(<f64>(2 * i) / <f64>headDim))));
      const angle = <f64>(<f32>(<f64>(positionOffset + t) * <f64>invFreq));
      const cos = Math.cos(angle), sin = sign * Math.sin(angle);
      for (let bh = bh0; bh < bh1; bh++) {
        const offset = (<usize>(bh * seqLen + t) * <usize>headDim) << 2;
        const first = offset + (<usize>i << 2), second = offset + (<usize>(i + half) << 2);
        const x1 = <f64>load<f32>(x + first), x2 = <f64>load<f32>(x + second);
        store<f32>(out + first, <f32>(x1 * cos - x2 * sin));
        store<f32>(out + second, <f32>(x2 * cos + x1 * sin));
      }
    }
  }
}
