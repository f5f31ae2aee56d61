// Elementwise kernels of the WebGPU backend: fill and cast (kernels/elementwise-cast.wgsl), the f32
// maps and their backwards (kernels/elementwise.wgsl), and AdamW (kernels/elementwise-adamw.wgsl).
// Every operand may be larger than one storage binding (runElementwise binds them in blocks).

import type { KernelArgs } from "../../core/backend.js";
import { f32ToBf16, f32ToF16, type DType } from "../../core/dtype.js";
import { BINARY_CODE, DTYPE_CODE } from "../codes.js";
import { runElementwise } from "./blocks.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

/** bf16 and f16 are stored packed, two elements per u32 word. */
export const is16 = (dtype: DType) => dtype === "bf16" || dtype === "f16";

export function fill(gpu: GpuRuntime, { out, dtype, size, value }: Args<"fill">): void {
  // Quantized values reach the GPU by upload only; a fill of i8 (four to a word) has no shader path.
  if (dtype === "i8") throw new Error("webgpu backend: fill: i8 buffers are not supported");
  const bits = new Uint32Array(1);
  if (dtype === "f32") new Float32Array(bits.buffer)[0] = value;
  else if (dtype === "i32") bits[0] = value | 0;
  else {
    const half = new Uint16Array(2);
    // One value, encoded on the host by the same rounding the reference uses, repeated in both halves.
    half[0] = half[1] = dtype === "bf16" ? f32ToBf16(value) : f32ToF16(value);
    bits[0] = new Uint32Array(half.buffer)[0]!;
  }
  runElementwise(gpu, "elementwise-cast", "fill", size, { out: [out, dtype] }, (count) => {
    const words = is16(dtype) ? Math.ceil(count / 2) : count;
    return { params: { size: count, fromType: 0, toType: DTYPE_CODE[dtype], valueBits: bits[0]!, words }, invocations: words };
  });
}

export function cast(gpu: GpuRuntime, { x, from, out, to, size }: Args<"cast">): void {
  runElementwise(gpu, "elementwise-cast", "castValues", size, { x: [x, from], out: [out, to] }, (count) => {
    const words = is16(to) ? Math.ceil(count / 2) : count;
    return { params: { size: count, fromType: DTYPE_CODE[from], toType: DTYPE_CODE[to], valueBits: 0, words }, invocations: words };
  });
}

export function binary(gpu: GpuRuntime, { op, a, b, out, size, aSize, bSize }: Args<"binary">): void {
  if (aSize === size && bSize === size) {
    runElementwise(gpu, "elementwise", "binary", size, { a: [a, "f32"], b: [b, "f32"], out: [out, "f32"] }, (count) => ({
      params: { size: count, aSize: count, bSize: count, op: BINARY_CODE[op], factor: 0, low: 0, high: 0 },
      invocations: count,
    }));
  } else {
    gpu.run("elementwise", "binary", {
      params: { size, aSize, bSize, op: BINARY_CODE[op], factor: 0, low: 0, high: 0 },
      buffers: { a, b, out },
      groups: grid(Math.ceil(size / 256)),
    });
  }
}

/** out = entry(x), f32, with the Params fields that entry reads. */
function f32Map(gpu: GpuRuntime, entry: string, x: GpuBuffer, out: GpuBuffer, size: number, extra: { factor?: number; low?: number; high?: number } = {}) {
  runElementwise(gpu, "elementwise", entry, size, { a: [x, "f32"], out: [out, "f32"] }, (count) => ({
    params: { size: count, aSize: count, bSize: count, op: 0, factor: extra.factor ?? 0, low: extra.low ?? 0, high: extra.high ?? 0 },
    invocations: count,
  }));
}

/** dx = entry(x, dout), f32. */
function f32MapBackward(gpu: GpuRuntime, entry: string, x: GpuBuffer, dout: GpuBuffer, dx: GpuBuffer, size: number, low = 0, high = 0) {
  runElementwise(gpu, "elementwise", entry, size, { a: [x, "f32"], b: [dout, "f32"], out: [dx, "f32"] }, (count) => ({
    params: { size: count, aSize: count, bSize: count, op: 0, factor: 0, low, high },
    invocations: count,
  }));
}

export function scale(gpu: GpuRuntime, { x, out, size, factor }: Args<"scale">): void {
  f32Map(gpu, "scale", x, out, size, { factor });
}

export function silu(gpu: GpuRuntime, { x, out, size }: Args<"silu">): void {
  f32Map(gpu, "silu", x, out, size);
}

export function siluBackward(gpu: GpuRuntime, { x, dout, dx, size }: Args<"siluBackward">): void {
  f32MapBackward(gpu, "siluBackward", x, dout, dx, size);
}

// The entry point is `clampValues`: a function named `clamp` would hide WGSL's built-in clamp in the file.
export function clamp(gpu: GpuRuntime, { x, out, size, min, max }: Args<"clamp">): void {
  f32Map(gpu, "clampValues", x, out, size, { low: min, high: max });
}

export function clampBackward(gpu: GpuRuntime, { x, dout, dx, size, min, max }: Args<"clampBackward">): void {
  f32MapBackward(gpu, "clampBackward", x, dout, dx, size, min, max);
}

export function adamw(gpu: GpuRuntime, { param, grad, m, v, size, lr, beta1, beta2, eps, weightDecay, step }: Args<"adamw">): void {
  // The bias corrections in f64 on the host, as the reference computes them.
  const stepSize = lr / (1 - beta1 ** step);
  const correction2Sqrt = Math.sqrt(1 - beta2 ** step);
  runElementwise(gpu, "elementwise-adamw", "adamw", size, { param: [param, "f32"], grad: [grad, "f32"], m: [m, "f32"], v: [v, "f32"] }, (count) => ({
    params: { size: count, lr, beta1, beta2, eps, weightDecay, stepSize, correction2Sqrt },
    invocations: count,
  }));
}
