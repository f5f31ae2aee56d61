// Row-wise softmax, log-softmax and cross-entropy, forward and backward side by side.
// Reference: src/backends/js/normalization.ts and src/backends/js/embedding.ts (crossEntropy).
// x, y, out, dout: [N, C]; targets: i32 [N]; nll, lse, dnll: [N]. One 64-wide workgroup per row, as
// in layernorm.wgsl. Every exp is of (x - row max), so nothing overflows.

struct Params {
  rows: u32,
  cols: u32,
  rowOffset: u32, // where this call's block of rows starts (for reports; see rowwise in index.ts)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;
@group(0) @binding(5) var<storage, read> lseIn: array<f32>;
@group(0) @binding(6) var<storage, read> dnll: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> nll: array<f32>;
@group(0) @binding(9) var<storage, read_write> lseOut: array<f32>;

/** The row's max and sum of exp(x - max), both returned to every invocation. */
fn rowMaxAndSum(base: u32, lane: u32) -> vec2f {
  var m = -3.4028234663852886e38;
  for (var c = lane; c < p.cols; c += 64u) {
    m = max(m, x[base + c]);
  }
  let rowMax = workgroupMax(m, lane);
  var s = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    s += exp(x[base + c] - rowMax);
  }
  return vec2f(rowMax, workgroupSum(s, lane));
}

@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let stats = rowMaxAndSum(base, lane);
  for (var c = lane; c < p.cols; c += 64u) {
    out[base + c] = exp(x[base + c] - stats.x) / stats.y;
  }
}

// dx = y * (dout - sum(dout * y))
@compute @workgroup_size(64)
fn softmaxBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    s += dout[base + c] * y[base + c];
  }
  let total = workgroupSum(s, lane);
  for (var c = lane; c < p.cols; c += 64u) {
    out[base + c] = y[base + c] * (dout[base + c] - total);
  }
}

@compute @workgroup_size(64)
fn logSoftmax(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let stats = rowMaxAndSum(base, lane);
  let shift = stats.x + log(stats.y);
  for (var c = lane; c < p.cols; c += 64u) {
    out[base + c] = x[base + c] - shift;
  }
}

// dx = dout - exp(y) * sum(dout)
@compute @workgroup_size(64)
fn logSoftmaxBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    s += dout[base + c];
  }
  let total = workgroupSum(s, lane);
  for (var c = lane; c < p.cols; c += 64u) {
    out[base + c] = dout[base + c] - exp(y[base + c]) * total;
  }
}

const CROSS_ENTROPY_CODE = 2u; // the backend's name for this kernel in reports (see shaders.ts)

// nll = logsumexp(x) - x[target]; lse saved for the backward pass. A target id outside [0, C) is
// reported (the first one) and gives NaN.
@compute @workgroup_size(64)
fn crossEntropy(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let stats = rowMaxAndSum(base, lane);
  let lse = stats.x + log(stats.y);
  if (lane == 0u) {
    lseOut[row] = lse;
    let targetId = targets[row];
    if (targetId >= 0 && u32(targetId) < p.cols) {
      nll[row] = lse - x[base + u32(targetId)];
    } else {
      nll[row] = quietNaN();
      report(CROSS_ENTROPY_CODE, p.rowOffset + row, targetId, p.cols);
    }
  }
}

// dlogits = dnll * (softmax(x) - onehot(targetId)), softmax recomputed from the saved lse
@compute @workgroup_size(64)
fn crossEntropyBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let lse = lseIn[row];
  let g = dnll[row];
  let targetId = targets[row];
  for (var c = lane; c < p.cols; c += 64u) {
    let onehot = select(0.0, 1.0, i32(c) == targetId);
    out[base + c] = g * (exp(x[base + c] - lse) - onehot);
  }
}
