// One model across several WebAssembly memories.
//
// A 32-bit WebAssembly memory holds at most 4 GiB, and OLMo-7B is 13.8 GB in bf16 (3.9 GB in int4
// plus its activations). Memory64 and multi-memory are not on every host this project runs on (Node 20
// has them only behind flags, Safari not at all), so the portable design is several instances of the
// same kernel module, each importing its own memory:
//   - Placement. Every buffer records the memory it lives in (WasmBuffer.memory, an index into
//     MemorySet.list). A new buffer goes to the first memory with room below the per-memory cap
//     (maxMemoryPerInstance) less a headroom, else to a newly opened memory, else (when no more memories
//     may be opened) into any memory's headroom. The headroom is what keeps the copies below possible
//     once the weights have filled a memory. A hint, Backend.placeGroup(bytes) (preferMemoryFor here),
//     lets the loader keep one layer's weights in one memory, and the KV cache a layer's keys and values.
//   - Kernels. A kernel's operands must share a memory: the kernel runs in its home, the memory that
//     holds most of its operands' bytes (so weights, the big operands, never move and activations do:
//     for a decode step that is a few KiB per layer), and an operand elsewhere is copied into a
//     temporary block of the home first; the operands the kernel writes are copied back after
//     (index.ts, `runAcrossMemories`). Where the home has no room for the copies, the kernel runs in
//     another memory with room, all operands copied. A kernel's operands together must therefore fit
//     one memory. With one memory there is nothing to check but the count.
//   - Per-memory blocks. Each memory is a fresh instance of the same module, so its heap starts at the
//     same address, and the fixed blocks allocated first (each thread's matmul workspace, the shape
//     parameters) sit at the same offsets in every memory: a kernel is handed "the workspace" as a
//     Region with no memory, and it is the home's.
//   - Threads. Each worker instantiates the module once per memory, when the memory is opened (which is
//     when it is first used: a memory is opened for an allocation), and a kernel call names the memory
//     it runs in (pool.ts). The alternative, one worker set per memory, would multiply idle threads
//     spinning for work; instances are cheap (the module is compiled once) and share the workers.
//   - Limits. `maxMemoryBytes` bounds the total; it allows floor(total / cap) memories (at least one).
//     Out-of-memory errors name the memory, the bytes in use there and the total across memories.

import { formatBytes } from "../../core/format.js";
import { Arena, describe, WasmOutOfMemoryError, WASM_PAGE, type Description } from "./arena.js";
import type { KernelExport } from "./kernel-binding.js";
import type { WasmKernelName, WASM_QUERIES } from "./kernel-signatures.generated.js";

export type Exports = Record<WasmKernelName, KernelExport> & Record<(typeof WASM_QUERIES)[number], () => number>;

/** One WebAssembly memory, the instance of the kernels that runs on it, and its allocator. */
export interface WasmMemory {
  /** Its position in MemorySet.list, as recorded in every buffer it holds. */
  readonly index: number;
  readonly memory: WebAssembly.Memory;
  readonly exports: Exports;
  readonly arena: Arena;
}

/** A block of one memory. */
export interface PlacedBlock {
  readonly memory: number;
  readonly ptr: number;
  readonly size: number;
}

export interface MemoryLimits {
  /** The most one memory holds (at most 4 GiB). */
  perMemory: number;
  /** The most all memories hold together (Infinity: no limit known). */
  total: number;
}

export class MemorySet {
  readonly list: WasmMemory[] = [];
  /** How many memories may be opened. */
  readonly maxMemories: number;
  /** Regular allocations stay below this in each memory; the rest is headroom for kernels' operand copies. */
  private readonly placementLimit: number;
  /** The memory the next allocations try first (preferMemoryFor), or -1. */
  private preferred = -1;
  /** Called with each memory after the first once it is open (the thread pool instantiates the module on it). */
  onOpen: (memory: WasmMemory) => void = () => {};

  constructor(
    private readonly module: WebAssembly.Module,
    private readonly shared: boolean,
    readonly limits: MemoryLimits,
    /** Allocates a new memory's fixed blocks; they must land at the same offsets in every memory. */
    private readonly prepare: (memory: WasmMemory) => void,
  ) {
    this.maxMemories = Math.max(1, Math.floor(limits.total / limits.perMemory));
    // One memory needs no headroom: nothing is ever copied into it from elsewhere.
    const headroom = this.maxMemories === 1 ? 0 : Math.min(256 * 2 ** 20, Math.floor(limits.perMemory / 8));
    this.placementLimit = limits.perMemory - headroom;
  }

  /** Open the next memory: a new instance of the kernels on a memory of its own. */
  open(): WasmMemory {
    const index = this.list.length;
    const memory = new WebAssembly.Memory({ initial: 2, maximum: Math.ceil(this.limits.perMemory / WASM_PAGE), shared: this.shared } as WebAssembly.MemoryDescriptor);
    const exports = new WebAssembly.Instance(this.module, { env: { memory } }).exports as unknown as Exports;
    const label = this.maxMemories === 1 ? "WebAssembly memory" : `WebAssembly memory ${index}`;
    const placed: WasmMemory = { index, memory, exports, arena: new Arena(memory, exports.heapBase(), this.limits.perMemory, label) };
    this.list.push(placed);
    this.prepare(placed);
    if (index > 0) this.onOpen(placed);
    return placed;
  }

  /** A new memory if one more may be opened, else undefined. */
  openIfAllowed(): WasmMemory | undefined {
    return this.list.length < this.maxMemories ? this.open() : undefined;
  }

  /** The memory of index `index`. */
  at(index: number): WasmMemory {
    return this.list[index]!;
  }

  /** A block of at least `bytes` bytes somewhere; `what` describes it for the out-of-memory error. */
  allocate(bytes: number, what: Description): PlacedBlock {
    if (this.maxMemories === 1) return this.allocateIn(this.list[0]!, bytes, what);
    const size = Arena.blockSize(bytes);
    const preferred = this.list[this.preferred];
    if (preferred?.arena.fits(size, this.placementLimit)) return this.allocateIn(preferred, bytes, what);
    for (const m of this.list) if (m.arena.fits(size, this.placementLimit)) return this.allocateIn(m, bytes, what);
    if (this.list.length < this.maxMemories && size <= this.placementLimit) return this.allocateIn(this.open(), bytes, what);
    // No memory has room below the headroom and no more may be opened: use the headroom.
    for (const m of this.list) if (m.arena.fits(size, this.limits.perMemory)) return this.allocateIn(m, bytes, what);
    const fullest = this.list.reduce((a, b) => (b.arena.inUse > a.arena.inUse ? b : a));
    throw new WasmOutOfMemoryError(
      `wasm backend: cannot allocate ${formatBytes(size)} for ${describe(what)}: no WebAssembly memory has room ` +
        `(memory ${fullest.index} holds ${formatBytes(fullest.arena.inUse)} of its ${formatBytes(this.limits.perMemory)}; ` +
        `${formatBytes(this.inUse())} in use across ${this.list.length} memories` +
        (this.list.length < this.maxMemories
          ? `; one tensor cannot span memories, and this one exceeds the per-memory cap of ${formatBytes(this.placementLimit)} for placement)`
          : `, the most this backend may open (total limit ${formatBytes(this.limits.total)}))`) +
        ". Store weights in bf16 or quantize them, use a smaller model or batch, or the webgpu backend.",
    );
  }

  /** For an out-of-memory error: the bytes in use across all memories, or null where there is one. */
  private readonly totalInUse = () => (this.list.length > 1 ? this.inUse() : null);

  /** A block in memory `m` (up to its hard limit: kernels' operand copies use the headroom). */
  allocateIn(m: WasmMemory, bytes: number, what: Description): PlacedBlock {
    const { ptr, size } = m.arena.allocate(bytes, what, this.totalInUse);
    return { memory: m.index, ptr, size };
  }

  release(block: PlacedBlock): void {
    this.list[block.memory]!.arena.release(block.ptr, block.size);
  }

  /**
   * Placement hint: the next allocations (about `bytes` in all, say one layer's weights) go to one
   * memory with room for all of them if there is one, so that a layer does not straddle two memories.
   * `bytes` 0 ends the hint.
   */
  preferMemoryFor(bytes: number): void {
    this.preferred = -1;
    if (bytes <= 0 || this.maxMemories === 1) return;
    const size = Arena.blockSize(bytes);
    const room = this.list.find((m) => m.arena.fits(size, this.placementLimit));
    if (room) this.preferred = room.index;
    else if (this.list.length < this.maxMemories && size <= this.placementLimit) this.preferred = this.open().index;
  }

  inUse(): number {
    let total = 0;
    for (const m of this.list) total += m.arena.inUse;
    return total;
  }
}
