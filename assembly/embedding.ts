// Token-indexed kernels: the embedding gather and its scatter-add, and the cross-entropy of logits
// against target ids. ids / targets: i32 [N]; table: [V, C]; out: [N, C]; logits: [N, V].
// An id out of range makes the kernel return its position + 1 (0 means success), so the caller can
// name it in an error; threads write nothing for out-of-range ids.

import { expF32x4, F32, loadAsF32, partEnd, partStart } from "./common";
import { rowLogSumExp } from "./normalization";

export function embedding(table: usize, tableDType: i32, ids: usize, out: usize, count: i32, vocab: i32, dim: i32, tid: i32, threads: i32): i32 {
  const n1 = partEnd(count, tid, threads, 1);
  for (let n = partStart(count, tid, threads, 1); n < n1; n++) {
    const id = load<i32>(ids + (<usize>n << 2));
    if (id < 0 || id >= vocab) return n + 1;
    const dst = out + ((<usize>n * <usize>dim) << 2);
    if (tableDType == F32) memory.copy(dst, table + ((<usize>id * <usize>dim) << 2), <usize>dim << 2);
    else for (let c = 0; c < dim; c++) store<f32>(dst + (<usize>c << 2), loadAsF32(table, tableDType, <usize>id * <usize>dim + <usize>c));
  }
  return 0;
}

/** dtable = 0, then dtable[ids[n]] += dout[n]. Threads split the channels, so no two write one cell. */
export function embeddingBackward(ids: usize, dout: usize, dtable: usize, count: i32, vocab: i32, dim: i32, tid: i32, threads: i32): i32 {
  const c0 = partStart(dim, tid, threads, 4), c1 = partEnd(dim, tid, threads, 4);
  for (let r = 0; r < vocab; r++) memory.fill(dtable + ((<usize>r * <usize>dim + <usize>c0) << 2), 0, <usize>(c1 - c0) << 2);
  for (let n = 0; n < count; n++) {
    const id = load<i32>(ids + (<usize>n << 2));
    if (id < 0 || id >= vocab) return n + 1;
    const dst = dtable + ((<usize>id * <usize>dim) << 2), src = dout + ((<usize>n * <usize>dim) << 2);
    for (let c = c0; c < c1; c++) store<f32>(dst + (<usize>c << 2), load<f32>(dst + (<usize>c << 2)) + load<f32>(src + (<usize>c << 2)));
  }
  return 0;
}

export function crossEntropy(logits: usize, targets: usize, nll: usize, lse: usize, rows: i32, vocab: i32, tid: i32, threads: i32): i32 {
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

export function crossEntropyBackward(logits: usize, targets: usize, lse: usize, dnll: usize, dlogits: usize, rows: i32, vocab: i32, tid: i32, threads: i32): void {
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
