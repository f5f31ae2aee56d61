// The backends the command line offers, by the name `--backend` takes.

import { createJsBackend, type AnyBackend } from "../index.js";
import { createNodeWasmBackend, createNodeWebGpuBackend } from "../node/index.js";
import { UsageError } from "./args.js";

/** Options of the wasm backend the command line sets (WasmBackendOptions). */
export interface WasmCliOptions {
  relaxedSimd?: boolean;
  /** Bytes one WebAssembly memory may hold (--max-memory-per-instance); a larger model spans several. */
  maxMemoryPerInstance?: number;
  /** Bytes all memories may hold together (default: the machine's memory). */
  maxMemoryBytes?: number;
}

/** A backend by name: "wasm" (with `threads` worker threads), "webgpu" (Dawn) or "js". */
export async function backendByName(name: string, threads: number, options: WasmCliOptions = {}): Promise<AnyBackend> {
  if (name === "js") return createJsBackend();
  if (name === "wasm") {
    const { relaxedSimd, maxMemoryPerInstance, maxMemoryBytes } = options;
    return createNodeWasmBackend({ threads, relaxedSimd, maxMemoryPerInstance, ...(maxMemoryBytes === undefined ? {} : { maxMemoryBytes }) });
  }
  if (name === "webgpu") {
    const backend = await createNodeWebGpuBackend();
    console.error(`olmo: webgpu adapter: ${backend.adapter}`);
    return backend;
  }
  throw new UsageError(`unknown backend "${name}" (expected wasm, webgpu or js)`);
}
