// The OLMo model, computed exactly as Hugging Face's `OlmoForCausalLM` (transformers, modeling_olmo.py).
//
// Shape legend: B = batch, T = new tokens, C = hidden size, H = query heads, G = key/value heads,
// D = head dim (C / H), I = MLP size, V = vocabulary, P = tokens already in the KV cache.
//
//   x = embed[ids]                                                     [B, T, C]
//   for each layer:
//     h = LN(x)                     (layer norm without weight or bias, eps 1e-5)
//     q, k, v = h Wq^T, h Wk^T, h Wv^T, each clamped to +-clip_qkv when set (OLMo-7B-0424)
//     q, k = RoPE(q), RoPE(k)       (positions P .. P+T-1, half-split layout)
//     x = x + Wo attention(q, k, v) (causal; k, v also hold the P cached positions)
//     h = LN(x)
//     x = x + Wdown (silu(h Wgate^T) * (h Wup^T))                       (SwiGLU)
//   logits = LN(x) Whead^T, Whead = embed when tied (OLMo-1B)           [B, T, V]
//
// Packed segments (forward's `segments`, for scoring many short continuations): several sequences
// laid end to end in one row, ids [1, T1 + T2 + ...], each continuing its own KV cache. Everything but
// attention works on tokens one by one, so the linear layers take all the packed tokens at once
// (no padding); attention and RoPE run per segment, against that segment's cache and positions.

import { checkpoint, isGradEnabled, needsGrad, noGrad } from "../core/autograd.js";
import { zeros } from "../core/creation.js";
import { QuantizedWeight, type Weight } from "../core/quantize.js";
import { scope, Tensor, type AnyBackend } from "../core/tensor.js";
import {
  add, attention, clamp, concat, embedding, layerNorm, linear, mul, permute, reshape, rotaryEmbedding, silu, slice, writeSlice,
} from "../ops/index.js";
import type { Capture } from "./capture.js";
import type { OlmoConfig } from "./config.js";
import type { LoraAdapters } from "./lora.js";
import type { BlockWeight, WeightName } from "./weights.js";

/** One sequence of a packed forward: its next `length` tokens continue `cache` (batch 1). */
export interface PackedSegment {
  cache: KVCache;
  length: number;
}

/** Keys and values of every layer for the tokens seen so far, preallocated to a fixed capacity. */
export class KVCache {
  /** Per layer: [B, G, capacity, D]. */
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  /** Tokens stored so far. */
  length = 0;

  constructor(
    config: OlmoConfig,
    backend: AnyBackend,
    readonly batch: number,
    readonly capacity: number,
  ) {
    const shape = [batch, config.numKvHeads, capacity, config.headDim];
    // A layer's keys and values side by side (Backend.placeGroup): on a wasm backend spanning several
    // memories, attention would otherwise copy one of them into the other's memory at every step.
    const layerBytes = KVCache.bytes(config, batch, capacity) / config.numLayers;
    try {
      for (let i = 0; i < config.numLayers; i++) {
        backend.placeGroup?.(layerBytes);
        this.keys.push(zeros(shape, { backend }));
        this.values.push(zeros(shape, { backend }));
      }
    } finally {
      backend.placeGroup?.(0);
    }
  }

  /** Bytes a cache of this size takes. */
  static bytes(config: OlmoConfig, batch: number, capacity: number): number {
    return 2 * config.numLayers * batch * config.numKvHeads * capacity * config.headDim * 4;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

export class Olmo {
  /** LoRA adapters on the block's linear layers (src/model/lora.ts), or null for the plain model. */
  lora: LoraAdapters | null = null;

  constructor(
    readonly config: OlmoConfig,
    /** Tensors (f32, bf16, f16), or quantized (src/core/quantize.ts): any mix. */
    readonly weights: Map<WeightName, Weight>,
  ) {}

  get backend(): AnyBackend {
    return this.weight("embed").backend;
  }

  weight(name: WeightName): Weight {
    const w = this.weights.get(name);
    if (!w) throw new Error(`Olmo: weight ${name} is missing`);
    return w;
  }

  /** A KV cache for `batch` sequences of up to `capacity` tokens (default: the model's context). */
  createCache(batch = 1, capacity = this.config.maxPositionEmbeddings): KVCache {
    return new KVCache(this.config, this.backend, batch, capacity);
  }

  /**
   * Logits for token ids [B, T]: [B, T, V], or only the last position's [B, 1, V] with lastOnly.
   * With a cache, the T tokens follow the cache's tokens, and their keys and values are appended to it.
   * With checkpointActivations (training), each block keeps only its input for the backward pass and
   * is computed again there (core/autograd.ts `checkpoint`): activation memory grows with
   * layers x B x T x C instead of with every intermediate of every block. A number N checkpoints only
   * the first N blocks (Megatron's "block" recompute): the others keep their activations, which costs
   * memory and saves their recomputation, for a model that fits with some blocks but not all kept.
   * With a capture (src/model/capture.ts), what it asks for is computed on the way and kept in it;
   * without one, the pass does nothing more than three null checks per layer.
   * With segments (inference only), ids [1, T] are several sequences end to end, segment s the next
   * `length` tokens after its own cache's; `cache` and `lastOnly` do not apply, and the logits are all
   * T positions' (see the top of this file).
   */
  forward(
    ids: Tensor,
    options: {
      cache?: KVCache; lastOnly?: boolean; checkpointActivations?: boolean | number; capture?: Capture;
      /** Packed sequences (see the top of this file): ids [1, sum of lengths], inference only. */
      segments?: readonly PackedSegment[];
    } = {},
  ): Tensor {
    const { cache, lastOnly = false, checkpointActivations = false, capture, segments } = options;
    const checkpointed = checkpointActivations === true ? this.config.numLayers : checkpointActivations === false ? 0 : checkpointActivations;
    const [B, T] = ids.shape as [number, number];
    const C = this.config.hiddenSize;
    const position = cache?.length ?? 0;
    if (ids.shape.length !== 2) throw new Error(`Olmo.forward: ids must be [batch, time], got [${ids.shape}]`);
    if (segments) {
      this.checkSegments(ids, segments, options); // each segment's positions are its own, checked there
    } else if (position + T > (cache?.capacity ?? this.config.maxPositionEmbeddings)) {
      throw new Error(`Olmo.forward: ${position + T} tokens exceed the ${cache ? "KV cache capacity" : "context length"} (${cache?.capacity ?? this.config.maxPositionEmbeddings})`);
    }
    if (cache && cache.batch !== B) throw new Error(`Olmo.forward: batch ${B} does not match the KV cache's ${cache.batch}`);
    // A checkpointed block runs again in backward, which would capture it twice.
    if (capture && checkpointed > 0) throw new Error("Olmo.forward: capture and checkpointActivations cannot be combined");
    capture?.begin(this.config, position);

    let x = embedding(this.weight("embed"), ids);
    // Without autograd nothing of a layer is needed after it, so each layer runs in its own scope and
    // frees its activations (and the previous residual) before the next starts: a long prompt then
    // needs one layer's activations at a time, not all of them. Training keeps them for backward.
    const inference = !isGradEnabled() || !needsGrad(...this.trainableTensors());
    this.lora?.beginForward();
    for (let i = 0; i < this.config.numLayers; i++) {
      const layer = (input: Tensor) => {
        const normed = layerNorm(input);
        const attended = segments ? this.packedAttentionBlock(i, normed, segments) : this.attentionBlock(i, normed, position, cache, capture);
        const mid = add(input, attended);
        const out = add(mid, this.mlpBlock(i, layerNorm(mid), capture));
        capture?.residual(i, out);
        return out;
      };
      if (inference) {
        const next = scope(() => layer(x));
        x.dispose();
        x = next;
      } else if (i < checkpointed && !cache) {
        x = checkpoint(`block ${i}`, layer, [x], this.trainableTensors(i));
      } else {
        x = layer(x);
      }
    }
    if (lastOnly) x = slice(x, [0, T - 1, 0], [B, 1, C]);
    const head = this.config.tieWordEmbeddings ? this.weight("embed") : this.weight("lmHead");
    const logits = linear(layerNorm(x), head);
    capture?.logits(logits);
    if (cache) cache.length += T;
    for (const { cache: c, length } of segments ?? []) c.length += length;
    return logits;
  }

  /** Packed segments need one row, lengths that add up to it, room in each cache, and nothing that keeps activations. */
  private checkSegments(
    ids: Tensor, segments: readonly PackedSegment[], options: { cache?: KVCache; lastOnly?: boolean; capture?: Capture; checkpointActivations?: boolean | number },
  ): void {
    const [B, T] = ids.shape as [number, number];
    if (B !== 1) throw new Error(`Olmo.forward: packed segments take ids of one row [1, T], got [${ids.shape}]`);
    if (options.cache || options.lastOnly || options.capture || options.checkpointActivations) {
      throw new Error("Olmo.forward: packed segments carry their own caches; they cannot be combined with cache, lastOnly, capture or checkpointActivations");
    }
    if (needsGrad(...this.trainableTensors())) throw new Error("Olmo.forward: packed segments are for inference (run under noGrad)");
    let total = 0;
    const caches = new Set<KVCache>();
    segments.forEach(({ cache, length }, s) => {
      if (!Number.isInteger(length) || length < 1) throw new Error(`Olmo.forward: segment ${s} has length ${length}; expected a positive integer`);
      if (cache.batch !== 1) throw new Error(`Olmo.forward: segment ${s}'s KV cache has batch ${cache.batch}; expected 1`);
      const limit = Math.min(cache.capacity, this.config.maxPositionEmbeddings);
      if (cache.length + length > limit) {
        const what = limit === cache.capacity ? "its KV cache capacity" : "the context length";
        throw new Error(`Olmo.forward: segment ${s}: ${cache.length + length} tokens exceed ${what} (${limit})`);
      }
      if (caches.has(cache)) throw new Error(`Olmo.forward: segment ${s} shares its KV cache with an earlier segment`);
      caches.add(cache);
      total += length;
    });
    if (total !== T) throw new Error(`Olmo.forward: the segments' lengths add up to ${total}, but ids has ${T} tokens`);
  }

  /**
   * The tensors a gradient could flow into (the float weights, and the adapters when there are any),
   * of block `layer` only when given.
   */
  private trainableTensors(layer?: number): Tensor[] {
    const inLayer = (name: string) => layer === undefined || name.startsWith(`layers.${layer}.`);
    const weights = [...this.weights].filter(([name, w]) => inLayer(name) && w instanceof Tensor).map(([, w]) => w as Tensor);
    const adapters = this.lora?.parameters().filter((p) => inLayer(p.name)).map((p) => p.tensor) ?? [];
    return [...weights, ...adapters];
  }

  /** x W^T for the weight `name` of layer i (bias-free linear layer), plus its LoRA update when adapted. */
  private linear(i: number, name: BlockWeight, x: Tensor): Tensor {
    const weight: WeightName = `layers.${i}.${name}`;
    return this.lora ? this.lora.linear(weight, x, this.weight(weight)) : linear(x, this.weight(weight));
  }

  /** q, k, v of h [B, T, C] as heads [B, H, T, D], [B, G, T, D], [B, G, T, D] (before RoPE), clamped to clip_qkv when set. */
  private queryKeyValue(i: number, h: Tensor): [Tensor, Tensor, Tensor] {
    const { numHeads: H, numKvHeads: G, headDim: D, clipQkv } = this.config;
    const [B, T] = h.shape as [number, number];
    // [B, T, n * D] -> [B, n, T, D]
    const heads = (t: Tensor, n: number) => permute(reshape(t, [B, T, n, D]), [0, 2, 1, 3]);
    const clip = (t: Tensor) => (clipQkv === null ? t : clamp(t, -clipQkv, clipQkv));
    return [heads(clip(this.linear(i, "q", h)), H), heads(clip(this.linear(i, "k", h)), G), heads(clip(this.linear(i, "v", h)), G)];
  }

  /**
   * q, k, v of one token, q and k rotated, where q, k, v are stored as one weight (FusedRows,
   * core/quantize.ts): one product [1, 1, (H + 2G) D], clip_qkv once over it, RoPE once over q and k
   * side by side (H + G heads at one position), each a view of its range. Null where they are not
   * (fusedProduct).
   */
  private fusedQueryKeyValue(i: number, h: Tensor, rope: { theta: number; positionOffset: number }): [Tensor, Tensor, Tensor] | null {
    const qkv = this.fusedProduct(i, ["q", "k", "v"], h); // in this order, or null (the views below depend on it)
    if (!qkv) return null;
    const { numHeads: H, numKvHeads: G, headDim: D, clipQkv } = this.config;
    const clipped = clipQkv === null ? qkv : clamp(qkv, -clipQkv, clipQkv);
    const qk = rotaryEmbedding(clipped.viewRange(0, [1, H + G, 1, D]), rope);
    return [qk.viewRange(0, [1, H, 1, D]), qk.viewRange(H * D, [1, G, 1, D]), clipped.viewRange((H + G) * D, [1, G, 1, D])];
  }

  /**
   * h [1, 1, C] (one token) times the weights `names` of layer i where the loader stored them as one
   * (FusedRows) in the order given: their outputs side by side, [1, 1, sum of their sizes], from one
   * GEMV. Null otherwise: several tokens (whose outputs would interleave), a gradient wanted, an adapter
   * on one of them, or weights of their own (or one replaced since loading).
   */
  private fusedProduct(i: number, names: readonly BlockWeight[], h: Tensor): Tensor | null {
    if (h.size !== h.shape[h.shape.length - 1] || needsGrad(h) || names.some((n) => this.lora?.pairs.has(`layers.${i}.${n}`))) return null;
    const parts = names.map((n) => this.weights.get(`layers.${i}.${n}`));
    const fused = parts[0] instanceof QuantizedWeight ? parts[0].fused : null;
    return fused?.holds(parts) ? linear(h, fused.whole) : null;
  }

  private attentionBlock(i: number, h: Tensor, position: number, cache: KVCache | undefined, capture: Capture | undefined): Tensor {
    const { numHeads: H, headDim: D, ropeTheta } = this.config;
    const [B, T] = h.shape as [number, number];
    const rope = { theta: ropeTheta, positionOffset: position };
    const rotated = (query: Tensor, key: Tensor, v: Tensor): [Tensor, Tensor, Tensor] => [rotaryEmbedding(query, rope), rotaryEmbedding(key, rope), v];
    const [q, k, v] = this.fusedQueryKeyValue(i, h, rope) ?? rotated(...this.queryKeyValue(i, h));
    let attended: Tensor;
    if (cache) {
      noGrad(() => {
        writeSlice(cache.keys[i]!, k, [0, 0, position, 0]);
        writeSlice(cache.values[i]!, v, [0, 0, position, 0]);
      });
      attended = attention(q, cache.keys[i]!, cache.values[i]!, { keyLength: position + T });
    } else {
      attended = attention(q, k, v);
    }
    capture?.attention(i, q, cache ? cache.keys[i]! : k, position + T);
    return this.linear(i, "o", reshape(permute(attended, [0, 2, 1, 3]), [B, T, H * D]));
  }

  /**
   * attentionBlock for packed segments: q, k, v and the output projection for all tokens at once,
   * RoPE and attention per segment (positions from its cache's length), each segment's keys and
   * values appended to its own cache.
   */
  private packedAttentionBlock(i: number, h: Tensor, segments: readonly PackedSegment[]): Tensor {
    const { numHeads: H, numKvHeads: G, headDim: D, ropeTheta } = this.config;
    const T = h.shape[1]!;
    // [1, n, T, D]; a segment's tokens are [1, n, length, D] from its start.
    const [qh, kh, vh] = this.queryKeyValue(i, h);
    const parts: Tensor[] = [];
    let start = 0;
    for (const { cache, length } of segments) {
      const part = (t: Tensor, n: number) => slice(t, [0, 0, start, 0], [1, n, length, D]);
      const rope = { theta: ropeTheta, positionOffset: cache.length };
      noGrad(() => {
        writeSlice(cache.keys[i]!, rotaryEmbedding(part(kh, G), rope), [0, 0, cache.length, 0]);
        writeSlice(cache.values[i]!, part(vh, G), [0, 0, cache.length, 0]);
      });
      parts.push(attention(rotaryEmbedding(part(qh, H), rope), cache.keys[i]!, cache.values[i]!, { keyLength: cache.length + length }));
      start += length;
    }
    const attended = parts.length === 1 ? parts[0]! : concat(parts, 2); // [1, H, T, D]
    return this.linear(i, "o", reshape(permute(attended, [0, 2, 1, 3]), [1, T, H * D]));
  }

  private mlpBlock(i: number, h: Tensor, capture: Capture | undefined): Tensor {
    const I = this.config.intermediateSize, gateUp = this.fusedProduct(i, ["gate", "up"], h);
    const [gate, up] = gateUp ? [gateUp.viewRange(0, [1, 1, I]), gateUp.viewRange(I, [1, 1, I])] : [this.linear(i, "gate", h), this.linear(i, "up", h)];
    const activation = mul(silu(gate), up);
    capture?.mlp(i, activation);
    return this.linear(i, "down", activation);
  }

  dispose(): void {
    for (const w of this.weights.values()) w.dispose();
    this.lora?.dispose();
  }
}
