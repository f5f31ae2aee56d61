// Checks shared by the ops: every op validates its inputs here, so a bad call fails with the op's name,
// the shapes and the dtypes, before any kernel runs.

import type { KernelTable } from "../core/backend.js";
import type { DType } from "../core/dtype.js";
import { type AnyBackend, Tensor } from "../core/tensor.js";

export function fmt(t: Tensor): string {
  return `[${t.shape.join(", ")}] ${t.dtype}`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

export { sizeOf } from "../core/shape.js";

/**
 * The kernels of the backend all inputs live on. Throws if an input was disposed or inputs live on
 * different backends.
 */
export function kernelsFor(op: string, ...inputs: Tensor[]): KernelTable<unknown> {
  let backend: AnyBackend | null = null;
  for (const t of inputs) {
    if (t.disposed) throw new Error(`${op}: ${t.describe()} was disposed and cannot be used`);
    if (backend && t.backend !== backend) {
      throw new Error(`${op}: inputs live on different backends (${backend.name} and ${t.backend.name})`);
    }
    backend = t.backend;
  }
  return backend!.kernels;
}

/** Throw unless t has one of the allowed dtypes. */
export function expectDType(op: string, name: string, t: Tensor, ...allowed: DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new TypeError(`${op}: ${name} must be ${allowed.join(" or ")}, got ${t.describe()}`);
  }
}

/** Throw unless t has `rank` axes. */
export function expectRank(op: string, name: string, t: Tensor, rank: number, legend: string): void {
  if (t.shape.length !== rank) throw new Error(`${op}: ${name} must have shape ${legend}, got ${fmt(t)}`);
}

/** A new tensor on the same backend as `like`. */
export function emptyLike(like: Tensor, shape: readonly number[] = like.shape, dtype: DType = like.dtype): Tensor {
  return Tensor.empty(shape, dtype, like.backend);
}

/** Buffer of t (already checked alive by kernelsFor). */
export function buf(t: Tensor): unknown {
  return t.bufferFor("kernel");
}
