// The WebAssembly kernels of olmo-js: one export per kernel of the backend interface
// (src/core/backend.ts), each taking (tid, threads) last. See src/backends/wasm for the host side.

export { fill, cast, binary, scale, silu, siluBackward, clamp, clampBackward, adamw } from "./elementwise";
export { matmul } from "./matmul";
export { matmulWorkspaceBytes } from "./gemm";
export { layerNorm, layerNormBackward, softmax, softmaxBackward, logSoftmax, logSoftmaxBackward } from "./normalization";
export { rotaryEmbedding } from "./rope";
export { attention, attentionBackward } from "./attention";
export { embedding, embeddingBackward } from "./embedding";
export { quantize, dequantize, matmulQuantized, embeddingQuantized } from "./quantized";
export { crossEntropy, crossEntropyBackward } from "./loss";
export { sum, sumAll, sumPartials, broadcast, permute, slice, sliceAssign } from "./layout";

/** First byte after the static data: the host's allocator starts here. */
export function heapBase(): usize {
  return __heap_base;
}
export { streamRead } from "./diagnostics";
