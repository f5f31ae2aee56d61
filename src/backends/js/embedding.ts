// Token-indexed kernels of the reference backend: the embedding gather and its scatter-add, and the
// cross-entropy of logits against target ids.
// Shapes: ids / targets: i32 [N]; table: [V, C]; out: [N, C]; logits: [N, V]; nll, lse: [N].

import type { KernelArgs } from "../../core/backend.js";
import { floats, ints, widened, type JsBuffer } from "./buffer.js";
import { rowLogSumExp } from "./normalization.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

function checkId(op: string, what: string, id: number, n: number, limit: number): void {
  if (!(id >= 0 && id < limit)) {
    throw new RangeError(`${op}: ${what} ${id} at position ${n} is out of range [0, ${limit})`);
  }
}

export function embedding({ table, tableDType, ids, out, count, vocab, dim }: Args<"embedding">): void {
  const rows = widened(table, tableDType), idx = ints(ids), o = floats(out);
  for (let n = 0; n < count; n++) {
    const id = idx[n]!;
    checkId("embedding", "token id", id, n, vocab);
    for (let c = 0; c < dim; c++) o[n * dim + c] = rows[id * dim + c]!;
  }
}

export function embeddingBackward({ ids, dout, dtable, count, vocab, dim }: Args<"embeddingBackward">): void {
  const idx = ints(ids), g = floats(dout), o = floats(dtable);
  o.fill(0, 0, vocab * dim);
  for (let n = 0; n < count; n++) {
    const id = idx[n]!;
    checkId("embedding backward", "token id", id, n, vocab);
    for (let c = 0; c < dim; c++) o[id * dim + c] += g[n * dim + c]!;
  }
}

export function crossEntropy({ logits, targets, nll, lse, rows, vocab }: Args<"crossEntropy">): void {
  const x = floats(logits), t = ints(targets), loss = floats(nll), saved = floats(lse);
  for (let n = 0; n < rows; n++) {
    checkId("crossEntropy", "target id", t[n]!, n, vocab);
    saved[n] = rowLogSumExp(x, n * vocab, vocab);
    loss[n] = saved[n]! - x[n * vocab + t[n]!]!;
  }
}

export function crossEntropyBackward({ logits, targets, lse, dnll, dlogits, rows, vocab }: Args<"crossEntropyBackward">): void {
  const x = floats(logits), t = ints(targets), saved = floats(lse), g = floats(dnll), o = floats(dlogits);
  for (let n = 0; n < rows; n++) {
    for (let j = 0; j < vocab; j++) {
      const p = Math.exp(x[n * vocab + j]! - saved[n]!);
      o[n * vocab + j] = g[n]! * (p - (j === t[n] ? 1 : 0));
    }
  }
}
