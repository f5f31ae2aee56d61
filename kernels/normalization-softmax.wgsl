// Row-wise softmax and log-softmax, forward and backward side by side.
// Reference: src/backends/js/normalization.ts. x, y, out, dout: [N, C]. One 64-wide workgroup per row,
// as in normalization.wgsl. Every exp is of (x - row max), so nothing overflows.

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
