// One AdamW step in place, as torch.optim.AdamW (decoupled weight decay).
// Reference: src/backends/js/elementwise.ts (adamw). One invocation per parameter.
//   param *= 1 - lr * weightDecay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   param -= stepSize * m / (sqrt(v) / sqrt(1 - beta2^step) + eps),  stepSize = lr / (1 - beta1^step)
// The bias corrections depend only on the step, so the host computes them once in f64.

struct Params {
  size: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  stepSize: f32,
  correction2Sqrt: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = flatGroup(group, groups) * 256u + lane;
  if (i >= p.size) {
    return;
  }
  let g = grad[i];
  let decayed = param[i] * (1.0 - p.lr * p.weightDecay);
  let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = m1;
  v[i] = v1;
  param[i] = decayed - p.stepSize * m1 / (sqrt(v1) / p.correction2Sqrt + p.eps);
}
