// Runs in a browser's module Web Worker (lora.html, opened by bench/lora-browser.ts): LoRA fine-tuning
// steps as bench/lora.ts runs them in Node. The checkpoint comes from the page's server (urlSource:
// a tensor at a time, with Range requests) onto the WASM backend on Web Workers; every step's loss,
// speed and WebAssembly memory goes back to the page. The setting arrives as the first message.
import { createWasmBackend, loadOlmo, LoraAdapters, loraParameterCount, spawnWebWorker, TokenDataset, Trainer, urlSource } from "../../dist/index.js";

/** What the last step left in memory, kept referenced while the page measures the browser's memory. */
let held = null;

self.onmessage = async ({ data: setup }) => {
  try {
    await train(setup);
  } catch (e) {
    postMessage({ kind: "error", message: String((e && e.stack) || e) });
  }
};

async function train({ modelUrl, steps, seq, threads, memoryBytes, lora, checkpointLayers, lr, ids }) {
  const backend = await createWasmBackend({ threads, spawnWorker: spawnWebWorker, maxMemoryBytes: memoryBytes });
  // The backend keeps its WebAssembly.Memory to itself; a view of any of its buffers reaches the
  // memory's buffer, whose byteLength is what the browser has given the memory so far (its grown
  // pages). With maxMemoryBytes at one memory's most there is one memory, this probe's.
  const probe = backend.allocate("i8", 1);
  const memoryBufferBytes = () => backend.rawBytes(probe, "i8", 1).buffer.byteLength;
  const usage = () => ({ ...backend.memoryUsage(), memories: backend.memoryUsageByMemory().length, memoryBufferBytes: memoryBufferBytes() });

  const started = performance.now();
  const { model } = await loadOlmo(urlSource(new URL(modelUrl, self.location.href).href), backend, { weightDType: "bf16" });
  const config = model.config;
  model.lora = LoraAdapters.create(config, lora, backend, 0);
  postMessage({
    kind: "loaded", seconds: (performance.now() - started) / 1000, layers: config.numLayers, trainable: loraParameterCount(config, lora),
    relaxedSimd: backend.relaxedSimd, threads: backend.threads, crossOriginIsolated: self.crossOriginIsolated, userAgent: navigator.userAgent, ...usage(),
  });
  const dataset = new TokenDataset(Uint16Array.from(ids), null, seq, config.vocabSize);
  const trainer = new Trainer(model, dataset, { steps, batchSize: 1, lr, shuffle: false, checkpointActivations: checkpointLayers });
  for (let step = 0; step < steps; step++) {
    const m = await trainer.trainStep();
    postMessage({ kind: "step", step: m.step, loss: m.loss, tokensPerSecond: m.tokens_per_s, ...usage() });
  }
  postMessage({ kind: "done", ...usage() });
  // The page measures the browser's memory next (performance.measureUserAgentSpecificMemory), with the
  // model, its adapters and the WebAssembly memory still held. Chromium waits for every worker to
  // answer a measurement, and the thread pool's workers sleep in Atomics.wait, which does not answer:
  // the measurement would end at Chromium's 60 s timeout. So the pool's workers stop first. (About one
  // run in four here still takes the 60 s, with the same count; the bench prints the time taken.)
  held = { model, trainer };
  backend.dispose();
}
