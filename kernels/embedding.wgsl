// Embedding gather and its scatter-add backward. Reference: src/backends/js/embedding.ts.
// ids: i32 [N]; table, dtable: [V, C]; out, dout: [N, C]. The table may be f32, or bf16 / f16 packed
// two per u32 (TABLE_DTYPE). A table larger than one storage binding is bound in row blocks: this call
// sees rows vocabStart .. vocabStart + vocabRows and leaves other ids to the calls for other blocks.

struct Params {
  count: u32,     // N
  vocab: u32,     // V, for the range check
  dim: u32,       // C
  vocabStart: u32,
  vocabRows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;

/** DTYPE_F32, DTYPE_BF16 or DTYPE_F16 (a pipeline-creation constant, as matmul.wgsl's B_DTYPE). */
override TABLE_DTYPE: u32 = DTYPE_F32;

fn readTable(index: u32) -> f32 {
  if (TABLE_DTYPE == DTYPE_BF16) {
    return bf16ToF32(half16(table[index / 2u], index));
  }
  if (TABLE_DTYPE == DTYPE_F16) {
    return f16ToF32(half16(table[index / 2u], index));
  }
  return bitcast<f32>(table[index]);
}

// out[n, c] = table[ids[n], c]; one invocation per output element. A bad id gives NaN and a report.
@compute @workgroup_size(256)
fn embedding(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let e = flatGroup(group, groups) * 256u + lane;
  if (e >= p.count * p.dim) {
    return;
  }
  let n = e / p.dim;
  let c = e % p.dim;
  let id = ids[n];
  if (id < 0 || u32(id) >= p.vocab) {
    out[e] = quietNaN();
    if (c == 0u) {
      report(STATUS_EMBEDDING, n, id, p.vocab);
    }
    return;
  }
  let row = u32(id);
  if (row >= p.vocabStart && row < p.vocabStart + p.vocabRows) {
    out[e] = readTable((row - p.vocabStart) * p.dim + c);
  }
}

// dtable = 0 over this block of rows; the first half of the backward pass.
@compute @workgroup_size(256)
fn embeddingBackwardZero(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let e = flatGroup(group, groups) * 256u + lane;
  if (e < p.vocabRows * p.dim) {
    dtable[e] = 0.0;
  }
}

// dtable[ids[n], c] += dout[n, c]: one invocation per column c walks the ids in order, so repeated ids
// accumulate without atomics (WGSL has no float atomics) and in the reference's order.
@compute @workgroup_size(256)
fn embeddingBackward(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let c = flatGroup(group, groups) * 256u + lane;
  if (c >= p.dim) {
    return;
  }
  for (var n = 0u; n < p.count; n++) {
    let id = ids[n];
    if (id >= 0 && u32(id) >= p.vocabStart && u32(id) < p.vocabStart + p.vocabRows) {
      let index = (u32(id) - p.vocabStart) * p.dim + c;
      dtable[index] += dout[n * p.dim + c];
    }
  }
}
