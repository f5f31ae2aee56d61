// The memory arena: every tensor of the wasm backend lives inside a WebAssembly memory (one arena per
// memory: memories.ts), so kernels read and write it in place with no copy per op.
//
// A best-fit allocator over [base, top) that never leaves two free neighbours apart:
//   - blocks are 64-byte aligned (a cache line; v128 loads want 16);
//   - a request takes a free block of exactly its size when there is one (a training or decode step
//     asks for the same sizes every time, so the steady state is a lookup), else the smallest free
//     block that is larger, split so that the rest stays free, else fresh memory at the top;
//   - a released block merges with the free blocks right before and after it, and a free block that
//     ends at the top lowers the top instead of staying in the free list.
// So the free list holds only holes between live blocks, and a pattern of varying sizes (a long prompt's
// activations, then short decode steps) reuses the same bytes instead of piling up blocks of each size.
// A WebAssembly memory holds at most 4 GiB and never shrinks: past the limit, allocation fails with
// the numbers, and `reserved` (the top) minus `inUse` is the memory lost to holes.

import { formatBytes } from "../../core/format.js";

/**
 * What a block is for, said in an out-of-memory error: a string, or a function that makes it (a tensor's
 * description is built only when the error is, not on each of the thousands of allocations a forward pass makes).
 */
export type Description = string | (() => string);

export function describe(what: Description): string {
  return typeof what === "string" ? what : what();
}

const noTotal = () => null;

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
  /** Where the heap starts (after the kernels' static data), and the end of its highest live block. */
  private readonly base: number;
  private top: number;
  /** Free blocks: start -> size, end -> start (for merging), and size -> starts (for exact-size reuse). */
  private readonly freeSize = new Map<number, number>();
  private readonly freeEndingAt = new Map<number, number>();
  private readonly freeBySize = new Map<number, Set<number>>();
  /** Bytes in live blocks (as requested, rounded to the alignment). */
  inUse = 0;
  /** The highest the top has been: the memory the heap has touched. */
  highWater: number;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
    private readonly limit = MAX_WASM_BYTES,
    /** How errors name this memory ("WebAssembly memory", "WebAssembly memory 2"). */
    private readonly label = "WebAssembly memory",
  ) {
    this.base = this.top = Math.ceil(base / ALIGN) * ALIGN;
    this.highWater = this.top;
  }

  /** The block size a request of `bytes` takes. */
  static blockSize(bytes: number): number {
    return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  }

  /** Whether a block of `size` (a blockSize) fits in a free block, or below `limit` at the top. */
  fits(size: number, limit: number): boolean {
    if (this.top + size <= limit || this.freeBySize.has(size)) return true;
    for (const s of this.freeSize.values()) if (s > size) return true;
    return false;
  }

  /**
   * Start of a block of at least `bytes` bytes. `what` describes it for the out-of-memory error, and
   * `totalInUse` gives the bytes in use across all memories for it (null: this is the only one).
   */
  allocate(bytes: number, what: Description, totalInUse: () => number | null = noTotal): { ptr: number; size: number } {
    const size = Arena.blockSize(bytes);
    const exact = this.freeBySize.get(size);
    let ptr: number | undefined = exact?.values().next().value;
    if (ptr === undefined) {
      let best = Infinity;
      for (const [start, s] of this.freeSize) if (s > size && s < best) (best = s), (ptr = start);
      if (ptr !== undefined) {
        // Split: the front is handed out, the rest stays free where it was.
        this.removeFree(ptr, best);
        this.addFree(ptr + size, best - size);
      }
    } else {
      this.removeFree(ptr, size);
    }
    if (ptr === undefined) {
      // A free block at the top would have lowered the top, so fresh memory starts at the top.
      if (this.top + size > this.limit) {
        const total = totalInUse();
        throw new WasmOutOfMemoryError(
          `wasm backend: cannot allocate ${formatBytes(size)} for ${describe(what)}: ${formatBytes(this.inUse)} of the ` +
            `${formatBytes(this.limit)} ${this.label} limit are in use (${formatBytes(this.top - this.base - this.inUse)} in free blocks, ` +
            `the largest ${formatBytes(this.largestFree())}${total === null ? "" : `; ${formatBytes(total)} in use across all memories`}). ` +
            `Store weights in bf16, use a smaller model or batch, or the webgpu backend.`,
        );
      }
      this.ensureCapacity(this.top + size, what);
      ptr = this.top;
      this.top += size;
      this.highWater = Math.max(this.highWater, this.top);
    }
    this.inUse += size;
    return { ptr, size };
  }

  release(ptr: number, size: number): void {
    this.inUse -= size;
    let start = ptr, end = ptr + size;
    const before = this.freeEndingAt.get(start);
    if (before !== undefined) {
      this.removeFree(before, start - before);
      start = before;
    }
    const afterSize = this.freeSize.get(end);
    if (afterSize !== undefined) {
      this.removeFree(end, afterSize);
      end += afterSize;
    }
    if (end === this.top) this.top = start;
    else this.addFree(start, end - start);
  }

  /** Bytes of the memory up to the heap's top: the kernels' static data, live blocks and the holes between them. */
  get reserved(): number {
    return this.top;
  }

  /** Size of the largest free hole below the top. */
  largestFree(): number {
    let largest = 0;
    for (const s of this.freeSize.values()) largest = Math.max(largest, s);
    return largest;
  }

  private addFree(start: number, size: number): void {
    this.freeSize.set(start, size);
    this.freeEndingAt.set(start + size, start);
    let starts = this.freeBySize.get(size);
    if (!starts) this.freeBySize.set(size, (starts = new Set()));
    starts.add(start);
  }

  private removeFree(start: number, size: number): void {
    this.freeSize.delete(start);
    this.freeEndingAt.delete(start + size);
    const starts = this.freeBySize.get(size)!;
    starts.delete(start);
    if (starts.size === 0) this.freeBySize.delete(size);
  }

  private ensureCapacity(end: number, what: Description): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / WASM_PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      throw new WasmOutOfMemoryError(
        `wasm backend: the host refused to grow ${this.label} to ${formatBytes(have + pages * WASM_PAGE)} ` +
          `for ${describe(what)} (${formatBytes(this.inUse)} in use)`,
      );
    }
  }
}
