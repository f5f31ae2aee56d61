// Text generation with a KV cache, following transformers' `generate`:
//   - the prompt is processed in one forward pass (prefill), then one token per pass (decode);
//   - each step's logits go through repetition_penalty, then no_repeat_ngram_size, then, when sampling,
//     temperature, top-k and top-p in that order (transformers' logits processors, then its warpers:
//     sampling.ts); greedy takes the first index of the largest logit (torch.argmax); sampling draws
//     from the softmax with the seeded generator of core/random.ts (so a seed repeats across hosts, not
//     across torch);
//   - generation stops after max_new_tokens (or at max_length tokens in all), at the context length,
//     after emitting the EOS token, which is kept in the output as transformers keeps it, or when
//     shouldStop says so (transformers' StoppingCriteria).

import { noGrad } from "../core/autograd.js";
import { tensor } from "../core/creation.js";
import { Random } from "../core/random.js";
import { scope } from "../core/tensor.js";
import type { Olmo } from "./olmo.js";
import { chooseToken, type SamplingOptions } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  /** New tokens at most (default 64 unless maxLength is given). Takes precedence over maxLength. */
  maxNewTokens?: number;
  /** Prompt plus new tokens at most. */
  maxLength?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
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
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) throw new Error(`generate: ${name} must be a non-negative integer, got ${typeof v === "string" ? JSON.stringify(v) : v}`);
  };
  positiveInt("maxNewTokens", o.maxNewTokens);
  positiveInt("maxLength", o.maxLength);
  positiveInt("topK", o.topK);
  positiveInt("noRepeatNgramSize", o.noRepeatNgramSize);
  const shown = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));
  if (o.temperature !== undefined && !(typeof o.temperature === "number" && o.temperature > 0)) throw new Error(`generate: temperature must be a positive number, got ${shown(o.temperature)}`);
  if (o.doSample !== undefined && typeof o.doSample !== "boolean") throw new Error(`generate: doSample must be true or false, got ${shown(o.doSample)}`);
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw new Error(`generate: seed must be an integer, got ${shown(o.seed)}`);
  if (o.eosTokenId !== undefined && o.eosTokenId !== null && !(Number.isInteger(o.eosTokenId) && o.eosTokenId >= 0)) {
    throw new Error(`generate: eosTokenId must be a token id or null, got ${shown(o.eosTokenId)}`);
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) {
    throw new Error(`generate: repetitionPenalty must be a positive number, got ${o.repetitionPenalty}`);
  }
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
    // A NaN or infinite logit would pick token 0 (or a random one) forever without a word: refuse it.
    for (let i = 0; i < data.length; i++) {
      if (data[i]! - data[i]! !== 0) {
        throw new Error(
          `generate: logit ${i} at position ${ids.length - 1} is ${data[i]}: the forward pass overflowed f32, ` +
            `which finite weights of a trained model do not do (a corrupt checkpoint: a weight or scale far out of range?)`,
        );
      }
    }
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
