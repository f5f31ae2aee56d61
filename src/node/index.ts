// olmo-js/node: the Node-only pieces (worker_threads for the WASM backend's thread pool, folders on disk,
// the Hub cache, Dawn for WebGPU, training checkpoints, the one-line API with folders and Hub ids).

export { spawnNodeWorker, createNodeWasmBackend } from "./wasm.js";
export { NodeOlmoGenerator, DEFAULT_MODEL_DIR } from "./generator.js";
export { fileSource, folderSource, writeFileAtomic, writeFolderAtomic } from "./fs.js";
export {
  saveTrainingCheckpoint, CheckpointRun, loadTrainableModel, restoreTrainerState, latestCheckpointFolder, readLatest, isLoraFolder, type TrainerState,
} from "./checkpoint.js";
export { cachedHubSource, defaultHubCacheDir, type CachedHubOptions } from "./hub.js";
export { createNodeWebGpuBackend, type NodeWebGpuBackend } from "./webgpu.js";
export { readTokenDataset, writeTokenData, type TokenDatasetFiles } from "./data.js";
export { saveLoraAdapter } from "./lora.js";
export { saveModelFolder } from "./model-folder.js";
