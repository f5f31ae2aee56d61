// Layout ops: reshape, permute / transpose, slice and concat. Tensors are always contiguous: reshape is
// a free view of the same storage, the others copy.

import { isGradEnabled, record } from "../core/autograd.js";
import type { Tensor } from "../core/tensor.js";
import { fullLike } from "../core/creation.js";
import { buf, emptyLike, fmt, kernelsFor, sizeOf } from "./util.js";

/** The same elements in a new shape (one axis may be -1: inferred). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  kernelsFor("reshape", x);
  const inferred = shape.indexOf(-1);
  const known = shape.reduce((a, n, i) => (i === inferred ? a : a * n), 1);
  const finalShape = inferred === -1 ? [...shape] : shape.map((n, i) => (i === inferred ? x.size / known : n));
  if (
    shape.filter((n) => n === -1).length > 1 ||
    finalShape.some((n) => !Number.isInteger(n) || n < 0) ||
    sizeOf(finalShape) !== x.size
  ) {
    throw new Error(`reshape: cannot reshape ${fmt(x)} (${x.size} elements) to [${shape.join(", ")}]`);
  }
  return record("reshape", x.view(finalShape), [x], (g) => [reshape(g, x.shape)]);
}

/** Whether perm holds each of 0 .. rank - 1 once (without sorting a copy: decode permutes up to four times a layer). */
function isPermutation(perm: readonly number[], rank: number): boolean {
  if (perm.length !== rank) return false;
  const seen = new Array<boolean>(rank).fill(false);
  for (const axis of perm) {
    if (!Number.isInteger(axis) || axis < 0 || axis >= rank || seen[axis]) return false;
    seen[axis] = true;
  }
  return true;
}

/** Reorder axes: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const kernels = kernelsFor("permute", x);
  const rank = x.shape.length;
  if (!isPermutation(perm, rank)) throw new Error(`permute: [${perm.join(", ")}] is not a permutation of the ${rank} axes of ${fmt(x)}`);
  const shape = perm.map((axis) => x.shape[axis]!);
  // Moving only axes of length 1 keeps every element where it is (decode's [B, 1, H, D] -> [B, H, 1, D]):
  // a reshape, with no copy.
  const moved = perm.filter((axis) => x.shape[axis]! > 1);
  if (moved.every((axis, i) => i === 0 || moved[i - 1]! < axis)) return reshape(x, shape);
  const out = emptyLike(x, shape);
  kernels.permute({ x: buf(x), dtype: x.dtype, out: buf(out), shape: x.shape, perm });
  const inverse = new Array<number>(rank);
  perm.forEach((axis, i) => (inverse[axis] = i));
  return record("permute", out, [x], (g) => [permute(g, inverse)]);
}

/** Swap two axes (negative axes count from the end). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const rank = x.shape.length;
  const a = axis0 < 0 ? axis0 + rank : axis0, b = axis1 < 0 ? axis1 + rank : axis1;
  if (!(a >= 0 && a < rank && b >= 0 && b < rank)) throw new Error(`transpose: axes ${axis0}, ${axis1} out of range for ${fmt(x)}`);
  const perm = Array.from({ length: rank }, (_, i) => (i === a ? b : i === b ? a : i));
  return permute(x, perm);
}

/**
 * The block x[start[0] : start[0] + size[0], ...]. start and size may be shorter than the rank: the
 * remaining axes are taken whole. A size of -1 means "to the end of the axis".
 */
export function slice(x: Tensor, start: readonly number[], size: readonly number[] = []): Tensor {
  const kernels = kernelsFor("slice", x);
  const rank = x.shape.length;
  if (start.length > rank || size.length > rank) {
    throw new Error(`slice: start [${start.join(", ")}] / size [${size.join(", ")}] have more axes than ${fmt(x)}`);
  }
  const begin = x.shape.map((_, axis) => start[axis] ?? 0);
  const outShape = x.shape.map((n, axis) => {
    const s = size[axis] ?? -1;
    return s === -1 ? n - begin[axis]! : s;
  });
  x.shape.forEach((n, axis) => {
    const b = begin[axis]!, s = outShape[axis]!;
    if (!Number.isInteger(b) || !Number.isInteger(s) || b < 0 || s < 0 || b + s > n) {
      throw new Error(`slice: axis ${axis} range [${b}, ${b + s}) is outside ${fmt(x)}`);
    }
  });
  const out = emptyLike(x, outShape);
  kernels.slice({ x: buf(x), dtype: x.dtype, out: buf(out), shape: x.shape, start: begin, outShape });
  return record("slice", out, [x], (g) => {
    // The gradient is g placed back into zeros of x's shape.
    const dx = fullLike(x, 0);
    kernelsFor("slice backward", g, dx).sliceAssign({ x: buf(g), dtype: g.dtype, out: buf(dx), shape: x.shape, start: begin, xShape: outShape });
    return [dx];
  });
}

/** Join tensors along `axis`; all other axes must agree. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error("concat: needs at least one tensor");
  const kernels = kernelsFor("concat", ...tensors);
  const first = tensors[0]!;
  const rank = first.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  if (!(ax >= 0 && ax < rank)) throw new Error(`concat: axis ${axis} out of range for rank ${rank}`);
  for (const t of tensors) {
    const agrees = t.dtype === first.dtype && t.shape.length === rank && t.shape.every((n, i) => i === ax || n === first.shape[i]);
    if (!agrees) {
      throw new Error(`concat: ${tensors.map(fmt).join(", ")} differ outside axis ${ax} (or in dtype)`);
    }
  }
  const outShape = first.shape.map((n, i) => (i === ax ? tensors.reduce((acc, t) => acc + t.shape[ax]!, 0) : n));
  const out = emptyLike(first, outShape);
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    offsets.push(offset);
    const start = outShape.map((_, i) => (i === ax ? offset : 0));
    kernels.sliceAssign({ x: buf(t), dtype: t.dtype, out: buf(out), shape: outShape, start, xShape: t.shape });
    offset += t.shape[ax]!;
  }
  return record("concat", out, tensors, (g) =>
    tensors.map((t, k) => slice(g, outShape.map((_, i) => (i === ax ? offsets[k]! : 0)), t.shape)),
  );
}

/**
 * Write `value` into `target` at `start` in place (no new tensor): target[start ...] = value. Used to
 * append to a preallocated KV cache. Not differentiable, so it refuses tensors that need gradients.
 */
export function writeSlice(target: Tensor, value: Tensor, start: readonly number[]): void {
  const kernels = kernelsFor("writeSlice", target, value);
  if (isGradEnabled() && (target.requiresGrad || value.requiresGrad)) {
    throw new Error("writeSlice: in-place writes are not differentiable; call it under noGrad on tensors without gradients");
  }
  const rank = target.shape.length;
  const fits =
    value.dtype === target.dtype && value.shape.length === rank && start.length === rank &&
    value.shape.every((n, axis) => Number.isInteger(start[axis]) && start[axis]! >= 0 && start[axis]! + n <= target.shape[axis]!);
  if (!fits) throw new Error(`writeSlice: ${fmt(value)} does not fit into ${fmt(target)} at [${start.join(", ")}]`);
  kernels.sliceAssign({ x: buf(value), dtype: value.dtype, out: buf(target), shape: target.shape, start, xShape: value.shape });
}
