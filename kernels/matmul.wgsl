// Batched matrix multiply: out[b] = op(A[b]) @ op(B[b]). Reference: src/backends/js/matmul.ts.
//
// Transposes are strides: element (i, k) of op(A) in batch entry `batch` is
//   a[batch * aBatchStride + i * aRowStride + k * aColStride]
// and element (k, j) of op(B) is b[batch * bBatchStride + k * bRowStride + j * bColStride], so one
// kernel serves all four transpose combinations; a batch stride of 0 reuses one matrix (weights).
// B may be f32, or bf16 / f16 packed two per u32 (B_DTYPE), widened to f32 as it is read.
// out: [batch, m, outColumns]; this call writes columns nOffset .. nOffset + n.
//
// Operands larger than one storage binding are bound in blocks (see matmul in
// src/backends/webgpu/matmul.ts): blocks of rows of A and out (m), of k (partial products added up:
// accumulate), or of columns of an [N, K] weight (n). The offsets say where this call's block starts in
// an operand that is bound whole: aRowOffset and aKOffset in A, bKOffset in B.
//
// Three entry points:
//   matmul    tiled: a 16x16 workgroup computes a 64x64 block of out, each invocation a 4x4 block
//             (rows ly + 16r, columns lx + 16c: neighbouring invocations touch neighbouring columns);
//             A and B pass through workgroup memory 16 steps of k at a time.
//   gemvRows  m = 1 with k contiguous in B (decode against [N, K] weights): 32 invocations share one
//             output and sum a strided share of k each, then reduce in workgroup memory.
//   gemvCols  m = 1 with n contiguous in B ([K, N] weights): one invocation per output column.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  aBatchStride: u32,
  aRowStride: u32,
  aColStride: u32,
  bBatchStride: u32,
  bRowStride: u32,
  bColStride: u32,
  outColumns: u32,
  nOffset: u32,
  aRowOffset: u32,
  aKOffset: u32,
  bKOffset: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

/** DTYPE_F32, DTYPE_BF16 or DTYPE_F16 (a pipeline-creation constant: each variant compiles without the others). */
override B_DTYPE: u32 = DTYPE_F32;

fn readB(index: u32) -> f32 {
  if (B_DTYPE == DTYPE_BF16) {
    return bf16ToF32(half16(b[index / 2u], index));
  }
  if (B_DTYPE == DTYPE_F16) {
    return f16ToF32(half16(b[index / 2u], index));
  }
  return bitcast<f32>(b[index]);
}

fn outIndex(batch: u32, row: u32, column: u32) -> u32 {
  return (batch * p.m + row) * p.outColumns + p.nOffset + column;
}

/** Element (row, kk) of op(A), row and kk counted within this call's blocks. */
fn readA(aBase: u32, row: u32, kk: u32) -> f32 {
  return a[aBase + (p.aRowOffset + row) * p.aRowStride + (p.aKOffset + kk) * p.aColStride];
}

fn store(index: u32, value: f32) {
  if (p.accumulate == 1u) {
    out[index] += value;
  } else {
    out[index] = value;
  }
}

const TILE = 64u;  // output rows and columns per workgroup
const DEPTH = 16u; // steps of k per pass through workgroup memory

var<workgroup> tileA: array<array<f32, TILE>, DEPTH>; // [k][row]
var<workgroup> tileB: array<array<f32, TILE>, DEPTH>; // [k][column]

@compute @workgroup_size(16, 16)
fn matmul(
  @builtin(workgroup_id) group: vec3u,
  @builtin(local_invocation_id) local: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let batch = group.z;
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let aBase = batch * p.aBatchStride;
  let bBase = batch * p.bBatchStride;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
    // Load a 64x16 block of A and a 16x64 block of B, four elements per invocation, zero past the
    // edges. The element-to-lane mapping follows the contiguous axis so neighbouring lanes read
    // neighbouring addresses.
    for (var r = 0u; r < 4u; r++) {
      let e = lane + r * 256u;
      var i = e % TILE;
      var kk = e / TILE;
      if (p.aColStride == 1u) {
        i = e / DEPTH;
        kk = e % DEPTH;
      }
      var value = 0.0;
      if (row0 + i < p.m && k0 + kk < p.k) {
        value = readA(aBase, row0 + i, k0 + kk);
      }
      tileA[kk][i] = value;

      var j = e % TILE;
      var kb = e / TILE;
      if (p.bColStride != 1u) {
        j = e / DEPTH;
        kb = e % DEPTH;
      }
      var bValue = 0.0;
      if (col0 + j < p.n && k0 + kb < p.k) {
        bValue = readB(bBase + (p.bKOffset + k0 + kb) * p.bRowStride + (col0 + j) * p.bColStride);
      }
      tileB[kb][j] = bValue;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < DEPTH; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) {
        av[r] = tileA[kk][local.y + 16u * r];
        bv[r] = tileB[kk][local.x + 16u * r];
      }
      for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) {
          acc[r][c] = fma(av[r], bv[c], acc[r][c]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let row = row0 + local.y + 16u * r;
    for (var c = 0u; c < 4u; c++) {
      let column = col0 + local.x + 16u * c;
      if (row < p.m && column < p.n) {
        store(outIndex(batch, row, column), acc[r][c]);
      }
    }
  }
}

var<workgroup> partial: array<f32, 256>;

// m = 1, bRowStride = 1: eight outputs per 256-wide workgroup, 32 invocations each.
@compute @workgroup_size(256)
fn gemvRows(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let batch = group.z;
  let slot = lane / 32u;
  let sub = lane % 32u;
  let column = flatGroup(group, groups) * 8u + slot;
  var sum = 0.0;
  if (column < p.n) {
    let aBase = batch * p.aBatchStride;
    let bBase = batch * p.bBatchStride + column * p.bColStride;
    for (var kk = sub; kk < p.k; kk += 32u) {
      sum = fma(readA(aBase, 0u, kk), readB(bBase + p.bKOffset + kk), sum);
    }
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = 16u; stride > 0u; stride >>= 1u) {
    if (sub < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (sub == 0u && column < p.n) {
    store(outIndex(batch, 0u, column), partial[lane]);
  }
}

// m = 1, bColStride = 1: one output column per invocation, k in order.
@compute @workgroup_size(256)
fn gemvCols(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let batch = group.z;
  let column = flatGroup(group, groups) * 256u + lane;
  if (column >= p.n) {
    return;
  }
  let aBase = batch * p.aBatchStride;
  let bBase = batch * p.bBatchStride + column;
  var sum = 0.0;
  for (var kk = 0u; kk < p.k; kk++) {
    sum = fma(readA(aBase, 0u, kk), readB(bBase + (p.bKOffset + kk) * p.bRowStride), sum);
  }
  store(outIndex(batch, 0u, column), sum);
}
