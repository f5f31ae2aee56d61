// The kernels' WebAssembly module as the host needs it. The build embeds one binary per instruction
// set (plain SIMD, relaxed SIMD) with an unshared imported memory; the threaded backend needs the
// same code importing a shared memory, which is one bit of the import's limits flags. The kernels
// themselves use no atomics (the thread pool synchronises from JavaScript), so flipping that bit is
// the whole difference between the two builds asc would produce (checked by test/wasm.test.ts).
//
// Hosts that refuse to compile WebAssembly at run time (Cloudflare Workers, Vercel's edge runtime: both
// hand a .wasm import over as a WebAssembly.Module instead) pass the two builds compiled
// (options.modules, from olmo-js/dist/olmo-simd.wasm and olmo-relaxed-simd.wasm, which are these same
// binaries). Those import an unshared memory, so they run on one thread: nothing of SharedArrayBuffer or
// Atomics is touched then.

import type { WasmFeatures } from "./features.js";
import { WASM_KERNEL_NAMES, WASM_QUERIES } from "./kernel-signatures.generated.js";
import plainKernels from "../../../build/wasm/kernels.wasm";
import relaxedKernels from "../../../build/wasm/kernels-relaxed.wasm";

/** The kernels compiled by the caller: olmo-js/dist/olmo-simd.wasm and olmo-js/dist/olmo-relaxed-simd.wasm. */
export interface WasmKernelModules {
  /** The plain-SIMD build (every host with SIMD runs it). */
  simd?: WebAssembly.Module;
  /** The relaxed-SIMD build (fused multiply-adds): taken where the host has relaxed SIMD. */
  relaxedSimd?: WebAssembly.Module;
}

/** The module a backend runs, whether it is the relaxed-SIMD build, and whether its memory is shared. */
export interface ChosenKernels {
  module: WebAssembly.Module;
  relaxed: boolean;
  shared: boolean;
}

/**
 * The kernels for a backend of `threads` threads: the caller's compiled modules when given (on one
 * thread), else the embedded binary compiled here, its memory shared where the host can share one.
 * Relaxed SIMD is taken where the host has it and `relaxedSimd` is not false.
 */
export async function chooseKernels(features: WasmFeatures, threads: number, relaxedSimd: boolean | undefined, given?: WasmKernelModules): Promise<ChosenKernels> {
  const relaxed = relaxedSimd !== false && features.relaxedSimd;
  if (!given) {
    const shared = features.threads;
    const binary = relaxed ? relaxedKernels : plainKernels;
    return { module: await WebAssembly.compile(shared ? withSharedMemory(binary) : binary), relaxed, shared };
  }
  if (threads > 1) {
    throw new Error(
      "wasm backend: options.modules run on 1 thread (their memory is not shared); more threads need the backend's own build, " +
        "which it compiles from its embedded bytes (leave options.modules out where the host may compile WebAssembly)",
    );
  }
  if (given.simd === undefined && given.relaxedSimd === undefined) throw new Error("wasm backend: options.modules holds neither simd nor relaxedSimd");
  const [module, isRelaxed, name] = relaxed && given.relaxedSimd ? [given.relaxedSimd, true, "relaxedSimd"] : [given.simd, false, "simd"];
  if (!module) {
    const why = features.relaxedSimd ? "options.relaxedSimd is false" : "this host has no relaxed SIMD";
    throw new Error(`wasm backend: options.modules has only the relaxed-SIMD build, and ${why}: pass modules.simd too (olmo-js/dist/olmo-simd.wasm)`);
  }
  checkKernelExports(module, name);
  return { module, relaxed: isRelaxed, shared: false };
}

/** Throws, naming the file to pass, unless `module` exports every kernel (a wrong .wasm would fail later, less clearly). */
function checkKernelExports(module: WebAssembly.Module, name: string): void {
  const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  const missing = [...WASM_KERNEL_NAMES, ...WASM_QUERIES].filter((k) => !exported.has(k));
  if (missing.length > 0) {
    const file = name === "simd" ? "olmo-simd.wasm" : "olmo-relaxed-simd.wasm";
    throw new Error(
      `wasm backend: options.modules.${name} is not olmo-js's kernels (it lacks the exports ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}): ` +
        `pass olmo-js/dist/${file} of this same olmo-js version`,
    );
  }
}

/** A copy of `binary` whose imported memory is declared shared. */
export function withSharedMemory(binary: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = Uint8Array.from(binary);
  let at = 8; // after the magic number and version
  const leb = (): number => {
    let value = 0, shift = 0, byte: number;
    do {
      byte = out[at++]!;
      value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return value >>> 0;
  };
  const skipName = () => {
    const length = leb();
    at += length;
  };
  while (at < out.length) {
    const section = out[at++]!;
    const size = leb();
    const end = at + size;
    if (section === 2) {
      // The import section: (module name, field name, kind, description) per import.
      for (let count = leb(); count > 0; count--) {
        skipName();
        skipName();
        const kind = out[at++]!;
        if (kind === 2) {
          // A memory: limits flags (bit 0: has a maximum, bit 1: shared), then the sizes.
          out[at] = out[at]! | 0x02;
          return out;
        }
        if (kind === 0) leb(); // function: type index
        else if (kind === 1) { at++; const flags = out[at++]!; leb(); if (flags & 1) leb(); } // table
        else if (kind === 3) at += 2; // global: value type, mutability
        else throw new Error(`wasm kernels: unknown import kind ${kind}`);
      }
    }
    at = end;
  }
  throw new Error("wasm kernels: the binary imports no memory");
}
