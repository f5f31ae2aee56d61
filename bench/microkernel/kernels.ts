// Micro-kernel experiment (not part of the library): the register tile of the WASM backend's matmul
// (assembly/matmul.ts) in isolation, on packed panels that stay in L1, so its speed is the ceiling of
// the whole GEMM. Three tiles: 4x8 (the plain-SIMD build's), 3x12 (the relaxed-SIMD build's) and 6x8
// (fast alone, but V8 spills its accumulators inside the GEMM; see matmul.ts), each built twice: with
// f32x4.mul + f32x4.add and with relaxed SIMD's f32x4.relaxed_madd (a fused multiply-add where the CPU
// has one).
// Run: node bench/microkernel/run.mjs

/** c + a * b: fused when compiled with --enable relaxed-simd (ASC_FEATURE_RELAXED_SIMD is a compile-time constant). */
@inline function madd(a: v128, b: v128, c: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? f32x4.relaxed_madd(a, b, c) : f32x4.add(c, f32x4.mul(a, b));
}

export function k4x8(ap: usize, bp: usize, kc: i32, c: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = ap + (<usize>kc << 4);
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
    ap += 16; bp += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16); v128.store(c, c10, 32); v128.store(c, c11, 48);
  v128.store(c, c20, 64); v128.store(c, c21, 80); v128.store(c, c30, 96); v128.store(c, c31, 112);
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
export function k3x12(ap: usize, bp: usize, kc: i32, c: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0);
  const end = ap + <usize>kc * 12;
  while (ap < end) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16), b2 = v128.load(bp, 32);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01); c02 = madd(a, b2, c02);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11); c12 = madd(a, b2, c12);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21); c22 = madd(a, b2, c22);
    ap += 12; bp += 48;
  }
  v128.store(c, c00); v128.store(c, c01, 16); v128.store(c, c02, 32);
  v128.store(c, c10, 48); v128.store(c, c11, 64); v128.store(c, c12, 80);
  v128.store(c, c20, 96); v128.store(c, c21, 112); v128.store(c, c22, 128);
}
