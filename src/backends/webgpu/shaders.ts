// The WGSL kernel files (kernels/*.wgsl), embedded as text at build time, and what the backend needs to
// know about each: the fields of its `Params` uniform and its storage bindings, read from the WGSL
// itself so the two sides cannot drift apart (a field the host passes that the shader lacks, or the
// reverse, is an error naming both).
//
// Kernels are grouped in the same op families in every backend, one file per family:
// src/backends/js/<family>.ts, assembly/<family>.ts, src/backends/webgpu/<family>.ts and
// kernels/<family>.wgsl. The families:
//   elementwise    fill, cast, binary, scale, silu, clamp and their backwards, adamw
//   matmul         matmul
//   normalization  layer norm, softmax, log-softmax and their backwards
//   rope           rotary position embedding
//   attention      fused attention and its backward
//   embedding      the embedding gather and its scatter-add backward
//   loss           cross-entropy and its backward
//   layout         sum, broadcast, permute, slice, sliceAssign
//   quantized      quantize, dequantize, the quantized embedding; the quantized matmul (quantized-matmul)
// A WGSL module has one `Params` struct, so kernels of a family whose parameters differ go in
// kernels/<family>-<part>.wgsl files (elementwise-cast.wgsl, normalization-softmax.wgsl, ...).

import { MAX_RANK } from "../codes.js";
import common from "../../../kernels/common.wgsl";
import attention from "../../../kernels/attention.wgsl";
import elementwise from "../../../kernels/elementwise.wgsl";
import elementwiseAdamw from "../../../kernels/elementwise-adamw.wgsl";
import elementwiseCast from "../../../kernels/elementwise-cast.wgsl";
import embedding from "../../../kernels/embedding.wgsl";
import layout from "../../../kernels/layout.wgsl";
import layoutSum from "../../../kernels/layout-sum.wgsl";
import loss from "../../../kernels/loss.wgsl";
import matmul from "../../../kernels/matmul.wgsl";
import normalization from "../../../kernels/normalization.wgsl";
import normalizationSoftmax from "../../../kernels/normalization-softmax.wgsl";
import quantized from "../../../kernels/quantized.wgsl";
import quantizedMatmul from "../../../kernels/quantized-matmul.wgsl";
import rope from "../../../kernels/rope.wgsl";

const SOURCES = {
  attention,
  elementwise,
  "elementwise-adamw": elementwiseAdamw,
  "elementwise-cast": elementwiseCast,
  embedding,
  layout,
  "layout-sum": layoutSum,
  loss,
  matmul,
  normalization,
  "normalization-softmax": normalizationSoftmax,
  quantized,
  "quantized-matmul": quantizedMatmul,
  rope,
};
/** A kernel file, kernels/<name>.wgsl. */
export type KernelFileName = keyof typeof SOURCES;

export interface ParamField {
  name: string;
  /** Offset in 32-bit words within the uniform block. */
  offset: number;
  /** Words: 1 for a scalar, MAX_RANK for a `Dims` (common.wgsl). */
  words: number;
  type: "u32" | "i32" | "f32";
}

export interface KernelFile {
  name: KernelFileName;
  /** common.wgsl followed by the file. */
  code: string;
  params: ParamField[];
  /** Byte size of the Params block. */
  paramBytes: number;
  /** Storage bindings by variable name (the file's and common.wgsl's status buffer). */
  bindings: Map<string, { binding: number; writable: boolean }>;
}

/** Read `struct Params { ... }` and the storage bindings out of a kernel file. */
export function parseKernelFile(name: KernelFileName, source: string): KernelFile {
  const struct = /struct Params\s*\{([^}]*)\}/.exec(source);
  if (!struct) throw new Error(`kernels/${name}.wgsl has no struct Params`);
  const params: ParamField[] = [];
  let offset = 0;
  for (const match of struct[1]!.replace(/\/\/[^\n]*/g, "").matchAll(/(\w+)\s*:\s*(array<[^>]*>|\w+)\s*,/g)) {
    const [, field, rawType] = match;
    const type = rawType!.trim();
    if (type === "u32" || type === "i32" || type === "f32") {
      params.push({ name: field!, offset, words: 1, type });
      offset += 1;
    } else if (type === "Dims") {
      // Uniform arrays are 16-byte aligned.
      offset = Math.ceil(offset / 4) * 4;
      params.push({ name: field!, offset, words: MAX_RANK, type: "u32" });
      offset += MAX_RANK;
    } else {
      throw new Error(`kernels/${name}.wgsl: Params field ${field} has type ${type}; the backend fills u32, i32, f32, Dims`);
    }
  }
  const hasArray = params.some((f) => f.words > 1);
  const paramBytes = Math.ceil((offset * 4) / (hasArray ? 16 : 4)) * (hasArray ? 16 : 4);
  if (paramBytes > 256) throw new Error(`kernels/${name}.wgsl: Params takes ${paramBytes} bytes; each dispatch has a 256-byte slot`);
  const code = `${common}\n${source}`;
  const bindings = new Map<string, { binding: number; writable: boolean }>();
  for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>\s*(\w+)/g)) {
    bindings.set(m[3]!, { binding: Number(m[1]), writable: m[2] === "read_write" });
  }
  return { name, code, params, paramBytes, bindings };
}

const parsed = new Map<KernelFileName, KernelFile>();

/** A kernel file, parsed on first use (so a bad file fails the backend, not the library's import). */
export function kernelFile(name: KernelFileName): KernelFile {
  let found = parsed.get(name);
  if (!found) parsed.set(name, (found = parseKernelFile(name, SOURCES[name])));
  return found;
}

/** Kernel codes the shaders write into the status buffer when they meet a bad id (STATUS_* in common.wgsl). */
export const STATUS_KERNELS: Record<number, { kernel: string; what: string }> = {
  1: { kernel: "embedding", what: "token id" },
  2: { kernel: "crossEntropy", what: "target id" },
};
