// The token embedding: the gather of table rows by id and its scatter-add.
// ids: i32 [N]; table: [V, C]; out: [N, C].
// An id out of range makes the kernel return its position + 1 (0 means success), so the caller can
// name it in an error; threads write nothing for out-of-range ids.

import { DTYPE_F32, loadAsF32, partEnd, partStart, Pointer } from "./common";

export function embedding(table: Pointer, tableDType: i32, ids: Pointer, out: Pointer, count: i32, vocab: i32, dim: i32, tid: i32, threads: i32): i32 {
  const n1 = partEnd(count, tid, threads, 1);
  for (let n = partStart(count, tid, threads, 1); n < n1; n++) {
    const id = load<i32>(ids + (<usize>n << 2));
    if (id < 0 || id >= vocab) return n + 1;
    const dst = out + ((<usize>n * <usize>dim) << 2);
    if (tableDType == DTYPE_F32) memory.copy(dst, table + ((<usize>id * <usize>dim) << 2), <usize>dim << 2);
    else for (let c = 0; c < dim; c++) store<f32>(dst + (<usize>c << 2), loadAsF32(table, tableDType, <usize>id * <usize>dim + <usize>c));
  }
  return 0;
}

/** dtable = 0, then dtable[ids[n]] += dout[n]. Threads split the channels, so no two write one cell. */
export function embeddingBackward(ids: Pointer, dout: Pointer, dtable: Pointer, count: i32, vocab: i32, dim: i32, tid: i32, threads: i32): i32 {
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
