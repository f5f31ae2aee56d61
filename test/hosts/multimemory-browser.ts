// The multi-memory check in a browser's module Web Worker (multimemory.html; test/multimemory.test.ts
// drives it in headless Chromium): the model of multimemory-model.ts, built in the worker's own memory
// (bytesSource), on the wasm backend with 2 threads (Web Workers), once in one memory and once capped
// at CAP per memory. Bundled with the library inside as build/hosts/multimemory.js.

import { bytesSource, createWasmBackend, spawnWebWorker, type WasmBackend } from "../../src/index.js";
import { CAP, checkpointFiles, logitsAndGreedy, tenTrainingSteps, type MemoryRun } from "./multimemory-model.js";

export interface BrowserMultimemoryReport {
  one: MemoryRun;
  split: MemoryRun;
  training: { one: { losses: number[]; memories: number }; split: { losses: number[]; memories: number } };
  threads: number;
}

export async function multimemoryInBrowser(threads = 2): Promise<BrowserMultimemoryReport> {
  const source = bytesSource("multimemory", checkpointFiles());
  const run = async <R>(cap: number | undefined, what: (b: WasmBackend) => Promise<R>): Promise<R> => {
    const backend = await createWasmBackend({ threads, spawnWorker: spawnWebWorker, maxMemoryPerInstance: cap });
    try {
      return await what(backend);
    } finally {
      backend.dispose();
    }
  };
  const one = await run(undefined, (b) => logitsAndGreedy(b, source));
  const split = await run(CAP, (b) => logitsAndGreedy(b, source));
  const training = {
    one: await run(undefined, (b) => tenTrainingSteps(b, source)),
    split: await run(CAP, (b) => tenTrainingSteps(b, source)),
  };
  return { one, split, training, threads };
}
