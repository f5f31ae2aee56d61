// Runs in a browser's module Web Worker (see browser.html): greedy generation on the default model,
// fetched from the page's server with Range requests, on the WASM backend with 1 and 2 threads.
import { createWasmBackend, generate, loadOlmo, spawnWebWorker, urlSource } from "../../dist/index.js";

const result = { hasNodeGlobals: typeof process !== "undefined" || typeof require !== "undefined", crossOriginIsolated: self.crossOriginIsolated };
try {
  for (const threads of [1, 2]) {
    const backend = await createWasmBackend({ threads, spawnWorker: spawnWebWorker, parallelMinWork: 0 });
    const { model, tokenizer } = await loadOlmo(urlSource(new URL("../../models/olmo-tiny-shakespeare", import.meta.url).href), backend);
    const { newIds } = await generate(model, tokenizer.encode("ROMEO:"), { maxNewTokens: 24 });
    result[`ids${threads}`] = newIds;
    result.features = backend.features;
    model.dispose();
    backend.dispose();
  }
} catch (e) {
  result.error = String(e && e.stack || e);
}
postMessage(result);
