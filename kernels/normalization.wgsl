// Non-parametric layer norm over the last axis (OLMo's LayerNorm: no weight, no bias), forward and
// backward. Reference: src/backends/js/normalization.ts. x, out, dout, dx: [N, C]; mean, rstd: [N].
// One 64-wide workgroup per row; each invocation sums a strided share of the row, then the workgroup
// reduces the 64 partial sums in workgroup memory. The variance is the biased one, in two passes
// (sum of squared deviations from the mean), as the reference.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
  saveStats: u32, // 1: write mean and rstd for the backward pass
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> meanIn: array<f32>;
@group(0) @binding(4) var<storage, read> rstdIn: array<f32>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstdOut: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

// out = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps)
@compute @workgroup_size(64)
fn layerNorm(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var sum = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    sum += x[base + c];
  }
  let mean = workgroupSum(sum, lane) / f32(p.cols);
  var squares = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    let d = x[base + c] - mean;
    squares += d * d;
  }
  let rstd = 1.0 / sqrt(workgroupSum(squares, lane) / f32(p.cols) + p.eps);
  for (var c = lane; c < p.cols; c += 64u) {
    out[base + c] = (x[base + c] - mean) * rstd;
  }
  if (lane == 0u && p.saveStats == 1u) {
    meanOut[row] = mean;
    rstdOut[row] = rstd;
  }
}

// dx = rstd * (dout - mean(dout) - xhat * mean(dout * xhat)),  xhat = (x - mean) * rstd
@compute @workgroup_size(64)
fn layerNormBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let mean = meanIn[row];
  let rstd = rstdIn[row];
  var g = 0.0;
  var gx = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    let xhat = (x[base + c] - mean) * rstd;
    g += dout[base + c];
    gx += dout[base + c] * xhat;
  }
  let gMean = workgroupSum(g, lane) / f32(p.cols);
  let gxMean = workgroupSum(gx, lane) / f32(p.cols);
  for (var c = lane; c < p.cols; c += 64u) {
    let xhat = (x[base + c] - mean) * rstd;
    out[base + c] = rstd * (dout[base + c] - gMean - xhat * gxMean);
  }
}
