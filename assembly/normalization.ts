// Row-wise normalisations: layer norm (no weight or bias), softmax, log-softmax, forward and backward.
// x: [rows, cols] f32; threads take whole rows. Sums accumulate in f64 so long rows stay accurate.

import { partEnd, partStart } from "./common";

@inline function at(base: usize, row: i32, cols: i32, c: i32): usize {
  return base + ((<usize>row * <usize>cols + <usize>c) << 2);
}

export function layerNorm(x: usize, out: usize, rows: i32, cols: i32, eps: f64, mean: usize, rstd: usize, tid: i32, threads: i32): void {
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

export function layerNormBackward(x: usize, mean: usize, rstd: usize, dout: usize, dx: usize, rows: i32, cols: i32, tid: i32, threads: i32): void {
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

/** log(sum(exp(x - max))) + max of one row. */
export function rowLogSumExp(x: usize, row: i32, cols: i32): f64 {
  let m: f64 = -Infinity;
  for (let c = 0; c < cols; c++) m = max<f64>(m, <f64>load<f32>(at(x, row, cols, c)));
  if (m == -Infinity) return m;
  let sum: f64 = 0;
  for (let c = 0; c < cols; c++) sum += Math.exp(<f64>load<f32>(at(x, row, cols, c)) - m);
  return m + Math.log(sum);
}

export function softmax(x: usize, out: usize, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const lse = rowLogSumExp(x, r, cols);
    for (let c = 0; c < cols; c++) store<f32>(at(out, r, cols, c), <f32>Math.exp(<f64>load<f32>(at(x, r, cols, c)) - lse));
  }
}

export function softmaxBackward(y: usize, dout: usize, dx: usize, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    let dot: f64 = 0;
    for (let c = 0; c < cols; c++) dot += <f64>load<f32>(at(dout, r, cols, c)) * <f64>load<f32>(at(y, r, cols, c));
    for (let c = 0; c < cols; c++) {
      store<f32>(at(dx, r, cols, c), <f32>(<f64>load<f32>(at(y, r, cols, c)) * (<f64>load<f32>(at(dout, r, cols, c)) - dot)));
    }
  }
}

export function logSoftmax(x: usize, out: usize, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const lse = rowLogSumExp(x, r, cols);
    for (let c = 0; c < cols; c++) store<f32>(at(out, r, cols, c), <f32>(<f64>load<f32>(at(x, r, cols, c)) - lse));
  }
}

export function logSoftmaxBackward(y: usize, dout: usize, dx: usize, rows: i32, cols: i32, tid: i32, threads: i32): void {
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    let sum: f64 = 0;
    for (let c = 0; c < cols; c++) sum += <f64>load<f32>(at(dout, r, cols, c));
    for (let c = 0; c < cols; c++) {
      store<f32>(at(dx, r, cols, c), <f32>(<f64>load<f32>(at(dout, r, cols, c)) - Math.exp(<f64>load<f32>(at(y, r, cols, c))) * sum));
    }
  }
}
