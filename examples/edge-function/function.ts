// A Vercel-style edge function serving the bundled tiny Shakespeare OLMo: POST /generate answers with
// the new tokens as server-sent events (the protocol: createGenerateHandler, src/api/http.ts). Locally
// it runs in Vercel's edge-runtime sandbox (serve.mjs; README.md has the commands).
//
// What the edge runtime forbids, and how this copes:
//   - compiling WebAssembly (and strings as code) at run time: the kernels are `.wasm?module` imports,
//     which the platform compiles and hands over as WebAssembly.Modules (createWasmBackend's `modules`);
//   - a file system, and a bundle of more than a few MB: the model is fetched from a URL (the
//     deployment's static files), a tensor at a time with Range requests (urlSource);
//   - more than 128 MB of memory: the WASM backend may hold only what that limit leaves beside the
//     JavaScript heap, and the loader checks the model fits before it reads a weight, so a model too
//     large is a 503 with the numbers, not a function killed mid-request;
//   - threads: the backend runs on one thread, on an unshared memory.

import { createGenerateHandler, createWasmBackend, KVCache, loadOlmo, OlmoGenerator, urlSource, type WasmBackend } from "olmo-js";
import simd from "olmo-js/dist/olmo-simd.wasm?module";
import relaxedSimd from "olmo-js/dist/olmo-relaxed-simd.wasm?module";

/** Marks this file as an edge function for Vercel. */
export const config = { runtime: "edge" };

const MiB = 2 ** 20;
// What the function holds beside the WASM memory: the bundle's code, the tokenizer's tables (50k
// tokens and merges) and the rest of the JavaScript heap, as in examples/cloudflare-worker (40 MiB,
// where it holds the model files too), and while it loads, the tensor being read (at most the 9.2 MiB
// embedding here).
const JAVASCRIPT_BYTES = 48 * MiB;
// A generation's activations beside its KV cache: a 250-token prefill of this model peaks 3.8 MiB
// above the weights, its KV cache included.
const ACTIVATION_BYTES = 8 * MiB;

function memoryLimitBytes(): number {
  const setting = process.env.OLMO_MEMORY_LIMIT_MB;
  const mb = setting ? Number(setting) : 128;
  if (!(mb > 0)) throw new Error(`OLMO_MEMORY_LIMIT_MB must be a positive number of MiB, got ${JSON.stringify(setting)}`);
  return mb * MiB;
}

/** The model, read from $OLMO_MODEL_URL, on a WASM backend capped at what the memory limit leaves it. */
async function loadModel(): Promise<OlmoGenerator> {
  const url = process.env.OLMO_MODEL_URL;
  if (!url) throw new Error("OLMO_MODEL_URL is not set: the URL of the model folder (config.json, tokenizer.json, model.safetensors)");
  const limit = memoryLimitBytes();
  const budget = limit - JAVASCRIPT_BYTES;
  const accounting = `the function's ${limit / MiB} MiB, less ${JAVASCRIPT_BYTES / MiB} MiB for JavaScript`;
  if (budget < MiB) throw new Error(`${accounting}, leaves no memory for the model`);
  const backend = await createWasmBackend({ modules: { simd, relaxedSimd }, maxMemoryBytes: budget });
  try {
    const { model, tokenizer } = await loadOlmo(urlSource(url), backend, {
      weightDType: "bf16", // as the file holds them: half of f32's memory
      extraBytes: (c) => KVCache.bytes(c, 1, c.maxPositionEmbeddings) + ACTIVATION_BYTES,
    });
    return new OlmoGenerator(model, tokenizer!, backend, true);
  } catch (e) {
    backend.dispose();
    throw new Error(`${(e as Error).message} (the budget: ${accounting}, leaves ${(budget / MiB).toFixed(1)} MiB for the WASM backend)`);
  }
}

const generateHandler = createGenerateHandler({
  load: loadModel,
  report: (generator) => ({
    kernels: (generator.backend as WasmBackend).relaxedSimd ? "relaxed-simd" : "simd",
    memory_limit_bytes: memoryLimitBytes(),
    javascript_allowance_bytes: JAVASCRIPT_BYTES,
  }),
});

export default function handler(request: Request): Promise<Response> {
  return generateHandler(request);
}
