// The Train tab's live view: loss, gradient norm and learning rate per step (the Trainer's StepMetrics,
// as the worker posts them), the planned schedule under the measured learning rate (OLMo's warmup, then
// a cosine), tokens per second, and the same prompt generated before and after the run.

import type { StepMetrics } from "../../src/index.js";
import { COLORS, escapeHtml, formatNumber, lineChart } from "./charts.js";

export interface TrainingRun {
  steps: number;
  warmup: number;
  /** The learning rate of every step, planned (Trainer.lrAt). */
  schedule: { step: number; lr: number }[];
  metrics: StepMetrics[];
  /** The gradient norm the Trainer clips to (its default, 1.0). */
  maxGradNorm: number;
}

export function renderTraining(run: TrainingRun, root: { stats: HTMLElement; loss: HTMLElement; grad: HTMLElement; lr: HTMLElement }): void {
  const m = run.metrics;
  const xDomain: [number, number] = [0, run.steps];
  root.loss.innerHTML = lineChart({
    id: "loss-chart", title: "Loss", xLabel: "step", yLabel: "cross-entropy (nats)", xDomain,
    series: [{ name: "loss", color: COLORS.loss, points: m.map((s) => ({ x: s.step, y: s.loss })) }],
  });
  root.grad.innerHTML = lineChart({
    id: "grad-chart-svg", title: "Gradient norm", xLabel: "step", yLabel: "‖g‖ before clipping", xDomain,
    series: [
      { name: `clip at ${run.maxGradNorm}`, color: COLORS.muted, dashed: true, points: [{ x: 0, y: run.maxGradNorm }, { x: run.steps, y: run.maxGradNorm }] },
      { name: "grad norm", color: COLORS.gradNorm, points: m.map((s) => ({ x: s.step, y: s.grad_norm })) },
    ],
  });
  root.lr.innerHTML = lineChart({
    id: "lr-chart-svg", title: "Learning rate", xLabel: "step", yLabel: "learning rate", xDomain,
    marks: run.warmup > 0 ? [{ x: run.warmup, label: "warmup ends: cosine decay" }] : [],
    series: [
      { name: "planned", color: COLORS.muted, dashed: true, points: run.schedule.map((s) => ({ x: s.step, y: s.lr })) },
      { name: "lr", color: COLORS.lr, points: m.map((s) => ({ x: s.step, y: s.lr })) },
    ],
  });
  const last = m.at(-1);
  if (!last) {
    root.stats.innerHTML = `${run.steps} steps planned; the first one compiles and warms up, so it is the slowest.`;
    return;
  }
  // The first step pays for setup (kernels compile, buffers grow): the mean leaves it out when it can.
  const steady = m.length > 1 ? m.slice(1) : m;
  const mean = steady.reduce((a, s) => a + s.tokens_per_s, 0) / steady.length;
  root.stats.innerHTML =
    `step <b>${last.step}</b> of ${run.steps} &middot; loss <b>${last.loss.toFixed(3)}</b> (from ${m[0]!.loss.toFixed(3)}) &middot; ` +
    `gradient norm <b>${formatNumber(last.grad_norm)}</b> &middot; learning rate <b>${formatNumber(last.lr)}</b> &middot; ` +
    `<b>${Math.round(last.tokens_per_s).toLocaleString("en")}</b> tokens/s (mean ${Math.round(mean).toLocaleString("en")}${m.length > 1 ? " after the first step" : ""})`;
}

export interface Sample {
  when: "before" | "after";
  prompt: string;
  ids: number[];
  text: string;
}

export function renderSamples(samples: Partial<Record<"before" | "after", Sample>>, root: HTMLElement): void {
  const box = (when: "before" | "after", title: string) => {
    const s = samples[when];
    const body = s ? `<span class="prompt">${escapeHtml(s.prompt)}</span>${escapeHtml(s.text)}` : `<span class="prompt">${when === "before" ? "generated when training starts" : "generated when training ends"}</span>`;
    return `<div class="sample" id="sample-${when}"><h3>${title}</h3><p>${body}</p></div>`;
  };
  root.innerHTML = box("before", "Before training (greedy)") + box("after", "After training (greedy)");
}
