// Causal scaled-dot-product attention, fused: one query row at a time, scores kept in a per-thread
// scratch row of Tk floats, never a [Tq, Tk] matrix. The backward pass recomputes the probabilities
// from the saved log-sum-exp.
// q: [B, H, Tq, D]; k, v: [B, G, S, D] (first Tk of S rows used); out: [B, H, Tq, D]; lse: [B, H, Tq]. Query head h reads kv head
// h / (H / G). Query t has position (Tk - Tq) + t and, when causal, sees keys 0 ..= that position.
// Forward: threads split the query rows. Backward: threads split the (batch, kv head) pairs, since dk
// and dv of one kv head collect from all the query heads and rows that read it.
// The forward pass scores four keys at a time (four independent sums in flight, where one sum would
// wait on each add's latency), taken from the four quarters of the visible keys, takes the
// exponentials four at a time, and builds the output in its own row (in L1) one whole v row at a
// time, two keys at a time from the two halves. The quarters and halves are side-by-side streams
// through k and v: a decode step finds them cold (the weights read since evicted them), and memory
// serves a few streams at once faster than one (bench/NOTES.md, "Attention": 1.2-1.5x on a cold
// cache). The backward pass
// also scores four keys at a time and updates dq, dk, dv four columns at a time.

import { expF32x4, OptionalPointer, partEnd, partStart, Pointer } from "./common";

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

/** The dot products of one row a with four rows b0..b3: four independent sums in flight. */
@inline function dot4(a: usize, b0: usize, b1: usize, b2: usize, b3: usize, d: i32): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) {
    const at = <usize>i << 2, x = v128.load(a + at);
    s0 = f32x4.add(s0, f32x4.mul(x, v128.load(b0 + at)));
    s1 = f32x4.add(s1, f32x4.mul(x, v128.load(b1 + at)));
    s2 = f32x4.add(s2, f32x4.mul(x, v128.load(b2 + at)));
    s3 = f32x4.add(s3, f32x4.mul(x, v128.load(b3 + at)));
  }
  // Transpose-and-add: lane j of the result is the sum of sj's lanes.
  const t01 = f32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t23 = f32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  let sums = f32x4.add(v128.shuffle<i32>(t01, t23, 0, 1, 4, 5), v128.shuffle<i32>(t01, t23, 2, 3, 6, 7));
  for (; i < d; i++) {
    const x = load<f32>(a + (<usize>i << 2)), at = <usize>i << 2;
    sums = f32x4.add(sums, f32x4.mul(f32x4.splat(x), f32x4(load<f32>(b0 + at), load<f32>(b1 + at), load<f32>(b2 + at), load<f32>(b3 + at))));
  }
  return sums;
}

/** Keys query row t sees; never negative (causal with fewer keys than queries: the first rows see none). */
@inline function visibleKeys(causal: i32, queryLen: i32, keyLen: i32, t: i32): i32 {
  return causal != 0 ? max<i32>(0, min<i32>(keyLen, keyLen - queryLen + t + 1)) : keyLen;
}

export function attention(
  q: Pointer, k: Pointer, v: Pointer, out: Pointer, lse: OptionalPointer, batch: i32, heads: i32, kvHeads: i32, queryLen: i32, keyLen: i32,
  kvCapacity: i32, headDim: i32, scale: f32, causal: i32, scratch: Pointer, tid: i32, threads: i32,
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
    // Scores, four keys at a time, and their maximum. The four keys come from the four quarters of
    // the visible ones: four sequential streams through k, which memory serves faster than one (the
    // keys of a decode step are cold: the weights read since they were written evicted them).
    const scale4 = f32x4.splat(scale);
    let m4 = f32x4.splat(-Infinity);
    const quarter = visible >> 2, quarterBytes = (<usize>quarter * <usize>headDim) << 2;
    const sq = <usize>quarter << 2;
    for (let i = 0; i < quarter; i++) {
      const k0 = row(k, kvBase + i, headDim);
      const scores = f32x4.mul(scale4, dot4(qRow, k0, k0 + quarterBytes, k0 + 2 * quarterBytes, k0 + 3 * quarterBytes, headDim));
      const si = s + (<usize>i << 2);
      v128.store32_lane(si, scores, 0);
      v128.store32_lane(si + sq, scores, 1);
      v128.store32_lane(si + 2 * sq, scores, 2);
      v128.store32_lane(si + 3 * sq, scores, 3);
      m4 = f32x4.max(m4, scores);
    }
    let j = 4 * quarter;
    let m = max<f32>(max<f32>(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1)), max<f32>(f32x4.extract_lane(m4, 2), f32x4.extract_lane(m4, 3)));
    for (; j < visible; j++) {
      const score = scale * dot(qRow, row(k, kvBase + j, headDim), headDim);
      store<f32>(s + (<usize>j << 2), score);
      m = max<f32>(m, score);
    }
    // Probabilities (unnormalised) in place, and their sum.
    const shift = f32x4.splat(m);
    let sum4 = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= visible; j += 4) {
      const p = expF32x4(f32x4.sub(v128.load(s + (<usize>j << 2)), shift));
      v128.store(s + (<usize>j << 2), p);
      sum4 = f32x4.add(sum4, p);
    }
    let sum: f32 = f32x4.extract_lane(sum4, 0) + f32x4.extract_lane(sum4, 1) + f32x4.extract_lane(sum4, 2) + f32x4.extract_lane(sum4, 3);
    for (; j < visible; j++) {
      const p = Mathf.exp(load<f32>(s + (<usize>j << 2)) - m);
      store<f32>(s + (<usize>j << 2), p);
      sum += p;
    }
    // out = (p / sum) . v, built in the output row (512 bytes for a head of 128: it stays in L1) one key
    // at a time, two keys at a time from the two halves of the visible ones side by side (two streams
    // through v). Each v row is read whole and in order: a decode step finds v cold (the weights read
    // since evicted it), and whole rows in order are what memory serves fastest (bench/NOTES.md,
    // "Attention").
    const inv: f32 = visible > 0 ? <f32>1 / sum : 0; // no visible keys (keyLength 0): out = 0
    const half = visible >> 1, vStep = <usize>headDim << 2, halfBytes = <usize>half * vStep;
    const d4 = headDim & ~3;
    for (let c = 0; c < headDim; c++) store<f32>(outRow + (<usize>c << 2), 0);
    let vAt = row(v, kvBase, headDim);
    for (let key = 0; key < half; key++) {
      const p = v128.load32_splat(s + (<usize>key << 2)), p2 = v128.load32_splat(s + (<usize>(key + half) << 2));
      for (let c = 0; c < d4; c += 4) {
        const at = <usize>c << 2, o = outRow + at;
        v128.store(o, f32x4.add(f32x4.add(v128.load(o), f32x4.mul(p, v128.load(vAt + at))), f32x4.mul(p2, v128.load(vAt + halfBytes + at))));
      }
      for (let c = d4; c < headDim; c++) {
        const at = <usize>c << 2, o = outRow + at;
        store<f32>(o, load<f32>(o) + f32x4.extract_lane(p, 0) * load<f32>(vAt + at) + f32x4.extract_lane(p2, 0) * load<f32>(vAt + halfBytes + at));
      }
      vAt += vStep;
    }
    if (visible & 1) {
      const p: f32 = load<f32>(s + (<usize>(visible - 1) << 2)), last = vAt + halfBytes;
      for (let c = 0; c < headDim; c++) {
        const at = <usize>c << 2;
        store<f32>(outRow + at, load<f32>(outRow + at) + p * load<f32>(last + at));
      }
    }
    for (let c = 0; c < headDim; c++) store<f32>(outRow + (<usize>c << 2), load<f32>(outRow + (<usize>c << 2)) * inv);
    if (lse != 0) store<f32>(lse + (<usize>r << 2), m + Mathf.log(sum)); // saved for the backward pass
  }
}

/** One key's share of the gradients: dv_j += p do;  dq += scaledDs k_j;  dk_j += scaledDs q. */
@inline function accumulateKey(
  key: i32, p: f32, scaledDs: f32, qRow: usize, doRow: usize, dqRow: usize, k: usize, dk: usize, dv: usize, headDim: i32,
): void {
  const kRow = row(k, key, headDim), dkRow = row(dk, key, headDim), dvRow = row(dv, key, headDim);
  const p4 = f32x4.splat(p), ds4 = f32x4.splat(scaledDs);
  let c = 0;
  for (; c + 4 <= headDim; c += 4) {
    const o = <usize>c << 2;
    v128.store(dvRow + o, f32x4.add(v128.load(dvRow + o), f32x4.mul(p4, v128.load(doRow + o))));
    v128.store(dqRow + o, f32x4.add(v128.load(dqRow + o), f32x4.mul(ds4, v128.load(kRow + o))));
    v128.store(dkRow + o, f32x4.add(v128.load(dkRow + o), f32x4.mul(ds4, v128.load(qRow + o))));
  }
  for (; c < headDim; c++) {
    const o = <usize>c << 2;
    store<f32>(dvRow + o, load<f32>(dvRow + o) + p * load<f32>(doRow + o));
    store<f32>(dqRow + o, load<f32>(dqRow + o) + scaledDs * load<f32>(kRow + o));
    store<f32>(dkRow + o, load<f32>(dkRow + o) + scaledDs * load<f32>(qRow + o));
  }
}

// With p = softmax(s), s = scale q k^T, o = p v:
//   dv_j += p_j do;  dp_j = do . v_j;  ds_j = p_j (dp_j - do . o);  dq += scale ds_j k_j;  dk_j += scale ds_j q.
export function attentionBackward(
  q: Pointer, k: Pointer, v: Pointer, out: Pointer, lse: Pointer, dout: Pointer, dq: Pointer, dk: Pointer, dv: Pointer,
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
        let j = 0;
        // Four keys at a time: their scores, probabilities and ds in one pass of four sums each.
        const step = <usize>headDim << 2, lse4 = f32x4.splat(rowLse), doDotO4 = f32x4.splat(doDotO);
        for (; j + 4 <= visible; j += 4) {
          const k0 = row(k, kvBase + j, headDim), v0 = row(v, kvBase + j, headDim);
          const p = expF32x4(f32x4.sub(f32x4.mul(f32x4.splat(scale), dot4(qRow, k0, k0 + step, k0 + 2 * step, k0 + 3 * step, headDim)), lse4));
          const ds = f32x4.mul(p, f32x4.sub(dot4(doRow, v0, v0 + step, v0 + 2 * step, v0 + 3 * step, headDim), doDotO4));
          accumulateKey(kvBase + j, f32x4.extract_lane(p, 0), scale * f32x4.extract_lane(ds, 0), qRow, doRow, dqRow, k, dk, dv, headDim);
          accumulateKey(kvBase + j + 1, f32x4.extract_lane(p, 1), scale * f32x4.extract_lane(ds, 1), qRow, doRow, dqRow, k, dk, dv, headDim);
          accumulateKey(kvBase + j + 2, f32x4.extract_lane(p, 2), scale * f32x4.extract_lane(ds, 2), qRow, doRow, dqRow, k, dk, dv, headDim);
          accumulateKey(kvBase + j + 3, f32x4.extract_lane(p, 3), scale * f32x4.extract_lane(ds, 3), qRow, doRow, dqRow, k, dk, dv, headDim);
        }
        for (; j < visible; j++) {
          const p = Mathf.exp(scale * dot(qRow, row(k, kvBase + j, headDim), headDim) - rowLse);
          const ds = p * (dot(doRow, row(v, kvBase + j, headDim), headDim) - doDotO);
          accumulateKey(kvBase + j, p, scale * ds, qRow, doRow, dqRow, k, dk, dv, headDim);
        }
      }
    }
  }
}
