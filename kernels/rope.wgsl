// Rotary position embedding, half-split ("rotate_half") layout as HF's apply_rotary_pos_emb.
// Reference: src/backends/js/rope.ts. x, out: [BH, T, D]; the row at t has position offset + t.
//   out[i]       = x[i] cos - x[i + D/2] sin
//   out[i + D/2] = x[i + D/2] cos + x[i] sin          (inverse: sin negated, the backward pass)
// cos and sin come from a table [positions, D/2, 2] that the backend computes on the host exactly as
// the reference does (angles rounded to f32 as PyTorch, cos and sin in f64): GPU sin and cos are only
// accurate to about 2^-11 for large angles, which would show in the logits.

struct Params {
  batchHeads: u32,
  seqLen: u32,
  headDim: u32,
  positionOffset: u32,
  inverse: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cosSin: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// One invocation per (row, i < D/2) pair of elements.
@compute @workgroup_size(256)
fn rotaryEmbedding(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let half = p.headDim / 2u;
  let pair = flatGroup(group, groups) * 256u + lane;
  if (pair >= p.batchHeads * p.seqLen * half) {
    return;
  }
  let row = pair / half;
  let i = pair % half;
  let position = p.positionOffset + row % p.seqLen;
  let angle = (position * half + i) * 2u;
  let c = cosSin[angle];
  let s = select(cosSin[angle + 1u], -cosSin[angle + 1u], p.inverse == 1u);
  let base = row * p.headDim;
  let x1 = x[base + i];
  let x2 = x[base + i + half];
  out[base + i] = x1 * c - x2 * s;
  out[base + i + half] = x2 * c + x1 * s;
}
