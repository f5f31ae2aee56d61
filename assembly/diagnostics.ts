// Diagnostics for the benchmarks: the bandwidth of streaming reads from memory, which bounds how fast
// a decode step (reading every weight once) can be.

import { partEnd, partStart, Pointer } from "./common";

// The sums land here so the loads cannot be optimised away.
let sink: f32 = 0;

/**
 * Read this thread's share of [ptr, ptr + bytes) with v128 loads, as four sequential streams (its
 * quarters) read side by side: one core reads memory faster that way than along one stream, and the
 * decode GEMV (gemvRows in gemv.ts) reads its weights the same way.
 */
export function streamRead(ptr: Pointer, bytes: i32, tid: i32, threads: i32): void {
  const blocks = bytes >> 6; // 64-byte blocks
  const b0 = partStart(blocks, tid, threads, 1), b1 = partEnd(blocks, tid, threads, 1);
  const quarter = <usize>((b1 - b0) >> 2) << 6;
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  const start = ptr + (<usize>b0 << 6), end = start + quarter;
  for (let p = start; p < end; p += 64) {
    const q = p + quarter, r = q + quarter, s = r + quarter;
    a = f32x4.add(a, v128.and(v128.load(p), v128.load(p, 16)));
    b = f32x4.add(b, v128.and(v128.load(p, 32), v128.load(p, 48)));
    c = f32x4.add(c, v128.and(v128.load(q), v128.load(q, 16)));
    d = f32x4.add(d, v128.and(v128.load(q, 32), v128.load(q, 48)));
    a = f32x4.add(a, v128.and(v128.load(r), v128.load(r, 16)));
    b = f32x4.add(b, v128.and(v128.load(r, 32), v128.load(r, 48)));
    c = f32x4.add(c, v128.and(v128.load(s), v128.load(s, 16)));
    d = f32x4.add(d, v128.and(v128.load(s, 32), v128.load(s, 48)));
  }
  const sum = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  sink += f32x4.extract_lane(sum, 0) + f32x4.extract_lane(sum, 1) + f32x4.extract_lane(sum, 2) + f32x4.extract_lane(sum, 3);
}
