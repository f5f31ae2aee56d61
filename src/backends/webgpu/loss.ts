// The cross-entropy of the WebGPU backend (kernels/loss.wgsl), forward and backward: one workgroup per
// row of logits; logits larger than one storage binding (OLMo's 50304-wide vocabulary over a long
// batch) go in blocks of rows (runRows). A target id out of range is reported through the status
// buffer and thrown by the next read-back.

import type { KernelArgs } from "../../core/backend.js";
import { runRows } from "./blocks.js";
import type { GpuBuffer, GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

/** Params of a block of rows; rowOffset lets a report name the row in the whole batch. */
const lossParams = (vocab: number) => (rowOffset: number, rows: number) => ({ rows, vocab, rowOffset });

export function crossEntropy(gpu: GpuRuntime, { logits, targets, nll, lse, rows, vocab }: Args<"crossEntropy">): void {
  runRows(gpu, "loss", "crossEntropy", rows, { logits: [logits, vocab * 4], targets: [targets, 4], nll: [nll, 4], lseOut: [lse, 4] },
    { status: gpu.status }, lossParams(vocab));
}

export function crossEntropyBackward(gpu: GpuRuntime, { logits, targets, lse, dnll, dlogits, rows, vocab }: Args<"crossEntropyBackward">): void {
  runRows(gpu, "loss", "crossEntropyBackward", rows,
    { logits: [logits, vocab * 4], targets: [targets, 4], lseIn: [lse, 4], dnll: [dnll, 4], dlogits: [dlogits, vocab * 4] }, {}, lossParams(vocab));
}
