// Reductions: sum and mean over chosen axes. The backward of a sum is a broadcast of the gradient back
// along the reduced axes (and the backward of that broadcast is a sum again).

import { record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { scale } from "./elementwise.js";
import { reshape } from "./shape.js";
import { buf, emptyLike, expectDType, fmt, kernelsFor } from "./util.js";

export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default false: they are removed). */
  keepDims?: boolean;
}

/** Normalise axes (negative counts from the end); all axes when undefined. */
function reducedAxes(op: string, x: Tensor, axes: number | readonly number[] | undefined): boolean[] {
  const rank = x.shape.length;
  const reduce = new Array<boolean>(rank).fill(axes === undefined);
  for (const axis of axes === undefined ? [] : typeof axes === "number" ? [axes] : axes) {
    if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
      throw new Error(`${op}: axis ${axis} is out of range for ${fmt(x)}`);
    }
    reduce[axis < 0 ? axis + rank : axis] = true;
  }
  return reduce;
}

/** Sum over `axes` (all axes by default). */
export function sum(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const kernels = kernelsFor("sum", x);
  expectDType("sum", "x", x, "f32");
  const reduce = reducedAxes("sum", x, axes);
  const keptShape = x.shape.map((n, axis) => (reduce[axis] ? 1 : n));
  const out = emptyLike(x, keptShape);
  kernels.sum({ x: buf(x), out: buf(out), shape: x.shape, reduce });
  const result = options.keepDims ? out : out.view(x.shape.filter((_, axis) => !reduce[axis]));
  if (result !== out) out.dispose(); // the view keeps the storage
  return record("sum", result, [x], (g) => [broadcastAlong(g, x.shape, reduce)]);
}

/** Mean over `axes` (all axes by default). */
export function mean(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const reduce = reducedAxes("mean", x, axes);
  const count = x.shape.reduce((acc, n, axis) => (reduce[axis] ? acc * n : acc), 1);
  return scale(sum(x, axes, options), 1 / count);
}

/** Repeat g (x's shape with the reduced axes dropped or kept as 1) along the reduced axes of `shape`. */
function broadcastAlong(g: Tensor, shape: readonly number[], reduce: readonly boolean[]): Tensor {
  const out = emptyLike(g, shape);
  kernelsFor("broadcast", g).broadcast({ x: buf(g), out: buf(out), shape, reduce });
  return record("broadcast", out, [g], (gg) => {
    const summed = emptyLike(gg, shape.map((n, axis) => (reduce[axis] ? 1 : n)));
    kernelsFor("broadcast backward", gg).sum({ x: buf(gg), out: buf(summed), shape, reduce });
    return [reshape(summed, g.shape)];
  });
}
