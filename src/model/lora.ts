// LoRA: low-rank adapters on OLMo's linear layers, as Hugging Face PEFT computes them
// (peft/tuners/lora/layer.py, `Linear.forward`; Hu et al. 2021, https://arxiv.org/abs/2106.09685).
//
// Shape legend: N = rows of x (B * T), K = in features, M = out features, r = rank.
//
//   y = x W^T  +  (alpha / r) · dropout(x) A^T B^T
//       [N, M]                  [N, K]  [K, r] [r, M]
//
//   W [M, K]  the base weight: frozen (f32, bf16, or a quantized int8 / int4 weight)
//   A [r, K]  trainable f32, PEFT's init: kaiming_uniform_(a = sqrt(5)), i.e. uniform(-1/sqrt(K), 1/sqrt(K))
//   B [M, r]  trainable f32, zeros: a fresh adapter leaves the model's outputs exactly as they were
//
// An adapted layer is one op, loraLinear (src/ops/lora.ts), built of ordinary kernels (matmuls, an add),
// with its backward written beside its forward:
//   dB = (alpha/r) · g^T (x' A^T),   dA = (alpha/r) · (g B)^T x',   dx = g W + (alpha/r) · g B A  (x' = dropout(x)),
// so LoRA trains on every backend without a kernel of its own, and over a quantized W the gradient of x
// goes through dequant(W) (src/ops/quantized.ts) while W itself gets none.
//
// Dropout (PEFT's lora_dropout) drops elements of x before A only, never of the base path, and only in
// training mode (`training = true`; PEFT: model.train()). Its masks are remembered per forward pass, so
// a block recomputed by activation checkpointing sees the same mask it saw the first time.

import { Random } from "../core/random.js";
import { rand, tensor, zeros } from "../core/creation.js";
import { noGrad, requireGrad } from "../core/autograd.js";
import { QuantizedWeight, type Weight } from "../core/quantize.js";
import { keep, scope, type AnyBackend, type Tensor } from "../core/tensor.js";
import { add, cast, linear, loraLinear, matmul, scale } from "../ops/index.js";
import type { OlmoConfig } from "./config.js";
import { weightShapes, type BlockWeight, type WeightName } from "./weights.js";

/** Our block weight names and PEFT's module names (transformers' OlmoDecoderLayer), in weightShapes' order. */
export const LORA_MODULES: Record<BlockWeight, string> = {
  q: "q_proj", k: "k_proj", v: "v_proj", o: "o_proj", gate: "gate_proj", up: "up_proj", down: "down_proj",
};
const BLOCK_WEIGHTS = Object.keys(LORA_MODULES) as BlockWeight[];

/** The hyper-parameters of an adapter (PEFT's LoraConfig fields, in our names). */
export interface LoraOptions {
  /** Rank r: 1 <= r <= min(in, out) of every target layer. */
  r: number;
  /** lora_alpha: the update is scaled by alpha / r (PEFT's default alpha is 8). */
  alpha: number;
  /** Layers to adapt: our names (q, k, v, o, gate, up, down) or PEFT's (q_proj, ..., down_proj). */
  targets: readonly string[];
  /** lora_dropout: probability of dropping an element of x before A, in training (default 0). */
  dropout?: number;
}

/** Target names (ours or PEFT's) as our block weight names, in the model's order; unknown names are an error. */
export function loraTargets(names: readonly string[]): BlockWeight[] {
  if (names.length === 0) throw new Error(`LoRA: no target layers given; choose from ${BLOCK_WEIGHTS.join(", ")} (or ${Object.values(LORA_MODULES).join(", ")})`);
  const wanted = new Set<BlockWeight>();
  for (const name of names) {
    const ours = BLOCK_WEIGHTS.find((w) => w === name || LORA_MODULES[w] === name);
    if (!ours) throw new Error(`LoRA: unknown target layer "${name}"; OLMo's linear layers are ${BLOCK_WEIGHTS.join(", ")} (PEFT: ${Object.values(LORA_MODULES).join(", ")})`);
    wanted.add(ours);
  }
  return BLOCK_WEIGHTS.filter((w) => wanted.has(w));
}

/** Trainable numbers of adapters of rank r on `targets` of every layer: r (in + out) per adapted layer. */
export function loraParameterCount(config: OlmoConfig, options: Pick<LoraOptions, "r" | "targets">): number {
  const shapes = weightShapes(config);
  const perLayer = loraTargets(options.targets).reduce((sum, t) => {
    const [out, inp] = shapes.get(`layers.0.${t}`)!;
    return sum + options.r * (inp + out);
  }, 0);
  return perLayer * config.numLayers;
}

/** Why these options cannot adapt a model of this config, or null when they can. */
function optionsProblem(config: OlmoConfig, options: LoraOptions, targets: readonly BlockWeight[]): string | null {
  const { r, alpha, dropout = 0 } = options;
  if (!Number.isInteger(r) || r < 1) return `rank r must be a positive integer, got ${r}`;
  for (const t of targets) {
    const [out, inp] = weightShapes(config).get(`layers.0.${t}`)!;
    if (r > Math.min(out, inp)) return `rank r ${r} exceeds ${LORA_MODULES[t]}'s smaller side: its weight is [${out}, ${inp}], so r <= ${Math.min(out, inp)}`;
  }
  if (!Number.isFinite(alpha) || alpha <= 0) return `lora_alpha must be a positive number, got ${alpha}`;
  if (!(dropout >= 0 && dropout < 1)) return `lora_dropout must be in [0, 1), got ${dropout}`;
  return null;
}

/** One adapted layer's pair: A [r, in], B [out, r]. */
export interface LoraPair {
  a: Tensor;
  b: Tensor;
}

/** The adapters of every target layer of one model. */
export class LoraAdapters {
  readonly targets: BlockWeight[];
  readonly dropout: number;
  /** Dropout is applied only in training mode (PEFT: model.train() vs model.eval()); default off. */
  training = false;
  /** Masks drawn in this forward pass, by weight name (see beginForward). */
  private masks = new Map<string, Tensor>();
  private readonly random: Random;

  private constructor(
    readonly config: OlmoConfig,
    readonly options: LoraOptions,
    /** By weight name (`layers.3.q`). */
    readonly pairs: Map<WeightName, LoraPair>,
    seed: number,
  ) {
    this.targets = loraTargets(options.targets);
    this.dropout = options.dropout ?? 0;
    this.random = new Random(seed ^ 0x6c6f7261); // "lora": not the stream that drew A
  }

  /** alpha / r, PEFT's `scaling` (without rsLoRA). */
  get scaling(): number {
    return this.options.alpha / this.options.r;
  }

  /**
   * Fresh adapters as PEFT initialises them: A ~ uniform(-1/sqrt(in), 1/sqrt(in)) (what
   * kaiming_uniform_ with a = sqrt(5) gives: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in)),
   * B = 0. A is drawn per layer, per target in the model's order, from one generator seeded by `seed`.
   */
  static create(config: OlmoConfig, options: LoraOptions, backend: AnyBackend, seed = 0): LoraAdapters {
    const targets = loraTargets(options.targets);
    const problem = optionsProblem(config, options, targets);
    if (problem) throw new Error(`LoRA: ${problem}`);
    const random = new Random(seed);
    const shapes = weightShapes(config);
    const pairs = new Map<WeightName, LoraPair>();
    for (let i = 0; i < config.numLayers; i++) {
      for (const t of targets) {
        const name: WeightName = `layers.${i}.${t}`;
        const [out, inp] = shapes.get(name)!;
        const bound = 1 / Math.sqrt(inp);
        const a = requireGrad(rand([options.r, inp], { seed: random, low: -bound, high: bound, backend }));
        pairs.set(name, { a, b: requireGrad(zeros([out, options.r], { backend })) });
      }
    }
    return new LoraAdapters(config, options, pairs, seed);
  }

  /**
   * Adapters from given tensors (a saved adapter): `pairs` must hold exactly the targets' layers, each A
   * [r, in] and B [out, r] as the model's weight shapes say; they are made f32 trainable parameters.
   */
  static fromPairs(config: OlmoConfig, options: LoraOptions, pairs: Map<WeightName, LoraPair>, seed = 0): LoraAdapters {
    const targets = loraTargets(options.targets);
    const problem = optionsProblem(config, options, targets);
    if (problem) throw new Error(`LoRA: ${problem}`);
    const shapes = weightShapes(config);
    const problems: string[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      for (const t of targets) {
        const name: WeightName = `layers.${i}.${t}`;
        const [out, inp] = shapes.get(name)!;
        const pair = pairs.get(name);
        if (!pair) {
          problems.push(`layer ${i} ${LORA_MODULES[t]}: no adapter (the adapter targets ${LORA_MODULES[t]}, so every layer needs one)`);
          continue;
        }
        const want = (what: string, given: Tensor, shape: number[]) => {
          const where = `layer ${i} ${LORA_MODULES[t]}.${what}`;
          if (given.shape.join() !== shape.join()) problems.push(`${where} is [${given.shape}], the model needs [${shape}] (r ${options.r}, weight [${out}, ${inp}])`);
          if (given.dtype !== "f32") problems.push(`${where} is ${given.dtype}; adapters are f32`);
        };
        want("lora_A", pair.a, [options.r, inp]);
        want("lora_B", pair.b, [out, options.r]);
      }
    }
    for (const name of pairs.keys()) {
      const [, layer, part] = name.split(".");
      if (Number(layer) >= config.numLayers || !targets.includes(part as BlockWeight)) problems.push(`${name}: an adapter for a layer the model or the targets do not have`);
    }
    if (problems.length > 0) throw new Error(`LoRA: the adapter does not fit this model:\n  - ${problems.join("\n  - ")}`);
    for (const p of pairs.values()) {
      requireGrad(p.a);
      requireGrad(p.b);
    }
    return new LoraAdapters(config, options, pairs, seed);
  }

  /**
   * Start a forward pass: dropout masks drawn from now on are new. The adapters own the masks (a
   * checkpointed block's first pass frees everything it made, yet its recomputation in the backward
   * pass needs them), so the last pass's are freed here, its backward being done.
   */
  beginForward(): void {
    this.freeMasks();
  }

  private freeMasks(): void {
    for (const m of this.masks.values()) m.dispose();
    this.masks = new Map();
  }

  /**
   * x W^T for the base weight `name` of a block, plus (alpha / r) dropout(x) A^T B^T when the layer is a
   * target (one op, forward and backward side by side: src/ops/lora.ts).
   */
  linear(name: WeightName, x: Tensor, weight: Weight): Tensor {
    const pair = this.pairs.get(name);
    if (!pair) return linear(x, weight);
    const mask = this.training && this.dropout > 0 ? this.mask(name, x) : null;
    return loraLinear(x, weight, pair.a, pair.b, this.scaling, mask);
  }

  /** Inverted dropout's mask for x: 0 with probability p, else 1 / (1 - p) (torch.nn.Dropout). */
  private mask(name: string, x: Tensor): Tensor {
    let m = this.masks.get(name);
    if (!m || m.shape.join() !== x.shape.join()) {
      const keepScale = 1 / (1 - this.dropout);
      const values = new Float32Array(x.size);
      for (let i = 0; i < values.length; i++) values[i] = this.random.uniform() < this.dropout ? 0 : keepScale;
      m = keep(tensor(values, x.shape, { backend: x.backend }));
      this.masks.get(name)?.dispose();
      this.masks.set(name, m);
    }
    return m;
  }

  /** The trainable tensors, named `layers.N.q.lora_A` / `.lora_B`, in the model's order. */
  parameters(): { name: string; tensor: Tensor }[] {
    return [...this.pairs].flatMap(([name, p]) => [{ name: `${name}.lora_A`, tensor: p.a }, { name: `${name}.lora_B`, tensor: p.b }]);
  }

  /**
   * The base weights with the adapters folded in, as PEFT's merge_and_unload computes them:
   *   W' = W + (alpha / r) B A        [out, in] = [out, in] + [out, r] [r, in]
   * in f32, then stored in W's dtype (a bf16 base gives a bf16 merged weight, rounded once). Weights
   * that are not targets are returned as they are (the same tensors). A quantized base is refused:
   * merging would dequantize and quantize again, which is not the model that was trained.
   */
  mergedWeights(weights: ReadonlyMap<WeightName, Weight>): Map<WeightName, Weight> {
    const merged = new Map<WeightName, Weight>(weights);
    for (const [name, pair] of this.pairs) {
      const w = weights.get(name);
      if (!w) throw new Error(`LoRA merge: the model has no weight ${name}`);
      if (w instanceof QuantizedWeight) {
        throw new Error(`LoRA merge: ${name} is an ${w.describe()}; merging needs the base's float weights (load the float checkpoint, not a quantized folder, and without quantize)`);
      }
      merged.set(name, noGrad(() => scope(() => {
        const update = scale(matmul(pair.b, pair.a), this.scaling);
        const sum = add(w.dtype === "f32" ? w : cast(w, "f32"), update);
        return w.dtype === "f32" ? sum : cast(sum, w.dtype);
      })));
    }
    return merged;
  }

  dispose(): void {
    this.freeMasks();
    for (const p of this.pairs.values()) {
      p.a.dispose();
      p.b.dispose();
    }
  }
}
