// The GEMM of the matmul kernel (M > 1): packing and register-blocked micro-kernels, 128-bit SIMD.
//
//   out = op(A) @ op(B),  op(A): [M, K], op(B): [K, N], out: [M, N], row-major f32 (one batch entry).
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
// accumulator to the stack inside the hot loop (bench/NOTES.md has the measurements behind these
// choices).
//   - Relaxed SIMD: f32x4.relaxed_madd (madd in common.ts) is one fused multiply-add. On current x64
//     cores it has a latency of about 4 cycles and two start per cycle, so at least 8 independent
//     accumulators keep both units busy. 3 x 12: 9 accumulators + 3 B + 3 A = 15 registers (4 x 8
//     has exactly 8 accumulators: no slack over that latency).
//   - Plain SIMD: f32x4.mul then f32x4.add needs one more register for the product, so 3 x 12 spills;
//     4 x 8: 8 accumulators + 2 B + 4 A + 1 product = 15.
// Fused results round once, so the two builds differ in the last bits. Hand unrolling does not help
// (V8 unrolls).
//
// Each thread packs into its own workspace (matmulWorkspaceBytes per thread).
//
// Quantized weights (matmulQuantized in quantized.ts, B stored [N, K] as int8 or int4): each panel's
// rows are first dequantized to f32 into the workspace, then packed as f32 weights are; and op(A)'s
// rows are quantized and dequantized per block of 32 (qx * s) before packing, so the tile multiplies
// the same numbers as the definition's integer products (src/core/quantize.ts), summed in f32.

import { bf16High, bf16Low, DTYPE_BF16, DTYPE_F16, DTYPE_F32, loadAsF32, madd } from "./common";
import { dequantizeRows, quantizeDequantizeRows } from "./quantized";

// The register tile: 3 x 12 where multiply-add is one instruction, 4 x 8 where it is two (see above).
const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 3 : 4;
export const NR: i32 = ASC_FEATURE_RELAXED_SIMD ? 12 : 8;
const KC = 256;
const MC = 120; // a multiple of both MRs: row blocks never share a tile
const NC = 1920; // a multiple of both NRs: column blocks never share a panel

/** B is not quantized (the bScheme argument of gemm; otherwise QUANT_INT8 or QUANT_INT4). */
export const NOT_QUANTIZED: i32 = -1;

/**
 * Bytes of workspace each thread needs: a packed B block, a packed A block, one MR x NR tile, and for
 * quantized weights an A block quantized and dequantized and one panel's rows of B dequantized.
 */
export function matmulWorkspaceBytes(): usize {
  return <usize>(KC * NC + MC * KC + MR * NR + MC * KC + NR * KC) * 4;
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
  if (!transB && bDType == DTYPE_F32) {
    // B stored [K, N] in f32: copy row by row, each row's NR-column pieces into their panels, so B is
    // read sequentially (panel by panel, each panel would read NR floats from each of kc rows far
    // apart, which the hardware prefetcher follows poorly).
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
    if (transB && full && bDType != DTYPE_F16) {
      // Weights stored [N, K] (x @ W^T): each of the panel's NR columns is a contiguous row of W.
      // For each group of 4 columns, load consecutive k of its 4 rows, transpose each 4 x 4 block in
      // registers and store it into 4 panel rows. bf16 rows give 8 k per 16-byte load, widened to
      // two f32x4: one load per 8 k instead of a half-empty one per 4.
      if (bDType == DTYPE_BF16) {
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

/**
 * Pack quantized W[j0 : j0+nc, p0 : p0+kc] (stored [N, K]) like packB: each panel's NR rows are
 * dequantized into `rows` ([NR, kc] f32), then packed from there as f32 weights.
 */
function packQuantizedB(dst: usize, rows: usize, values: usize, scales: usize, scheme: i32, k: i32, n: i32, p0: i32, kc: i32, j0: i32, nc: i32): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const count = min<i32>(NR, n - (j0 + jp));
    dequantizeRows(rows, values, scales, scheme, k, n, j0 + jp, count, p0, kc);
    packB(dst + <usize>jp * <usize>kc * 4, rows, DTYPE_F32, true, kc, count, 0, kc, 0, NR);
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

/** Four consecutive elements at `index` of an f32 or bf16 array, as f32x4. */
@inline function load4(ptr: usize, dtype: i32, index: usize): v128 {
  if (dtype == DTYPE_F32) return v128.load(ptr + (index << 2));
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

export function gemm(
  a: usize, b: usize, bDType: i32, out: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool,
  n0: i32, n1: i32, ws: usize, bScales: usize, bScheme: i32,
): void {
  const packedB = ws;
  const packedA = ws + <usize>(KC * NC * 4);
  const tile = packedA + <usize>(MC * KC * 4);
  const quantizedA = tile + <usize>(MR * NR * 4), dequantizedB = quantizedA + <usize>(MC * KC * 4);
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
      if (bScheme == NOT_QUANTIZED) packB(packedB, b, bDType, transB, k, n, pc, kc, jc, nc);
      else packQuantizedB(packedB, dequantizedB, b, bScales, bScheme, k, n, pc, kc, jc, nc);
      for (let ic = 0; ic < m; ic += blockHeight) {
        const mc = min<i32>(blockHeight, m - ic);
        if (bScheme == NOT_QUANTIZED) packA(packedA, a, transA, m, k, ic, mc, pc, kc);
        else {
          quantizeDequantizeRows(quantizedA, a, k, ic, mc, pc, kc);
          packA(packedA, quantizedA, false, mc, kc, 0, mc, 0, kc);
        }
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
