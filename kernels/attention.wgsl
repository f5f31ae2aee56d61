// Fused causal scaled-dot-product attention, forward and backward (a FlashAttention-style online
// softmax: the [Tq, Tk] score matrix is never stored). Reference: src/backends/js/attention.ts.
//
// q, out, dout, dq: [B, H, Tq, D]; k, v, dk, dv: [B, G, S, D] of which the first Tk rows are keys
// (S = kvCapacity: a preallocated KV cache); lse, delta: [B, H, Tq]. Query head h reads kv head
// h / (H / G). Query t sits at position Tk - Tq + t and, when causal, sees keys at positions <= its own.
//
// attention                 one 64-wide workgroup per query row: the row of q in workgroup memory,
//                           keys in blocks of 64 (one score per invocation), a running max and sum
//                           rescale the output accumulated so far; each invocation owns output
//                           dimensions lane, lane + 64, ... (D <= 256).
// attentionBackwardQueries  per query row: delta = dout . out, then
//                           dq = scale * sum_j p_j (dout . v_j - delta) k_j, p_j = exp(s_j - lse).
// attentionBackwardKeys     per key row j < S: dv_j = sum_t p_tj dout_t and
//                           dk_j = scale * sum_t p_tj (dout_t . v_j - delta_t) q_t over the query rows
//                           of every head that reads this kv head; rows j >= Tk get zeros.

struct Params {
  batch: u32,
  heads: u32,
  kvHeads: u32,
  queryLen: u32,
  keyLen: u32,
  kvCapacity: u32,
  headDim: u32,
  scale: f32,
  causal: u32,
  saveLse: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> out: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> deltaIn: array<f32>;
@group(0) @binding(8) var<storage, read_write> outW: array<f32>;
@group(0) @binding(9) var<storage, read_write> lseW: array<f32>;
@group(0) @binding(10) var<storage, read_write> dq: array<f32>;
@group(0) @binding(11) var<storage, read_write> deltaW: array<f32>;
@group(0) @binding(12) var<storage, read_write> dk: array<f32>;
@group(0) @binding(13) var<storage, read_write> dv: array<f32>;

const BLOCK = 64u;
const MAX_DIM = 256u; // the backend refuses larger head dimensions
const LOWEST = -3.4028234663852886e38;

var<workgroup> rowA: array<f32, MAX_DIM>; // the query row (forward) / q or k row (backward)
var<workgroup> rowB: array<f32, MAX_DIM>; // the dout row / v row (backward)
var<workgroup> weights: array<f32, BLOCK>;
var<workgroup> weights2: array<f32, BLOCK>;

/** Key rows visible to query t: all Tk, or up to its own position when causal. */
fn keyEnd(t: u32) -> u32 {
  return select(p.keyLen, p.keyLen - p.queryLen + t + 1u, p.causal == 1u);
}

/** Query row `row` of the flattened [B, H, Tq]: its batch entry, position t and kv head. */
struct QueryRow {
  batch: u32,
  t: u32,
  kvHead: u32,
}

fn queryRow(row: u32) -> QueryRow {
  let h = (row / p.queryLen) % p.heads;
  return QueryRow(row / (p.queryLen * p.heads), row % p.queryLen, h / (p.heads / p.kvHeads));
}

fn kvRowBase(batch: u32, kvHead: u32, j: u32) -> u32 {
  return ((batch * p.kvHeads + kvHead) * p.kvCapacity + j) * p.headDim;
}

@compute @workgroup_size(64)
fn attention(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups); // (b, h, t) flattened
  if (row >= p.batch * p.heads * p.queryLen) {
    return;
  }
  let query = queryRow(row);
  let b = query.batch;
  let kvHead = query.kvHead;
  let qBase = row * p.headDim;
  let end = keyEnd(query.t);
  for (var d = lane; d < p.headDim; d += BLOCK) {
    rowA[d] = q[qBase + d];
  }
  workgroupBarrier();
  var rowMax = LOWEST;
  var total = 0.0;
  var acc: array<f32, 4>;
  for (var j0 = 0u; j0 < end; j0 += BLOCK) {
    let j = j0 + lane;
    var s = LOWEST;
    if (j < end) {
      let kBase = kvRowBase(b, kvHead, j);
      var dot = 0.0;
      for (var d = 0u; d < p.headDim; d++) {
        dot = fma(rowA[d], k[kBase + d], dot);
      }
      s = dot * p.scale;
    }
    weights[lane] = s;
    workgroupBarrier();
    var blockMax = LOWEST;
    for (var i = 0u; i < BLOCK; i++) {
      blockMax = max(blockMax, weights[i]);
    }
    let newMax = max(rowMax, blockMax);
    let correction = exp(rowMax - newMax);
    workgroupBarrier(); // every invocation has read the scores before they become weights
    weights[lane] = select(0.0, exp(s - newMax), j < end);
    workgroupBarrier();
    total *= correction;
    for (var r = 0u; r < 4u; r++) {
      acc[r] *= correction;
    }
    let count = min(BLOCK, end - j0);
    for (var i = 0u; i < count; i++) {
      let w = weights[i];
      total += w;
      let vBase = kvRowBase(b, kvHead, j0 + i);
      for (var r = 0u; r < 4u; r++) {
        let d = lane + r * BLOCK;
        if (d < p.headDim) {
          acc[r] = fma(w, v[vBase + d], acc[r]);
        }
      }
    }
    rowMax = newMax;
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let d = lane + r * BLOCK;
    if (d < p.headDim) {
      outW[qBase + d] = acc[r] / total;
    }
  }
  if (lane == 0u && p.saveLse == 1u) {
    lseW[row] = rowMax + log(total);
  }
}

@compute @workgroup_size(64)
fn attentionBackwardQueries(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.batch * p.heads * p.queryLen) {
    return;
  }
  let query = queryRow(row);
  let b = query.batch;
  let kvHead = query.kvHead;
  let qBase = row * p.headDim;
  let end = keyEnd(query.t);
  for (var d = lane; d < p.headDim; d += BLOCK) {
    rowA[d] = q[qBase + d];
    rowB[d] = dout[qBase + d];
  }
  workgroupBarrier();
  // delta = dout . out: every invocation computes it from workgroup memory and global out (D reads).
  var delta = 0.0;
  for (var d = 0u; d < p.headDim; d++) {
    delta = fma(rowB[d], out[qBase + d], delta);
  }
  if (lane == 0u) {
    deltaW[row] = delta;
  }
  let rowLse = lse[row];
  var acc: array<f32, 4>;
  for (var j0 = 0u; j0 < end; j0 += BLOCK) {
    let j = j0 + lane;
    var ds = 0.0;
    if (j < end) {
      let kvBase = kvRowBase(b, kvHead, j);
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < p.headDim; d++) {
        s = fma(rowA[d], k[kvBase + d], s);
        dp = fma(rowB[d], v[kvBase + d], dp);
      }
      ds = exp(s * p.scale - rowLse) * (dp - delta);
    }
    weights[lane] = ds;
    workgroupBarrier();
    let count = min(BLOCK, end - j0);
    for (var i = 0u; i < count; i++) {
      let kBase = kvRowBase(b, kvHead, j0 + i);
      for (var r = 0u; r < 4u; r++) {
        let d = lane + r * BLOCK;
        if (d < p.headDim) {
          acc[r] = fma(weights[i], k[kBase + d], acc[r]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let d = lane + r * BLOCK;
    if (d < p.headDim) {
      dq[qBase + d] = acc[r] * p.scale;
    }
  }
}

@compute @workgroup_size(64)
fn attentionBackwardKeys(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups); // (b, g, j) flattened, j < S
  if (row >= p.batch * p.kvHeads * p.kvCapacity) {
    return;
  }
  let j = row % p.kvCapacity;
  let kvHead = (row / p.kvCapacity) % p.kvHeads;
  let b = row / (p.kvCapacity * p.kvHeads);
  let kvBase = row * p.headDim;
  var dkAcc: array<f32, 4>;
  var dvAcc: array<f32, 4>;
  if (j < p.keyLen) {
    for (var d = lane; d < p.headDim; d += BLOCK) {
      rowA[d] = k[kvBase + d];
      rowB[d] = v[kvBase + d];
    }
    workgroupBarrier();
    // Queries that see key j: t >= j - (Tk - Tq) when causal.
    var firstQuery = 0u;
    if (p.causal == 1u && j + p.queryLen > p.keyLen) {
      firstQuery = j + p.queryLen - p.keyLen;
    }
    let groupSize = p.heads / p.kvHeads;
    for (var hh = 0u; hh < groupSize; hh++) {
      let h = kvHead * groupSize + hh;
      let qRow0 = (b * p.heads + h) * p.queryLen;
      for (var t0 = firstQuery; t0 < p.queryLen; t0 += BLOCK) {
        let t = t0 + lane;
        var prob = 0.0;
        var ds = 0.0;
        if (t < p.queryLen) {
          let qBase = (qRow0 + t) * p.headDim;
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < p.headDim; d++) {
            s = fma(q[qBase + d], rowA[d], s);
            dp = fma(dout[qBase + d], rowB[d], dp);
          }
          prob = exp(s * p.scale - lse[qRow0 + t]);
          ds = prob * (dp - deltaIn[qRow0 + t]);
        }
        weights[lane] = prob;
        weights2[lane] = ds;
        workgroupBarrier();
        let count = min(BLOCK, p.queryLen - t0);
        for (var i = 0u; i < count; i++) {
          let qBase = (qRow0 + t0 + i) * p.headDim;
          for (var r = 0u; r < 4u; r++) {
            let d = lane + r * BLOCK;
            if (d < p.headDim) {
              dvAcc[r] = fma(weights[i], dout[qBase + d], dvAcc[r]);
              dkAcc[r] = fma(weights2[i], q[qBase + d], dkAcc[r]);
            }
          }
        }
        workgroupBarrier();
      }
    }
  }
  for (var r = 0u; r < 4u; r++) {
    let d = lane + r * BLOCK;
    if (d < p.headDim) {
      dk[kvBase + d] = dkAcc[r] * p.scale;
      dv[kvBase + d] = dvAcc[r];
    }
  }
}
