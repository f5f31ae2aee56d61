// Diagnostics for the benchmarks: the bandwidth of streaming reads from memory, which bounds how fast
// a decode step (reading every weight once) can be.

import { partEnd, partStart } from "./common";

// The sums land here so the loads cannot be optimised away.
let sink: f32 = 0;

/** Read this thread's share of [ptr, ptr + bytes) with v128 loads; 4 accumulators keep loads in flight. */
export function streamRead(ptr: usize, bytes: i32, tid: i32, threads: i32): void {
  const blocks = bytes >> 6; // 64-byte blocks
  const b0 = partStart(blocks, tid, threads, 1), b1 = partEnd(blocks, tid, threads, 1);
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  for (let i = b0; i < b1; i++) {
    const p = ptr + (<usize>i << 6);
    a = f32x4.add(a, v128.load(p));
    b = f32x4.add(b, v128.load(p, 16));
    c = f32x4.add(c, v128.load(p, 32));
    d = f32x4.add(d, v128.load(p, 48));
  }
  const s = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  sink += f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}
