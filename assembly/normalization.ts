// Row-wise normalisations: layer norm (no weight or bias), softmax, log-softmax, forward and backward.
// x: [rows, cols] f32; threads take whole rows. Sums accumulate in f64 so long rows stay accurate.

import { expF32x4, OptionalPointer, partEnd, partStart, Pointer } from "./common";

@inline function at(base: usize, row: i32, cols: i32, c: i32): usize {
  return base + ((<usize>row * <usize>cols + <usize>c) << 2);
}

export function layerNorm(x: Pointer, out: Pointer, rows: i32, cols: i32, eps: f64, mean: OptionalPointer, rstd: OptionalPointer, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    let sum: f64 = 0;
    for (let c = 0; c < cols; c++) sum += load<f32>(at(x, r, cols, c));
    const mu = sum / cols;
    let squares: f64 = 0;
    for (let c = 0; c < cols; c++) {
      const d = <f64>load<f32>(at(x, r, cols, c)) - mu;
      squares += d * d;
    }
    const inv = 1 / Math.sqrt(squares / cols + eps);
    for (let c = 0; c < cols; c++) store<f32>(at(out, r, cols, c), <f32>((<f64>load<f32>(at(x, r, cols, c)) - mu) * inv));
    if (mean != 0) store<f32>(mean + (<usize>r << 2), <f32>mu); // saved for the backward pass
    if (rstd != 0) store<f32>(rstd + (<usize>r << 2), <f32>inv);
  }
}

export function layerNormBackward(x: Pointer, mean: Pointer, rstd: Pointer, dout: Pointer, dx: Pointer, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const mu = <f64>load<f32>(mean + (<usize>r << 2)), inv = <f64>load<f32>(rstd + (<usize>r << 2));
    let gMean: f64 = 0, gxMean: f64 = 0;
    for (let c = 0; c < cols; c++) {
      const g = <f64>load<f32>(at(dout, r, cols, c));
      gMean += g;
      gxMean += g * (<f64>load<f32>(at(x, r, cols, c)) - mu) * inv;
    }
    gMean /= cols;
    gxMean /= cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (<f64>load<f32>(at(x, r, cols, c)) - mu) * inv;
      store<f32>(at(dx, r, cols, c), <f32>(inv * (<f64>load<f32>(at(dout, r, cols, c)) - gMean - xhat * gxMean)));
    }
  }
}

/** The largest element of one row (NaN if any is NaN). */
export function rowMax(x: usize, row: i32, cols: i32): f32 {
  const base = at(x, row, cols, 0), c4 = cols & ~3;
  let lanes = f32x4.splat(-Infinity);
  for (let c = 0; c < c4; c += 4) lanes = f32x4.max(lanes, v128.load(base + (<usize>c << 2)));
  let m = max<f32>(max<f32>(f32x4.extract_lane(lanes, 0), f32x4.extract_lane(lanes, 1)), max<f32>(f32x4.extract_lane(lanes, 2), f32x4.extract_lane(lanes, 3)));
  for (let c = c4; c < cols; c++) m = max<f32>(m, load<f32>(base + (<usize>c << 2)));
  return m;
}

/** sum(exp(x - m)) of one row: exponentials four at a time in f32 (expF32x4), summed in f64. */
export function rowSumExp(x: usize, row: i32, cols: i32, m: f32): f64 {
  const base = at(x, row, cols, 0), c4 = cols & ~3, shift = f32x4.splat(m);
  let low = f64x2.splat(0), high = f64x2.splat(0);
  for (let c = 0; c < c4; c += 4) {
    const e = expF32x4(f32x4.sub(v128.load(base + (<usize>c << 2)), shift));
    low = f64x2.add(low, f64x2.promote_low_f32x4(e));
    high = f64x2.add(high, f64x2.promote_low_f32x4(v128.shuffle<i32>(e, e, 2, 3, 2, 3)));
  }
  const lanes = f64x2.add(low, high);
  let sum = f64x2.extract_lane(lanes, 0) + f64x2.extract_lane(lanes, 1);
  for (let c = c4; c < cols; c++) sum += Math.exp(<f64>(load<f32>(base + (<usize>c << 2)) - m));
  return sum;
}

/** log(sum(exp(x - max))) + max of one row. */
export function rowLogSumExp(x: usize, row: i32, cols: i32): f64 {
  const m = rowMax(x, row, cols);
  if (m == -Infinity) return m;
  return <f64>m + Math.log(rowSumExp(x, row, cols, m));
}

export function softmax(x: Pointer, out: Pointer, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    // out = exp(x - m - log(sum)): x - m is exact enough in f32, and log(sum) is small.
    const m = rowMax(x, r, cols);
    const logSum = m == -Infinity ? <f32>0 : <f32>Math.log(rowSumExp(x, r, cols, m));
    const src = at(x, r, cols, 0), dst = at(out, r, cols, 0), c4 = cols & ~3;
    const mv = f32x4.splat(m), lv = f32x4.splat(logSum);
    for (let c = 0; c < c4; c += 4) {
      v128.store(dst + (<usize>c << 2), expF32x4(f32x4.sub(f32x4.sub(v128.load(src + (<usize>c << 2)), mv), lv)));
    }
    for (let c = c4; c < cols; c++) store<f32>(dst + (<usize>c << 2), <f32>Math.exp(<f64>(load<f32>(src + (<usize>c << 2)) - m) - logSum));
  }
}

export function softmaxBackward(y: Pointer, dout: Pointer, dx: Pointer, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    let dot: f64 = 0;
    for (let c = 0; c < cols; c++) dot += <f64>load<f32>(at(dout, r, cols, c)) * <f64>load<f32>(at(y, r, cols, c));
    for (let c = 0; c < cols; c++) {
      store<f32>(at(dx, r, cols, c), <f32>(<f64>load<f32>(at(y, r, cols, c)) * (<f64>load<f32>(at(dout, r, cols, c)) - dot)));
    }
  }
}

export function logSoftmax(x: Pointer, out: Pointer, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const lse = rowLogSumExp(x, r, cols);
    for (let c = 0; c < cols; c++) store<f32>(at(out, r, cols, c), <f32>(<f64>load<f32>(at(x, r, cols, c)) - lse));
  }
}

export function logSoftmaxBackward(y: Pointer, dout: Pointer, dx: Pointer, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    let sum: f64 = 0;
    for (let c = 0; c < cols; c++) sum += <f64>load<f32>(at(dout, r, cols, c));
    for (let c = 0; c < cols; c++) {
      store<f32>(at(dx, r, cols, c), <f32>(<f64>load<f32>(at(dout, r, cols, c)) - Math.exp(<f64>load<f32>(at(y, r, cols, c))) * sum));
    }
  }
}
