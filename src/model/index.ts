// OLMo: configuration, weights, the model and generation. Loading a checkpoint folder into it is
// src/io's job (loadOlmo in src/io/checkpoint.ts), which sits above this layer.
export { Olmo, KVCache, type PackedSegment } from "./olmo.js";
export { Capture, DEFAULT_MLP_THRESHOLD, type CaptureRequest, type CapturedArray, type CapturedValues } from "./capture.js";
export { generate, type GenerateOptions, type GenerateResult } from "./generate.js";
export {
  chooseToken, banRepeatedNgrams, penalizeRepetitions, topKFilter, topPFilter, processLogits, keptTokens, hostSoftmax, type SamplingOptions, type KeptTokens,
} from "./sampling.js";
export { OLMO_PRESETS, configFromHf, configToHf, parameterCount, validateConfig, ConfigError, type OlmoConfig } from "./config.js";
export { weightShapes, initialWeights, type WeightName, type BlockWeight } from "./weights.js";
export { LoraAdapters, LORA_MODULES, loraTargets, loraParameterCount, type LoraOptions, type LoraPair } from "./lora.js";
