// Runs in a browser's module Web Worker (decode.html, opened by bench/decode-browser.ts): a model
// folder loaded from the page's server (urlSource: a tensor at a time, with Range requests; bf16 kept,
// or quantized as it loads) onto the WASM backend on Web Workers, spanning as many WebAssembly
// memories as it needs, then greedy decoding after a prompt. The setting arrives as the first message.
// With `from: "cache"` or `"opfs"`, the folder goes through the Cache API or the Origin Private File
// System instead (cachedUrlSource's storage): the page of a first visit (`visit: "first"`) downloads it
// into an emptied store and loads it; the next page (a later visit: a new renderer, as for a user)
// reads it from there, timed. With `from: "picked"`, the folder's files as a user picks them
// (<input type="file">: Files the page hands over, read as Blobs by fileListSource).
import { cachedUrlSource, createWasmBackend, fileListSource, generate, loadOlmo, noGrad, spawnWebWorker, urlSource, weightBytes } from "../../dist/index.js";

self.onmessage = async ({ data: setup }) => {
  try {
    await decode(setup);
  } catch (e) {
    postMessage({ kind: "error", message: String((e && e.stack) || e) });
  }
};

async function decode({ modelUrl, quantize, threads, promptLength, newTokens, memoryBytes, from, files, visit }) {
  const url = new URL(modelUrl, self.location.href).href;
  const CACHE = "olmo-js-bench";
  const newBackend = () => createWasmBackend({ threads, spawnWorker: spawnWebWorker, maxMemoryBytes: memoryBytes });
  const stored = () => cachedUrlSource(url, { cacheName: CACHE, storage: from });
  if (visit === "first") {
    if (from === "cache") await caches.delete(CACHE);
    else await (await navigator.storage.getDirectory()).removeEntry(CACHE, { recursive: true }).catch(() => {});
    const first = await newBackend();
    const t0 = performance.now();
    const { model } = await loadOlmo(stored(), first, quantize ? { quantize } : { weightDType: "bf16" });
    postMessage({ kind: "cached", seconds: (performance.now() - t0) / 1000 });
    model.dispose();
    first.dispose();
    return;
  }
  const backend = await newBackend();
  const usage = () => ({ ...backend.memoryUsage(), memories: backend.memoryUsageByMemory().length });
  const started = performance.now();
  let lastReport = 0;
  const onProgress = (read, total) => {
    if (performance.now() - lastReport < 10_000) return;
    lastReport = performance.now();
    postMessage({ kind: "progress", read, total, seconds: (performance.now() - started) / 1000, ...usage() });
  };
  const source = from === "cache" || from === "opfs" ? stored() : from === "picked" ? fileListSource(files, "picked folder") : urlSource(url);
  const { model } = await loadOlmo(source, backend, quantize ? { quantize, onProgress } : { weightDType: "bf16", onProgress });
  const bytes = [...model.weights.values()].reduce((sum, w) => sum + weightBytes(w), 0);
  postMessage({
    kind: "loaded", seconds: (performance.now() - started) / 1000, bytes, layers: model.config.numLayers, relaxedSimd: backend.relaxedSimd,
    threads: backend.threads, crossOriginIsolated: self.crossOriginIsolated, ...usage(),
  });
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919) % model.config.vocabSize);
  const result = await noGrad(() => generate(model, prompt, { maxNewTokens: newTokens, eosTokenId: null }));
  postMessage({
    kind: "done", prefillSeconds: result.prefillSeconds, decodeTokensPerS: (result.newIds.length - 1) / result.decodeSeconds, ids: result.newIds,
    bandwidth: backend.measureReadBandwidth(), ...usage(),
  });
  model.dispose();
  backend.dispose();
}
