// The kernels' WebAssembly binary as the host needs it. The build embeds one binary per instruction
// set (plain SIMD, relaxed SIMD) with an unshared imported memory; the threaded backend needs the
// same code importing a shared memory, which is one bit of the import's limits flags. The kernels
// themselves use no atomics (the thread pool synchronises from JavaScript), so flipping that bit is
// the whole difference between the two builds asc would produce (checked by test/wasm.test.ts).

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
