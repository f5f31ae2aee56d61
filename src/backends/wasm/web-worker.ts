// Worker threads for the WASM backend on web-style hosts (browsers, Deno, Bun, edge workers): a module
// Web Worker started from a Blob URL holding the pool's worker program (see pool.ts). Browsers need
// cross-origin isolation for the shared memory; without it the backend runs one thread.

import type { PoolWorker } from "./pool.js";

export function spawnWebWorker(source: string): PoolWorker {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => {
      worker.onmessage = (event) => listener(event.data);
      worker.onerror = (event) => listener(`error: ${event.message}`);
    },
    terminate: () => worker.terminate(),
  };
}
