// Elementwise f32 kernels, forward and backward side by side.
// Reference: src/backends/js/elementwise.ts. Every array is flat, `size` elements; one invocation per
// element on a 2-D grid of 256-wide workgroups.

struct Params {
  size: u32,
  aSize: u32,   // binary: a repeats every aSize elements (broadcast over leading axes)
  bSize: u32,
  op: u32,      // binary: BINARY_ADD, BINARY_SUB or BINARY_MUL
  factor: f32,  // scale
  low: f32,     // clamp bounds
  high: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn element(group: vec3u, groups: vec3u, lane: u32) -> u32 {
  return flatGroup(group, groups) * 256u + lane;
}

// out[i] = a[i % aSize] op b[i % bSize]
@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i >= p.size) {
    return;
  }
  let u = a[i % p.aSize];
  let v = b[i % p.bSize];
  switch (p.op) {
    case BINARY_ADD: { out[i] = u + v; }
    case BINARY_SUB: { out[i] = u - v; }
    case BINARY_MUL, default: { out[i] = u * v; }
  }
}

// out = a * factor. The backward pass of scale is scale again (by the ops layer).
@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i < p.size) {
    out[i] = a[i] * p.factor;
  }
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

// out = x * sigmoid(x), x = a
@compute @workgroup_size(256)
fn silu(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i < p.size) {
    let x = a[i];
    out[i] = x * sigmoid(x);
  }
}

// dx = dout * s * (1 + x (1 - s)), s = sigmoid(x); x = a, dout = b, dx = out
@compute @workgroup_size(256)
fn siluBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i < p.size) {
    let x = a[i];
    let s = sigmoid(x);
    out[i] = b[i] * s * (1.0 + x * (1.0 - s));
  }
}

// out = min(max(x, low), high)
@compute @workgroup_size(256)
fn clampValues(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i < p.size) {
    out[i] = min(max(a[i], p.low), p.high);
  }
}

// dx = dout where low <= x <= high (bounds inclusive, as PyTorch), else 0; x = a, dout = b
@compute @workgroup_size(256)
fn clampBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = element(group, groups, lane);
  if (i < p.size) {
    let x = a[i];
    out[i] = select(0.0, b[i], x >= p.low && x <= p.high);
  }
}
