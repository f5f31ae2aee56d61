// AdamW, as torch.optim.AdamW (decoupled weight decay), with parameter groups that decay or not,
// and global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ (OLMo's olmo/optim.py).

import { noGrad } from "../core/autograd.js";
import { zeros } from "../core/creation.js";
import { scope, type Tensor } from "../core/tensor.js";
import { mul, scale, sum } from "../ops/index.js";

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface Parameter {
  name: string;
  tensor: Tensor;
  /** In the weight-decay group (OLMo: every weight but the embedding, unless decay_embeddings). */
  decay: boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Updates taken so far; the next update is step + 1 (torch's per-parameter "step"). */
  step = 0;
  /** First and second moments, by parameter name. */
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();

  constructor(
    readonly params: readonly Parameter[],
    options: AdamWOptions = {},
  ) {
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.95];
    this.eps = options.eps ?? 1e-5;
    this.weightDecay = options.weightDecay ?? 0.1;
    for (const p of params) {
      if (p.tensor.dtype !== "f32") throw new Error(`AdamW: parameter ${p.name} is ${p.tensor.dtype}; training needs f32 weights`);
      this.m.set(p.name, zeros(p.tensor.shape, { backend: p.tensor.backend }));
      this.v.set(p.name, zeros(p.tensor.shape, { backend: p.tensor.backend }));
    }
  }

  /** One update with learning rate `lr` from each parameter's .grad (parameters without one are skipped, as torch does). */
  update(lr: number): void {
    this.step++;
    for (const p of this.params) {
      const grad = p.tensor.grad;
      if (!grad) continue;
      p.tensor.backend.kernels.adamw({
        param: p.tensor.bufferFor("AdamW"), grad: grad.bufferFor("AdamW"), m: this.m.get(p.name)!.bufferFor("AdamW"),
        v: this.v.get(p.name)!.bufferFor("AdamW"), size: p.tensor.size, lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps,
        weightDecay: p.decay ? this.weightDecay : 0, step: this.step,
      });
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** The L2 norm of all gradients together. */
export async function gradientNorm(params: readonly Parameter[]): Promise<number> {
  const squares = noGrad(() => scope(() => params.filter((p) => p.tensor.grad).map((p) => sum(mul(p.tensor.grad!, p.tensor.grad!)))));
  let total = 0;
  for (const s of squares) {
    total += await s.item();
    s.dispose();
  }
  return Math.sqrt(total);
}

/**
 * Scale all gradients so that their global norm is at most maxNorm: coef = min(1, maxNorm / (norm + 1e-6)),
 * as torch.nn.utils.clip_grad_norm_. Returns the norm before clipping.
 */
export async function clipGradientNorm(params: readonly Parameter[], maxNorm: number): Promise<number> {
  const norm = await gradientNorm(params);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  if (coef < 1) {
    noGrad(() =>
      scope(() => {
        // The scaled copy's storage moves into .grad; the copy itself goes with the scope.
        for (const p of params) if (p.tensor.grad) p.tensor.grad.assign(scale(p.tensor.grad, coef));
      }),
    );
  }
  return norm;
}
