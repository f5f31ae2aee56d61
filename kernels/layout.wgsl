// Moving elements without arithmetic: permute, slice, broadcast (strided gathers) and sliceAssign (a
// strided scatter). Reference: src/backends/js/layout.ts. Buffers are raw u32 words, so one kernel
// moves f32, i32 and (packed two per word) bf16 / f16 alike.
//
// gather:  out[i] = x[base + sum_k coord_k(i) * strides[k]], coords of i in `shape` (the output's).
//          permute: strides = x's strides in output axis order; slice: x's strides, base = the start
//          offset; broadcast: x's strides with 0 on the broadcast axes.
// scatter: out[base + sum_k coord_k(i) * strides[k]] = x[i], coords of i in `shape` (x's), strides =
//          out's strides, base = the region's start offset in out.
// The 16-bit variants give each invocation one output word (two elements); scatter16 walks every
// output word and keeps the halves outside the region.

struct Params {
  size: u32,         // elements visited: out's (gather, scatter16) or x's (scatter32)
  words: u32,        // output words (16-bit variants)
  rank: u32,
  base: u32,
  shape: Dims,
  strides: Dims,
  outShape: Dims,  // scatter16: out's shape,
  start: Dims,     //   the region's start in out
  xStrides: Dims,  //   and x's strides (the region's shape is `shape`)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn stridedOffset(index: u32) -> u32 {
  var rest = index;
  var offset = p.base;
  for (var axis = i32(p.rank) - 1; axis >= 0; axis--) {
    let size = dimAt(p.shape, u32(axis));
    offset += (rest % size) * dimAt(p.strides, u32(axis));
    rest /= size;
  }
  return offset;
}

fn invocation(group: vec3u, groups: vec3u, lane: u32) -> u32 {
  return flatGroup(group, groups) * 256u + lane;
}

@compute @workgroup_size(256)
fn gather32(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = invocation(group, groups, lane);
  if (i < p.size) {
    out[i] = x[stridedOffset(i)];
  }
}

@compute @workgroup_size(256)
fn gather16(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = invocation(group, groups, lane);
  if (w >= p.words) {
    return;
  }
  let source0 = stridedOffset(2u * w);
  var word = half16(x[source0 / 2u], source0);
  if (2u * w + 1u < p.size) {
    let source1 = stridedOffset(2u * w + 1u);
    word |= half16(x[source1 / 2u], source1) << 16u;
  }
  out[w] = word;
}

@compute @workgroup_size(256)
fn scatter32(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let i = invocation(group, groups, lane);
  if (i < p.size) {
    out[stridedOffset(i)] = x[i];
  }
}

/** Element e of out, from x when e lies in the region, else its old 16 bits. */
fn scatteredHalf(e: u32, old: u32) -> u32 {
  var rest = e;
  var xIndex = 0u;
  for (var axis = i32(p.rank) - 1; axis >= 0; axis--) {
    let a = u32(axis);
    let coord = rest % dimAt(p.outShape, a);
    rest /= dimAt(p.outShape, a);
    let begin = dimAt(p.start, a);
    if (coord < begin || coord >= begin + dimAt(p.shape, a)) {
      return old;
    }
    xIndex += (coord - begin) * dimAt(p.xStrides, a);
  }
  return half16(x[xIndex / 2u], xIndex);
}

@compute @workgroup_size(256)
fn scatter16(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = invocation(group, groups, lane);
  if (w >= p.words) {
    return;
  }
  let old = out[w];
  let low = scatteredHalf(2u * w, old & 0xffffu);
  var high = old >> 16u;
  if (2u * w + 1u < p.size) {
    high = scatteredHalf(2u * w + 1u, high);
  }
  out[w] = low | (high << 16u);
}
