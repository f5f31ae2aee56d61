// Causal scaled-dot-product attention, fused: one query row at a time, scores kept in a per-thread
// scratch row of Tk floats, never a [Tq, Tk] matrix. The backward pass recomputes the probabilities
// from the saved log-sum-exp.
// q: [B, H, Tq, D]; k, v: [B, G, S, D] (first Tk of S rows used); out: [B, H, Tq, D]; lse: [B, H, Tq]. Query head h reads kv head
// h / (H / G). Query t has position (Tk - Tq) + t and, when causal, sees keys 0 ..= that position.
// Forward: threads split the query rows. Backward: threads split the (batch, kv head) pairs, since dk
// and dv of one kv head collect from all the query heads and rows that read it.

import { partEnd, partStart } from "./common";

@inline function row(base: usize, index: i32, d: i32): usize {
  return base + ((<usize>index * <usize>d) << 2);
}

@inline function dot(a: usize, b: usize, d: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let sum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < d; i++) sum += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return sum;
}

@inline function visibleKeys(causal: i32, queryLen: i32, keyLen: i32, t: i32): i32 {
  return causal != 0 ? min<i32>(keyLen, keyLen - queryLen + t + 1) : keyLen;
}

export function attention(
  q: usize, k: usize, v: usize, out: usize, lse: usize, batch: i32, heads: i32, kvHeads: i32, queryLen: i32, keyLen: i32,
  kvCapacity: i32, headDim: i32, scale: f32, causal: i32, scratch: usize, tid: i32, threads: i32,
): void {
  const groupSize = heads / kvHeads;
  const s = scratch + ((<usize>tid * <usize>keyLen) << 2);
  const rows = batch * heads * queryLen;
  const r1 = partEnd(rows, tid, threads, 1);
  for (let r = partStart(rows, tid, threads, 1); r < r1; r++) {
    const t = r % queryLen, bh = r / queryLen, b = bh / heads, h = bh % heads;
    const kvBase = (b * kvHeads + h / groupSize) * kvCapacity;
    const visible = visibleKeys(causal, queryLen, keyLen, t);
    const qRow = row(q, r, headDim), outRow = row(out, r, headDim);
    let m: f32 = -Infinity;
    for (let j = 0; j < visible; j++) {
      const score = scale * dot(qRow, row(k, kvBase + j, headDim), headDim);
      store<f32>(s + (<usize>j << 2), score);
      m = max<f32>(m, score);
    }
    let sum: f32 = 0;
    for (let j = 0; j < visible; j++) {
      const p = Mathf.exp(load<f32>(s + (<usize>j << 2)) - m);
      store<f32>(s + (<usize>j << 2), p);
      sum += p;
    }
    memory.fill(outRow, 0, <usize>headDim << 2);
    const inv: f32 = <f32>1 / sum;
    for (let j = 0; j < visible; j++) {
      const p = f32x4.splat(load<f32>(s + (<usize>j << 2)) * inv);
      const vRow = row(v, kvBase + j, headDim);
      let c = 0;
      for (; c + 4 <= headDim; c += 4) {
        const o = outRow + (<usize>c << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(p, v128.load(vRow + (<usize>c << 2)))));
      }
      for (; c < headDim; c++) {
        const o = outRow + (<usize>c << 2);
        store<f32>(o, load<f32>(o) + f32x4.extract_lane(p, 0) * load<f32>(vRow + (<usize>c << 2)));
      }
    }
    if (lse != 0) store<f32>(lse + (<usize>r << 2), m + Mathf.log(sum)); // saved for the backward pass
  }
}

// With p = softmax(s), s = scale q k^T, o = p v:
//   dv_j += p_j do;  dp_j = do . v_j;  ds_j = p_j (dp_j - do . o);  dq += scale ds_j k_j;  dk_j += scale ds_j q.
export function attentionBackward(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dq: usize, dk: usize, dv: usize,
  batch: i32, heads: i32, kvHeads: i32, queryLen: i32, keyLen: i32, kvCapacity: i32, headDim: i32, scale: f32, causal: i32,
  tid: i32, threads: i32,
): void {
  const groupSize = heads / kvHeads;
  const pairs = batch * kvHeads;
  const p1 = partEnd(pairs, tid, threads, 1);
  for (let pair = partStart(pairs, tid, threads, 1); pair < p1; pair++) {
    const b = pair / kvHeads, g = pair % kvHeads;
    const kvBase = pair * kvCapacity;
    memory.fill(row(dk, kvBase, headDim), 0, (<usize>kvCapacity * <usize>headDim) << 2);
    memory.fill(row(dv, kvBase, headDim), 0, (<usize>kvCapacity * <usize>headDim) << 2);
    for (let h = g * groupSize; h < (g + 1) * groupSize; h++) {
      for (let t = 0; t < queryLen; t++) {
        const r = (b * heads + h) * queryLen + t;
        const qRow = row(q, r, headDim), doRow = row(dout, r, headDim), dqRow = row(dq, r, headDim);
        const rowLse = load<f32>(lse + (<usize>r << 2));
        const doDotO = dot(doRow, row(out, r, headDim), headDim);
        memory.fill(dqRow, 0, <usize>headDim << 2);
        const visible = visibleKeys(causal, queryLen, keyLen, t);
        for (let j = 0; j < visible; j++) {
          const kRow = row(k, kvBase + j, headDim), vRow = row(v, kvBase + j, headDim);
          const p = Mathf.exp(scale * dot(qRow, kRow, headDim) - rowLse);
          const ds = p * (dot(doRow, vRow, headDim) - doDotO);
          const dkRow = row(dk, kvBase + j, headDim), dvRow = row(dv, kvBase + j, headDim);
          for (let c = 0; c < headDim; c++) {
            const o = <usize>c << 2;
            store<f32>(dvRow + o, load<f32>(dvRow + o) + p * load<f32>(doRow + o));
            store<f32>(dqRow + o, load<f32>(dqRow + o) + scale * ds * load<f32>(kRow + o));
            store<f32>(dkRow + o, load<f32>(dkRow + o) + scale * ds * load<f32>(qRow + o));
          }
        }
      }
    }
  }
}
