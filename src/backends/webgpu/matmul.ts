// Matrix multiply of the WebGPU backend (kernels/matmul.wgsl): the tiled kernel, or a GEMV for one
// row (decoding), with bf16 / f16 weights widened in the shader. Operands larger than one storage
// binding are split into blocks along m, k or n, so OLMo-1B's 50304 x 2048 output layer and its
// gradient run on devices with 128 MiB bindings.

import type { KernelArgs } from "../../core/backend.js";
import { BYTES_PER_ELEMENT } from "../../core/dtype.js";
import { formatBytes } from "../../core/format.js";
import { DTYPE_CODE } from "../codes.js";
import { blocksOf, rowRange } from "./blocks.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

export function matmul(gpu: GpuRuntime, args: Args<"matmul">): void {
  let { batch, m, aBatchStride } = args;
  const { a, b, out, bDType, k, n, transA, transB, bBatchStride } = args;
  // A batch of row blocks times one shared weight ([B, T, C] @ W) is one [B * T, C] product.
  if (batch > 1 && bBatchStride === 0 && !transA && aBatchStride === m * k) {
    m *= batch;
    batch = 1;
    aBatchStride = 0;
  }
  const strides = {
    aBatchStride, aRowStride: transA ? 1 : k, aColStride: transA ? m : 1,
    bBatchStride, bRowStride: transB ? 1 : n, bColStride: transB ? k : 1,
  };
  const constants = { B_DTYPE: DTYPE_CODE[bDType] };
  const max = gpu.maxBindingBytes;
  const bBytes = BYTES_PER_ELEMENT[bDType];
  // An operand larger than one binding is bound in blocks of its stored rows: A [M, K] by m, A^T
  // stored [K, M] by k, B [K, N] by k, B^T stored [N, K] by n; out [M, N] by m.
  const aSplit = a.bytes <= max ? null : transA ? "k" : "m";
  const bSplit = b.bytes <= max ? null : transB ? "n" : "k";
  const splitM = aSplit === "m" || out.bytes > max;
  const splitK = aSplit === "k" || bSplit === "k";
  if ((splitM || splitK || bSplit) && batch > 1) {
    throw new Error(`webgpu backend: matmul: a batch of ${batch} products with an operand over one storage binding (${formatBytes(max)}) is not split`);
  }
  // Blocks along each axis, for the operands split along it (none: one block).
  const mBlocks = blocksOf(gpu, "matmul (blocks of m)", m, [...(aSplit === "m" ? [[a, k * 4] as [GpuBuffer, number]] : []), [out, n * 4]]);
  const kBlocks = blocksOf(gpu, "matmul (blocks of k)", k, [
    ...(aSplit === "k" ? [[a, m * 4] as [GpuBuffer, number]] : []), ...(bSplit === "k" ? [[b, n * bBytes] as [GpuBuffer, number]] : []),
  ]);
  const nBlocks = blocksOf(gpu, "matmul (blocks of n)", n, bSplit === "n" ? [[b, k * bBytes]] : []);
  for (const mb of mBlocks) {
    for (const kb of kBlocks) {
      for (const nb of nBlocks) {
        const params = {
          m: mb.count, n: nb.count, k: kb.count, ...strides, outColumns: n, nOffset: nb.start,
          aRowOffset: aSplit === "m" ? 0 : mb.start, aKOffset: aSplit === "k" ? 0 : kb.start, bKOffset: bSplit === "k" ? 0 : kb.start,
          accumulate: kb.start > 0 ? 1 : 0,
        };
        const buffers = {
          a: aSplit === "m" ? rowRange(a, k * 4, mb) : aSplit === "k" ? rowRange(a, m * 4, kb) : a,
          b: bSplit === "n" ? rowRange(b, k * bBytes, nb) : bSplit === "k" ? rowRange(b, n * bBytes, kb) : b,
          out: rowRange(out, n * 4, mb),
        };
        if (mb.count === 1 && strides.bRowStride === 1) {
          gpu.run("matmul", "gemvRows", { params, buffers, groups: grid(Math.ceil(nb.count / 8), batch), constants });
        } else if (mb.count === 1 && strides.bColStride === 1) {
          gpu.run("matmul", "gemvCols", { params, buffers, groups: grid(Math.ceil(nb.count / 256), batch), constants });
        } else {
          const groups: [number, number, number] = [Math.ceil(nb.count / 64), Math.ceil(mb.count / 64), batch];
          if (groups.some((g) => g > 65535)) throw new Error(`webgpu backend: matmul of [${batch}, ${m}, ${k}] x [${k}, ${n}] needs more than 65535 workgroups in one dimension`);
          gpu.run("matmul", "matmul", { params, buffers, groups, constants });
        }
      }
    }
  }
}
