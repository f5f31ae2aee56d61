// olmo-js: the public API of the core bundle (no Node-only imports; see src/node for those).
export { Tensor, scope, keep, memory, setBackend, getBackend, type AnyBackend } from "./core/tensor.js";
export { tensor, zeros, ones, full, fullLike, randn, rand, type CreateOptions, type RandomOptions } from "./core/creation.js";
export { backward, checkpoint, grad, valueAndGrad, noGrad, isGradEnabled, requireGrad, type BackwardOptions } from "./core/autograd.js";
export { Random } from "./core/random.js";
export * from "./core/dtype.js";
export {
  QuantizedWeight, FusedRows, emptyFusedRows, QUANT_GROUP, QUANT_SCHEMES, quantizeHost, dequantizeHost, int4ByteOffset, int4ScaleIndex, quantizeActivationRow, quantizeProblem, quantizedShapes, roundHalfEven, weightBytes,
  type QuantizedHost, type Weight,
} from "./core/quantize.js";
export type { Backend, KernelArgs, KernelName, KernelTable, BinaryOp, MemoryUsage } from "./core/backend.js";
export * from "./ops/index.js";
export { createJsBackend, type JsBackendOptions, type JsBuffer } from "./backends/js/index.js";
export * from "./tokenizer/index.js";
export { createWasmBackend, probeWasmFeatures, spawnWebWorker, WasmOutOfMemoryError } from "./backends/wasm/index.js";
export type { WasmBackend, WasmBackendOptions, WasmBuffer, WasmFeatures, WasmKernelModules, SpawnWorker, PoolWorker } from "./backends/wasm/index.js";
export * from "./model/index.js";
export { loadCheckpoint, loadOlmo, readTextFile, parseJsonObject, checkFits, hfTensorName, CheckpointError, type ModelSource, type LoadOptions, type LoadedCheckpoint } from "./io/checkpoint.js";
export { loadLoraAdapters, parseAdapterConfig, adapterConfig, adapterTensors, loraTensorName, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "./io/lora.js";
export { quantizationConfig, scalesTensorName, folderScheme } from "./io/quantized.js";
export { readSafetensorsHeader, encodeSafetensors, firstNonFinite, type ByteSource, type TensorEntry, type TensorToWrite } from "./io/safetensors.js";
export * from "./optim/index.js";
export * from "./train/index.js";
export {
  hubSource, hubFileUrl, remoteFile, urlSource, HubError, DEFAULT_HUB_ENDPOINT, checkRepoId, checkRevision, checkRepoFilePath,
  type HubOptions, type FetchLike, type ResponseLike,
} from "./io/hub.js";
// Used by the Node cache (olmo-js/node imports the core through this entry, so what it needs is exported here).
export { fetchFailure, isErrorPage, parseContentRange } from "./io/hub.js";
export { blobSource, fileListSource, cachedUrlSource, type CachedUrlOptions } from "./io/browser.js";
export { bytesSource, type FileContents } from "./io/memory.js";
export { createWebGpuBackend, requestWebGpuDevice, webGpuBackendOn, type WebGpuBackend, type WebGpuBackendOptions, type GpuBuffer } from "./backends/webgpu/index.js";
export * from "./eval/index.js";
// The one-line API (text in, text out) and its Web Worker client; olmo-js/node adds NodeOlmoGenerator.
export {
  OlmoGenerator, type BackendChoice, type LoadProgress, type PretrainedOptions, type TextGenerateOptions, type AbortSignalLike,
} from "./api/generator.js";
export { ChatTemplate, type ChatMessage } from "./api/chat.js";
export { createGenerateHandler, type GenerateHandlerOptions, type HttpRequestLike } from "./api/http.js";
export { createWorkerClient, serveGenerator, type WorkerClient, type MessageEndpoint, type WorkerLoadOptions, type WorkerSignal } from "./api/worker.js";
