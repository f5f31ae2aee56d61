// The embedding gather and its scatter-add backward, in the reference backend.
// Shapes: ids: i32 [N]; table, dtable: [V, C]; out, dout: [N, C].

import type { KernelArgs } from "../../core/backend.js";
import { checkId, floats, ints, widened, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

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
