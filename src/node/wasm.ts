// The WASM backend's thread pool on worker_threads.

import { availableParallelism, totalmem } from "node:os";
import { Worker } from "node:worker_threads";
import { setFlagsFromString } from "node:v8";
import { createWasmBackend, probeWasmFeatures, type PoolWorker, type WasmBackend, type WasmBackendOptions } from "../backends/wasm/index.js";

/** A worker_threads worker running `source`; once unref'd, a finished program exits on its own. */
export function spawnNodeWorker(source: string): PoolWorker {
  // The worker program is CommonJS; a parent started with --input-type=module would make it a module.
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith("--input-type"));
  const worker = new Worker(source, { eval: true, execArgv });
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => {
      worker.on("message", listener);
      worker.on("error", (error) => listener(`error: ${error.message}`));
    },
    unref: () => worker.unref(),
    terminate: () => void worker.terminate(),
  };
}

/**
 * The WASM SIMD backend with worker_threads; threads default to the machine's cores (at most 8), and
 * the memory all its WebAssembly memories may hold together to the machine's (so a model larger than
 * the machine fails the loader's fit check before loading, with the numbers).
 * Unless relaxedSimd is false, Node 20 (which has relaxed SIMD only behind a V8 flag) gets that flag
 * turned on for this process first, so it runs the relaxed-SIMD build like Node 22 and later do.
 */
export function createNodeWasmBackend(options: Omit<WasmBackendOptions, "spawnWorker"> = {}): Promise<WasmBackend> {
  if (options.relaxedSimd !== false && !probeWasmFeatures().relaxedSimd) setFlagsFromString("--experimental-wasm-relaxed-simd");
  return createWasmBackend({ threads: Math.min(availableParallelism(), 8), maxMemoryBytes: totalmem(), ...options, spawnWorker: spawnNodeWorker });
}
