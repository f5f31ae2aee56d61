// Layout kernels of the WebGPU backend: sum over any axes (kernels/layout-sum.wgsl) and the strided
// gathers and scatters of broadcast, permute, slice and sliceAssign (kernels/layout.wgsl). Shapes and
// strides go in Params, up to MAX_RANK axes. Buffers are bound whole, except x of a sum over every
// axis (a gradient norm), which is summed in blocks into partial sums.

import type { KernelArgs } from "../../core/backend.js";
import { sizeOf, stridesOf } from "../../core/shape.js";
import { MAX_RANK } from "../codes.js";
import { blocksOf, rowRange } from "./blocks.js";
import { fill, is16 } from "./elementwise.js";
import { grid, type BindingResource, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

function checkRank(kernel: string, shape: readonly number[]): void {
  if (shape.length > MAX_RANK) throw new Error(`webgpu backend: ${kernel} supports rank <= ${MAX_RANK}, got ${shape.length}`);
}

/** A strided gather or scatter of layout.wgsl; unset fields are zero. */
function gatherOrScatter(gpu: GpuRuntime, entry: "gather32" | "gather16" | "scatter32" | "scatter16", x: GpuBuffer, out: GpuBuffer, fields: {
  size: number; rank: number; base?: number; shape: number[]; strides?: number[]; outShape?: number[]; start?: number[]; xStrides?: number[];
}): void {
  const words = Math.ceil(fields.size / 2);
  const invocations = entry.endsWith("16") ? words : fields.size;
  gpu.run("layout", entry, {
    params: {
      size: fields.size, words, rank: fields.rank, base: fields.base ?? 0, shape: fields.shape, strides: fields.strides ?? [],
      outShape: fields.outShape ?? [], start: fields.start ?? [], xStrides: fields.xStrides ?? [],
    },
    buffers: { x, out },
    groups: grid(Math.ceil(invocations / 256)),
  });
}

/** out[outOffset] = the sum of the `count` values of x. */
function sumAll(gpu: GpuRuntime, x: BindingResource, count: number, out: GpuBuffer, outOffset: number): void {
  gpu.run("layout-sum", "sum", {
    params: {
      outSize: 1, outOffset, reducedCount: count, keptRank: 0, reducedRank: 1,
      keptShape: [], keptStrides: [], reducedShape: [count], reducedStrides: [1],
    },
    buffers: { x, out },
    groups: [1, 1, 1],
  });
}

export function sum(gpu: GpuRuntime, { x, out, shape, reduce }: Args<"sum">): void {
  checkRank("sum", shape);
  const strides = stridesOf(shape);
  const kept = shape.map((_, i) => i).filter((i) => !reduce[i]);
  const reduced = shape.map((_, i) => i).filter((i) => reduce[i]);
  const outSize = sizeOf(kept.map((i) => shape[i]!));
  const reducedCount = sizeOf(reduced.map((i) => shape[i]!));
  if (reducedCount === 0) {
    fill(gpu, { out, dtype: "f32", size: outSize, value: 0 });
    return;
  }
  if (x.bytes > gpu.maxBindingBytes && outSize === 1) {
    // Every axis reduced (a gradient norm's sum of squares): blocks of x into partial sums first.
    const blocks = blocksOf(gpu, "sum", reducedCount, [[x, 4]]);
    const partial = gpu.allocate(blocks.length * 4, "partial sums");
    blocks.forEach((block, i) => sumAll(gpu, rowRange(x, 4, block), block.count, partial, i));
    sumAll(gpu, partial, blocks.length, out, 0);
    gpu.release(partial);
    return;
  }
  gpu.run("layout-sum", "sum", {
    params: {
      outSize, outOffset: 0, reducedCount, keptRank: kept.length, reducedRank: reduced.length,
      keptShape: kept.map((i) => shape[i]!), keptStrides: kept.map((i) => strides[i]!),
      reducedShape: reduced.map((i) => shape[i]!), reducedStrides: reduced.map((i) => strides[i]!),
    },
    buffers: { x, out },
    groups: grid(outSize),
  });
}

export function broadcast(gpu: GpuRuntime, { x, out, shape, reduce }: Args<"broadcast">): void {
  checkRank("broadcast", shape);
  const xStrides = stridesOf(shape.map((n, i) => (reduce[i] ? 1 : n)));
  gatherOrScatter(gpu, "gather32", x, out, { size: sizeOf(shape), rank: shape.length, shape: [...shape], strides: xStrides.map((s, i) => (reduce[i] ? 0 : s)) });
}

export function permute(gpu: GpuRuntime, { x, dtype, out, shape, perm }: Args<"permute">): void {
  checkRank("permute", shape);
  const strides = stridesOf(shape);
  gatherOrScatter(gpu, is16(dtype) ? "gather16" : "gather32", x, out, {
    size: sizeOf(shape), rank: shape.length, shape: perm.map((p) => shape[p]!), strides: perm.map((p) => strides[p]!),
  });
}

export function slice(gpu: GpuRuntime, { x, dtype, out, shape, start, outShape }: Args<"slice">): void {
  checkRank("slice", shape);
  const strides = stridesOf(shape);
  gatherOrScatter(gpu, is16(dtype) ? "gather16" : "gather32", x, out, {
    size: sizeOf(outShape), rank: shape.length, shape: [...outShape], strides, base: start.reduce((s, v, i) => s + v * strides[i]!, 0),
  });
}

export function sliceAssign(gpu: GpuRuntime, { x, dtype, out, shape, start, xShape }: Args<"sliceAssign">): void {
  checkRank("sliceAssign", shape);
  const outStrides = stridesOf(shape);
  if (is16(dtype)) {
    gatherOrScatter(gpu, "scatter16", x, out, {
      size: sizeOf(shape), rank: shape.length, shape: [...xShape], outShape: [...shape], start: [...start], xStrides: stridesOf(xShape),
    });
  } else {
    gatherOrScatter(gpu, "scatter32", x, out, {
      size: sizeOf(xShape), rank: shape.length, shape: [...xShape], strides: outStrides,
      base: start.reduce((s, v, i) => s + v * outStrides[i]!, 0),
    });
  }
}
