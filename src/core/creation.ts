// Creating tensors: from host values, constants, and seeded random numbers.

import { type DType, type HostArray, narrowFromF32 } from "./dtype.js";
import { Random } from "./random.js";
import { type AnyBackend, getBackend, Tensor } from "./tensor.js";

export interface CreateOptions {
  dtype?: DType;
  backend?: AnyBackend;
}

/** Nested arrays of numbers, e.g. [[1, 2], [3, 4]]. */
export type NestedNumbers = number | readonly NestedNumbers[];

export function checkShape(op: string, shape: readonly number[]): void {
  for (const n of shape) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`${op}: shape [${shape.join(", ")}] must hold non-negative integers`);
  }
}

function inferShape(values: NestedNumbers): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0] as NestedNumbers;
  }
  return shape;
}

/**
 * A tensor from host values: a typed array or flat array with an explicit shape, or nested arrays
 * (shape inferred). dtype defaults to i32 for an Int32Array and f32 otherwise; bf16 / f16 round to
 * nearest even.
 */
export function tensor(
  values: ArrayLike<number> | NestedNumbers,
  shape?: readonly number[],
  options: CreateOptions = {},
): Tensor {
  const isNested = typeof values === "number" || (Array.isArray(values) && values.some((v) => Array.isArray(v)));
  const flat: ArrayLike<number> = isNested ? [values as NestedNumbers].flat(Infinity as 1) as number[] : (values as ArrayLike<number>);
  const finalShape = shape ?? (isNested ? inferShape(values as NestedNumbers) : [flat.length]);
  checkShape("tensor", finalShape);
  const size = finalShape.reduce((a, b) => a * b, 1);
  if (flat.length !== size) {
    throw new Error(`tensor: ${flat.length} values do not fill shape [${finalShape.join(", ")}] (${size} elements)`);
  }
  const dtype = options.dtype ?? (values instanceof Int32Array ? "i32" : "f32");
  const t = Tensor.empty(finalShape, dtype, options.backend);
  t.backend.upload(t.bufferFor("tensor"), dtype, toHost(flat, dtype));
  return t;
}

function toHost(values: ArrayLike<number>, dtype: DType): HostArray {
  switch (dtype) {
    case "f32":
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case "i32":
      for (let i = 0; i < values.length; i++) {
        if (!Number.isInteger(values[i])) throw new Error(`tensor: i32 value ${values[i]} at index ${i} is not an integer`);
      }
      return values instanceof Int32Array ? values : Int32Array.from(values);
    case "bf16":
    case "f16":
      return narrowFromF32(values, dtype);
    case "i8":
      for (let i = 0; i < values.length; i++) {
        if (!Number.isInteger(values[i]) || values[i]! < -128 || values[i]! > 127) throw new Error(`tensor: i8 value ${values[i]} at index ${i} is not an integer in [-128, 127]`);
      }
      return values instanceof Int8Array ? values : Int8Array.from(values);
  }
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkShape("full", shape);
  const dtype = options.dtype ?? "f32";
  const t = Tensor.empty(shape, dtype, options.backend);
  t.backend.kernels.fill({ out: t.bufferFor("full"), dtype, size: t.size, value });
  return t;
}

export const zeros = (shape: readonly number[], options: CreateOptions = {}) => full(shape, 0, options);
export const ones = (shape: readonly number[], options: CreateOptions = {}) => full(shape, 1, options);

/** A tensor shaped like `like`, on its backend, filled with `value`. */
export function fullLike(like: Tensor, value: number, dtype: DType = like.dtype): Tensor {
  return full(like.shape, value, { dtype, backend: like.backend });
}

export interface RandomOptions extends CreateOptions {
  /** Seed of the generator (see random.ts), or a generator to draw from. */
  seed?: number | Random;
}

function generator(seed: number | Random | undefined): Random {
  return seed instanceof Random ? seed : new Random(seed ?? 0);
}

/** Normal samples: mean + std * N(0, 1). Same values on every host for the same seed. */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  checkShape("randn", shape);
  const random = generator(options.seed);
  const { mean = 0, std = 1 } = options;
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = mean + std * random.normal();
  return tensor(values, shape, options);
}

/** Uniform samples in [low, high). Same values on every host for the same seed. */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  checkShape("rand", shape);
  const random = generator(options.seed);
  const { low = 0, high = 1 } = options;
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = low + (high - low) * random.uniform();
  return tensor(values, shape, options);
}
