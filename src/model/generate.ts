// Text generation with a KV cache, following transformers' `generate`:
//   - the prompt is processed in one forward pass (prefill), then one token per pass (decode);
//   - each step's logits go through repetition_penalty, then no_repeat_ngram_size, then, when sampling,
//     temperature, top-k and top-p in that order (transformers' logits processors, then its warpers);
//   - greedy takes the first index of the largest logit (torch.argmax); sampling draws from the softmax
//     with the seeded generator of core/random.ts (so a seed repeats across hosts, not across torch);
//   - generation stops after max_new_tokens (or at max_length tokens in all), at the context length,
//     after emitting the EOS token, which is kept in the output as transformers keeps it, or when
//     shouldStop says so (transformers' StoppingCriteria).

import { noGrad } from "../core/autograd.js";
import { tensor } from "../core/creation.js";
import { Random } from "../core/random.js";
import { scope } from "../core/tensor.js";
import type { Olmo } from "./olmo.js";

export interface GenerateOptions {
  /** New tokens at most (default 64 unless maxLength is given). Takes precedence over maxLength. */
  maxNewTokens?: number;
  /** Prompt plus new tokens at most. */
  maxLength?: number;
  /** Sample instead of taking the most likely token. */
  doSample?: boolean;
  /** Divide logits by this before sampling (default 1). */
  temperature?: number;
  /** Keep the k most likely tokens (default 50, as transformers; 0 disables). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (default 1: all). */
  topP?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Never repeat an n-gram of this size (default 0: off). */
  noRepeatNgramSize?: number;
  /** Penalise every token already in the prompt or output (default 1: off; > 1 discourages repeats). */
  repetitionPenalty?: number;
  /** Stop after this id (default: the model's eos_token_id; null: never). */
  eosTokenId?: number | null;
  /**
   * Called with each new token as soon as it is chosen. A promise it returns is awaited before the next
   * step: a server streaming tokens yields to its event loop there, so each token reaches the client
   * before the next is computed (src/api/http.ts).
   */
  onToken?: (id: number) => void | Promise<void>;
  /** Called after each new token (and onToken); true ends generation there, the token kept. */
  shouldStop?: (ids: readonly number[]) => boolean;
}

export interface GenerateResult {
  /** Prompt and new tokens. */
  ids: number[];
  newIds: number[];
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
}

function checkOptions(o: GenerateOptions): void {
  const positiveInt = (name: keyof GenerateOptions, v: unknown) => {
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) throw new Error(`generate: ${name} must be a non-negative integer, got ${v}`);
  };
  positiveInt("maxNewTokens", o.maxNewTokens);
  positiveInt("maxLength", o.maxLength);
  positiveInt("topK", o.topK);
  positiveInt("noRepeatNgramSize", o.noRepeatNgramSize);
  if (o.temperature !== undefined && !(o.temperature > 0)) throw new Error(`generate: temperature must be positive, got ${o.temperature}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) {
    throw new Error(`generate: repetitionPenalty must be a positive number, got ${o.repetitionPenalty}`);
  }
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
function hostSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = new Float64Array(logits.length);
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

/** The next token from one step's logits (modified in place). */
export function chooseToken(logits: Float32Array, ids: readonly number[], o: GenerateOptions, random: Random): number {
  penalizeRepetitions(logits, ids, o.repetitionPenalty ?? 1);
  banRepeatedNgrams(logits, ids, o.noRepeatNgramSize ?? 0);
  if (!o.doSample) return firstIndexOfMax(logits);
  const temperature = o.temperature ?? 1;
  if (temperature !== 1) for (let i = 0; i < logits.length; i++) logits[i]! /= temperature;
  topKFilter(logits, o.topK ?? 50);
  topPFilter(logits, o.topP ?? 1);
  const probs = hostSoftmax(logits);
  const u = random.uniform();
  let cumulative = 0;
  for (let i = 0; i < probs.length; i++) {
    cumulative += probs[i]!;
    if (u < cumulative) return i;
  }
  return firstIndexOfMax(probs); // u landed in rounding slack at the top end
}

/** Generate a continuation of `prompt` (token ids). */
export async function generate(model: Olmo, prompt: readonly number[], options: GenerateOptions = {}): Promise<GenerateResult> {
  checkOptions(options);
  if (prompt.length === 0) throw new Error("generate: the prompt needs at least one token");
  const context = model.config.maxPositionEmbeddings;
  if (prompt.length > context) throw new Error(`generate: the prompt has ${prompt.length} tokens, more than the context length ${context}`);
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= model.config.vocabSize) {
      throw new Error(`generate: prompt token ${id} is not an id of this model's vocabulary [0, ${model.config.vocabSize})`);
    }
  }
  const maxNew = options.maxNewTokens ?? (options.maxLength !== undefined ? Math.max(0, options.maxLength - prompt.length) : 64);
  const total = Math.min(prompt.length + maxNew, context);
  const eos = options.eosTokenId === undefined ? model.config.eosTokenId : options.eosTokenId;
  const random = new Random(options.seed ?? 0);
  const ids = [...prompt];
  const cache = model.createCache(1, total);

  /** Logits of the last position after feeding `tokens`, read back to the host. */
  const step = async (tokens: readonly number[]): Promise<Float32Array> => {
    const logits = noGrad(() =>
      scope(() => model.forward(tensor(Int32Array.from(tokens), [1, tokens.length], { backend: model.backend }), { cache, lastOnly: true })),
    );
    const data = (await logits.data()) as Float32Array; // a fresh host copy: chooseToken may modify it
    logits.dispose();
    return data;
  };

  try {
    let started = performance.now();
    let logits = ids.length < total ? await step(prompt) : null;
    const prefillSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    while (logits && ids.length < total) {
      const next = chooseToken(logits, ids, options, random);
      ids.push(next);
      const handed = options.onToken?.(next);
      if (handed) await handed;
      if (next === eos || ids.length >= total || options.shouldStop?.(ids)) break;
      logits = await step([next]);
    }
    return { ids, newIds: ids.slice(prompt.length), promptTokens: prompt.length, prefillSeconds, decodeSeconds: (performance.now() - started) / 1000 };
  } finally {
    cache.dispose();
  }
}
