// The memory arena: every tensor of the wasm backend lives inside the one WebAssembly memory, so
// kernels read and write it in place with no copy per op.
//
// Blocks are 64-byte aligned (a cache line; v128 loads want 16). Freed blocks go to a free list per
// size and are reused by the next allocation of that size (a training step allocates the same sizes
// every step, so memory stays flat); otherwise the smallest larger free block is taken, and only then
// does the top of the heap move up, growing the memory. A WebAssembly memory holds at most 4 GiB: past
// that, allocation fails with the numbers.

import { formatBytes } from "../../core/format.js";

export const WASM_PAGE = 65536;
export const MAX_WASM_BYTES = 65536 * WASM_PAGE; // 4 GiB
const ALIGN = 64;

export class WasmOutOfMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WasmOutOfMemoryError";
  }
}

export class Arena {
  private top: number;
  private readonly free = new Map<number, number[]>();
  /** Bytes in live blocks (as requested, rounded to the alignment). */
  inUse = 0;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
    private readonly limit = MAX_WASM_BYTES,
  ) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** Start of a block of at least `bytes` bytes. `what` describes it for the out-of-memory error. */
  allocate(bytes: number, what: string): { ptr: number; size: number } {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let ptr = this.free.get(size)?.pop();
    let blockSize = size;
    if (ptr === undefined) {
      if (this.top + size > this.limit) {
        // Out of fresh memory: fall back to the smallest free block that is large enough.
        let best = Infinity;
        for (const [s, list] of this.free) if (s >= size && s < best && list.length) best = s;
        if (best === Infinity) {
          throw new WasmOutOfMemoryError(
            `wasm backend: cannot allocate ${formatBytes(size)} for ${what}: ${formatBytes(this.inUse)} of the ` +
              `${formatBytes(this.limit)} WebAssembly memory limit are in use (${formatBytes(this.top)} reserved). ` +
              "Store weights in bf16, use a smaller model or batch, or the webgpu backend.",
          );
        }
        ptr = this.free.get(best)!.pop()!;
        blockSize = best;
      } else {
        this.ensureCapacity(this.top + size, what);
        ptr = this.top;
        this.top += size;
      }
    }
    this.inUse += blockSize;
    return { ptr, size: blockSize };
  }

  release(ptr: number, size: number): void {
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ptr);
    this.inUse -= size;
  }

  /** Bytes reserved so far (the high-water mark of the heap). */
  get reserved(): number {
    return this.top;
  }

  private ensureCapacity(end: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / WASM_PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      throw new WasmOutOfMemoryError(
        `wasm backend: the host refused to grow WebAssembly memory to ${formatBytes(have + pages * WASM_PAGE)} ` +
          `for ${what} (${formatBytes(this.inUse)} in use)`,
      );
    }
  }
}
