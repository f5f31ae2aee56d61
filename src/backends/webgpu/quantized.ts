// Quantized-weight kernels of the WebGPU backend (kernels/quantized.wgsl, kernels/quantized-matmul.wgsl):
// quantize, dequantize, the quantized matmul (decode GEMV or tiled) and the quantized embedding. The
// schemes and their exact arithmetic are src/core/quantize.ts's; the shaders compute the same bits,
// up to the order of the f32 sums of the matmul.
//
// Shapes: W [N, K] quantized (values i8, four bytes to a GPU word; scales f32 [N] for int8, f16
// [N, K/32] for int4, whose rows are interleaved four at a time), a [M, K], out [M, N]; the embedding
// gathers rows of a quantized [V, C] table.
// A weight larger than one storage binding (OLMo-1B's 50304 x 2048 embedding and output layer) is
// bound in blocks of its rows (blocks.ts), as are a and out of the matmul.

import type { KernelArgs } from "../../core/backend.js";
import { BYTES_PER_ELEMENT } from "../../core/dtype.js";
import { QUANT_GROUP, quantizeProblem, type QuantScheme } from "../../core/quantize.js";
import { DTYPE_CODE, QUANT_CODE } from "../codes.js";
import { blocksOf, rowRange } from "./blocks.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

/** Bytes per row of a quantized [rows, cols] weight's values and scales. */
function rowBytes(scheme: QuantScheme, cols: number): { values: number; scales: number } {
  return scheme === "int8" ? { values: cols, scales: 4 } : { values: cols / 2, scales: (cols / QUANT_GROUP) * 2 };
}

/** Rows a binding must keep together: int4 interleaves its rows four at a time (src/core/quantize.ts). */
function rowsTogether(scheme: QuantScheme): number {
  return scheme === "int4" ? 4 : 1;
}

function checkScheme(kernel: string, scheme: QuantScheme, rows: number, cols: number): void {
  const problem = rows === 0 || cols === 0 ? null : quantizeProblem(scheme, rows, cols);
  if (problem) throw new Error(`webgpu backend: ${kernel}: ${problem}`);
}

/** quantized.wgsl's Params, with the fields a kernel does not use at 0. */
function params(p: { rows: number; cols: number; vocab?: number; rowStart?: number; blockRows?: number }) {
  return { vocab: 0, rowStart: 0, blockRows: 0, ...p };
}

export function quantize(gpu: GpuRuntime, { x, xDType, values, scales, scheme, rows, cols }: Args<"quantize">): void {
  checkScheme("quantize", scheme, rows, cols);
  const bytes = rowBytes(scheme, cols);
  const constants = { SCHEME: QUANT_CODE[scheme], X_DTYPE: DTYPE_CODE[xDType] };
  const operands: [GpuBuffer, number][] = [[x, cols * BYTES_PER_ELEMENT[xDType]], [values, bytes.values], [scales, bytes.scales]];
  for (const block of blocksOf(gpu, "quantize", rows, operands, rowsTogether(scheme))) {
    const buffers = { x: rowRange(x, operands[0]![1], block), valuesOut: rowRange(values, bytes.values, block), scalesOut: rowRange(scales, bytes.scales, block) };
    const p = params({ rows: block.count, cols });
    if (scheme === "int8") {
      gpu.run("quantized", "quantizeRowScales", { params: p, buffers: { x: buffers.x, scalesOut: buffers.scalesOut }, groups: grid(block.count), constants });
      gpu.run("quantized", "quantizeInt8Values", { params: p, buffers, groups: grid(Math.ceil(Math.ceil((block.count * cols) / 4) / 256)), constants });
    } else {
      const pairs = Math.ceil((block.count * cols) / QUANT_GROUP / 2);
      gpu.run("quantized", "quantizeInt4", { params: p, buffers, groups: grid(Math.ceil(pairs / 256)), constants });
    }
  }
}

export function dequantize(gpu: GpuRuntime, { values, scales, out, scheme, rows, cols }: Args<"dequantize">): void {
  checkScheme("dequantize", scheme, rows, cols);
  const bytes = rowBytes(scheme, cols);
  for (const block of blocksOf(gpu, "dequantize", rows, [[values, bytes.values], [scales, bytes.scales], [out, cols * 4]], rowsTogether(scheme))) {
    gpu.run("quantized", "dequantize", {
      params: params({ rows: block.count, cols }),
      buffers: { values: rowRange(values, bytes.values, block), scales: rowRange(scales, bytes.scales, block), out: rowRange(out, cols * 4, block) },
      groups: grid(block.count),
      constants: { SCHEME: QUANT_CODE[scheme] },
    });
  }
}

export function embeddingQuantized(gpu: GpuRuntime, { values, scales, scheme, ids, out, count, vocab, dim }: Args<"embeddingQuantized">): void {
  checkScheme("embeddingQuantized", scheme, vocab, dim);
  const bytes = rowBytes(scheme, dim);
  for (const block of blocksOf(gpu, "embeddingQuantized", vocab, [[values, bytes.values], [scales, bytes.scales]], rowsTogether(scheme))) {
    gpu.run("quantized", "embeddingQuantized", {
      params: params({ rows: count, cols: dim, vocab, rowStart: block.start, blockRows: block.count }),
      buffers: { values: rowRange(values, bytes.values, block), scales: rowRange(scales, bytes.scales, block), ids, out, status: gpu.status },
      groups: grid(count),
      constants: { SCHEME: QUANT_CODE[scheme] },
    });
  }
}

export function matmulQuantized(gpu: GpuRuntime, { a, values, scales, out, scheme, m, k, n }: Args<"matmulQuantized">): void {
  checkScheme("matmulQuantized", scheme, n, k);
  if (m === 0 || n === 0) return;
  const bytes = rowBytes(scheme, k);
  const blocks = Math.ceil(k / QUANT_GROUP);
  const constants = { SCHEME: QUANT_CODE[scheme] };
  // a and out in blocks of rows, W in blocks of its rows (out's columns); each m block's activations are
  // quantized once, into scratch buffers, and read by every n block.
  const mBlocks = blocksOf(gpu, "matmulQuantized (blocks of m)", m, [[a, k * 4], [out, n * 4]]);
  const nBlocks = blocksOf(gpu, "matmulQuantized (blocks of n)", n, [[values, bytes.values], [scales, bytes.scales]], rowsTogether(scheme));
  for (const mb of mBlocks) {
    const activations = gpu.allocate(mb.count * blocks * QUANT_GROUP, "matmulQuantized's quantized activations");
    const activationScales = gpu.allocate(mb.count * blocks * 4, "matmulQuantized's activation scales");
    const shape = { m: mb.count, k, blocks, outColumns: n };
    gpu.run("quantized-matmul", "quantizeActivations", {
      params: { ...shape, n: 0, nOffset: 0 },
      buffers: { a: rowRange(a, k * 4, mb), activationsOut: activations, activationScalesOut: activationScales },
      groups: grid(Math.ceil((mb.count * blocks) / 256)),
      constants,
    });
    for (const nb of nBlocks) {
      const run = {
        params: { ...shape, n: nb.count, nOffset: nb.start },
        buffers: {
          activations, activationScales,
          values: rowRange(values, bytes.values, nb), scales: rowRange(scales, bytes.scales, nb), out: rowRange(out, n * 4, mb),
        },
        constants,
      };
      if (mb.count === 1) {
        gpu.run("quantized-matmul", "gemvQuantized", { ...run, groups: grid(Math.ceil(nb.count / 8)) });
      } else {
        const groups: [number, number, number] = [Math.ceil(nb.count / 64), Math.ceil(mb.count / 64), 1];
        if (groups[1] > 65535) throw new Error(`webgpu backend: matmulQuantized of [${m}, ${k}] x [${n}, ${k}]^T needs more than 65535 workgroups in one dimension`);
        gpu.run("quantized-matmul", "matmulQuantized", { ...run, groups });
      }
    }
    // Commands recorded before a release run before any later use of the pooled buffer (runtime.ts).
    gpu.release(activations);
    gpu.release(activationScales);
  }
}
