// Fused attention of the WebGPU backend (kernels/attention.wgsl), forward and backward. Its buffers
// are bound whole: a q, k or v larger than one storage binding is refused with the sizes.

import type { KernelArgs } from "../../core/backend.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

/** attention.wgsl keeps a query row in workgroup memory and four output dimensions per invocation. */
const MAX_HEAD_DIM = 256;

function attentionParams(kernel: string, g: Omit<Args<"attention">, "q" | "k" | "v" | "out" | "lse">, saveLse: boolean) {
  if (g.headDim > MAX_HEAD_DIM) throw new Error(`webgpu backend: ${kernel} supports head dimensions up to ${MAX_HEAD_DIM}, got ${g.headDim}`);
  if (g.heads % g.kvHeads !== 0) throw new Error(`webgpu backend: ${kernel}: ${g.heads} query heads do not split into ${g.kvHeads} kv heads`);
  if (g.queryLen > g.keyLen || g.keyLen > g.kvCapacity) {
    throw new Error(`webgpu backend: ${kernel}: needs queryLen <= keyLen <= kvCapacity, got ${g.queryLen}, ${g.keyLen}, ${g.kvCapacity}`);
  }
  return {
    batch: g.batch, heads: g.heads, kvHeads: g.kvHeads, queryLen: g.queryLen, keyLen: g.keyLen, kvCapacity: g.kvCapacity,
    headDim: g.headDim, scale: g.scale, causal: g.causal ? 1 : 0, saveLse: saveLse ? 1 : 0,
  };
}

export function attention(gpu: GpuRuntime, { q, k, v, out, lse, ...g }: Args<"attention">): void {
  gpu.run("attention", "attention", {
    params: attentionParams("attention", g, lse !== undefined),
    buffers: { q, k, v, outW: out, lseW: lse ?? gpu.placeholder("lseW") },
    groups: grid(g.batch * g.heads * g.queryLen),
  });
}

export function attentionBackward(gpu: GpuRuntime, { q, k, v, out, lse, dout, dq, dk, dv, ...g }: Args<"attentionBackward">): void {
  const params = attentionParams("attentionBackward", g, false);
  const delta = gpu.allocate(g.batch * g.heads * g.queryLen * 4, "attention backward's row sums");
  gpu.run("attention", "attentionBackwardQueries", {
    params,
    buffers: { q, k, v, out, lse, dout, dq, deltaW: delta },
    groups: grid(g.batch * g.heads * g.queryLen),
  });
  gpu.run("attention", "attentionBackwardKeys", {
    params,
    buffers: { q, k, v, lse, dout, deltaIn: delta, dk, dv },
    groups: grid(g.batch * g.kvHeads * g.kvCapacity),
  });
  gpu.release(delta);
}
