// Matrix multiply with 128-bit SIMD.
//
//   out[b] = op(A[b]) @ op(B[b]),  op(A): [M, K], op(B): [K, N], out: [M, N], row-major f32.
//
// Blocking scheme (Goto / BLIS, sized for a 32 KiB L1 and 512 KiB L2 per core):
//   for each column block jc of <= NC = 1920 columns       (B block: KC x NC, lives in L3)
//     for each depth block pc of KC = 256                   pack B[pc:pc+KC, jc:jc+NC] into
//                                                           panels of NR columns, zero-padded
//       for each row block ic of MC = 120 rows              pack A[ic:ic+MC, pc:pc+KC] into
//                                                           panels of MR rows, zero-padded
//         for each B panel jr (KC x NR, stays in L1),
//           for each A panel ir (KC x MR, from L2):         micro-kernel: an MR x NR tile of out
//                                                           in MR * NR / 4 v128 accumulators
// Packing makes every micro-kernel load sequential and handles transposes and bf16 / f16 weights in
// one place (widened to f32 while packing). Per k, the micro-kernel loads NR / 4 vectors of B,
// broadcasts MR floats of A and does MR * NR / 4 multiply-adds.
//
// The tile: 3 x 12 in the relaxed-SIMD builds, 4 x 8 in the plain ones. V8 gives WebAssembly 15 of
// x64's 16 vector registers, and its scheduler issues all of an iteration's loads first, so the
// accumulators, the B vectors and all MR broadcasts of A are live at once; one more and V8 spills an
// accumulator to the stack inside the hot loop (a 6 x 8 tile measured 16 GFLOP/s that way).
//   - Relaxed SIMD: f32x4.relaxed_madd (madd in common.ts) is one fused multiply-add. It takes 4
//     cycles on this CPU (AMD Zen 3) and two start per cycle, so at least 8 independent accumulators
//     keep both units busy. 3 x 12: 9 accumulators + 3 B + 3 A = 15 registers. (4 x 8 has exactly 8
//     accumulators, no slack: alone, 3 x 12 ran 1.2-1.6x as fast in the same runs, up to 47 GFLOP/s
//     on one thread, bench/microkernel; inside this GEMM the two measured within this machine's
//     noise of each other, 36-42.)
//   - Plain SIMD: f32x4.mul then f32x4.add needs one more register for the product, so 3 x 12 spills
//     (17 GFLOP/s); 4 x 8: 8 accumulators + 2 B + 4 A + 1 product = 15.
// Fused results round once, so the two builds differ in the last bits. Hand unrolling does not help
// (V8 unrolls).
//
// M = 1 (decoding one token) takes the GEMV paths instead: no packing, the weight rows are streamed
// once, bf16 widened in registers.
//
// Threads split the output columns (or the batch, when it has at least one entry per thread); each
// thread packs into its own workspace.

import { BF16, F16, F32, f16ToF32, loadAsF32, madd, partEnd, partStart } from "./common";

// The register tile: 3 x 12 where multiply-add is one instruction, 4 x 8 where it is two (see above).
const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 3 : 4;
const NR: i32 = ASC_FEATURE_RELAXED_SIMD ? 12 : 8;
const KC = 256;
const MC = 120; // a multiple of both MRs: row blocks never share a tile
const NC = 1920; // a multiple of both NRs: column blocks never share a panel

/** Bytes of workspace each thread needs: a packed B block, a packed A block, one MR x NR tile. */
export function matmulWorkspaceBytes(): usize {
  return <usize>(KC * NC + MC * KC + MR * NR) * 4;
}

// ---------------------------------------------------------------------------------------------------
// The micro-kernels: tile (MR x NR) = Ap panel (kc x MR) x Bp panel (kc x NR), added to the tile when
// `accumulate`, stored with row stride ldc bytes.

@inline function microKernel(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, accumulate: bool): void {
  if (ASC_FEATURE_RELAXED_SIMD) microKernel3x12(ap, bp, kc, c, ldc, accumulate);
  else microKernel4x8(ap, bp, kc, c, ldc, accumulate);
}

/** The 3 x 12 tile: 9 accumulators + 3 B vectors + 3 A broadcasts = 15 registers. */
@inline export function microKernel3x12(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0);
  const end = ap + <usize>kc * 12;
  while (ap < end) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16), b2 = v128.load(bp, 32);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    c02 = madd(a, b2, c02);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    c12 = madd(a, b2, c12);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    c22 = madd(a, b2, c22);
    ap += 12;
    bp += 48;
  }
  const c1 = c + ldc, c2 = c1 + ldc;
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c02 = f32x4.add(c02, v128.load(c, 32));
    c10 = f32x4.add(c10, v128.load(c1));
    c11 = f32x4.add(c11, v128.load(c1, 16));
    c12 = f32x4.add(c12, v128.load(c1, 32));
    c20 = f32x4.add(c20, v128.load(c2));
    c21 = f32x4.add(c21, v128.load(c2, 16));
    c22 = f32x4.add(c22, v128.load(c2, 32));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c, c02, 32);
  v128.store(c1, c10);
  v128.store(c1, c11, 16);
  v128.store(c1, c12, 32);
  v128.store(c2, c20);
  v128.store(c2, c21, 16);
  v128.store(c2, c22, 32);
}

/** The 4 x 8 tile: 8 accumulators + 2 B vectors + 4 A broadcasts + 1 product = 15 registers. */
@inline export function microKernel4x8(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = ap + (<usize>kc << 4);
  while (ap < end) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    ap += 16;
    bp += 32;
  }
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c1));
    c11 = f32x4.add(c11, v128.load(c1, 16));
    c20 = f32x4.add(c20, v128.load(c2));
    c21 = f32x4.add(c21, v128.load(c2, 16));
    c30 = f32x4.add(c30, v128.load(c3));
    c31 = f32x4.add(c31, v128.load(c3, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c1, c10);
  v128.store(c1, c11, 16);
  v128.store(c2, c20);
  v128.store(c2, c21, 16);
  v128.store(c3, c30);
  v128.store(c3, c31, 16);
}

// ---------------------------------------------------------------------------------------------------
// Packing

/** Pack op(B)[p0 : p0+kc, j0 : j0+nc] into panels of NR columns: dst[panel][p][0..NR], zero-padded. */
function packB(dst: usize, b: usize, bDType: i32, transB: bool, k: i32, n: i32, p0: i32, kc: i32, j0: i32, nc: i32): void {
  let jp = 0;
  if (!transB && bDType == F32) {
    // B stored [K, N] in f32: copy row by row, each row's NR-column pieces into their panels, so B is
    // read sequentially. (Panel by panel, each panel reads NR floats from each of kc rows far apart:
    // 25 ms of a 150 ms 128 x 2048 x 8192 product on one thread here, against 18 ms row by row.)
    const fullPanels = nc / NR; // j0 + nc <= n
    const panelBytes = <usize>kc * NR * 4;
    for (let p = 0; p < kc; p++) {
      const src = b + ((<usize>(p0 + p) * <usize>n + <usize>j0) << 2);
      let out = dst + <usize>p * NR * 4;
      for (let panel = 0; panel < fullPanels; panel++) {
        const from = src + <usize>panel * NR * 4;
        for (let v = 0; v < NR / 4; v++) v128.store(out + (<usize>v << 4), v128.load(from + (<usize>v << 4)));
        out += panelBytes;
      }
    }
    jp = fullPanels * NR;
    dst += <usize>fullPanels * panelBytes;
  }
  for (; jp < nc; jp += NR) {
    const j = j0 + jp;
    const full = j + NR <= n;
    let p = 0;
    if (transB && full && bDType != F16) {
      // Weights stored [N, K] (x @ W^T): each of the panel's NR columns is a contiguous row of W.
      // For each group of 4 columns, load consecutive k of its 4 rows, transpose each 4 x 4 block in
      // registers and store it into 4 panel rows. bf16 rows give 8 k per 16-byte load, widened to
      // two f32x4 (the bf16 weights of a 64 x 2048 x 8192 product, one thread: 10.4 ms to pack 8 k at
      // a time, 13.6 ms 4 at a time).
      if (bDType == BF16) {
        for (; p + 8 <= kc; p += 8) {
          for (let group = 0; group < NR / 4; group++) {
            const row = b + ((<usize>(j + group * 4) * <usize>k + <usize>(p0 + p)) << 1), stride = <usize>k << 1;
            const w0 = v128.load(row), w1 = v128.load(row + stride), w2 = v128.load(row + 2 * stride), w3 = v128.load(row + 3 * stride);
            const out = dst + (<usize>group << 4);
            transpose4x4(out, bf16Low(w0), bf16Low(w1), bf16Low(w2), bf16Low(w3));
            transpose4x4(out + 4 * NR * 4, bf16High(w0), bf16High(w1), bf16High(w2), bf16High(w3));
          }
          dst += 8 * NR * 4;
        }
      }
      for (; p + 4 <= kc; p += 4) {
        for (let group = 0; group < NR / 4; group++) {
          const row = <usize>(j + group * 4) * <usize>k + <usize>(p0 + p);
          const r0 = load4(b, bDType, row), r1 = load4(b, bDType, row + <usize>k);
          const r2 = load4(b, bDType, row + 2 * <usize>k), r3 = load4(b, bDType, row + 3 * <usize>k);
          transpose4x4(dst + (<usize>group << 4), r0, r1, r2, r3);
        }
        dst += 4 * NR * 4;
      }
    }
    for (; p < kc; p++) {
      const row = <usize>(p0 + p);
      for (let jj = 0; jj < NR; jj++) {
        const col = j + jj;
        let v: f32 = 0;
        if (col < n) v = loadAsF32(b, bDType, transB ? <usize>col * <usize>k + row : row * <usize>n + <usize>col);
        store<f32>(dst + (<usize>jj << 2), v);
      }
      dst += NR * 4;
    }
  }
}

/** Store rows r0..r3 (4 k each, of 4 columns) as 4 panel rows, NR floats apart: a 4 x 4 transpose. */
@inline function transpose4x4(out: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
  v128.store(out, v128.shuffle<i32>(t0, t1, 0, 1, 4, 5));
  v128.store(out, v128.shuffle<i32>(t0, t1, 2, 3, 6, 7), NR * 4);
  v128.store(out, v128.shuffle<i32>(t2, t3, 0, 1, 4, 5), 2 * NR * 4);
  v128.store(out, v128.shuffle<i32>(t2, t3, 2, 3, 6, 7), 3 * NR * 4);
}

/** Widen 8 bf16 values (one v128) to two f32x4: each bf16 is the top half of an f32. */
@inline function bf16Low(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}
@inline function bf16High(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
}

/** Four consecutive elements at `index` of an f32 or bf16 array, as f32x4. */
@inline function load4(ptr: usize, dtype: i32, index: usize): v128 {
  if (dtype == F32) return v128.load(ptr + (index << 2));
  return bf16Low(v128.load64_zero(ptr + (index << 1)));
}

/** Pack op(A)[i0 : i0+mc, p0 : p0+kc] into panels of MR rows: dst[panel][p][0..MR], zero-padded. */
function packA(dst: usize, a: usize, transA: bool, m: i32, k: i32, i0: i32, mc: i32, p0: i32, kc: i32): void {
  for (let ip = 0; ip < mc; ip += MR) {
    const row = i0 + ip;
    let p = 0;
    if (!transA && row + MR <= m) {
      // Rows of A are contiguous in k: load 4 k of each row and interleave them into the panel's
      // order with shuffles (a 4 x 4 transpose for MR = 4).
      const x = a + ((<usize>row * <usize>k + <usize>p0) << 2), y = x + (<usize>k << 2), z = y + (<usize>k << 2);
      for (; p + 4 <= kc; p += 4) {
        const offset = <usize>p << 2;
        const rx = v128.load(x + offset), ry = v128.load(y + offset), rz = v128.load(z + offset);
        const xy01 = v128.shuffle<i32>(rx, ry, 0, 4, 1, 5), xy23 = v128.shuffle<i32>(rx, ry, 2, 6, 3, 7);
        if (MR == 3) {
          // x0 y0 z0 x1 | y1 z1 x2 y2 | z2 x3 y3 z3
          v128.store(dst, v128.shuffle<i32>(xy01, rz, 0, 1, 4, 2));
          v128.store(dst, v128.shuffle<i32>(v128.shuffle<i32>(xy01, rz, 3, 5, 3, 5), xy23, 0, 1, 4, 5), 16);
          v128.store(dst, v128.shuffle<i32>(rz, xy23, 2, 6, 7, 3), 32);
        } else {
          // x0 y0 z0 w0 | x1 y1 z1 w1 | x2 y2 z2 w2 | x3 y3 z3 w3
          const rw = v128.load(z + (<usize>k << 2) + offset);
          const zw01 = v128.shuffle<i32>(rz, rw, 0, 4, 1, 5), zw23 = v128.shuffle<i32>(rz, rw, 2, 6, 3, 7);
          v128.store(dst, v128.shuffle<i32>(xy01, zw01, 0, 1, 4, 5));
          v128.store(dst, v128.shuffle<i32>(xy01, zw01, 2, 3, 6, 7), 16);
          v128.store(dst, v128.shuffle<i32>(xy23, zw23, 0, 1, 4, 5), 32);
          v128.store(dst, v128.shuffle<i32>(xy23, zw23, 2, 3, 6, 7), 48);
        }
        dst += 4 * MR * 4;
      }
    } else if (transA && row + 4 <= m) {
      // op(A) = A^T: the panel's rows are contiguous in each row of A, so one v128 load per k holds
      // them (and, when MR = 3, one float of the next panel, dropped by the shuffles).
      const src = a + ((<usize>p0 * <usize>m + <usize>row) << 2), stride = <usize>m << 2;
      if (MR == 4) {
        for (; p < kc; p++) {
          v128.store(dst, v128.load(src + <usize>p * stride));
          dst += 16;
        }
      } else {
        for (; p + 4 <= kc; p += 4) {
          const k0 = src + <usize>p * stride;
          const v0 = v128.load(k0), v1 = v128.load(k0 + stride), v2 = v128.load(k0 + 2 * stride), v3 = v128.load(k0 + 3 * stride);
          // k0: a b c, k1: d e f, k2: g h i, k3: j k l  ->  a b c d | e f g h | i j k l
          v128.store(dst, v128.shuffle<i32>(v0, v1, 0, 1, 2, 4));
          v128.store(dst, v128.shuffle<i32>(v1, v2, 1, 2, 4, 5), 16);
          v128.store(dst, v128.shuffle<i32>(v2, v3, 2, 4, 5, 6), 32);
          dst += 48;
        }
      }
    }
    for (; p < kc; p++) {
      const col = <usize>(p0 + p);
      for (let r = 0; r < MR; r++) {
        const i = row + r;
        let v: f32 = 0;
        if (i < m) v = load<f32>(a + ((transA ? col * <usize>m + <usize>i : <usize>i * <usize>k + col) << 2));
        store<f32>(dst + (<usize>r << 2), v);
      }
      dst += MR * 4;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// GEMM on one batch entry, columns [n0, n1) of the output.

/** The size of equal blocks covering `total`: a multiple of `align`, at most `max` (a multiple of align). */
@inline function equalBlocks(total: i32, max: i32, align: i32): i32 {
  const blocks = (total + max - 1) / max;
  return ((total + blocks - 1) / blocks + align - 1) / align * align;
}

function gemm(
  a: usize, b: usize, bDType: i32, out: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool,
  n0: i32, n1: i32, ws: usize,
): void {
  const packedB = ws;
  const packedA = ws + <usize>(KC * NC * 4);
  const tile = packedA + <usize>(MC * KC * 4);
  const ldc = <usize>n << 2;
  if (m == 0) return;
  if (k == 0) {
    for (let i = 0; i < m; i++) memory.fill(out + ((<usize>i * <usize>n + <usize>n0) << 2), 0, <usize>(n1 - n0) << 2);
    return;
  }
  // Column and row blocks of equal size (multiples of NR and MR, at most NC and MC): 2048 columns
  // split into 1920 + 128 would pack all of A twice for little work in the second block, and 128 rows
  // into 120 + 8 would stream the whole B block through the cache for 8 rows.
  const blockWidth = equalBlocks(n1 - n0, NC, NR), blockHeight = equalBlocks(m, MC, MR);
  for (let jc = n0; jc < n1; jc += blockWidth) {
    const nc = min<i32>(blockWidth, n1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min<i32>(KC, k - pc);
      packB(packedB, b, bDType, transB, k, n, pc, kc, jc, nc);
      for (let ic = 0; ic < m; ic += blockHeight) {
        const mc = min<i32>(blockHeight, m - ic);
        packA(packedA, a, transA, m, k, ic, mc, pc, kc);
        for (let jr = 0; jr < nc; jr += NR) {
          const bp = packedB + (<usize>jr * <usize>kc << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const ap = packedA + (<usize>ir * <usize>kc << 2);
            const row = ic + ir, col = jc + jr;
            const c = out + ((<usize>row * <usize>n + <usize>col) << 2);
            if (row + MR <= m && col + NR <= n1) {
              microKernel(ap, bp, kc, c, ldc, pc > 0);
            } else {
              // An edge tile: compute the whole MR x NR tile aside, then add the part inside out.
              microKernel(ap, bp, kc, tile, NR * 4, false);
              const rows = min<i32>(MR, m - row), cols = min<i32>(NR, n1 - col);
              for (let r = 0; r < rows; r++) {
                for (let cc = 0; cc < cols; cc++) {
                  const dst = c + (<usize>r * ldc) + (<usize>cc << 2);
                  const v = load<f32>(tile + (<usize>(r * NR + cc) << 2));
                  store<f32>(dst, pc > 0 ? load<f32>(dst) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// GEMV: one row of activations times a weight matrix, columns [n0, n1).

@inline function horizontalSum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Widen 8 weights at p (bf16 or f32) into two f32x4. */
@inline function weights8Low(row: usize, p: i32, bf16: bool): v128 {
  return bf16 ? bf16Low(v128.load(row + (<usize>p << 1))) : v128.load(row + (<usize>p << 2));
}
@inline function weights8High(row: usize, p: i32, bf16: bool): v128 {
  return bf16 ? bf16High(v128.load(row + (<usize>p << 1))) : v128.load(row + (<usize>p << 2), 16);
}

/**
 * out[j] = x . W[j, :] for W stored [N, K] (transB), rows streamed once. Four rows at a time share
 * each load of x and keep eight independent accumulators in flight.
 */
function gemvRows(x: usize, w: usize, bDType: i32, out: usize, k: i32, n0: i32, n1: i32, xs: usize): void {
  if (bDType == F16) {
    for (let j = n0; j < n1; j++) {
      let sum: f32 = 0;
      for (let p = 0; p < k; p++) sum += load<f32>(x + (<usize>p << 2)) * f16ToF32(<u32>load<u16>(w + ((<usize>j * <usize>k + <usize>p) << 1)));
      store<f32>(out + (<usize>j << 2), sum);
    }
    return;
  }
  const bf16 = bDType == BF16;
  const shift: usize = bf16 ? 1 : 2;
  const k8 = k & ~7;
  const highHalves = i32x4.splat(0xffff0000);
  // The four-row bf16 loop reads x reordered from the workspace (xs), which holds any realistic K
  // (163840 floats); beyond that, every row takes the one-row loop.
  const fourRows = !bf16 || (<usize>k << 2) <= matmulWorkspaceBytes();
  if (bf16 && fourRows) {
    // xs = x with each block of 8 reordered as x0 x2 x4 x6 x1 x3 x5 x7 (see the loop below).
    for (let p = 0; p < k8; p += 8) {
      const lo = v128.load(x + (<usize>p << 2)), hi = v128.load(x + (<usize>p << 2), 16);
      v128.store(xs + (<usize>p << 2), i8x16.shuffle(lo, hi, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27));
      v128.store(xs + (<usize>p << 2), i8x16.shuffle(lo, hi, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31), 16);
    }
  }
  // The four rows taken together come from the four quarters of [n0, n1): four sequential streams
  // far apart in memory. One core reads memory 1.6-1.7x faster that way than along one stream here
  // (bench/microkernel/streams.mjs). Four adjacent rows are nearly one stream: bf16 1 x 2048 x 8192
  // on 2 threads read 19 GB/s that way, 23-28 GB/s from the quarters.
  const quarter = fourRows ? (n1 - n0) >> 2 : 0;
  for (let t = 0; t < quarter; t++) {
    const j0 = n0 + t, j1 = j0 + quarter, j2 = j1 + quarter, j3 = j2 + quarter;
    const r0 = w + ((<usize>j0 * <usize>k) << shift), r1 = w + ((<usize>j1 * <usize>k) << shift);
    const r2 = w + ((<usize>j2 * <usize>k) << shift), r3 = w + ((<usize>j3 * <usize>k) << shift);
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    if (bf16) {
      // One 16-byte load holds 8 bf16 weights w0..w7 of a row, as four u32 lanes [w1:w0, w3:w2, ...].
      // Shifting each lane left 16 bits gives f32 w0, w2, w4, w6; masking the low half off gives f32
      // w1, w3, w5, w7. Multiplying those by x reordered the same way (done once, into xs) makes the
      // widening two cheap integer operations per 8 weights.
      for (let p = 0; p < k8; p += 8) {
        const xp = xs + (<usize>p << 2), wp = <usize>p << 1;
        const xe = v128.load(xp), xo = v128.load(xp, 16);
        const w0 = v128.load(r0 + wp), w1 = v128.load(r1 + wp), w2 = v128.load(r2 + wp), w3 = v128.load(r3 + wp);
        a0 = madd(i32x4.shl(w0, 16), xe, a0);
        b0 = madd(v128.and(w0, highHalves), xo, b0);
        a1 = madd(i32x4.shl(w1, 16), xe, a1);
        b1 = madd(v128.and(w1, highHalves), xo, b1);
        a2 = madd(i32x4.shl(w2, 16), xe, a2);
        b2 = madd(v128.and(w2, highHalves), xo, b2);
        a3 = madd(i32x4.shl(w3, 16), xe, a3);
        b3 = madd(v128.and(w3, highHalves), xo, b3);
      }
    } else {
      for (let p = 0; p < k8; p += 8) {
        const xp = x + (<usize>p << 2), wp = <usize>p << 2;
        const xl = v128.load(xp), xh = v128.load(xp, 16);
        a0 = madd(v128.load(r0 + wp), xl, a0);
        b0 = madd(v128.load(r0 + wp, 16), xh, b0);
        a1 = madd(v128.load(r1 + wp), xl, a1);
        b1 = madd(v128.load(r1 + wp, 16), xh, b1);
        a2 = madd(v128.load(r2 + wp), xl, a2);
        b2 = madd(v128.load(r2 + wp, 16), xh, b2);
        a3 = madd(v128.load(r3 + wp), xl, a3);
        b3 = madd(v128.load(r3 + wp, 16), xh, b3);
      }
    }
    let s0 = horizontalSum(f32x4.add(a0, b0)), s1 = horizontalSum(f32x4.add(a1, b1));
    let s2 = horizontalSum(f32x4.add(a2, b2)), s3 = horizontalSum(f32x4.add(a3, b3));
    for (let p = k8; p < k; p++) {
      const xv = load<f32>(x + (<usize>p << 2));
      s0 += xv * loadAsF32(w, bDType, <usize>j0 * <usize>k + <usize>p);
      s1 += xv * loadAsF32(w, bDType, <usize>j1 * <usize>k + <usize>p);
      s2 += xv * loadAsF32(w, bDType, <usize>j2 * <usize>k + <usize>p);
      s3 += xv * loadAsF32(w, bDType, <usize>j3 * <usize>k + <usize>p);
    }
    store<f32>(out + (<usize>j0 << 2), s0);
    store<f32>(out + (<usize>j1 << 2), s1);
    store<f32>(out + (<usize>j2 << 2), s2);
    store<f32>(out + (<usize>j3 << 2), s3);
  }
  // The rows the quarters left over, one at a time.
  for (let j = n0 + 4 * quarter; j < n1; j++) {
    const row = w + ((<usize>j * <usize>k) << shift);
    let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
    for (let p = 0; p < k8; p += 8) {
      const xp = x + (<usize>p << 2);
      acc0 = madd(weights8Low(row, p, bf16), v128.load(xp), acc0);
      acc1 = madd(weights8High(row, p, bf16), v128.load(xp, 16), acc1);
    }
    let sum = horizontalSum(f32x4.add(acc0, acc1));
    for (let p = k8; p < k; p++) sum += load<f32>(x + (<usize>p << 2)) * loadAsF32(w, bDType, <usize>j * <usize>k + <usize>p);
    store<f32>(out + (<usize>j << 2), sum);
  }
}

/** out[j] = sum_p x[p] W[p, j] for W stored [K, N]: rows of W streamed, columns [n0, n1) accumulated. */
function gemvColumns(x: usize, w: usize, bDType: i32, out: usize, k: i32, n: i32, n0: i32, n1: i32): void {
  memory.fill(out + (<usize>n0 << 2), 0, <usize>(n1 - n0) << 2);
  const n8 = n0 + ((n1 - n0) & ~7);
  for (let p = 0; p < k; p++) {
    const xv: f32 = load<f32>(x + (<usize>p << 2));
    const xs = f32x4.splat(xv);
    const rowIndex = <usize>p * <usize>n;
    if (bDType == BF16) {
      for (let j = n0; j < n8; j += 8) {
        const packed = v128.load(w + ((rowIndex + <usize>j) << 1));
        const o = out + (<usize>j << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(xs, bf16Low(packed))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(xs, bf16High(packed))), 16);
      }
    } else if (bDType == F32) {
      for (let j = n0; j < n8; j += 8) {
        const wp = w + ((rowIndex + <usize>j) << 2);
        const o = out + (<usize>j << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(xs, v128.load(wp))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(xs, v128.load(wp, 16))), 16);
      }
    }
    const tailStart = bDType == F16 ? n0 : n8;
    for (let j = tailStart; j < n1; j++) {
      const o = out + (<usize>j << 2);
      store<f32>(o, load<f32>(o) + xv * loadAsF32(w, bDType, rowIndex + <usize>j));
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The kernel: see KernelArgs["matmul"] in src/core/backend.ts.

export function matmul(
  a: usize, b: usize, out: usize, bDType: i32, batch: i32, m: i32, k: i32, n: i32, transA: i32, transB: i32,
  aBatchStride: usize, bBatchStride: usize, workspace: usize, tid: i32, threads: i32,
): void {
  const bElementBytes: usize = bDType == F32 ? 4 : 2;
  const ws = workspace + <usize>tid * matmulWorkspaceBytes();
  // With at least one batch entry per thread, threads take whole entries; otherwise they split columns.
  const splitBatch = batch >= threads;
  const b0 = splitBatch ? partStart(batch, tid, threads, 1) : 0;
  const b1 = splitBatch ? partEnd(batch, tid, threads, 1) : batch;
  const n0 = splitBatch ? 0 : partStart(n, tid, threads, NR);
  const n1 = splitBatch ? n : partEnd(n, tid, threads, NR);
  if (n0 >= n1) return;
  for (let e = b0; e < b1; e++) {
    const ae = a + ((<usize>e * aBatchStride) << 2);
    const be = b + <usize>e * bBatchStride * bElementBytes;
    const oe = out + ((<usize>e * <usize>m * <usize>n) << 2);
    if (m == 1 && transB != 0) gemvRows(ae, be, bDType, oe, k, n0, n1, ws);
    else if (m == 1) gemvColumns(ae, be, bDType, oe, k, n, n0, n1);
    else gemm(ae, be, bDType, oe, m, k, n, transA != 0, transB != 0, n0, n1, ws);
  }
}
