// Rotary position embedding of the WebGPU backend (kernels/rope.wgsl). The cos / sin table is computed
// on the host exactly as the reference computes it (kernels/rope.wgsl says why) and kept on the device
// per (theta, head dimension).

import type { KernelArgs } from "../../core/backend.js";
import { grid, type GpuBuffer, type GpuRuntime } from "./runtime.js";

type Args<K extends keyof KernelArgs<GpuBuffer>> = KernelArgs<GpuBuffer>[K];

/** Each device's cos / sin tables by `${theta}:${headDim}`, grown as longer positions are needed. */
const tablesOf = new WeakMap<GpuRuntime, Map<string, { buffer: GpuBuffer; positions: number }>>();

/** The [positions, D/2, 2] table of cos and sin for at least `positionsNeeded` positions. */
function ropeTable(gpu: GpuRuntime, theta: number, headDim: number, positionsNeeded: number): GpuBuffer {
  let tables = tablesOf.get(gpu);
  if (!tables) tablesOf.set(gpu, (tables = new Map()));
  const key = `${theta}:${headDim}`;
  const found = tables.get(key);
  if (found && found.positions >= positionsNeeded) return found.buffer;
  const positions = Math.max(positionsNeeded, 2 * (found?.positions ?? 0));
  const half = headDim / 2;
  // As the reference (src/backends/js/rope.ts): inv_freq and angles rounded to f32 as PyTorch does.
  const invFreq = Array.from({ length: half }, (_, i) => Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim))));
  const table = new Float32Array(positions * half * 2);
  for (let pos = 0; pos < positions; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]!);
      table[(pos * half + i) * 2] = Math.cos(angle);
      table[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  const buffer = gpu.allocate(table.byteLength, `the RoPE table (${positions} positions)`);
  gpu.write(buffer, table);
  if (found) gpu.release(found.buffer);
  tables.set(key, { buffer, positions });
  return buffer;
}

export function rotaryEmbedding(gpu: GpuRuntime, { x, out, batchHeads, seqLen, headDim, positionOffset, theta, inverse }: Args<"rotaryEmbedding">): void {
  const cosSin = ropeTable(gpu, theta, headDim, positionOffset + seqLen);
  gpu.run("rope", "rotaryEmbedding", {
    params: { batchHeads, seqLen, headDim, positionOffset, inverse: inverse ? 1 : 0 },
    buffers: { x, cosSin, out },
    groups: grid(Math.ceil((batchHeads * seqLen * (headDim / 2)) / 256)),
  });
}
