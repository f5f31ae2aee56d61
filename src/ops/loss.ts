// Cross-entropy of logits against target ids, with an optional label mask and a chosen normaliser.
//
//   loss = sum_n mask[n] * (logsumexp(logits[n]) - logits[n, targets[n]]) / normaliser
//
// OLMo's trainer sums over the unmasked targets and divides by *all* B*T targets ("mean", the default);
// "sum" skips the division; a number divides by that number (e.g. the count of unmasked targets, which
// is HF's mean with ignore_index).
// Shape legend: logits: [..., V]; targets: i32 [...]; mask: [...] (f32 weights or i32 0/1).

import { record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { cast, mul, scale } from "./elementwise.js";
import { reshape } from "./shape.js";
import { sum } from "./reduce.js";
import { buf, emptyLike, expectDType, fmt, kernelsFor, sameShape } from "./util.js";

export interface CrossEntropyOptions {
  /** Weight per target, usually 0/1: masked targets contribute nothing. */
  mask?: Tensor;
  /** "mean" (divide by the number of targets, default), "sum", or a number to divide by. */
  normalizer?: "mean" | "sum" | number;
}

/** Per-target negative log-likelihood, [...] for logits [..., V]. */
export function negativeLogLikelihood(logits: Tensor, targets: Tensor): Tensor {
  const kernels = kernelsFor("crossEntropy", logits, targets);
  expectDType("crossEntropy", "logits", logits, "f32");
  expectDType("crossEntropy", "targets", targets, "i32");
  const vocab = logits.shape[logits.shape.length - 1] ?? 0;
  if (!sameShape(logits.shape.slice(0, -1), targets.shape)) {
    throw new Error(`crossEntropy: targets ${fmt(targets)} must have the shape of logits ${fmt(logits)} without its last axis`);
  }
  const rows = targets.size;
  const nll = emptyLike(logits, targets.shape, "f32");
  const lse = emptyLike(logits, [rows], "f32");
  kernels.crossEntropy({ logits: buf(logits), targets: buf(targets), nll: buf(nll), lse: buf(lse), rows, vocab });
  return record(
    "crossEntropy",
    nll,
    [logits, targets],
    (g) => {
      const dlogits = emptyLike(logits);
      kernelsFor("crossEntropy backward", logits, g).crossEntropyBackward({
        logits: buf(logits), targets: buf(targets), lse: buf(lse), dnll: buf(g), dlogits: buf(dlogits), rows, vocab,
      });
      return [dlogits, null];
    },
    [lse],
  );
}

/** The scalar cross-entropy loss (see the top of this file). */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { mask, normalizer = "mean" } = options;
  let nll = negativeLogLikelihood(logits, targets);
  if (mask) {
    kernelsFor("crossEntropy", mask, logits);
    expectDType("crossEntropy", "mask", mask, "f32", "i32");
    if (!sameShape(mask.shape, targets.shape)) {
      throw new Error(`crossEntropy: mask ${fmt(mask)} must have the shape of targets ${fmt(targets)}`);
    }
    nll = mul(nll, mask.dtype === "f32" ? mask : cast(mask, "f32"));
  }
  const total = sum(reshape(nll, [-1]));
  if (normalizer === "sum") return total;
  const divisor = normalizer === "mean" ? targets.size : normalizer;
  if (!(divisor > 0)) throw new Error(`crossEntropy: normalizer must be positive, got ${divisor}`);
  return scale(total, 1 / divisor);
}
