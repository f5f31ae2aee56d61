// The one-line API in Node: OlmoGenerator (src/api) that also opens folders on disk (a model folder,
// or a training run's --save folder at its latest step) and Hub repos through the Hugging Face cache
// Python shares, and runs the WASM backend on worker_threads and WebGPU on Dawn.

import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import type { AnyBackend } from "../core/tensor.js";
import type { ModelSource } from "../io/checkpoint.js";
import { OlmoGenerator, type PretrainedOptions } from "../api/generator.js";
import { latestCheckpointFolder } from "./checkpoint.js";
import { folderSource } from "./fs.js";
import { cachedHubSource } from "./hub.js";
import { createNodeWasmBackend } from "./wasm.js";
import { createNodeWebGpuBackend } from "./webgpu.js";

/** The tiny Shakespeare OLMo shipped in the package (models/olmo-tiny-shakespeare, beside dist/). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL("../models/olmo-tiny-shakespeare", import.meta.url));

export class NodeOlmoGenerator extends OlmoGenerator {
  /**
   * A path that exists is a folder; an http(s) URL is read with Range requests; "owner/name" that is
   * not a path is a Hub repo, downloaded into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
   * ~/.cache/huggingface/hub; HF_ENDPOINT and HF_HUB_OFFLINE as huggingface_hub reads them).
   */
  protected static override async resolveSource(model: string, options: PretrainedOptions): Promise<ModelSource> {
    if (existsSync(model)) {
      if (!statSync(model).isDirectory()) throw new Error(`NodeOlmoGenerator: ${model} is a file; expected a model folder (config.json, model.safetensors, tokenizer.json)`);
      return folderSource(await latestCheckpointFolder(model));
    }
    if (/^[a-z][a-z\d+.-]*:\/\//i.test(model)) return super.resolveSource(model, options);
    const parts = model.split("/");
    // As `olmo --model`: a mistyped path ("./nope", "models/x" when models/ exists) is not sent to the Hub.
    const looksLikePath = model.startsWith(".") || isAbsolute(model) || model.startsWith("~") || parts.length !== 2 || existsSync(parts[0]!);
    if (looksLikePath || !/^[\w.-]+\/[\w.-]+$/.test(model)) throw new Error(`NodeOlmoGenerator: no such folder: ${model}`);
    return cachedHubSource({
      repo: model, revision: options.revision, endpoint: options.endpoint ?? process.env.HF_ENDPOINT,
      onProgress: options.onProgress && ((file, loaded, total) => options.onProgress!({ stage: "download", file, loaded, total })),
    });
  }

  /** wasm on worker_threads (threads default to the cores, at most 8), webgpu on Dawn (npm install webgpu). */
  protected static override async createBackend(name: "wasm" | "webgpu" | "js", threads: number | undefined): Promise<AnyBackend> {
    if (name === "wasm") return createNodeWasmBackend({ threads: threads ?? Math.min(availableParallelism(), 8) });
    if (name === "webgpu") return createNodeWebGpuBackend();
    return super.createBackend(name, threads);
  }
}
