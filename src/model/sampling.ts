// The sampler: how one step's logits become the next token, following transformers' `generate`.
//
//   repetition_penalty -> no_repeat_ngram_size      (logits processors, always)
//   temperature -> top-k -> top-p                   (logits warpers, only when sampling)
//   greedy: the first index of the largest logit (torch.argmax); sampling: a draw from the softmax
//
// Pure functions on host arrays (no tensors), so a page can run the very code `generate` runs on the
// logits it shows (examples/browser: the learner's "Next token" view) and the two cannot drift:
// `keptTokens` and `chooseToken` both go through `processLogits`.

import type { Random } from "../core/random.js";

/** How a step's logits are reshaped and a token chosen (the sampling part of GenerateOptions). */
export interface SamplingOptions {
  /** Sample instead of taking the most likely token. */
  doSample?: boolean;
  /** Divide logits by this before sampling (default 1). */
  temperature?: number;
  /** Keep the k most likely tokens (default 50, as transformers; 0 disables). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (default 1: all). */
  topP?: number;
  /** Never repeat an n-gram of this size (default 0: off). */
  noRepeatNgramSize?: number;
  /** Penalise every token already in the prompt or output (default 1: off; > 1 discourages repeats). */
  repetitionPenalty?: number;
}

/**
 * transformers' RepetitionPenaltyLogitsProcessor: the logit of each distinct token of `ids` is divided
 * by `penalty` when positive and multiplied by it when negative, so with penalty > 1 a seen token
 * always becomes less likely (dividing a negative logit would raise it).
 */
export function penalizeRepetitions(logits: Float32Array, ids: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(ids)) {
    const v = logits[id]!;
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/** Set the logits of tokens that would repeat an n-gram of `ids` to -Infinity (transformers' rule). */
export function banRepeatedNgrams(logits: Float32Array, ids: readonly number[], n: number): void {
  if (n <= 0 || ids.length + 1 < n) return;
  const prefix = ids.slice(ids.length - (n - 1));
  for (let start = 0; start + n <= ids.length; start++) {
    let matches = true;
    for (let j = 0; j < n - 1 && matches; j++) matches = ids[start + j] === prefix[j];
    if (matches) logits[ids[start + n - 1]!] = -Infinity;
  }
}

/** Keep the logits >= the k-th largest (ties kept, as transformers' TopKLogitsWarper). */
export function topKFilter(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const kth = Float32Array.from(logits).sort().reverse()[k - 1]!;
  for (let i = 0; i < logits.length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
}

/**
 * Nucleus filtering as transformers' TopPLogitsWarper: sort ascending, remove the tokens whose
 * cumulative probability is <= 1 - p, always keeping the most likely one.
 */
export function topPFilter(logits: Float32Array, p: number): void {
  if (p >= 1) return;
  const order = Array.from(logits.keys()).sort((a, b) => logits[a]! - logits[b]! || a - b);
  const probs = hostSoftmax(Float32Array.from(order, (i) => logits[i]!));
  let cumulative = 0;
  for (let r = 0; r < order.length - 1; r++) {
    cumulative += probs[r]!;
    if (cumulative <= 1 - p) logits[order[r]!] = -Infinity;
  }
}

/**
 * Probabilities of one row of logits on the host, in float64 (sampling reads logits back to the host
 * anyway; a tensor op would cost a round trip per token). Not the `softmax` op of src/ops.
 */
export function hostSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = new Float64Array(logits.length);
  if (max === Infinity) {
    // Logits pushed past f32's range (a tiny temperature or a huge repetition penalty divides them): the
    // limit of the softmax, all the mass shared by the infinite ones, where exp(inf - inf) would be NaN.
    let count = 0;
    for (const v of logits) if (v === Infinity) count++;
    for (let i = 0; i < logits.length; i++) out[i] = logits[i] === Infinity ? 1 / count : 0;
    return out;
  }
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

/** The first index of the largest value (torch.argmax's tie rule), on the host. */
function firstIndexOfMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * One step's logits as the choice sees them, in place: the processors, then (when sampling) the
 * warpers. `ids` is everything so far, prompt and generated tokens.
 */
export function processLogits(logits: Float32Array, ids: readonly number[], o: SamplingOptions): void {
  penalizeRepetitions(logits, ids, o.repetitionPenalty ?? 1);
  banRepeatedNgrams(logits, ids, o.noRepeatNgramSize ?? 0);
  if (!o.doSample) return;
  const temperature = o.temperature ?? 1;
  if (temperature !== 1) {
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    // Where x / T would overflow f32 (a tiny T), (x - max) / T: the same softmax (it does not see a
    // shift), with the largest logits at 0 rather than all at +Infinity. Otherwise transformers' x / T.
    const shift = Number.isFinite(max) && !Number.isFinite(Math.fround(max / temperature)) ? max : 0;
    for (let i = 0; i < logits.length; i++) logits[i] = (logits[i]! - shift) / temperature;
  }
  topKFilter(logits, o.topK ?? 50);
  topPFilter(logits, o.topP ?? 1);
}

/** What `keptTokens` returns. */
export interface KeptTokens {
  /** The logits after processLogits (-Infinity where a rule removed a token). */
  logits: Float32Array;
  /** Their softmax: what sampling draws from (0 for every removed token). */
  probabilities: Float64Array;
  /**
   * The ids the next token can be, ascending: when sampling, every id no rule removed; greedy, the one
   * first largest.
   */
  kept: number[];
}

/** The tokens `generate` could choose after `ids` from these logits (not modified), and with what probability. */
export function keptTokens(logits: Float32Array, ids: readonly number[], o: SamplingOptions): KeptTokens {
  const processed = Float32Array.from(logits);
  processLogits(processed, ids, o);
  const kept: number[] = [];
  if (o.doSample) for (let i = 0; i < processed.length; i++) processed[i] !== -Infinity && kept.push(i);
  else kept.push(firstIndexOfMax(processed));
  return { logits: processed, probabilities: hostSoftmax(processed), kept };
}

/** The next token from one step's logits (modified in place, by processLogits). */
export function chooseToken(logits: Float32Array, ids: readonly number[], o: SamplingOptions, random: Random): number {
  processLogits(logits, ids, o);
  if (!o.doSample) return firstIndexOfMax(logits);
  const probs = hostSoftmax(logits);
  const u = random.uniform();
  let cumulative = 0;
  for (let i = 0; i < probs.length; i++) {
    cumulative += probs[i]!;
    if (u < cumulative) return i;
  }
  return firstIndexOfMax(probs); // u landed in rounding slack at the top end
}
