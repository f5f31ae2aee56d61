// A Cloudflare Worker serving the bundled tiny Shakespeare OLMo: POST /generate answers with the new
// tokens as server-sent events (the protocol: createGenerateHandler, src/api/http.ts). It runs in
// workerd, Cloudflare's open-source Workers runtime (config.capnp; README.md has the commands).
//
// What a Worker forbids, and how this copes:
//   - compiling WebAssembly at run time: the kernels are module imports, which the runtime compiles
//     and hands over as WebAssembly.Modules (createWasmBackend's `modules`);
//   - a file system: the model's files are data modules of the Worker (ArrayBuffers), read through
//     bytesSource;
//   - more than 128 MB per isolate: the WASM backend may hold only what that limit leaves beside the
//     model files and the JavaScript heap, and the loader checks the model fits before it reads a
//     weight, so a model too large is a 503 with the numbers, not an isolate killed mid-request;
//   - threads (no Atomics.wait; SharedArrayBuffer not guaranteed): the backend runs on one thread, on
//     an unshared memory.

import { bytesSource, createGenerateHandler, createWasmBackend, KVCache, loadOlmo, OlmoGenerator, type WasmBackend } from "olmo-js";
import simd from "olmo-js/dist/olmo-simd.wasm";
import relaxedSimd from "olmo-js/dist/olmo-relaxed-simd.wasm";
import configJson from "olmo-js/models/olmo-tiny-shakespeare/config.json";
import tokenizerJson from "olmo-js/models/olmo-tiny-shakespeare/tokenizer.json";
import weights from "olmo-js/models/olmo-tiny-shakespeare/model.safetensors";

/** The Worker's bindings (config.capnp). */
interface Env {
  /** The isolate's memory limit in MiB (Cloudflare's is 128); from $OLMO_MEMORY_LIMIT_MB, unset: 128. */
  MEMORY_LIMIT_MB?: string | null;
}

const MiB = 2 ** 20;
// What the isolate holds beside the model files and the WASM memory: the bundle's code, the
// tokenizer's tables (50k tokens and merges) and the rest of the JavaScript heap. Node loads the model
// and generates with its V8 heap capped at 29 MiB and fails at 27 (test/edge.test.ts runs it capped
// at this allowance), so this leaves a margin.
const JAVASCRIPT_BYTES = 40 * MiB;
// A generation's activations beside its KV cache: a 250-token prefill of this model peaks 3.8 MiB
// above the weights, its KV cache included.
const ACTIVATION_BYTES = 8 * MiB;

const files = { "config.json": configJson, "tokenizer.json": tokenizerJson, "model.safetensors": weights };
const filesBytes = Object.values(files).reduce((sum, file) => sum + file.byteLength, 0);

function memoryLimitBytes(env: Env): number {
  const mb = env.MEMORY_LIMIT_MB ? Number(env.MEMORY_LIMIT_MB) : 128;
  if (!(mb > 0)) throw new Error(`MEMORY_LIMIT_MB must be a positive number of MiB, got ${JSON.stringify(env.MEMORY_LIMIT_MB)}`);
  return mb * MiB;
}

/** The model on a WASM backend capped at what the memory limit leaves it. */
async function loadModel(env: Env): Promise<OlmoGenerator> {
  const limit = memoryLimitBytes(env);
  const budget = limit - filesBytes - JAVASCRIPT_BYTES;
  const accounting = `the Worker's ${limit / MiB} MiB, less ${(filesBytes / MiB).toFixed(1)} MiB of model files and ${JAVASCRIPT_BYTES / MiB} MiB for JavaScript`;
  if (budget < MiB) throw new Error(`${accounting}, leaves no memory for the model`);
  const backend = await createWasmBackend({ modules: { simd, relaxedSimd }, maxMemoryBytes: budget });
  try {
    const { model, tokenizer } = await loadOlmo(bytesSource("olmo-tiny-shakespeare", files), backend, {
      weightDType: "bf16", // as the file holds them: half of f32's memory
      extraBytes: (config) => KVCache.bytes(config, 1, config.maxPositionEmbeddings) + ACTIVATION_BYTES,
    });
    return new OlmoGenerator(model, tokenizer!, backend, true);
  } catch (e) {
    backend.dispose();
    throw new Error(`${(e as Error).message} (the budget: ${accounting}, leaves ${(budget / MiB).toFixed(1)} MiB for the WASM backend)`);
  }
}

let handler: ((request: Request) => Promise<Response>) | null = null;

export default {
  fetch(request: Request, env: Env): Promise<Response> {
    handler ??= createGenerateHandler({
      load: () => loadModel(env),
      report: (generator) => ({
        kernels: (generator.backend as WasmBackend).relaxedSimd ? "relaxed-simd" : "simd",
        memory_limit_bytes: memoryLimitBytes(env),
        model_files_bytes: filesBytes,
        javascript_allowance_bytes: JAVASCRIPT_BYTES,
      }),
    });
    return handler(request);
  },
};
