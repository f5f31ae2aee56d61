// Elementwise ops, each forward next to its backward.
//
// Broadcasting: add / sub / mul accept operands of equal shape, or one whose shape is a suffix of the
// other's (leading 1s ignored): [C] with [B, T, C], [T, C] with [B, T, C]. The smaller operand
// repeats over the leading axes; its gradient is the sum over those axes.

import { record } from "../core/autograd.js";
import type { BinaryOp } from "../core/backend.js";
import type { DType } from "../core/dtype.js";
import type { Tensor } from "../core/tensor.js";
import { buf, emptyLike, expectDType, fmt, kernelsFor, sameShape, sizeOf } from "./util.js";

/** The output shape of a broadcasting binary op, or an error naming both shapes. */
function broadcastShape(op: string, a: Tensor, b: Tensor): readonly number[] {
  if (sameShape(a.shape, b.shape)) return a.shape;
  // The larger operand (on a tie, the one with more axes: [1, C] with [C] gives [1, C]) sets the shape.
  const aIsBig = a.size > b.size || (a.size === b.size && a.shape.length >= b.shape.length);
  const [big, small] = aIsBig ? [a.shape, b.shape] : [b.shape, a.shape];
  const firstNonOne = small.findIndex((n) => n !== 1);
  const trimmed = firstNonOne === -1 ? [] : small.slice(firstNonOne);
  const suffix = big.slice(big.length - trimmed.length);
  if (trimmed.length > big.length || !sameShape(trimmed, suffix)) {
    throw new Error(
      `${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast; one shape must equal the trailing axes of the other`,
    );
  }
  return big;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor, backward: (g: Tensor) => [Tensor, Tensor]): Tensor {
  const kernels = kernelsFor(op, a, b);
  expectDType(op, "first operand", a, "f32");
  expectDType(op, "second operand", b, "f32");
  const shape = broadcastShape(op, a, b);
  const out = emptyLike(a, shape);
  kernels.binary({ op, a: buf(a), b: buf(b), out: buf(out), size: out.size, aSize: a.size, bSize: b.size });
  return record(op, out, [a, b], (g) => {
    const [ga, gb] = backward(g);
    return [sumOverRepeats(ga, a.shape), sumOverRepeats(gb, b.shape)];
  });
}

/**
 * The gradient of an operand of `shape` that was repeated over leading axes: g summed over them (g
 * itself when nothing was repeated). It calls the `sum` kernel directly instead of reduce.ts's `sum` op
 * because reduce builds `mean` from `scale` here: elementwise sits below reduce. Backward runs under
 * noGrad, so there is nothing to record.
 */
function sumOverRepeats(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const inner = sizeOf(shape);
  const out = emptyLike(g, shape);
  kernelsFor("broadcast backward", g).sum({ x: buf(g), out: buf(out), shape: [g.size / inner, inner], reduce: [true, false] });
  return out;
}

/** a + b (broadcasting over leading axes). */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary("add", a, b, (g) => [g, g]);
}

/** a - b (broadcasting over leading axes). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return binary("sub", a, b, (g) => [g, scale(g, -1)]);
}

/** a * b (broadcasting over leading axes). */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary("mul", a, b, (g) => [mul(g, b), mul(g, a)]);
}

/** x * factor for a number factor. */
export function scale(x: Tensor, factor: number): Tensor {
  const kernels = kernelsFor("scale", x);
  expectDType("scale", "x", x, "f32");
  if (!Number.isFinite(factor)) throw new Error(`scale: factor must be a finite number, got ${factor}`);
  const out = emptyLike(x);
  kernels.scale({ x: buf(x), out: buf(out), size: x.size, factor });
  return record("scale", out, [x], (g) => [scale(g, factor)]);
}

/** SiLU (swish): x * sigmoid(x), the gate activation of OLMo's SwiGLU MLP. */
export function silu(x: Tensor): Tensor {
  const kernels = kernelsFor("silu", x);
  expectDType("silu", "x", x, "f32");
  const out = emptyLike(x);
  kernels.silu({ x: buf(x), out: buf(out), size: x.size });
  return record("silu", out, [x], (g) => [siluBackward(x, g)]);
}

function siluBackward(x: Tensor, g: Tensor): Tensor {
  const dx = emptyLike(x);
  kernelsFor("silu backward", x, g).siluBackward({ x: buf(x), dout: buf(g), dx: buf(dx), size: x.size });
  return dx;
}

/** Clamp to [min, max]; the gradient passes only where min <= x <= max. OLMo's clip_qkv uses it. */
export function clamp(x: Tensor, min: number, max: number): Tensor {
  const kernels = kernelsFor("clamp", x);
  expectDType("clamp", "x", x, "f32");
  if (!(min <= max)) throw new Error(`clamp: min (${min}) must not exceed max (${max})`);
  const out = emptyLike(x);
  kernels.clamp({ x: buf(x), out: buf(out), size: x.size, min, max });
  return record("clamp", out, [x], (g) => {
    const dx = emptyLike(x);
    kernelsFor("clamp backward", x, g).clampBackward({ x: buf(x), dout: buf(g), dx: buf(dx), size: x.size, min, max });
    return [dx];
  });
}

/**
 * Convert to another dtype: widen bf16 / f16 weights to f32, narrow f32 to bf16 / f16 (round to nearest
 * even), or convert i32 <-> f32. Differentiable between f32 tensors only (the identity).
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const kernels = kernelsFor("cast", x);
  if (x.dtype === dtype) return record("cast", x.view(x.shape), [x], (g) => [g]);
  const out = emptyLike(x, x.shape, dtype);
  kernels.cast({ x: buf(x), from: x.dtype, out: buf(out), to: dtype, size: sizeOf(x.shape) });
  return out; // crossing dtypes ends the gradient: only f32 tensors are trained
}
