// Embedding lookup: out[..., :] = table[ids[...], :]. Its backward is a scatter-add into the table's
// gradient (ids that repeat add up).
// Shape legend: table: [V, C] (vocab, channels; f32, or bf16 / f16 / quantized when frozen);
// ids: i32 [...]; out: [..., C].

import { record } from "../core/autograd.js";
import { QuantizedWeight, type Weight } from "../core/quantize.js";
import type { Tensor } from "../core/tensor.js";
import { buf, emptyLike, expectDType, expectRank, kernelsFor } from "./util.js";

export function embedding(table: Weight, ids: Tensor): Tensor {
  if (table instanceof QuantizedWeight) return quantizedEmbedding(table, ids);
  const kernels = kernelsFor("embedding", table, ids);
  expectDType("embedding", "table", table, "f32", "bf16", "f16");
  expectDType("embedding", "ids", ids, "i32");
  expectRank("embedding", "table", table, 2, "[vocab, dim]");
  const [vocab, dim] = table.shape as [number, number];
  const out = emptyLike(table, [...ids.shape, dim], "f32");
  const count = ids.size;
  kernels.embedding({
    table: buf(table), tableDType: table.dtype as "f32" | "bf16" | "f16", ids: buf(ids), out: buf(out), count, vocab, dim,
  });
  return record("embedding", out, [table, ids], (g) => {
    const dtable = emptyLike(table);
    kernelsFor("embedding backward", ids, g).embeddingBackward({ ids: buf(ids), dout: buf(g), dtable: buf(dtable), count, vocab, dim });
    return [dtable, null];
  });
}

/** Rows of a quantized table, dequantized (a frozen table: no gradient). */
function quantizedEmbedding(table: QuantizedWeight, ids: Tensor): Tensor {
  const kernels = kernelsFor("embedding", table.values, table.scales, ids);
  expectDType("embedding", "ids", ids, "i32");
  const [vocab, dim] = table.shape;
  const out = emptyLike(ids, [...ids.shape, dim], "f32");
  kernels.embeddingQuantized({
    values: buf(table.values), scales: buf(table.scales), scheme: table.scheme, ids: buf(ids), out: buf(out), count: ids.size, vocab, dim,
  });
  return out;
}
