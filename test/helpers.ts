// Shared test helpers: closeness checks that report the worst element, fixture loading, the
// backends under test, and the policy for tests that need a system component (a Vulkan driver, Chromium,
// unzip).

import { readFileSync } from "node:fs";
import { test } from "uvu";
import { createJsBackend, createWasmBackend, type AnyBackend, type JsBuffer, type Tensor, type WasmBackend, type WebGpuBackend } from "../src/index.js";
import { createNodeWasmBackend, createNodeWebGpuBackend } from "../src/node/index.js";
import { downloadF64 } from "../src/backends/js/index.js";
import type { Tolerance } from "./assert.js";
import { CHROMIUM_INSTALL, findChromium, onPath } from "./system.js";

export { assertClose, relativeDifference, type Tolerance } from "./assert.js";

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

/** Whether the CI runs these tests (CI=true, as CI services set it; .ci/run exports it). */
export function inCI(): boolean {
  const ci = process.env.CI ?? "";
  return ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
}

/**
 * The policy for tests that need something the machine provides and npm cannot install (a Vulkan
 * driver, Chromium, unzip): present, it returns true; missing, it says so in ONE loud line on stderr (what is
 * missing, what is skipped, the command that installs it) and returns false, and the caller registers
 * those cases as skipped (`testIf`) while the rest of its file runs. Under CI (CI=true) a missing
 * component is a broken machine, not a reason to skip: it throws, which fails the run.
 */
export async function requireSystemComponent(name: string, probe: () => boolean | Promise<boolean>, installHint: string, skipping: string): Promise<boolean> {
  if (await probe()) return true;
  if (inCI()) throw new Error(`${name} is missing, and CI=true runs every test: ${installHint}`);
  const line = `SKIPPED ${skipping}: no ${name} on this machine. Install it: ${installHint}`;
  console.error(process.stderr.isTTY ? `\x1b[1;33m${line}\x1b[0m` : line);
  return false;
}

/** `test` when `present`; else a stand-in that registers every case as skipped (uvu counts them). */
export function testIf(present: boolean): typeof test {
  if (present) return test;
  return Object.assign((name: string) => test.skip(name), { ...test });
}

export const VULKAN = "Vulkan driver (WebGPU in Node and Deno)";
export const VULKAN_INSTALL =
  "apt-get install libvulkan1, then Mesa 23 or newer: add bookworm-backports to /etc/apt/sources.list.d/debian.sources and " +
  "apt-get install -t bookworm-backports mesa-vulkan-drivers (as .ci/run does)";
let vulkanPresent: Promise<boolean> | null = null;

/** Whether Dawn finds a GPU adapter: on Linux, whether a Vulkan driver is installed (and not hidden by VK_ICD_FILENAMES). */
function dawnHasAdapter(): Promise<boolean> {
  vulkanPresent ??= (async () => {
    try {
      const dawn = (await import("webgpu")) as unknown as { create(flags: string[]): GPU };
      return (await dawn.create([]).requestAdapter()) !== null;
    } catch {
      return false; // Dawn's native addon did not load: no WebGPU here (the SKIPPED line says how to get it)
    }
  })();
  return vulkanPresent;
}

/** Whether the WebGPU cases of `skipping` can run (requireSystemComponent's policy for the Vulkan driver). */
export function requireVulkan(skipping: string): Promise<boolean> {
  return requireSystemComponent(VULKAN, dawnHasAdapter, VULKAN_INSTALL, skipping);
}

let webGpuBackend: Promise<WebGpuBackend | null> | null = null;

/**
 * The WebGPU backend through Dawn (on Mesa's lavapipe in CI), created once per test file; null, said
 * on stderr, on a machine without a Vulkan driver (requireSystemComponent: an error under CI).
 */
export function webGpuBackendUnderTest(skipping = "the WebGPU cases"): Promise<WebGpuBackend | null> {
  webGpuBackend ??= requireVulkan(skipping).then((present) => (present ? createNodeWebGpuBackend() : null));
  return webGpuBackend;
}

/** The Chromium executable for `skipping`, or null (said on stderr; an error under CI). */
export async function chromiumUnderTest(skipping: string): Promise<string | null> {
  const path = findChromium();
  await requireSystemComponent("Chromium", () => path !== null, CHROMIUM_INSTALL, skipping);
  return path;
}

/**
 * Info-ZIP's `unzip`, the reader the demo's ZIP downloads are checked with (what a user unpacks them
 * with), for `skipping`: its path, or null (said on stderr; an error under CI).
 */
export async function unzipUnderTest(skipping: string): Promise<string | null> {
  const path = onPath("unzip");
  await requireSystemComponent("unzip", () => path !== null, "apt-get install unzip", skipping);
  return path;
}

/** Every backend whose kernels are tested against PyTorch; later backends join this list. */
export async function backendsUnderTest(): Promise<{ name: string; backend: AnyBackend; tolerance: Tolerance }[]> {
  const [wasm1, wasm2] = await wasmBackendsUnderTest();
  const webgpu = await webGpuBackendUnderTest("the webgpu backend's golden cases");
  // WASM kernels compute in f32 like the js backend (sums in other orders, exp and log in f32 in some
  // kernels: relative errors of a few 1e-7), so the js backend's f32 tolerance applies.
  const f32Tolerance = { atol: 2e-5, rtol: 2e-5 };
  return [
    { name: "wasm-1-thread", backend: wasm1!, tolerance: f32Tolerance },
    { name: "wasm-2-threads", backend: wasm2!, tolerance: f32Tolerance },
    { name: "wasm-plain-simd-2-threads", backend: await plainWasmBackendUnderTest(), tolerance: f32Tolerance },
    // WGSL computes in f32 with other summation orders and the GPU's exp / log (a few ulps), like WASM.
    // (Left out, said on stderr, on a machine without a Vulkan driver.)
    ...(webgpu ? [{ name: "webgpu", backend: webgpu, tolerance: f32Tolerance }] : []),
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
