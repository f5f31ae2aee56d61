// The boundary between the host and the WebAssembly kernels: how a kernel is called, and the check
// every buffer argument passes first.
//
// A WebAssembly export takes numbers by position, so `matmul(a, b, out, ...)` called with two numbers
// swapped would still run, on the wrong data. Here each kernel's parameter list is declared once, in
// its AssemblyScript signature (assembly/), and the host side is generated from it
// (kernel-signatures.generated.ts, rewritten from assembly/ by scripts/build.mjs whenever it differs;
// test/wasm-boundary.test.ts checks that the committed copy is current and that the binary's exports
// match it). The adapters in index.ts pass arguments by the kernel's own
// parameter names, and the generated `call` / `write` put them in the export's order. So:
//   - the order of arguments is never written by hand: it cannot be wrong in one adapter;
//   - a missing, extra or misnamed argument does not compile (the object is checked against the
//     kernel's parameter names, excess properties included), and neither does a buffer where a number
//     goes or a number where a buffer goes (Pointer parameters take a Region, the others numbers);
//   - what remains is putting a value under the wrong name, `{ x: out, out: x }`: an edit of names a
//     reader sees, not an order mistake. Where both values have the same type and size, the checks
//     below cannot tell; the op tests (test/wasm.test.ts against the reference backend on every op,
//     test/golden.test.ts against PyTorch) see the wrong values.
//
// Every Pointer parameter also comes with the bytes the kernel touches through it (BytesNeeded: one
// number per buffer parameter, required by the type, so none can be left out), and checkRegions
// refuses the call, naming the kernel and the argument, when a buffer is smaller: a wrong call fails
// here instead of reading or overwriting its neighbours in the shared memory.
//
// Decode calls a few hundred kernels per token, so the conversion stays cheap: the generated `call`
// reads each named field straight into the export's arguments (no array, no spread), and the check
// walks a fixed list of parameter names.

import type { WasmKernelArguments, WasmKernelName, WasmKernelPointers } from "./kernel-signatures.generated.js";
import type { KernelBinding, KernelExport, Region } from "./kernel-binding.js";

export type { KernelBinding, KernelExport, Region } from "./kernel-binding.js";

/** The bytes a call touches through each buffer parameter of kernel K. */
export type BytesNeeded<K extends WasmKernelName> = { readonly [P in WasmKernelPointers[K]]: number };

/** Throws unless each buffer argument holds the bytes the call touches through it. */
export function checkRegions<K extends WasmKernelName>(
  kernel: KernelBinding<WasmKernelArguments[K], WasmKernelPointers[K]>, args: WasmKernelArguments[K], needed: BytesNeeded<K>,
): void {
  const regions = args as unknown as Record<string, Region | undefined>;
  const bytesNeeded = needed as Record<string, number>;
  for (const name of kernel.pointers) {
    const region = regions[name], bytes = bytesNeeded[name]!;
    if (region === undefined) {
      if (kernel.optional.includes(name)) continue;
      throw new Error(`wasm backend: ${kernel.name}: buffer "${name}" is missing`);
    }
    if (!(region.bytes >= bytes)) {
      throw new Error(`wasm backend: ${kernel.name}: buffer "${name}" holds ${region.bytes} bytes but the call needs ${bytes}`);
    }
  }
}
