// Every op of the tensor core. Each op checks its inputs, runs one kernel of the tensors' backend and
// records its backward next to its forward (see core/autograd.ts).
export { add, sub, mul, scale, silu, clamp, cast } from "./elementwise.js";
export { matmul, type MatmulOptions } from "./matmul.js";
export { layerNorm, softmax, logSoftmax } from "./normalization.js";
export { rotaryEmbedding, type RotaryOptions } from "./rope.js";
export { attention, type AttentionOptions } from "./attention.js";
export { embedding } from "./embedding.js";
export { crossEntropy, negativeLogLikelihood, type CrossEntropyOptions } from "./loss.js";
export { sum, mean, type ReduceOptions } from "./reduce.js";
export { reshape, permute, transpose, slice, concat, writeSlice } from "./shape.js";
export { quantize, dequantize, linear } from "./quantized.js";
export { loraLinear } from "./lora.js";
