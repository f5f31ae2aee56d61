// The cross-entropy of logits against target ids, in the reference backend: one loss per row, as
// PyTorch's F.cross_entropy with reduction "none" (src/ops/loss.ts masks and reduces them).
// Shapes: logits, dlogits: [N, V]; targets: i32 [N]; nll, lse, dnll: [N].

import type { KernelArgs } from "../../core/backend.js";
import { checkId, floats, ints, type JsBuffer } from "./buffer.js";
import { rowLogSumExp } from "./normalization.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

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
