// The training loop, with OLMo's trainer semantics (olmo/train.py):
//   - loss: cross-entropy of position t-1 predicting token t, summed over targets whose label_mask[t]
//     is set, divided by all B * seq_len tokens of the (global) batch;
//   - a batch of B instances may run as micro-batches of b; gradients add up to the whole batch's;
//   - then global-norm clipping, the scheduled learning rate, and one AdamW update.
// Everything here is host-neutral; saving checkpoints is a callback (Node's is in src/node).

import { backward, noGrad, requireGrad } from "../core/autograd.js";
import { tensor } from "../core/creation.js";
import { QuantizedWeight } from "../core/quantize.js";
import { scope, type Tensor } from "../core/tensor.js";
import { crossEntropy, slice } from "../ops/index.js";
import type { Olmo } from "../model/olmo.js";
import { AdamW, clipGradientNorm, gradientNorm, type Parameter } from "../optim/adamw.js";
import { parameterCount, type OlmoConfig } from "../model/config.js";
import { loraParameterCount, type LoraOptions } from "../model/lora.js";
import { learningRate, type ScheduleName } from "../optim/schedule.js";
import type { TokenDataset } from "./data.js";

export interface TrainOptions {
  steps: number;
  batchSize: number;
  microBatchSize?: number;
  lr: number;
  warmup?: number;
  schedule?: ScheduleName;
  tMax?: number;
  alphaF?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Clip the global gradient norm to this (default 1.0; 0 disables). */
  maxGradNorm?: number;
  /** Decay the embedding too (OLMo-7B-0424); by default it is not decayed. */
  decayEmbeddings?: boolean;
  shuffle?: boolean;
  seed?: number;
  /**
   * Keep only each block's input in the forward pass and recompute the block in the backward pass
   * (Olmo.forward's checkpointActivations): less memory, about one more forward pass of time. Same results.
   * A number N checkpoints the first N blocks only.
   */
  checkpointActivations?: boolean | number;
  /** Stop, before the update, when a step's loss exceeds this factor times the mean of the last 10 (off by default). */
  stopOnSpike?: number;
}

export interface StepMetrics {
  step: number;
  loss: number;
  grad_norm: number;
  lr: number;
  tokens_per_s: number;
}

/**
 * The loss of instances ids [b, T] (i32) with label mask [b, T] (f32), normalised by `batchTokens`
 * (B * T of the whole batch). Logits of positions 0 .. T-2 need only the first T-1 tokens (causal).
 */
export function olmoLoss(model: Olmo, ids: Tensor, mask: Tensor, batchTokens: number, options: { checkpointActivations?: boolean | number } = {}): Tensor {
  const [b, T] = ids.shape as [number, number];
  const logits = model.forward(slice(ids, [0, 0], [b, T - 1]), options);
  return crossEntropy(logits, slice(ids, [0, 1], [b, T - 1]), { mask: slice(mask, [0, 1], [b, T - 1]), normalizer: batchTokens });
}

/**
 * The model's weights as trainable parameters (f32, requiresGrad), in OLMo's decay groups; for a model
 * with LoRA adapters, the adapters only (all in the decay group, as one torch.optim.AdamW group over
 * PEFT's trainable parameters): the base weights stay frozen, with no gradient and no AdamW state.
 */
export function trainableParameters(model: Olmo, decayEmbeddings = false): Parameter[] {
  if (model.lora) return model.lora.parameters().map((p) => ({ ...p, decay: true }));
  return [...model.weights].map(([name, w]) => {
    if (w instanceof QuantizedWeight) {
      throw new Error(`trainableParameters: ${name} is a frozen ${w.describe()} (quantized as it loaded, or stored quantized in the folder); full training needs float weights: load the float checkpoint without quantize, or train LoRA adapters on the quantized base`);
    }
    return { name, tensor: requireGrad(w), decay: name !== "embed" || decayEmbeddings };
  });
}

/** Training stopped before step `step`'s update was applied: the weights are those after step - 1. */
export class TrainingStoppedError extends Error {
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
    this.name = "TrainingStoppedError";
  }
}

export class NaNLossError extends TrainingStoppedError {
  constructor(step: number, what: "loss" | "gradient norm" = "loss") {
    super(step, `training stopped at step ${step}, before its update: the ${what} is not a finite number (lower the learning rate or check the data)`);
    this.name = "NaNLossError";
  }
}

export class LossSpikeError extends TrainingStoppedError {
  constructor(step: number, loss: number, mean: number, factor: number) {
    super(
      step,
      `training stopped at step ${step}, before its update: the loss ${loss.toFixed(4)} is more than ${factor} times the mean ` +
        `${mean.toFixed(4)} of the steps before (--stop-on-spike ${factor})`,
    );
    this.name = "LossSpikeError";
  }
}

/** Steps whose mean loss the spike guard compares against. */
const SPIKE_WINDOW = 10;

/**
 * Bytes training needs on the backend at least: f32 weights, their gradients and AdamW's two moments
 * (16 bytes per weight), plus the logits of one micro-batch and their gradient. Known from the
 * config alone, so a model that cannot fit is refused before anything is allocated.
 */
export function trainingBytes(config: OlmoConfig, microBatchSize: number, seqLen: number): number {
  return 16 * parameterCount(config) + 2 * 4 * microBatchSize * seqLen * config.vocabSize;
}

/**
 * Bytes a LoRA fine-tune needs on the backend beside the frozen base: the adapters in f32 with their
 * gradients and AdamW's two moments (16 bytes each), plus the logits of one micro-batch and their gradient.
 */
export function loraTrainingBytes(config: OlmoConfig, lora: Pick<LoraOptions, "r" | "targets">, microBatchSize: number, seqLen: number): number {
  return 16 * loraParameterCount(config, lora) + 2 * 4 * microBatchSize * seqLen * config.vocabSize;
}

/** A trainer: the model, its parameters and optimizer, and where it is in the data. */
export class Trainer {
  readonly params: Parameter[];
  readonly optimizer: AdamW;
  /** Updates done; the next is step + 1. */
  step = 0;
  /** Losses of the last steps, for the spike guard. */
  private readonly recentLosses: number[] = [];

  constructor(
    readonly model: Olmo,
    readonly data: TokenDataset,
    readonly options: TrainOptions,
  ) {
    const b = options.microBatchSize ?? options.batchSize;
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new Error(`train: batch size must be a positive integer, got ${options.batchSize}`);
    if (!Number.isInteger(b) || b < 1 || options.batchSize % b !== 0) {
      throw new Error(`train: micro-batch size ${b} must divide the batch size ${options.batchSize}`);
    }
    if (data.seqLen > model.config.maxPositionEmbeddings) throw new Error(`train: seq_len ${data.seqLen} exceeds the context length ${model.config.maxPositionEmbeddings}`);
    this.params = trainableParameters(model, options.decayEmbeddings);
    this.optimizer = new AdamW(this.params, { betas: options.betas, eps: options.eps, weightDecay: options.weightDecay });
  }

  lrAt(step: number): number {
    const o = this.options;
    return learningRate(step, { lr: o.lr, warmup: o.warmup, schedule: o.schedule, tMax: o.tMax ?? o.steps, alphaF: o.alphaF });
  }

  /** One update: forward and backward over the micro-batches, clip, AdamW. */
  async trainStep(): Promise<StepMetrics> {
    const o = this.options;
    const step = this.step + 1;
    const started = performance.now();
    const micro = o.microBatchSize ?? o.batchSize;
    const T = this.data.seqLen;
    const backend = this.model.backend;
    let loss = 0;
    // PEFT's model.train() for the step's forward and backward: LoRA dropout is on, then off again, so
    // evaluating or generating with the model between steps stays exact.
    const lora = this.model.lora;
    if (lora) lora.training = true;
    try {
      for (let offset = 0; offset < o.batchSize; offset += micro) {
        const { ids, mask } = this.data.batch((step - 1) * o.batchSize + offset, micro, o.shuffle ?? true, o.seed ?? 0);
        const value = scope(() => {
          const l = olmoLoss(this.model, tensor(ids, [micro, T], { backend }), tensor(mask, [micro, T], { backend }), o.batchSize * T, {
            checkpointActivations: o.checkpointActivations,
          });
          backward(l);
          return l;
        });
        loss += await value.item();
        value.dispose();
      }
    } finally {
      if (lora) lora.training = false;
    }
    // Every check runs before the update, so a stopped run's weights are those of the step before.
    if (!Number.isFinite(loss)) this.stop(new NaNLossError(step));
    if (o.stopOnSpike !== undefined && this.recentLosses.length > 0) {
      const mean = this.recentLosses.reduce((a, b) => a + b, 0) / this.recentLosses.length;
      if (loss > o.stopOnSpike * mean) this.stop(new LossSpikeError(step, loss, mean, o.stopOnSpike));
    }
    const gradNorm = o.maxGradNorm === 0 ? await gradientNorm(this.params) : await clipGradientNorm(this.params, o.maxGradNorm ?? 1.0);
    if (!Number.isFinite(gradNorm)) this.stop(new NaNLossError(step, "gradient norm"));
    const lr = this.lrAt(step);
    noGrad(() => this.optimizer.update(lr));
    this.discardGradients();
    this.recentLosses.push(loss);
    if (this.recentLosses.length > SPIKE_WINDOW) this.recentLosses.shift();
    this.step = step;
    return { step, loss, grad_norm: gradNorm, lr, tokens_per_s: (o.batchSize * T) / ((performance.now() - started) / 1000) };
  }

  private discardGradients(): void {
    for (const p of this.params) {
      p.tensor.grad?.dispose();
      p.tensor.grad = null;
    }
  }

  /** Throw `error` with the gradients of the abandoned step discarded, the weights untouched. */
  private stop(error: TrainingStoppedError): never {
    this.discardGradients();
    throw error;
  }
}
