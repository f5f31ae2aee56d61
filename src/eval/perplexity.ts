// Perplexity of a token stream with windows of at most seqLen tokens (the sliding-window evaluation of
// transformers' "Perplexity of fixed-length models" guide):
//
//   windows start at 0, stride, 2 stride, ... and end at min(start + seqLen, N), the last one at N;
//   a window scores the tokens from max(start + 1, previous window's end) to its end, so every token
//   but the first is scored exactly once, with as much of its window before it as context.
//
// With stride = seqLen (the default) the windows do not overlap and each scores seqLen - 1 tokens, as
// OLMo's trainer does on instances of seqLen tokens; a smaller stride gives each token at least
// seqLen - stride tokens of context. A label mask (OLMo's label_mask.npy) leaves out the targets whose
// mask is 0.
//
//   loss = sum of -log p(token | context) / scored tokens     perplexity = exp(loss)
//   bits per byte = sum of -log p / (ln 2 * UTF-8 bytes of the scored tokens)

import { noGrad } from "../core/autograd.js";
import { tensor } from "../core/creation.js";
import { scope } from "../core/tensor.js";
import type { Olmo } from "../model/olmo.js";
import { negativeLogLikelihood } from "../ops/index.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { EvalDataError } from "./tasks.js";

export interface PerplexityOptions {
  /** Window length in tokens (at most the model's context length). */
  seqLen: number;
  /** Tokens between window starts (default seqLen: no overlap). */
  stride?: number;
  /** Per token: 0 leaves it out as a target. */
  mask?: ArrayLike<number>;
  /** Gives bits per byte (each scored token's UTF-8 bytes). */
  tokenizer?: Tokenizer;
  /** Positions run in one forward pass (default 256; see perplexity). */
  chunkTokens?: number;
  /** Called after each window with tokens scored so far and the total to score. */
  onProgress?: (scored: number, total: number) => void;
}

export interface PerplexityResult {
  /** Tokens scored. */
  tokens: number;
  /** Mean negative log-likelihood in nats. */
  loss: number;
  perplexity: number;
  /** Null without a tokenizer. */
  bitsPerByte: number | null;
  /** Summed negative log-likelihood (nats). */
  nll: number;
  bytes: number | null;
}

export interface Window {
  start: number;
  end: number;
  /** First token this window scores. */
  firstTarget: number;
}

/** The windows over N tokens (see the header). */
export function perplexityWindows(n: number, seqLen: number, stride = seqLen): Window[] {
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new EvalDataError(`seqLen must be an integer >= 2, got ${seqLen}`);
  if (!Number.isInteger(stride) || stride < 1 || stride > seqLen) throw new EvalDataError(`stride must be an integer in [1, seqLen = ${seqLen}], got ${stride}`);
  if (n < 2) throw new EvalDataError(`perplexity needs at least 2 tokens, got ${n}`);
  const windows: Window[] = [];
  let previousEnd = 0;
  for (let start = 0; previousEnd < n; start += stride) {
    const end = Math.min(start + seqLen, n);
    const firstTarget = Math.max(start + 1, previousEnd);
    if (firstTarget < end) windows.push({ start, end, firstTarget });
    previousEnd = end;
  }
  return windows;
}

export async function perplexity(model: Olmo, ids: ArrayLike<number>, options: PerplexityOptions): Promise<PerplexityResult> {
  const { seqLen, stride = seqLen, mask, tokenizer, chunkTokens = 256 } = options;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new EvalDataError(`chunkTokens must be a positive integer, got ${chunkTokens}`);
  if (seqLen > model.config.maxPositionEmbeddings) {
    throw new EvalDataError(`seqLen ${seqLen} is longer than the model's context length ${model.config.maxPositionEmbeddings}`);
  }
  if (mask && mask.length !== ids.length) throw new EvalDataError(`the label mask has ${mask.length} entries for ${ids.length} tokens`);
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i]) || ids[i]! < 0 || ids[i]! >= model.config.vocabSize) {
      throw new EvalDataError(`token ${i} is id ${ids[i]}, outside the model's vocabulary [0, ${model.config.vocabSize})`);
    }
  }
  const windows = perplexityWindows(ids.length, seqLen, stride);
  const counts = (t: number) => !mask || mask[t] !== 0;
  let total = 0;
  for (const w of windows) for (let t = w.firstTarget; t < w.end; t++) if (counts(t)) total++;
  if (total === 0) throw new EvalDataError("the label mask leaves no token to score");

  const backend = model.backend;
  const cache = model.createCache(1, seqLen);
  let nll = 0, tokens = 0, bytes = 0;
  try {
    for (const w of windows) {
      // Positions start .. end-2 predict tokens start+1 .. end-1 (the window's last token is only a
      // target). They run through the KV cache chunkTokens at a time, so the logits held at once
      // are [chunkTokens, V], not [seqLen, V] (412 MB for OLMo-1B at 2048 tokens); chunks before the first scored
      // position only fill the cache.
      cache.length = 0;
      const firstPosition = w.firstTarget - 1;
      for (let from = w.start; from < w.end - 1; from += chunkTokens) {
        const to = Math.min(from + chunkTokens, w.end - 1);
        const input = Int32Array.from({ length: to - from }, (_, i) => ids[from + i]!);
        const ids2d = () => tensor(input, [1, input.length], { backend });
        if (to <= firstPosition) {
          noGrad(() => scope(() => void model.forward(ids2d(), { cache, lastOnly: true })));
          continue;
        }
        const targets = Int32Array.from({ length: to - from }, (_, i) => ids[from + 1 + i]!);
        const perToken = noGrad(() =>
          scope(() => negativeLogLikelihood(model.forward(ids2d(), { cache }), tensor(targets, [1, targets.length], { backend }))),
        );
        let values: ArrayLike<number>;
        try {
          values = await perToken.data();
        } finally {
          perToken.dispose();
        }
        for (let t = Math.max(w.firstTarget, from + 1); t <= to; t++) {
          if (!counts(t)) continue;
          nll += values[t - 1 - from]!;
          tokens++;
          if (tokenizer) bytes += tokenizer.bytesOf([ids[t]!]).length;
        }
      }
      options.onProgress?.(tokens, total);
    }
  } finally {
    cache.dispose();
  }
  const loss = nll / tokens;
  return {
    tokens,
    loss,
    perplexity: Math.exp(loss),
    bitsPerByte: tokenizer ? (bytes > 0 ? nll / (Math.LN2 * bytes) : null) : null,
    nll,
    bytes: tokenizer ? bytes : null,
  };
}
