// The backends the command line offers, by the name `--backend` takes.

import { createJsBackend, type AnyBackend } from "../index.js";
import { createNodeWasmBackend, createNodeWebGpuBackend } from "../node/index.js";
import { UsageError } from "./args.js";

/** A backend by name: "wasm" (with `threads` worker threads), "webgpu" (Dawn) or "js". */
export async function backendByName(name: string, threads: number, options: { relaxedSimd?: boolean } = {}): Promise<AnyBackend> {
  if (name === "js") return createJsBackend();
  if (name === "wasm") return createNodeWasmBackend({ threads, relaxedSimd: options.relaxedSimd });
  if (name === "webgpu") {
    const backend = await createNodeWebGpuBackend();
    console.error(`olmo: webgpu adapter: ${backend.adapter}`);
    return backend;
  }
  throw new UsageError(`unknown backend "${name}" (expected wasm, webgpu or js)`);
}
