// Micro-kernel experiment (not part of the library): the register tiles of the WASM backend's matmul
// (assembly/gemm.ts) in isolation, on packed panels that stay in L1, so their speed is the ceiling
// of the whole GEMM. Three tiles: the library's own 4x8 (the plain-SIMD build's) and 3x12 (the
// relaxed-SIMD build's), imported from gemm.ts, and a 6x8 kept here (fast alone, but V8 spills its
// accumulators inside the GEMM; see gemm.ts). Each is built twice: with f32x4.mul + f32x4.add and
// with relaxed SIMD's f32x4.relaxed_madd (madd in assembly/common.ts).
// Run: node bench/microkernel/run.mjs

import { madd } from "../../assembly/common";
import { microKernel3x12, microKernel4x8 } from "../../assembly/gemm";

// The tile is stored contiguously at c (row stride = one tile row), overwriting it.
export function k4x8(ap: usize, bp: usize, kc: i32, c: usize): void {
  microKernel4x8(ap, bp, kc, c, 8 * 4, false);
}
export function k3x12(ap: usize, bp: usize, kc: i32, c: usize): void {
  microKernel3x12(ap, bp, kc, c, 12 * 4, false);
}
export function k6x8(ap: usize, bp: usize, kc: i32, c: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  const end = ap + <usize>kc * 24;
  while (ap < end) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    a = v128.load32_splat(ap, 16);
    c40 = madd(a, b0, c40); c41 = madd(a, b1, c41);
    a = v128.load32_splat(ap, 20);
    c50 = madd(a, b0, c50); c51 = madd(a, b1, c51);
    ap += 24; bp += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16); v128.store(c, c10, 32); v128.store(c, c11, 48);
  v128.store(c, c20, 64); v128.store(c, c21, 80); v128.store(c, c30, 96); v128.store(c, c31, 112);
  v128.store(c, c40, 128); v128.store(c, c41, 144); v128.store(c, c50, 160); v128.store(c, c51, 176);
}
