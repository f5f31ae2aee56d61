// OLMo's weights: their names and shapes, in one place. The loader checks files against this table,
// training initialises a fresh model from it, and the model reads its weights by these names.
//
// Shape legend: V = vocabulary, C = hidden size, I = MLP size, Hq = query heads x head dim,
// Hkv = key/value heads x head dim. Every linear weight is [out, in], as torch.nn.Linear stores it.

import { randn } from "../core/creation.js";
import { Random } from "../core/random.js";
import type { AnyBackend, Tensor } from "../core/tensor.js";
import type { OlmoConfig } from "./config.js";

/** The bias-free linear layers of one transformer block. */
export type BlockWeight = "q" | "k" | "v" | "o" | "gate" | "up" | "down";

/**
 * The linear layers of a block that read the same input and can be stored as one weight (FusedRows in
 * core/quantize.ts), with their rows in this order: q, k, v (as OLMo's own att_proj stacks them) and
 * gate, up (OLMo's ff_proj holds the same two, up first).
 */
export const FUSED_PROJECTIONS: readonly (readonly BlockWeight[])[] = [["q", "k", "v"], ["gate", "up"]];

/** Names of the model's weights, per layer where they belong to one. */
export type WeightName = "embed" | "lmHead" | `layers.${number}.${BlockWeight}`;

/**
 * Every weight of a model with this configuration and its shape, in a fixed order: the embedding, the
 * LM head (absent when tied to the embedding), then per layer q, k, v, o, gate, up, down.
 */
export function weightShapes(c: OlmoConfig): Map<WeightName, [number, number]> {
  const C = c.hiddenSize, I = c.intermediateSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const shapes = new Map<WeightName, [number, number]>([["embed", [c.vocabSize, C]]]);
  if (!c.tieWordEmbeddings) shapes.set("lmHead", [c.vocabSize, C]);
  for (let i = 0; i < c.numLayers; i++) {
    shapes.set(`layers.${i}.q`, [q, C]).set(`layers.${i}.k`, [kv, C]).set(`layers.${i}.v`, [kv, C]).set(`layers.${i}.o`, [C, q]);
    shapes.set(`layers.${i}.gate`, [I, C]).set(`layers.${i}.up`, [I, C]).set(`layers.${i}.down`, [C, I]);
  }
  return shapes;
}

/**
 * From-scratch weights: every weight N(0, std) (transformers' initializer_range, 0.02), drawn in
 * weightShapes' order from one generator seeded with `seed`, so a seed gives the same model everywhere.
 */
export function initialWeights(config: OlmoConfig, seed: number, backend: AnyBackend, std = 0.02): Map<WeightName, Tensor> {
  const random = new Random(seed);
  return new Map([...weightShapes(config)].map(([name, shape]) => [name, randn(shape, { seed: random, std, backend })] as const));
}
