// Elementwise kernels. Threads take contiguous, 4-aligned ranges of the flat arrays.

import { BINARY_ADD, BINARY_SUB, DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_I32, DTYPE_I8, expF32x4, f32ToBf16, f32ToF16, loadAsF32, partEnd, partStart, Pointer } from "./common";

/** out[i] = value, for a buffer of dtype f32 / bf16 / f16 / i32 / i8. */
export function fill(out: Pointer, dtype: i32, size: i32, value: f64, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  if (dtype == DTYPE_F32) for (let i = i0; i < i1; i++) store<f32>(out + (<usize>i << 2), <f32>value);
  else if (dtype == DTYPE_I32) for (let i = i0; i < i1; i++) store<i32>(out + (<usize>i << 2), <i32>value);
  else if (dtype == DTYPE_I8) memory.fill(out + <usize>i0, <u8>(<i32>value), <usize>(i1 - i0));
  else {
    const bits = <u16>(dtype == DTYPE_BF16 ? f32ToBf16(<f32>value) : f32ToF16(<f32>value));
    for (let i = i0; i < i1; i++) store<u16>(out + (<usize>i << 1), bits);
  }
}

/** Convert element by element between f32 / bf16 / f16 / i32 (i32 <- float truncates). */
export function cast(x: Pointer, from: i32, out: Pointer, to: i32, size: i32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  for (let i = i0; i < i1; i++) {
    const at = <usize>i;
    const v: f64 = from == DTYPE_I32 ? <f64>load<i32>(x + (at << 2)) : <f64>loadAsF32(x, from, at);
    if (to == DTYPE_F32) store<f32>(out + (at << 2), <f32>v);
    else if (to == DTYPE_I32) store<i32>(out + (at << 2), <i32>v);
    else store<u16>(out + (at << 1), <u16>(to == DTYPE_BF16 ? f32ToBf16(<f32>v) : f32ToF16(<f32>v)));
  }
}

/** out[i] = a[i % aSize] op b[i % bSize]; op is BINARY_ADD, BINARY_SUB or BINARY_MUL. */
export function binary(op: i32, a: Pointer, b: Pointer, out: Pointer, size: i32, aSize: i32, bSize: i32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  if (aSize == size && bSize == size) {
    // The common, unbroadcast case in SIMD.
    let i = i0;
    for (; i + 4 <= i1; i += 4) {
      const at = <usize>i << 2;
      const u = v128.load(a + at), v = v128.load(b + at);
      v128.store(out + at, op == BINARY_ADD ? f32x4.add(u, v) : op == BINARY_SUB ? f32x4.sub(u, v) : f32x4.mul(u, v));
    }
    for (; i < i1; i++) {
      const at = <usize>i << 2;
      const u = load<f32>(a + at), v = load<f32>(b + at);
      store<f32>(out + at, op == BINARY_ADD ? u + v : op == BINARY_SUB ? u - v : u * v);
    }
    return;
  }
  for (let i = i0; i < i1; i++) {
    const u = load<f32>(a + (<usize>(i % aSize) << 2)), v = load<f32>(b + (<usize>(i % bSize) << 2));
    store<f32>(out + (<usize>i << 2), op == BINARY_ADD ? u + v : op == BINARY_SUB ? u - v : u * v);
  }
}

export function scale(x: Pointer, out: Pointer, size: i32, factor: f32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  const f = f32x4.splat(factor);
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(out + (<usize>i << 2), f32x4.mul(v128.load(x + (<usize>i << 2)), f));
  for (; i < i1; i++) store<f32>(out + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * factor);
}

@inline function sigmoid(x: f32): f32 {
  return 1 / (1 + Mathf.exp(-x));
}

/** 1 / (1 + e^-x) on four lanes (for x < -88.3, a tiny positive number instead of 0: see expF32x4). */
@inline function sigmoidF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, expF32x4(f32x4.neg(x))));
}

export function silu(x: Pointer, out: Pointer, size: i32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    v128.store(out + (<usize>i << 2), f32x4.mul(v, sigmoidF32x4(v)));
  }
  for (; i < i1; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    store<f32>(out + (<usize>i << 2), v * sigmoid(v));
  }
}

/** dx = dout * s * (1 + x (1 - s)), s = sigmoid(x). */
export function siluBackward(x: Pointer, dout: Pointer, dx: Pointer, size: i32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  const one = f32x4.splat(1);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const at = <usize>i << 2;
    const v = v128.load(x + at), s = sigmoidF32x4(v);
    v128.store(dx + at, f32x4.mul(f32x4.mul(v128.load(dout + at), s), f32x4.add(one, f32x4.mul(v, f32x4.sub(one, s)))));
  }
  for (; i < i1; i++) {
    const at = <usize>i << 2;
    const v = load<f32>(x + at), s = sigmoid(v);
    store<f32>(dx + at, load<f32>(dout + at) * s * (1 + v * (1 - s)));
  }
}

export function clamp(x: Pointer, out: Pointer, size: i32, lo: f32, hi: f32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  for (let i = i0; i < i1; i++) {
    const at = <usize>i << 2;
    store<f32>(out + at, min<f32>(max<f32>(load<f32>(x + at), lo), hi));
  }
}

export function clampBackward(x: Pointer, dout: Pointer, dx: Pointer, size: i32, lo: f32, hi: f32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  for (let i = i0; i < i1; i++) {
    const at = <usize>i << 2;
    const v = load<f32>(x + at);
    store<f32>(dx + at, v >= lo && v <= hi ? load<f32>(dout + at) : 0);
  }
}

/** One AdamW step in place, as torch.optim.AdamW (see KernelArgs["adamw"] in src/core/backend.ts). */
export function adamw(
  param: Pointer, grad: Pointer, m: Pointer, v: Pointer, size: i32, lr: f64, beta1: f64, beta2: f64, eps: f64, weightDecay: f64, step: i32,
  tid: i32, threads: i32,
): void {
  const stepSize = lr / (1 - Math.pow(beta1, <f64>step));
  const correction2Sqrt = Math.sqrt(1 - Math.pow(beta2, <f64>step));
  const decay = 1 - lr * weightDecay;
  const i1 = partEnd(size, tid, threads, 4);
  let i = partStart(size, tid, threads, 4);
  // Four parameters at a time in f32 arithmetic (as PyTorch's AdamW computes on f32 tensors): each
  // update differs from the f64 tail loop's by a relative 1e-7 or so.
  const b1 = f32x4.splat(<f32>beta1), b2 = f32x4.splat(<f32>beta2), c1 = f32x4.splat(<f32>(1 - beta1)), c2 = f32x4.splat(<f32>(1 - beta2));
  const step4 = f32x4.splat(<f32>stepSize), corr4 = f32x4.splat(<f32>correction2Sqrt), eps4 = f32x4.splat(<f32>eps), decay4 = f32x4.splat(<f32>decay);
  for (; i + 4 <= i1; i += 4) {
    const at = <usize>i << 2;
    const g = v128.load(grad + at);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + at)), f32x4.mul(c1, g));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + at)), f32x4.mul(c2, f32x4.mul(g, g)));
    v128.store(m + at, mi);
    v128.store(v + at, vi);
    const p = f32x4.mul(v128.load(param + at), decay4);
    const denominator = f32x4.add(f32x4.div(f32x4.sqrt(vi), corr4), eps4);
    v128.store(param + at, f32x4.sub(p, f32x4.div(f32x4.mul(step4, mi), denominator)));
  }
  for (; i < i1; i++) {
    const at = <usize>i << 2;
    const g = <f64>load<f32>(grad + at);
    const mi = beta1 * <f64>load<f32>(m + at) + (1 - beta1) * g;
    const vi = beta2 * <f64>load<f32>(v + at) + (1 - beta2) * g * g;
    store<f32>(m + at, <f32>mi);
    store<f32>(v + at, <f32>vi);
    const p = <f64>load<f32>(param + at) * decay;
    store<f32>(param + at, <f32>(p - (stepSize * mi) / (Math.sqrt(vi) / correction2Sqrt + eps)));
  }
}
