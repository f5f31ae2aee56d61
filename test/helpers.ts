// Shared test helpers: closeness checks that report the worst element, fixture loading, and the
// backends under test.

import { readFileSync } from "node:fs";
import { createJsBackend, createWasmBackend, type AnyBackend, type JsBuffer, type Tensor, type WasmBackend, type WebGpuBackend } from "../src/index.js";
import { createNodeWasmBackend, createNodeWebGpuBackend } from "../src/node/index.js";
import { downloadF64 } from "../src/backends/js/index.js";
import type { Tolerance } from "./assert.js";

export { assertClose, type Tolerance } from "./assert.js";

export const here = new URL(".", import.meta.url).pathname;
/** The repository root (tests are bundled into build/test/). */
export const repoRoot = new URL("../../", import.meta.url).pathname;

export function readJson<T>(relativeToRoot: string): T {
  return JSON.parse(readFileSync(repoRoot + relativeToRoot, "utf8")) as T;
}

let wasmBackends: Promise<WasmBackend[]> | null = null;

/**
 * The WASM backend as users get it (the relaxed-SIMD build: createNodeWasmBackend turns on Node 20's
 * flag) on 1 thread and on 2 (worker_threads), created once per test file. The 2-thread one splits even
 * the smallest kernel across its threads, so tiny test shapes exercise the split too.
 */
export function wasmBackendsUnderTest(): Promise<WasmBackend[]> {
  wasmBackends ??= Promise.all([createNodeWasmBackend({ threads: 1 }), createNodeWasmBackend({ threads: 2, parallelMinWork: 0 })]);
  return wasmBackends;
}

let plainWasmBackend: Promise<WasmBackend> | null = null;

/** The plain-SIMD build (hosts without relaxed SIMD) on 2 threads, splitting every kernel. */
export function plainWasmBackendUnderTest(): Promise<WasmBackend> {
  plainWasmBackend ??= createNodeWasmBackend({ threads: 2, parallelMinWork: 0, relaxedSimd: false });
  return plainWasmBackend;
}

let webGpuBackend: Promise<WebGpuBackend> | null = null;

/** The WebGPU backend through Dawn (on Mesa's lavapipe in CI), created once per test file. */
export function webGpuBackendUnderTest(): Promise<WebGpuBackend> {
  webGpuBackend ??= createNodeWebGpuBackend();
  return webGpuBackend;
}

/** Every backend whose kernels are tested against PyTorch; later backends join this list. */
export async function backendsUnderTest(): Promise<{ name: string; backend: AnyBackend; tolerance: Tolerance }[]> {
  const [wasm1, wasm2] = await wasmBackendsUnderTest();
  // WASM kernels compute in f32 like the js backend (sums in other orders, exp and log in f32 in some
  // kernels: relative errors of a few 1e-7), so the js backend's f32 tolerance applies.
  const f32Tolerance = { atol: 2e-5, rtol: 2e-5 };
  return [
    { name: "wasm-1-thread", backend: wasm1!, tolerance: f32Tolerance },
    { name: "wasm-2-threads", backend: wasm2!, tolerance: f32Tolerance },
    { name: "wasm-plain-simd-2-threads", backend: await plainWasmBackendUnderTest(), tolerance: f32Tolerance },
    // WGSL computes in f32 with other summation orders and the GPU's exp / log (a few ulps), like WASM.
    { name: "webgpu", backend: await webGpuBackendUnderTest(), tolerance: f32Tolerance },
    // f64 arithmetic against PyTorch's f64: only summation order and libm differ (about 1e-15
    // relative), so 1e-9 catches anything but rounding. (RoPE is the exception, see golden.test.ts.)
    { name: "js-f64", backend: createJsBackend({ precision: "f64" }), tolerance: { atol: 1e-9, rtol: 1e-9 } },
    // f32 storage: each stored value is rounded to 2^-24 relative (6e-8); the longest chains here
    // (a 33-term dot product, softmax then a weighted sum) grow that to a few 1e-7 of the values'
    // scale, which is O(1) in these fixtures. 2e-5 abs + 2e-5 rel bounds that with margin and still
    // fails any real bug (a wrong index or sign moves results by O(0.1)).
    { name: "js", backend: createJsBackend(), tolerance: { atol: 2e-5, rtol: 2e-5 } },
  ];
}

/** A tensor's values at full precision: the f64 reference backend's doubles, else `data()`. */
export async function values(t: Tensor): Promise<ArrayLike<number>> {
  if (t.backend.name === "js-f64" && t.dtype === "f32") return downloadF64(t.bufferFor("test") as JsBuffer);
  return t.data();
}
