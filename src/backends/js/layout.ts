// Layout kernels of the reference backend: reductions, broadcasts, permutes and slices.
// They work for any rank by walking the flat index of one array and computing the other's from
// per-axis strides (row-major: the last axis has stride 1).

import type { KernelArgs } from "../../core/backend.js";
import { sizeOf, stridesOf } from "../../core/shape.js";
import { floats, type JsBuffer } from "./buffer.js";

type Args<K extends keyof KernelArgs<JsBuffer>> = KernelArgs<JsBuffer>[K];

/** Calls visit(flat, coordinate) for every element of `shape` in row-major order. */
function forEachIndex(shape: readonly number[], visit: (flat: number, coord: readonly number[]) => void): void {
  const size = sizeOf(shape);
  const coord = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < size; flat++) {
    visit(flat, coord);
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      if (++coord[axis]! < shape[axis]!) break;
      coord[axis] = 0;
    }
  }
}

/** Strides of the reduced array, seen from the full shape: 0 along the reduced axes. */
function reducedStrides(shape: readonly number[], reduce: readonly boolean[]): number[] {
  const strides = stridesOf(shape.map((n, axis) => (reduce[axis] ? 1 : n)));
  return strides.map((s, axis) => (reduce[axis] ? 0 : s));
}

function dot(coord: readonly number[], strides: readonly number[]): number {
  let offset = 0;
  for (let axis = 0; axis < coord.length; axis++) offset += coord[axis]! * strides[axis]!;
  return offset;
}

export function sum({ x, out, shape, reduce }: Args<"sum">): void {
  const xs = floats(x), o = floats(out);
  const strides = reducedStrides(shape, reduce);
  o.fill(0, 0, sizeOf(shape.map((n, axis) => (reduce[axis] ? 1 : n))));
  forEachIndex(shape, (flat, coord) => {
    o[dot(coord, strides)] += xs[flat]!;
  });
}

export function broadcast({ x, out, shape, reduce }: Args<"broadcast">): void {
  const xs = floats(x), o = floats(out);
  const strides = reducedStrides(shape, reduce);
  forEachIndex(shape, (flat, coord) => {
    o[flat] = xs[dot(coord, strides)]!;
  });
}

export function permute({ x, out, shape, perm }: Args<"permute">): void {
  const inStrides = stridesOf(shape);
  const outShape = perm.map((axis) => shape[axis]!);
  const strides = perm.map((axis) => inStrides[axis]!); // input stride of each output axis
  forEachIndex(outShape, (flat, coord) => {
    out.data[flat] = x.data[dot(coord, strides)]!;
  });
}

export function slice({ x, out, shape, start, outShape }: Args<"slice">): void {
  const strides = stridesOf(shape);
  const offset = dot(start, strides);
  forEachIndex(outShape, (flat, coord) => {
    out.data[flat] = x.data[offset + dot(coord, strides)]!;
  });
}

export function sliceAssign({ x, out, shape, start, xShape }: Args<"sliceAssign">): void {
  const strides = stridesOf(shape);
  const offset = dot(start, strides);
  forEachIndex(xShape, (flat, coord) => {
    out.data[offset + dot(coord, strides)] = x.data[flat]!;
  });
}
