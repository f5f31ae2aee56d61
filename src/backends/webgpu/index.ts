// The WebGPU backend: every kernel of the backend interface as a WGSL compute shader (kernels/*.wgsl),
// on whatever GPU the host's WebGPU offers: browsers' and Deno's navigator.gpu, or Dawn in Node
// (createNodeWebGpuBackend in olmo-js/node).
//
// Tensors live in GPU buffers (bf16 / f16 packed two per u32, widened in the shaders); kernels are
// recorded into batches and run when a result is read back (runtime.ts). A buffer larger than the
// device's largest storage binding is bound in blocks (blocks.ts) by the kernels that meet such buffers
// in OLMo: the elementwise ones and AdamW, the row kernels (layer norm, softmax, cross-entropy: large
// logits), sums over every axis (gradient norms), the embedding table and its gradient, every
// operand of an unbatched matmul (OLMo-1B's 50304 x 2048 output layer and its gradient), and the
// quantized weights, embedding table and operands of the quantized kernels. Attention and
// layout kernels bind whole buffers and say so when one is too large.
//
// This file: the backend object and its kernel table. The kernels are in one file per op family
// (elementwise.ts, matmul.ts, ...; the families are listed in shaders.ts); device.ts opens the device.

import type { Backend, KernelArgs, KernelName, KernelTable } from "../../core/backend.js";
import { BYTES_PER_ELEMENT, type DType, type HostArray } from "../../core/dtype.js";
import { attention, attentionBackward } from "./attention.js";
import { requestWebGpuDevice, type WebGpuDeviceOptions } from "./device.js";
import { adamw, binary, cast, clamp, clampBackward, fill, scale, silu, siluBackward } from "./elementwise.js";
import { embedding, embeddingBackward } from "./embedding.js";
import { broadcast, permute, slice, sliceAssign, sum } from "./layout.js";
import { crossEntropy, crossEntropyBackward } from "./loss.js";
import { matmul } from "./matmul.js";
import { layerNorm, layerNormBackward, logSoftmax, logSoftmaxBackward, softmax, softmaxBackward } from "./normalization.js";
import { dequantize, embeddingQuantized, matmulQuantized, quantize } from "./quantized.js";
import { rotaryEmbedding } from "./rope.js";
import { GpuRuntime, type GpuBuffer } from "./runtime.js";

export type { GpuBuffer } from "./runtime.js";
export { requestWebGpuDevice } from "./device.js";

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /** Bind at most this many bytes per storage binding (below the device's limit): tests use it to exercise splitting. */
  maxBindingBytes?: number;
  /** Freed buffers kept for reuse, in bytes (default 512 MiB). */
  poolLimitBytes?: number;
}

export interface WebGpuBackend extends Backend<GpuBuffer> {
  /** The adapter in words: vendor, architecture, device and driver description as the host reports them. */
  readonly adapter: string;
  readonly limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
}

/** Every kernel, as a function of the runtime it records into (a missing one does not compile). */
const KERNELS: { readonly [K in KernelName]: (gpu: GpuRuntime, args: KernelArgs<GpuBuffer>[K]) => void } = {
  fill, cast, binary, scale, silu, siluBackward, clamp, clampBackward,
  matmul,
  layerNorm, layerNormBackward, softmax, softmaxBackward, logSoftmax, logSoftmaxBackward,
  rotaryEmbedding,
  attention, attentionBackward,
  embedding, embeddingBackward, crossEntropy, crossEntropyBackward,
  sum, broadcast, permute, slice, sliceAssign,
  adamw,
  quantize, dequantize, matmulQuantized, embeddingQuantized,
};

/** The kernel table of one runtime. */
function kernelsOn(gpu: GpuRuntime): KernelTable<GpuBuffer> {
  const on = <K extends KernelName>(name: K) => (args: KernelArgs<GpuBuffer>[K]) => KERNELS[name](gpu, args);
  return Object.fromEntries((Object.keys(KERNELS) as KernelName[]).map((name) => [name, on(name)])) as unknown as KernelTable<GpuBuffer>;
}

export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const { device, adapter } = await requestWebGpuDevice(options);
  return webGpuBackendOn(device, adapter, options);
}

/** A backend on a device the caller opened (it must have the limits requestWebGpuDevice asks for). */
export function webGpuBackendOn(device: GPUDevice, adapter: string, options: WebGpuBackendOptions = {}): WebGpuBackend {
  const gpu = new GpuRuntime(device, options);
  // Shaders address buffers in 4-byte words: i8 buffers are rounded up to a whole word.
  const bytesOf = (dtype: DType, size: number) => Math.ceil((size * BYTES_PER_ELEMENT[dtype]) / 4) * 4;
  return {
    name: "webgpu",
    adapter,
    limits: { maxStorageBufferBindingSize: gpu.maxBindingBytes, maxBufferSize: device.limits.maxBufferSize },
    allocate: (dtype, size) => gpu.allocate(bytesOf(dtype, size), `a ${dtype} tensor of ${size} elements`),
    free: (buffer) => gpu.release(buffer),
    upload: (buffer, dtype, data) => {
      if (data.byteLength > buffer.bytes) throw new Error(`webgpu backend: upload of ${data.byteLength} bytes into a ${buffer.bytes}-byte ${dtype} buffer`);
      gpu.write(buffer, data);
    },
    download: async (buffer, dtype, size) => {
      const bytes = await gpu.read(buffer, bytesOf(dtype, size));
      return hostArray(dtype, bytes).subarray(0, size) as HostArray;
    },
    kernels: kernelsOn(gpu),
    sync: () => gpu.sync(),
    memoryUsage: () => gpu.memoryUsage(),
    dispose: () => gpu.dispose(),
  };
}

function hostArray(dtype: DType, bytes: ArrayBuffer): HostArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(bytes);
    case "i32":
      return new Int32Array(bytes);
    case "bf16":
    case "f16":
      return new Uint16Array(bytes);
    case "i8":
      return new Int8Array(bytes);
  }
}
