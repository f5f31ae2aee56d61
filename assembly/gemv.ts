// The GEMVs of the matmul kernel (M = 1, decoding one token): one row of activations times a weight
// matrix, columns [n0, n1) of the output. No packing: every weight is read once, straight from memory,
// so speed is memory bandwidth, and bf16 weights (half the bytes) are widened in registers.

import { bf16High, bf16Low, DTYPE_BF16, DTYPE_F16, DTYPE_F32, f16ToF32, loadAsF32, madd } from "./common";
import { matmulWorkspaceBytes } from "./gemm";

@inline function horizontalSum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/**
 * The odd bf16 weights of a load v as f32 (each u32 lane [odd:even] with its low half cleared), given
 * its even ones e = v << 16: v ^ (e >>> 16), which needs no mask constant (and so no register for one).
 */
@inline function oddWeights(v: v128, e: v128): v128 {
  return v128.xor(v, i32x4.shr_u(e, 16));
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
 * each load of x and keep eight (bf16, relaxed build) or four (bf16 plain build, f32) independent
 * accumulators in flight.
 */
export function gemvRows(x: usize, w: usize, bDType: i32, out: usize, k: i32, n0: i32, n1: i32, xs: usize): void {
  if (bDType == DTYPE_F16) {
    for (let j = n0; j < n1; j++) {
      let sum: f32 = 0;
      for (let p = 0; p < k; p++) sum += load<f32>(x + (<usize>p << 2)) * f16ToF32(<u32>load<u16>(w + ((<usize>j * <usize>k + <usize>p) << 1)));
      store<f32>(out + (<usize>j << 2), sum);
    }
    return;
  }
  const bf16 = bDType == DTYPE_BF16;
  const shift: usize = bf16 ? 1 : 2;
  const k8 = k & ~7, k4 = k & ~3;
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
  // far apart in memory: one core reads memory faster as a few streams side by side than along one
  // (bench/NOTES.md, bench/microkernel/streams.mjs). Four adjacent rows would be nearly one stream.
  const quarter = fourRows ? (n1 - n0) >> 2 : 0;
  const rowBytes = <usize>k << shift, quarterBytes = <usize>quarter * rowBytes;
  for (let t = 0; t < quarter; t++) {
    const j0 = n0 + t, j1 = j0 + quarter, j2 = j1 + quarter, j3 = j2 + quarter;
    const r0 = w + <usize>j0 * rowBytes;
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    // Every loop below keeps everything in registers: the relaxed bf16 loop's 8 accumulators, 2 of x,
    // the weights of the step and a temporary fit the 15 vector registers V8 allocates on x64 (the
    // plain bf16 loop and the f32 loop keep 4 accumulators, having more temporaries or loads). One more
    // live value (a mask constant, or all of a step's loads issued before any use) makes V8 spill an
    // accumulator to the stack, and the store and reload then sit on that accumulator's chain every
    // step: 1.4x slower (bench/NOTES.md, "Registers").
    if (bf16) {
      // One 16-byte load holds 8 bf16 weights w0..w7 of a row, as four u32 lanes [w1:w0, w3:w2, ...].
      // Shifting each lane left 16 bits gives f32 w0, w2, w4, w6 (even); clearing the low halves gives
      // f32 w1, w3, w5, w7 (odd; oddWeights, with no mask constant to take a register). Multiplying
      // those by x reordered the same way (done once, into xs) makes the widening three cheap integer
      // operations per 8 weights.
      const end = r0 + (<usize>k8 << 1);
      let xp = xs;
      if (ASC_FEATURE_RELAXED_SIMD) {
        for (let r = r0; r < end; r += 16, xp += 32) {
          const xe = v128.load(xp), xo = v128.load(xp, 16);
          let v = v128.load(r), e = i32x4.shl(v, 16);
          a0 = madd(e, xe, a0);
          b0 = madd(oddWeights(v, e), xo, b0);
          v = v128.load(r + quarterBytes);
          e = i32x4.shl(v, 16);
          a1 = madd(e, xe, a1);
          b1 = madd(oddWeights(v, e), xo, b1);
          v = v128.load(r + 2 * quarterBytes);
          e = i32x4.shl(v, 16);
          a2 = madd(e, xe, a2);
          b2 = madd(oddWeights(v, e), xo, b2);
          v = v128.load(r + 3 * quarterBytes);
          e = i32x4.shl(v, 16);
          a3 = madd(e, xe, a3);
          b3 = madd(oddWeights(v, e), xo, b3);
        }
      } else {
        // Plain SIMD: a multiply and an add for each product, so a temporary more than the fused
        // loop; eight accumulators then spill one. A row's even and odd products are summed first,
        // into one accumulator a row (the b's stay zero).
        for (let r = r0; r < end; r += 16, xp += 32) {
          const xe = v128.load(xp), xo = v128.load(xp, 16);
          let v = v128.load(r), e = i32x4.shl(v, 16);
          a0 = f32x4.add(a0, f32x4.add(f32x4.mul(e, xe), f32x4.mul(oddWeights(v, e), xo)));
          v = v128.load(r + quarterBytes);
          e = i32x4.shl(v, 16);
          a1 = f32x4.add(a1, f32x4.add(f32x4.mul(e, xe), f32x4.mul(oddWeights(v, e), xo)));
          v = v128.load(r + 2 * quarterBytes);
          e = i32x4.shl(v, 16);
          a2 = f32x4.add(a2, f32x4.add(f32x4.mul(e, xe), f32x4.mul(oddWeights(v, e), xo)));
          v = v128.load(r + 3 * quarterBytes);
          e = i32x4.shl(v, 16);
          a3 = f32x4.add(a3, f32x4.add(f32x4.mul(e, xe), f32x4.mul(oddWeights(v, e), xo)));
        }
      }
    } else {
      // f32: four weights of each row per step into four accumulators (the b's stay zero). Eight
      // weight loads per step, two rows' worth each, were more than the registers hold.
      const end = r0 + (<usize>k4 << 2);
      let xp = x;
      for (let r = r0; r < end; r += 16, xp += 16) {
        const xv = v128.load(xp);
        a0 = madd(v128.load(r), xv, a0);
        a1 = madd(v128.load(r + quarterBytes), xv, a1);
        a2 = madd(v128.load(r + 2 * quarterBytes), xv, a2);
        a3 = madd(v128.load(r + 3 * quarterBytes), xv, a3);
      }
    }
    let s0 = horizontalSum(f32x4.add(a0, b0)), s1 = horizontalSum(f32x4.add(a1, b1));
    let s2 = horizontalSum(f32x4.add(a2, b2)), s3 = horizontalSum(f32x4.add(a3, b3));
    for (let p = bf16 ? k8 : k4; p < k; p++) {
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
export function gemvColumns(x: usize, w: usize, bDType: i32, out: usize, k: i32, n: i32, n0: i32, n1: i32): void {
  memory.fill(out + (<usize>n0 << 2), 0, <usize>(n1 - n0) << 2);
  const n8 = n0 + ((n1 - n0) & ~7);
  for (let p = 0; p < k; p++) {
    const xv: f32 = load<f32>(x + (<usize>p << 2));
    const xs = f32x4.splat(xv);
    const rowIndex = <usize>p * <usize>n;
    if (bDType == DTYPE_BF16) {
      for (let j = n0; j < n8; j += 8) {
        const packed = v128.load(w + ((rowIndex + <usize>j) << 1));
        const o = out + (<usize>j << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(xs, bf16Low(packed))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(xs, bf16High(packed))), 16);
      }
    } else if (bDType == DTYPE_F32) {
      for (let j = n0; j < n8; j += 8) {
        const wp = w + ((rowIndex + <usize>j) << 2);
        const o = out + (<usize>j << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(xs, v128.load(wp))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(xs, v128.load(wp, 16))), 16);
      }
    }
    const tailStart = bDType == DTYPE_F16 ? n0 : n8;
    for (let j = tailStart; j < n1; j++) {
      const o = out + (<usize>j << 2);
      store<f32>(o, load<f32>(o) + xv * loadAsF32(w, bDType, rowIndex + <usize>j));
    }
  }
}
