// The cross-entropy of logits against target ids, and its gradient. logits: [N, V]; targets: i32 [N];
// nll, lse: [N] (the log-sum-exp of each row, saved for the backward pass). Threads take whole rows.
// A target out of range makes the forward kernel return its row + 1 (0 means success), so the caller
// can name it in an error.

import { expF32x4, partEnd, partStart, Pointer } from "./common";
import { rowLogSumExp } from "./normalization";

export function crossEntropy(logits: Pointer, targets: Pointer, nll: Pointer, lse: Pointer, rows: i32, vocab: i32, tid: i32, threads: i32): i32 {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let n = partStart(rows, tid, threads, 1); n < r1; n++) {
    const t = load<i32>(targets + (<usize>n << 2));
    if (t < 0 || t >= vocab) return n + 1;
    const rowLse = rowLogSumExp(logits, n, vocab);
    store<f32>(lse + (<usize>n << 2), <f32>rowLse);
    store<f32>(nll + (<usize>n << 2), <f32>(rowLse - <f64>load<f32>(logits + ((<usize>n * <usize>vocab + <usize>t) << 2))));
  }
  return 0;
}

export function crossEntropyBackward(logits: Pointer, targets: Pointer, lse: Pointer, dnll: Pointer, dlogits: Pointer, rows: i32, vocab: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let n = partStart(rows, tid, threads, 1); n < r1; n++) {
    const t = load<i32>(targets + (<usize>n << 2));
    const rowLse = load<f32>(lse + (<usize>n << 2)), g = load<f32>(dnll + (<usize>n << 2));
    // dlogits = g * (softmax - onehot(t)): the softmax four at a time, then the target's entry.
    const src = logits + ((<usize>n * <usize>vocab) << 2), dst = dlogits + ((<usize>n * <usize>vocab) << 2);
    const v4 = vocab & ~3, lseLanes = f32x4.splat(rowLse), gLanes = f32x4.splat(g);
    for (let j = 0; j < v4; j += 4) {
      v128.store(dst + (<usize>j << 2), f32x4.mul(gLanes, expF32x4(f32x4.sub(v128.load(src + (<usize>j << 2)), lseLanes))));
    }
    for (let j = v4; j < vocab; j++) store<f32>(dst + (<usize>j << 2), g * Mathf.exp(load<f32>(src + (<usize>j << 2)) - rowLse));
    if (t >= 0 && t < vocab) store<f32>(dst + (<usize>t << 2), g * (Mathf.exp(load<f32>(src + (<usize>t << 2)) - rowLse) - 1));
  }
}
