// What this host's WebAssembly can do, probed rather than assumed: each probe is a tiny module that
// uses one feature and is only checked with WebAssembly.validate.

export interface WasmFeatures {
  /** 128-bit SIMD (required by the kernels). */
  simd: boolean;
  /** Shared memory and atomics with SharedArrayBuffer (browsers need cross-origin isolation). */
  threads: boolean;
  /** Relaxed SIMD (fused multiply-add and friends): the relaxed builds need it (WasmBackendOptions.relaxedSimd). */
  relaxedSimd: boolean;
}

const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
// (func (result v128) (local v128) local.get 0 local.get 0 f32x4.add)
const SIMD_PROBE = new Uint8Array([
  ...header, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x01, 0x01, 0x7b, 0x20, 0x00, 0x20, 0x00, 0xfd, 0xe4, 0x01, 0x0b,
]);
// (func (result v128) (local v128) local.get 0 local.get 0 local.get 0 f32x4.relaxed_madd)
const RELAXED_SIMD_PROBE = new Uint8Array([
  ...header, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0f, 0x01, 0x0d, 0x01, 0x01, 0x7b, 0x20, 0x00, 0x20, 0x00, 0x20, 0x00, 0xfd, 0x85, 0x02, 0x0b,
]);

function sharedMemoryWorks(): boolean {
  if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") return false;
  // Browsers without cross-origin isolation hide SharedArrayBuffer or refuse shared memories.
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

export function probeWasmFeatures(): WasmFeatures {
  const hasWasm = typeof WebAssembly === "object" && typeof WebAssembly.validate === "function";
  return {
    simd: hasWasm && WebAssembly.validate(SIMD_PROBE),
    threads: hasWasm && sharedMemoryWorks(),
    relaxedSimd: hasWasm && WebAssembly.validate(RELAXED_SIMD_PROBE),
  };
}
