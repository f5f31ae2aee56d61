// Elementwise kernels of the reference backend. Shapes: every array is flat, `size` elements.

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../core/dtype.js";
import type { KernelArgs } from "../../core/backend.js";
import { floats, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

export function fill({ out, size, value }: Args<"fill">): void {
  out.data.fill(out.dtype === "bf16" ? f32ToBf16(value) : out.dtype === "f16" ? f32ToF16(value) : value, 0, size);
}

export function cast({ x, from, out, to, size }: Args<"cast">): void {
  // Read each element as a number, then write it in the target dtype.
  const read: (i: number) => number =
    from === "bf16" ? (i) => bf16ToF32(x.data[i]!) : from === "f16" ? (i) => f16ToF32(x.data[i]!) : (i) => x.data[i]!;
  const write: (v: number) => number =
    to === "bf16" ? f32ToBf16 : to === "f16" ? f32ToF16 : to === "i32" ? Math.trunc : (v) => v;
  for (let i = 0; i < size; i++) out.data[i] = write(read(i));
}

export function binary({ op, a, b, out, size, aSize, bSize }: Args<"binary">): void {
  const x = floats(a), y = floats(b), o = floats(out);
  for (let i = 0; i < size; i++) {
    const u = x[i % aSize]!, v = y[i % bSize]!;
    o[i] = op === "add" ? u + v : op === "sub" ? u - v : u * v;
  }
}

export function scale({ x, out, size, factor }: Args<"scale">): void {
  const xs = floats(x), o = floats(out);
  for (let i = 0; i < size; i++) o[i] = xs[i]! * factor;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function silu({ x, out, size }: Args<"silu">): void {
  const xs = floats(x), o = floats(out);
  for (let i = 0; i < size; i++) o[i] = xs[i]! * sigmoid(xs[i]!);
}

export function siluBackward({ x, dout, dx, size }: Args<"siluBackward">): void {
  const xs = floats(x), g = floats(dout), o = floats(dx);
  for (let i = 0; i < size; i++) {
    const s = sigmoid(xs[i]!);
    o[i] = g[i]! * s * (1 + xs[i]! * (1 - s));
  }
}

export function clamp({ x, out, size, min, max }: Args<"clamp">): void {
  const xs = floats(x), o = floats(out);
  for (let i = 0; i < size; i++) o[i] = Math.min(Math.max(xs[i]!, min), max);
}

export function clampBackward({ x, dout, dx, size, min, max }: Args<"clampBackward">): void {
  const xs = floats(x), g = floats(dout), o = floats(dx);
  for (let i = 0; i < size; i++) o[i] = xs[i]! >= min && xs[i]! <= max ? g[i]! : 0;
}

// AdamW as torch.optim.AdamW's single-tensor path (see KernelArgs["adamw"]).
export function adamw({ param, grad, m, v, size, lr, beta1, beta2, eps, weightDecay, step }: Args<"adamw">): void {
  const p = floats(param), g = floats(grad), ms = floats(m), vs = floats(v);
  const stepSize = lr / (1 - beta1 ** step);
  const correction2Sqrt = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < size; i++) {
    p[i] = p[i]! * (1 - lr * weightDecay);
    ms[i] = beta1 * ms[i]! + (1 - beta1) * g[i]!;
    vs[i] = beta2 * vs[i]! + (1 - beta2) * g[i]! * g[i]!;
    p[i] = p[i]! - (stepSize * ms[i]!) / (Math.sqrt(vs[i]!) / correction2Sqrt + eps);
  }
}
