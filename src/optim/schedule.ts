// Learning-rate schedules with OLMo's warmup (olmo/optim.py): the first update is step 1.
//   warmup:   lr(s) = 0.1 lr + 0.9 lr min(s, W) / W           for s <= W
//   linear:   from lr at W down to alpha_f lr at t_max, straight
//   cosine:   from lr at W down to alpha_f lr at t_max, half a cosine
//   constant: lr after warmup
// After t_max the rate stays at alpha_f lr.

export type ScheduleName = "cosine" | "linear" | "constant";

export interface ScheduleOptions {
  lr: number;
  warmup?: number;
  schedule?: ScheduleName;
  /** Step where decay ends (default: the number of training steps). */
  tMax: number;
  /** Final fraction of lr (default 0.1). */
  alphaF?: number;
}

export function learningRate(step: number, o: ScheduleOptions): number {
  const { lr, warmup = 0, schedule = "cosine", tMax, alphaF = 0.1 } = o;
  if (warmup > 0 && step <= warmup) return 0.1 * lr + 0.9 * lr * Math.min(step, warmup) / warmup;
  if (schedule === "constant") return lr;
  const minLr = alphaF * lr;
  if (step >= tMax) return minLr;
  const progress = (step - warmup) / Math.max(1, tMax - warmup);
  if (schedule === "linear") return lr - (lr - minLr) * progress;
  return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
