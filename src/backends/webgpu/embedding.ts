// The embedding gather and its scatter-add backward, in the WebGPU backend (kernels/embedding.wgsl).
// A table larger than one storage binding is bound in blocks of rows (blocks.ts), one dispatch per block. A token id out of range is reported through the
// status buffer and thrown by the next read-back.

import type { KernelArgs } from "../../core/backend.js";
import { BYTES_PER_ELEMENT } from "../../core/dtype.js";
import { DTYPE_CODE } from "../codes.js";
import { blocksOf, rowRange } from "./blocks.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

export function embedding(gpu: GpuRuntime, { table, tableDType, ids, out, count, vocab, dim }: Args<"embedding">): void {
  const rowBytes = dim * BYTES_PER_ELEMENT[tableDType];
  for (const block of blocksOf(gpu, "embedding", vocab, [[table, rowBytes]])) {
    gpu.run("embedding", "embedding", {
      params: { count, vocab, dim, vocabStart: block.start, vocabRows: block.count },
      buffers: { ids, table: rowRange(table, rowBytes, block), out, status: gpu.status },
      groups: grid(Math.ceil((count * dim) / 256)),
      constants: { TABLE_DTYPE: DTYPE_CODE[tableDType] },
    });
  }
}

export function embeddingBackward(gpu: GpuRuntime, { ids, dout, dtable, count, vocab, dim }: Args<"embeddingBackward">): void {
  for (const block of blocksOf(gpu, "embeddingBackward", vocab, [[dtable, dim * 4]])) {
    const params = { count, vocab, dim, vocabStart: block.start, vocabRows: block.count };
    const rows = rowRange(dtable, dim * 4, block);
    gpu.run("embedding", "embeddingBackwardZero", { params, buffers: { dtable: rows }, groups: grid(Math.ceil((block.count * dim) / 256)) });
    gpu.run("embedding", "embeddingBackward", { params, buffers: { ids, dout, dtable: rows }, groups: grid(Math.ceil(dim / 256)) });
  }
}
