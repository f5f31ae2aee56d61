// Sum over a set of axes. Reference: src/backends/js/layout.ts (sum). Its transpose, broadcast, is a
// strided gather (layout.wgsl).
//
// The backend splits x's axes into kept ones (the output's) and reduced ones, each with x's strides.
// An x larger than one storage binding, summed over every axis, is summed in blocks into partial sums
// (outOffset), which a second call adds up.
// One 64-wide workgroup per output element: each invocation sums a strided share of the reduced
// elements, then the workgroup adds the 64 partial sums (workgroupSum, common.wgsl).

struct Params {
  outSize: u32,
  outOffset: u32, // where this call's outputs start in out (partial sums of a split x)
  reducedCount: u32,
  keptRank: u32,
  reducedRank: u32,
  keptShape: Dims,
  keptStrides: Dims,
  reducedShape: Dims,
  reducedStrides: Dims,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

/** The offset in x of element `index` of a sub-shape, given that sub-shape's strides in x. */
fn offsetOf(index: u32, rank: u32, shape: Dims, strides: Dims) -> u32 {
  var rest = index;
  var offset = 0u;
  for (var axis = i32(rank) - 1; axis >= 0; axis--) {
    let size = dimAt(shape, u32(axis));
    offset += (rest % size) * dimAt(strides, u32(axis));
    rest /= size;
  }
  return offset;
}

@compute @workgroup_size(64)
fn sum(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let o = flatGroup(group, groups);
  if (o >= p.outSize) {
    return;
  }
  let base = offsetOf(o, p.keptRank, p.keptShape, p.keptStrides);
  var total = 0.0;
  for (var r = lane; r < p.reducedCount; r += 64u) {
    total += x[base + offsetOf(r, p.reducedRank, p.reducedShape, p.reducedStrides)];
  }
  let sum = workgroupSum(total, lane);
  if (lane == 0u) {
    out[p.outOffset + o] = sum;
  }
}
