// The cross-entropy of logits against target ids, forward and backward: one loss per row, as
// PyTorch's F.cross_entropy with reduction "none" (src/ops/loss.ts masks and reduces them).
// Reference: src/backends/js/loss.ts. logits, dlogits: [N, V]; targets: i32 [N]; nll, lse, dnll: [N].
// One 64-wide workgroup per row, as normalization-softmax.wgsl; exp of (logit - row max), so nothing
// overflows.

struct Params {
  rows: u32,
  vocab: u32,     // V
  rowOffset: u32, // where this call's block of rows starts, so reports name the row in the whole batch
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> lseIn: array<f32>;
@group(0) @binding(4) var<storage, read> dnll: array<f32>;
@group(0) @binding(5) var<storage, read_write> nll: array<f32>;
@group(0) @binding(6) var<storage, read_write> lseOut: array<f32>;
@group(0) @binding(7) var<storage, read_write> dlogits: array<f32>;

/**
 * The row's max and sum of exp(logit - max), both returned to every invocation. The same as
 * normalization-softmax.wgsl's rowMaxAndSum, over another array: a WGSL function cannot take a
 * storage buffer as an argument (not without the unrestricted_pointer_parameters extension, which not
 * every host has), so each file has its own.
 */
fn rowMaxAndSum(base: u32, lane: u32) -> vec2f {
  var m = -3.4028234663852886e38;
  for (var c = lane; c < p.vocab; c += 64u) {
    m = max(m, logits[base + c]);
  }
  let rowMax = workgroupMax(m, lane);
  var s = 0.0;
  for (var c = lane; c < p.vocab; c += 64u) {
    s += exp(logits[base + c] - rowMax);
  }
  return vec2f(rowMax, workgroupSum(s, lane));
}

// nll = logsumexp(logits) - logits[target]; lse saved for the backward pass. A target id outside
// [0, V) is reported (the first one) and gives NaN.
@compute @workgroup_size(64)
fn crossEntropy(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.vocab;
  let stats = rowMaxAndSum(base, lane);
  let lse = stats.x + log(stats.y);
  if (lane == 0u) {
    lseOut[row] = lse;
    let targetId = targets[row];
    if (targetId >= 0 && u32(targetId) < p.vocab) {
      nll[row] = lse - logits[base + u32(targetId)];
    } else {
      nll[row] = quietNaN();
      report(STATUS_CROSS_ENTROPY, p.rowOffset + row, targetId, p.vocab);
    }
  }
}

// dlogits = dnll * (softmax(logits) - onehot(targetId)), softmax recomputed from the saved lse
@compute @workgroup_size(64)
fn crossEntropyBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.vocab;
  let lse = lseIn[row];
  let g = dnll[row];
  let targetId = targets[row];
  for (var c = lane; c < p.vocab; c += 64u) {
    let onehot = select(0.0, 1.0, i32(c) == targetId);
    dlogits[base + c] = g * (exp(logits[base + c] - lse) - onehot);
  }
}
