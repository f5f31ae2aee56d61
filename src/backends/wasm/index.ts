// The WASM SIMD backend: the kernels of assembly/ compiled to WebAssembly with 128-bit SIMD, on
// WebAssembly memories that hold every tensor (one, unless a model needs more than one holds:
// memories.ts explains the split), optionally shared by a pool of worker threads.
//
// The kernels run on a shared memory where the host has SharedArrayBuffer and shared WebAssembly
// memories (threads), else on an unshared one (browser pages that are not cross-origin isolated): the
// same binary, with its memory import marked shared or not (module.ts). Both need SIMD; a host without
// it gets a clear error (the js backend still works there). Two binaries: one with relaxed SIMD (fused
// multiply-adds in matmul and the GEMVs, faster where the CPU fuses them: bench/NOTES.md), used
// wherever the host has relaxed SIMD (Chromium 114+, Firefox 120+, Node 22+, Deno; Node 20 behind a
// flag, which createNodeWasmBackend turns on), and the plain one for the other hosts or when
// options.relaxedSimd is false. Fused results round once, so the two differ in the last bits.
//
// Each kernel is called with its arguments by name, every buffer checked first (boundary.ts).

import type { Backend, KernelArgs, KernelTable } from "../../core/backend.js";
import { BINARY_CODE, DTYPE_CODE, MAX_RANK, QUANT_CODE } from "../codes.js";
import { BYTES_PER_ELEMENT, type DType, type HostArray } from "../../core/dtype.js";
import { formatBytes } from "../../core/format.js";
import { quantizedShapes, quantizeProblem, type QuantScheme } from "../../core/quantize.js";
import { MAX_WASM_BYTES, WasmOutOfMemoryError } from "./arena.js";
import { MemorySet, type Exports, type PlacedBlock, type WasmMemory } from "./memories.js";
import { probeWasmFeatures, type WasmFeatures } from "./features.js";
import { ThreadPool, type SpawnWorker } from "./pool.js";
import { chooseKernels, type WasmKernelModules } from "./module.js";
import { checkRegions, type BytesNeeded, type KernelExport, type Region } from "./boundary.js";
import { WASM_KERNEL_NAMES, WASM_KERNELS, type WasmKernelArguments, type WasmKernelName, type WasmKernelPointers } from "./kernel-signatures.generated.js";
import type { KernelBinding } from "./kernel-binding.js";

export { probeWasmFeatures, type WasmFeatures } from "./features.js";
export { WasmOutOfMemoryError } from "./arena.js";
export type { SpawnWorker, PoolWorker } from "./pool.js";
export { spawnWebWorker } from "./web-worker.js";
export type { WasmKernelModules } from "./module.js";

export interface WasmBuffer {
  /** The memory it lives in (an index into the backend's memories; see memories.ts). */
  readonly memory: number;
  readonly ptr: number;
  /** Bytes the buffer was asked for. */
  readonly bytes: number;
  /** Size of the arena block (>= bytes); 0 for a view. */
  readonly block: number;
  /** For a view (Backend.view): the buffer whose bytes it is a range of. */
  readonly parent?: WasmBuffer;
  /** Of an allocated buffer: the writes to it and to its views so far (what the backend remembers of its contents holds for one count). */
  writes?: number;
}

export interface WasmBackendOptions {
  /** Threads (the caller plus workers); default 1. More than 1 needs `spawnWorker` and shared memory. */
  threads?: number;
  /** Starts a worker (worker_threads in Node, Web Workers elsewhere); see src/node for Node's. */
  spawnWorker?: SpawnWorker;
  /**
   * Upper bound of all memories together, in bytes (default: no bound known to the backend; in Node,
   * createNodeWasmBackend passes the machine's memory). Allows floor(maxMemoryBytes / maxMemoryPerInstance)
   * memories, at least one.
   */
  maxMemoryBytes?: number;
  /**
   * Upper bound of one WebAssembly memory, in bytes (default and maximum 4 GiB). A model larger than this
   * spans several memories; small values split small models (tests).
   */
  maxMemoryPerInstance?: number;
  /** Work (elements, or multiply-adds) below which a kernel runs on the calling thread alone. */
  parallelMinWork?: number;
  /**
   * Run the relaxed-SIMD build (fused multiply-adds) if the host has relaxed SIMD (the default), or
   * the plain-SIMD build (false): results differ between the two in the last bits.
   */
  relaxedSimd?: boolean;
  /**
   * The kernels already compiled, for hosts that forbid compiling WebAssembly at run time (Cloudflare
   * Workers, Vercel's edge runtime), where a bundler or the runtime turns
   * `import simd from "olmo-js/dist/olmo-simd.wasm"` into a WebAssembly.Module. Pass both builds: the
   * backend still probes the host and takes the relaxed-SIMD one where it can. One thread only.
   * Default: the backend compiles the binaries embedded in the bundle.
   */
  modules?: WasmKernelModules;
}

export interface WasmBackend extends Backend<WasmBuffer> {
  readonly threads: number;
  readonly features: WasmFeatures;
  /** Whether this backend runs the relaxed-SIMD build (a host with relaxed SIMD, options.relaxedSimd not false). */
  readonly relaxedSimd: boolean;
  /** Streaming-read bandwidth of this backend's threads over a `bytes` buffer, in GB/s (median of runs). */
  measureReadBandwidth(bytes?: number, runs?: number): number;
  /** Each open memory's bytes in use, reserved (up to its heap's top) and peak, in memory order. */
  memoryUsageByMemory(): { inUse: number; reserved: number; peak: number }[];
  /** The next allocations, about `bytes` in all (a layer's weights), go to one memory with room for all of them where there is one. */
  placeGroup(bytes: number): void;
}

/** The operands each kernel writes: copied back after a kernel that ran on copies (runAcrossMemories). */
const WRITTEN: { readonly [K in WasmKernelName]: readonly WasmKernelPointers[K][] } = {
  fill: ["out"], cast: ["out"], binary: ["out"], scale: ["out"], silu: ["out"], siluBackward: ["dx"], clamp: ["out"], clampBackward: ["dx"],
  adamw: ["param", "m", "v"], matmul: ["out", "workspace"], layerNorm: ["out", "mean", "rstd"], layerNormBackward: ["dx"],
  softmax: ["out"], softmaxBackward: ["dx"], logSoftmax: ["out"], logSoftmaxBackward: ["dx"], rotaryEmbedding: ["out"],
  attention: ["out", "lse", "scratch"], attentionBackward: ["dq", "dk", "dv"], embedding: ["out"], embeddingBackward: ["dtable"],
  quantize: ["values", "scales"], dequantize: ["out"], matmulQuantized: ["out", "workspace"], embeddingQuantized: ["out"],
  crossEntropy: ["nll", "lse"], crossEntropyBackward: ["dlogits"], sum: ["out"], sumAll: [], broadcast: ["out"], permute: ["out"],
  slice: ["out"], sliceAssign: ["out"], streamRead: [],
};

/** Below this much work (elements, or multiply-adds for matmul) one thread is faster than waking others. */
const DEFAULT_PARALLEL_MIN_WORK = 1 << 15;

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const features = probeWasmFeatures();
  if (!features.simd) {
    throw new Error("wasm backend: this host's WebAssembly has no 128-bit SIMD support; use the js backend (--backend js)");
  }
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`wasm backend: threads must be 1..64, got ${threads}`);
  if (threads > 1 && !features.threads) {
    throw new Error("wasm backend: threads > 1 needs SharedArrayBuffer and shared WebAssembly memory, which this host lacks");
  }
  if (threads > 1 && !options.spawnWorker) throw new Error("wasm backend: threads > 1 needs options.spawnWorker");
  const perMemory = Math.min(options.maxMemoryPerInstance ?? MAX_WASM_BYTES, MAX_WASM_BYTES, options.maxMemoryBytes ?? Infinity);
  const { module, relaxed, shared } = await chooseKernels(features, threads, options.relaxedSimd, options.modules);

  // Each memory's fixed blocks, allocated first so they sit at the same offsets in every memory (the
  // module's static data ends at the same address in each): each thread's matmul packing workspace, and
  // a parameter block for shapes (MAX_RANK i32s per array, up to four arrays per call). Kernels get them
  // as Regions without a memory: they are the home memory's (runAcrossMemories).
  let workspaceBlock: Region | undefined, paramsBlock: PlacedBlock | undefined;
  const memories = new MemorySet(module, shared, { perMemory, total: options.maxMemoryBytes ?? Infinity }, (m: WasmMemory) => {
    const w = memories.allocateIn(m, threads * m.exports.matmulWorkspaceBytes(), "the matmul workspace");
    const p = memories.allocateIn(m, 4 * MAX_RANK * 4, "kernel parameters");
    if (!workspaceBlock || !paramsBlock) (workspaceBlock = { ptr: w.ptr, bytes: w.size }), (paramsBlock = p);
    else if (w.ptr !== workspaceBlock.ptr || p.ptr !== paramsBlock.ptr) throw new Error("wasm backend: a new memory's fixed blocks moved");
  });
  const first = memories.open();
  const { exports } = first;
  const pool = threads > 1 ? await ThreadPool.start(threads, module, first.memory, WASM_KERNEL_NAMES, options.spawnWorker!) : null;
  if (pool) memories.onOpen = (m) => pool.addMemory(m.memory, m.index);
  const workspace: Region = workspaceBlock!;
  const paramSlots: Region[] = [0, 1, 2, 3].map((k) => ({ ptr: paramsBlock!.ptr + k * MAX_RANK * 4, bytes: MAX_RANK * 4 }));

  const parallelMinWork = options.parallelMinWork ?? DEFAULT_PARALLEL_MIN_WORK;
  /** The threads a kernel with this much work runs on. */
  const threadsFor = (work: number) => (pool && work >= parallelMinWork ? threads : 1);
  /** The memory a buffer lives in. */
  const memoryOf = (buffer: WasmBuffer) => memories.at(buffer.memory);
  /**
   * Whether each int4 scales buffer the GEMV has seen holds only finite halves: its fast loop converts
   * scales in a way exact for finite ones only, and checking every group there cost 8-20% of its time,
   * so the host scans a buffer once (about 0.2-0.3 ms for a 2048 x 8192 weight; about 25 ms for all of
   * OLMo-1B, paid by its first forward pass) and remembers, for as long as nothing writes the buffer.
   * Writes are counted per allocated buffer (WasmBuffer.writes), those through its views included (a view
   * shares its bytes), by bufferWritten: a kernel's written operands (run), upload, rawBytes (which hands
   * out a writable view), the all-reduce sum's result, free. A finding holds for one count.
   */
  const int4ScalesFinite = new WeakMap<WasmBuffer, { writes: number | undefined; finite: boolean }>();
  const bufferWritten = (buffer: WasmBuffer | undefined) => {
    const root = buffer?.parent ?? buffer;
    if (root?.writes !== undefined) root.writes++; // (not a workspace region, nor an optional output left out)
  };
  const scalesFinite = (scales: WasmBuffer, count: number): boolean => {
    const writes = (scales.parent ?? scales).writes, known = int4ScalesFinite.get(scales);
    if (known && known.writes === writes) return known.finite;
    const halves = new Uint16Array(memoryOf(scales).memory.buffer, scales.ptr, count);
    let finite = true;
    for (let i = 0; i < count && finite; i++) finite = (halves[i]! & 0x7c00) !== 0x7c00; // exponent all ones: infinity or NaN
    int4ScalesFinite.set(scales, { writes, finite });
    return finite;
  };
  /** Run `kernel` in memory `home`, every buffer argument being there (or a Region of the fixed blocks). */
  const dispatch = <K extends WasmKernelName>(
    kernel: KernelBinding<WasmKernelArguments[K], WasmKernelPointers[K]>, home: WasmMemory, work: number, args: WasmKernelArguments[K],
  ): number => {
    const fn = home.exports[kernel.name as K];
    return threadsFor(work) > 1 ? pool!.run(kernel, fn, args, home.index) : kernel.call(fn, args, 0, 1);
  };
  /**
   * Run kernel `name` with its arguments by name, after checking each buffer holds the bytes the call
   * touches through it (boundary.ts); returns the kernel's result (a reported bad position + 1, or 0).
   * `home` is the memory to run in where the caller has chosen it (homeOf).
   */
  const run = <K extends WasmKernelName>(name: K, work: number, args: WasmKernelArguments[K], needed: BytesNeeded<K>, home?: WasmMemory): number => {
    const kernel = WASM_KERNELS[name];
    checkRegions<K>(kernel, args, needed);
    for (const p of WRITTEN[name]) bufferWritten((args as unknown as Record<string, WasmBuffer>)[p]!);
    if (memories.list.length === 1) return dispatch(kernel, first, work, args);
    return runAcrossMemories(kernel, name, work, args, needed, home ?? homeOf(kernel, args, needed));
  };
  /** The memory holding most of the bytes a call touches (so weights stay where they are and activations move). */
  const homeOf = <K extends WasmKernelName>(
    kernel: KernelBinding<WasmKernelArguments[K], WasmKernelPointers[K]>, args: Partial<WasmKernelArguments[K]>, needed: BytesNeeded<K>,
  ): WasmMemory => {
    if (memories.list.length === 1) return first;
    const regions = args as unknown as Record<string, Region | undefined>, bytes = needed as Record<string, number>;
    const bytesIn = new Array<number>(memories.list.length).fill(0);
    for (const name of kernel.pointers) {
      const region = regions[name] as Partial<WasmBuffer> | undefined;
      if (region?.memory !== undefined) bytesIn[region.memory]! += bytes[name]!;
    }
    let home = 0;
    for (let m = 1; m < bytesIn.length; m++) if (bytesIn[m]! > bytesIn[home]!) home = m;
    return memories.at(home);
  };
  /**
   * Run a kernel whose operands may live in several memories: each operand outside `home` is copied into
   * a temporary block of `home` (one per buffer, so an operand passed twice stays one), the kernel runs
   * there, and the operands it writes (WRITTEN) are copied back to where they live. Where `home` has no
   * room left for the copies (its headroom spent), the kernel runs in another memory with room, a newly
   * opened one if need be, all its operands copied there: slower, never wrong.
   */
  const runAcrossMemories = <K extends WasmKernelName>(
    kernel: KernelBinding<WasmKernelArguments[K], WasmKernelPointers[K]>, name: K, work: number, args: WasmKernelArguments[K], needed: BytesNeeded<K>, home: WasmMemory,
  ): number => {
    const bytes = needed as Record<string, number>;
    // Each buffer the kernel touches (one entry for a buffer passed as two operands) and the bytes it uses of it.
    const operands = new Map<WasmBuffer, { pointer: string; bytes: number }>();
    for (const p of kernel.pointers) {
      const buffer = (args as unknown as Record<string, WasmBuffer | undefined>)[p];
      if (buffer?.memory === undefined) continue;
      const n = Math.min(buffer.bytes, bytes[p]!), seen = operands.get(buffer);
      if (!seen || n > seen.bytes) operands.set(buffer, { pointer: seen?.pointer ?? p, bytes: n });
    }
    type Copy = { block: PlacedBlock; bytes: number };
    const copies = new Map<WasmBuffer, Copy>();
    /** Copy the operands outside `into` there; false (nothing left allocated) where it has no room. */
    const copyInto = (into: WasmMemory): boolean => {
      try {
        for (const [buffer, { pointer: p, bytes: n }] of operands) {
          if (buffer.memory === into.index) continue;
          const block = memories.allocateIn(into, n, () => `a copy of ${name}'s operand "${p}" from memory ${buffer.memory}`);
          copies.set(buffer, { block, bytes: n });
          new Uint8Array(into.memory.buffer, block.ptr, n).set(new Uint8Array(memoryOf(buffer).memory.buffer, buffer.ptr, n));
        }
        return true;
      } catch (e) {
        for (const copy of copies.values()) memories.release(copy.block);
        copies.clear();
        if (e instanceof WasmOutOfMemoryError) return false;
        throw e;
      }
    };
    try {
      if (!copyInto(home)) {
        const elsewhere = memories.list.find((m) => m !== home && copyInto(m));
        const fresh = elsewhere ? undefined : memories.openIfAllowed();
        if (!elsewhere && !(fresh && copyInto(fresh))) {
          // Operands that together outgrow one memory can never meet: say which limit to raise.
          const together = [...operands.values()].reduce((sum, o) => sum + o.bytes, 0);
          const tooBig = together > perMemory
            ? `; its operands together take ${formatBytes(together)}, more than one memory holds: raise the per-memory limit (maxMemoryPerInstance, --max-memory-per-instance)`
            : "";
          throw new WasmOutOfMemoryError(
            `wasm backend: ${name}: no WebAssembly memory has room for copies of its operands (memory ${home.index}, where most of them ` +
              `live, holds ${formatBytes(home.arena.inUse)} of its ${formatBytes(perMemory)}; ${formatBytes(memories.inUse())} in use across ` +
              `${memories.list.length} memories)${tooBig}`,
          );
        }
        home = elsewhere ?? fresh!;
      }
      const local = { ...args } as unknown as Record<string, Region | undefined>;
      for (const p of kernel.pointers) {
        const buffer = local[p] as WasmBuffer | undefined;
        const copy = buffer && copies.get(buffer);
        if (copy) local[p] = { memory: home.index, ptr: copy.block.ptr, bytes: copy.bytes, block: copy.block.size } as WasmBuffer;
      }
      const result = dispatch(kernel, home, work, local as unknown as WasmKernelArguments[K]);
      const written = WRITTEN[name] as readonly string[];
      for (const p of written) {
        const buffer = (args as unknown as Record<string, WasmBuffer | undefined>)[p];
        const copy = buffer && copies.get(buffer);
        if (copy) new Uint8Array(memoryOf(buffer).memory.buffer, buffer.ptr, copy.bytes).set(new Uint8Array(home.memory.buffer, copy.block.ptr, copy.bytes));
      }
      return result;
    } finally {
      for (const copy of copies.values()) memories.release(copy.block);
    }
  };

  /** Throws unless the buffer holds the bytes the host itself reads or writes (uploads, downloads, a sum's result). */
  const checkHostAccess = (what: string, name: string, buffer: WasmBuffer, bytes: number) => {
    if (buffer.bytes < bytes) throw new Error(`wasm backend: ${what}: buffer "${name}" holds ${buffer.bytes} bytes but the call needs ${bytes}`);
  };

  /** Write i32 arrays into the parameter block; returns their regions. */
  /** Write i32 arrays into the parameter block (of every memory: the kernel's home is chosen later); returns their regions. */
  const writeParams = (kernel: string, ...arrays: readonly (readonly (number | boolean)[])[]): Region[] => {
    for (const m of memories.list) {
      const view = new Int32Array(m.memory.buffer, paramsBlock!.ptr, 4 * MAX_RANK);
      arrays.forEach((values, k) => {
        if (values.length > MAX_RANK) throw new Error(`wasm backend: ${kernel} supports rank <= ${MAX_RANK}, got ${values.length}`);
        values.forEach((v, i) => (view[k * MAX_RANK + i] = Number(v)));
      });
    }
    return arrays.map((_, k) => paramSlots[k]!);
  };

  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const f32 = (elements: number) => elements * 4;
  const i32 = (elements: number) => elements * 4;

  const checkIndex = (kernel: string, what: string, result: number, ids: WasmBuffer, limitExclusive: number) => {
    if (result === 0) return;
    const position = result - 1;
    const id = new Int32Array(memoryOf(ids).memory.buffer, ids.ptr + 4 * position, 1)[0];
    throw new RangeError(`${kernel}: ${what} ${id} at position ${position} is out of range [0, ${limitExclusive})`);
  };

  type A<K extends keyof KernelArgs<WasmBuffer>> = KernelArgs<WasmBuffer>[K];
  // Softmax and log-softmax share their argument shapes: x -> out, and (y, dout) -> dx, over [rows, cols].
  const rowwise = (name: "softmax" | "logSoftmax") => ({ x, out, rows, cols }: A<"softmax">) => {
    run(name, rows * cols, { x, out, rows, cols }, { x: f32(rows * cols), out: f32(rows * cols) });
  };
  const rowwiseBackward = (name: "softmaxBackward" | "logSoftmaxBackward") => ({ y, dout, dx, rows, cols }: A<"softmaxBackward">) => {
    run(name, rows * cols, { y, dout, dx, rows, cols }, { y: f32(rows * cols), dout: f32(rows * cols), dx: f32(rows * cols) });
  };
  /** Bytes of a quantized [rows, cols] weight's values and scales (quantize.ts). */
  const quantizedBytes = (scheme: QuantScheme, rows: number, cols: number) => {
    const shapes = quantizedShapes(scheme, rows, cols);
    return { values: size(shapes.values), scales: size(shapes.scales) * (shapes.scalesDType === "f32" ? 4 : 2) };
  };
  const checkQuantizable = (kernel: string, scheme: QuantScheme, rows: number, cols: number) => {
    const problem = quantizeProblem(scheme, rows, cols);
    if (problem) throw new Error(`wasm backend: ${kernel}: ${problem}`);
  };
  const kernels: KernelTable<WasmBuffer> = {
    quantize: ({ x, xDType, values, scales, scheme, rows, cols }: A<"quantize">) => {
      checkQuantizable("quantize", scheme, rows, cols);
      run(
        "quantize", rows * cols, { x, xDType: DTYPE_CODE[xDType], values, scales, scheme: QUANT_CODE[scheme], rows, cols },
        { x: rows * cols * BYTES_PER_ELEMENT[xDType], ...quantizedBytes(scheme, rows, cols) },
      );
    },
    dequantize: ({ values, scales, out, scheme, rows, cols }: A<"dequantize">) => {
      checkQuantizable("dequantize", scheme, rows, cols);
      run("dequantize", rows * cols, { values, scales, out, scheme: QUANT_CODE[scheme], rows, cols }, { ...quantizedBytes(scheme, rows, cols), out: f32(rows * cols) });
    },
    matmulQuantized: ({ a, values, scales, out, scheme, m, k, n }: A<"matmulQuantized">) => {
      checkQuantizable("matmulQuantized", scheme, n, k);
      const bytes = quantizedBytes(scheme, n, k);
      // A missing or short scales buffer is left to run()'s check, which names it.
      const finiteScales = scheme === "int4" && scales?.bytes >= bytes.scales && scalesFinite(scales, bytes.scales / 2) ? 1 : 0;
      run(
        "matmulQuantized", m * n * k, { a, values, scales, out, scheme: QUANT_CODE[scheme], m, k, n, finiteScales, workspace },
        { a: f32(m * k), ...bytes, out: f32(m * n), workspace: threads * exports.matmulWorkspaceBytes() },
      );
    },
    embeddingQuantized: ({ values, scales, scheme, ids, out, count, vocab, dim }: A<"embeddingQuantized">) => {
      checkQuantizable("embeddingQuantized", scheme, vocab, dim);
      const result = run(
        "embeddingQuantized", count * dim, { values, scales, scheme: QUANT_CODE[scheme], ids, out, count, vocab, dim },
        { ...quantizedBytes(scheme, vocab, dim), ids: i32(count), out: f32(count * dim) },
      );
      checkIndex("embedding", "token id", result, ids, vocab);
    },
    fill: ({ out, dtype, size: n, value }: A<"fill">) => {
      run("fill", n, { out, dtype: DTYPE_CODE[dtype], size: n, value }, { out: n * BYTES_PER_ELEMENT[dtype] });
    },
    cast: ({ x, from, out, to, size: n }: A<"cast">) => {
      run("cast", n, { x, from: DTYPE_CODE[from], out, to: DTYPE_CODE[to], size: n }, { x: n * BYTES_PER_ELEMENT[from], out: n * BYTES_PER_ELEMENT[to] });
    },
    binary: ({ op, a, b, out, size: n, aSize, bSize }: A<"binary">) => {
      if (n % aSize !== 0 || n % bSize !== 0) throw new Error(`wasm backend: binary: size ${n} is not a multiple of ${aSize} and ${bSize}`);
      run("binary", n, { op: BINARY_CODE[op], a, b, out, size: n, aSize, bSize }, { a: f32(aSize), b: f32(bSize), out: f32(n) });
    },
    scale: ({ x, out, size: n, factor }: A<"scale">) => {
      run("scale", n, { x, out, size: n, factor }, { x: f32(n), out: f32(n) });
    },
    silu: ({ x, out, size: n }: A<"silu">) => {
      run("silu", n, { x, out, size: n }, { x: f32(n), out: f32(n) });
    },
    siluBackward: ({ x, dout, dx, size: n }: A<"siluBackward">) => {
      run("siluBackward", n, { x, dout, dx, size: n }, { x: f32(n), dout: f32(n), dx: f32(n) });
    },
    clamp: ({ x, out, size: n, min, max }: A<"clamp">) => {
      run("clamp", n, { x, out, size: n, lo: min, hi: max }, { x: f32(n), out: f32(n) });
    },
    clampBackward: ({ x, dout, dx, size: n, min, max }: A<"clampBackward">) => {
      run("clampBackward", n, { x, dout, dx, size: n, lo: min, hi: max }, { x: f32(n), dout: f32(n), dx: f32(n) });
    },
    matmul: (p: A<"matmul">) => {
      run(
        "matmul", p.batch * p.m * p.n * p.k,
        {
          a: p.a, b: p.b, out: p.out, bDType: DTYPE_CODE[p.bDType], batch: p.batch, m: p.m, k: p.k, n: p.n,
          transA: p.transA ? 1 : 0, transB: p.transB ? 1 : 0, aBatchStride: p.aBatchStride, bBatchStride: p.bBatchStride, workspace,
        },
        {
          a: f32((p.batch - 1) * p.aBatchStride + p.m * p.k),
          b: BYTES_PER_ELEMENT[p.bDType] * ((p.batch - 1) * p.bBatchStride + p.k * p.n),
          out: f32(p.batch * p.m * p.n),
          workspace: threads * exports.matmulWorkspaceBytes(),
        },
      );
    },
    layerNorm: ({ x, out, rows, cols, eps, mean, rstd }: A<"layerNorm">) => {
      run("layerNorm", rows * cols, { x, out, rows, cols, eps, mean, rstd }, { x: f32(rows * cols), out: f32(rows * cols), mean: f32(rows), rstd: f32(rows) });
    },
    layerNormBackward: ({ x, mean, rstd, dout, dx, rows, cols }: A<"layerNormBackward">) => {
      run(
        "layerNormBackward", rows * cols, { x, mean, rstd, dout, dx, rows, cols },
        { x: f32(rows * cols), mean: f32(rows), rstd: f32(rows), dout: f32(rows * cols), dx: f32(rows * cols) },
      );
    },
    softmax: rowwise("softmax"),
    softmaxBackward: rowwiseBackward("softmaxBackward"),
    logSoftmax: rowwise("logSoftmax"),
    logSoftmaxBackward: rowwiseBackward("logSoftmaxBackward"),
    rotaryEmbedding: (p: A<"rotaryEmbedding">) => {
      const n = p.batchHeads * p.seqLen * p.headDim;
      run(
        "rotaryEmbedding", n,
        { x: p.x, out: p.out, batchHeads: p.batchHeads, seqLen: p.seqLen, headDim: p.headDim, positionOffset: p.positionOffset, theta: p.theta, inverse: p.inverse ? 1 : 0 },
        { x: f32(n), out: f32(n) },
      );
    },
    attention: (p: A<"attention">) => {
      const qSize = p.batch * p.heads * p.queryLen * p.headDim, kvSize = p.batch * p.kvHeads * p.kvCapacity * p.headDim;
      const args: Omit<WasmKernelArguments["attention"], "scratch"> = {
        q: p.q, k: p.k, v: p.v, out: p.out, lse: p.lse, batch: p.batch, heads: p.heads, kvHeads: p.kvHeads, queryLen: p.queryLen,
        keyLen: p.keyLen, kvCapacity: p.kvCapacity, headDim: p.headDim, scale: p.scale, causal: p.causal ? 1 : 0,
      };
      // Each thread's row of scores, in the memory the kernel runs in.
      const scoresBytes = f32(threads * Math.max(1, p.keyLen));
      const needed = { q: f32(qSize), k: f32(kvSize), v: f32(kvSize), out: f32(qSize), lse: f32(p.batch * p.heads * p.queryLen), scratch: scoresBytes };
      const home = homeOf<"attention">(WASM_KERNELS.attention, args, needed);
      const scores = memories.allocateIn(home, scoresBytes, "attention scores");
      try {
        const scratch: WasmBuffer = { memory: scores.memory, ptr: scores.ptr, bytes: scores.size, block: scores.size };
        run("attention", qSize * p.keyLen, { ...args, scratch }, needed, home);
      } finally {
        memories.release(scores);
      }
    },
    attentionBackward: (p: A<"attentionBackward">) => {
      const qSize = p.batch * p.heads * p.queryLen * p.headDim, kvSize = p.batch * p.kvHeads * p.kvCapacity * p.headDim;
      run(
        "attentionBackward", qSize * p.keyLen,
        {
          q: p.q, k: p.k, v: p.v, out: p.out, lse: p.lse, dout: p.dout, dq: p.dq, dk: p.dk, dv: p.dv, batch: p.batch, heads: p.heads,
          kvHeads: p.kvHeads, queryLen: p.queryLen, keyLen: p.keyLen, kvCapacity: p.kvCapacity, headDim: p.headDim, scale: p.scale,
          causal: p.causal ? 1 : 0,
        },
        {
          q: f32(qSize), k: f32(kvSize), v: f32(kvSize), out: f32(qSize), lse: f32(p.batch * p.heads * p.queryLen), dout: f32(qSize),
          dq: f32(qSize), dk: f32(kvSize), dv: f32(kvSize),
        },
      );
    },
    embedding: ({ table, tableDType, ids, out, count, vocab, dim }: A<"embedding">) => {
      const result = run(
        "embedding", count * dim, { table, tableDType: DTYPE_CODE[tableDType], ids, out, count, vocab, dim },
        { table: vocab * dim * BYTES_PER_ELEMENT[tableDType], ids: i32(count), out: f32(count * dim) },
      );
      checkIndex("embedding", "token id", result, ids, vocab);
    },
    embeddingBackward: ({ ids, dout, dtable, count, vocab, dim }: A<"embeddingBackward">) => {
      const result = run(
        "embeddingBackward", (count + vocab) * dim, { ids, dout, dtable, count, vocab, dim },
        { ids: i32(count), dout: f32(count * dim), dtable: f32(vocab * dim) },
      );
      checkIndex("embedding backward", "token id", result, ids, vocab);
    },
    crossEntropy: ({ logits, targets, nll, lse, rows, vocab }: A<"crossEntropy">) => {
      const result = run(
        "crossEntropy", rows * vocab, { logits, targets, nll, lse, rows, vocab },
        { logits: f32(rows * vocab), targets: i32(rows), nll: f32(rows), lse: f32(rows) },
      );
      checkIndex("crossEntropy", "target id", result, targets, vocab);
    },
    crossEntropyBackward: ({ logits, targets, lse, dnll, dlogits, rows, vocab }: A<"crossEntropyBackward">) => {
      run(
        "crossEntropyBackward", rows * vocab, { logits, targets, lse, dnll, dlogits, rows, vocab },
        { logits: f32(rows * vocab), targets: i32(rows), lse: f32(rows), dnll: f32(rows), dlogits: f32(rows * vocab) },
      );
    },
    adamw: ({ param, grad, m, v, size: n, lr, beta1, beta2, eps, weightDecay, step }: A<"adamw">) => {
      run(
        "adamw", n, { param, grad, m, v, size: n, lr, beta1, beta2, eps, weightDecay, step },
        { param: f32(n), grad: f32(n), m: f32(n), v: f32(n) },
      );
    },
    sum: ({ x, out, shape, reduce }: A<"sum">) => {
      const n = size(shape), outSize = size(shape.map((d, i) => (reduce[i] ? 1 : d)));
      if (shape.every((d, i) => reduce[i] || d === 1)) {
        // Everything summed into one element: each thread sums a share, then the shares are added here.
        checkHostAccess("sum", "out", out, f32(outSize));
        const home = memoryOf(x);
        run("sumAll", n, { x, size: n }, { x: f32(n) }, home);
        const parts = new Float64Array(home.memory.buffer, home.exports.sumPartials(), threadsFor(n));
        bufferWritten(out);
        new Float32Array(memoryOf(out).memory.buffer, out.ptr, 1)[0] = parts.reduce((total, part) => total + part, 0);
        return;
      }
      const [shapeParams, reduceParams] = writeParams("sum", shape, reduce);
      run(
        "sum", n, { x, out, shape: shapeParams!, reduce: reduceParams!, rank: shape.length },
        { x: f32(n), out: f32(outSize), shape: i32(shape.length), reduce: i32(shape.length) },
      );
    },
    broadcast: ({ x, out, shape, reduce }: A<"broadcast">) => {
      const [shapeParams, reduceParams] = writeParams("broadcast", shape, reduce);
      run(
        "broadcast", size(shape), { x, out, shape: shapeParams!, reduce: reduceParams!, rank: shape.length },
        { x: f32(size(shape.map((d, i) => (reduce[i] ? 1 : d)))), out: f32(size(shape)), shape: i32(shape.length), reduce: i32(shape.length) },
      );
    },
    permute: ({ x, dtype, out, shape, perm }: A<"permute">) => {
      const bytes = BYTES_PER_ELEMENT[dtype], rank = shape.length;
      const [shapeParams, permParams, outShapeParams] = writeParams("permute", shape, perm, perm.map((axis) => shape[axis]!));
      run(
        "permute", size(shape), { x, elementBytes: bytes, out, shape: shapeParams!, perm: permParams!, rank, outShape: outShapeParams! },
        { x: bytes * size(shape), out: bytes * size(shape), shape: i32(rank), perm: i32(rank), outShape: i32(rank) },
      );
    },
    slice: ({ x, dtype, out, shape, start, outShape }: A<"slice">) => {
      const bytes = BYTES_PER_ELEMENT[dtype], rank = shape.length;
      const [shapeParams, startParams, outShapeParams] = writeParams("slice", shape, start, outShape);
      run(
        "slice", size(outShape), { x, elementBytes: bytes, out, shape: shapeParams!, start: startParams!, outShape: outShapeParams!, rank },
        { x: bytes * size(shape), out: bytes * size(outShape), shape: i32(rank), start: i32(rank), outShape: i32(rank) },
      );
    },
    sliceAssign: ({ x, dtype, out, shape, start, xShape }: A<"sliceAssign">) => {
      const bytes = BYTES_PER_ELEMENT[dtype], rank = shape.length;
      const [shapeParams, startParams, xShapeParams] = writeParams("sliceAssign", shape, start, xShape);
      run(
        "sliceAssign", size(xShape), { x, elementBytes: bytes, out, shape: shapeParams!, start: startParams!, xShape: xShapeParams!, rank },
        { x: bytes * size(xShape), out: bytes * size(shape), shape: i32(rank), start: i32(rank), xShape: i32(rank) },
      );
    },
  };

  const hostArray = (dtype: DType, bytes: Uint8Array): HostArray => {
    const buffer = bytes.buffer as ArrayBuffer;
    return dtype === "f32" ? new Float32Array(buffer) : dtype === "i32" ? new Int32Array(buffer) : dtype === "i8" ? new Int8Array(buffer) : new Uint16Array(buffer);
  };
  const read = (buffer: WasmBuffer, dtype: DType, n: number): HostArray => {
    const bytes = n * BYTES_PER_ELEMENT[dtype];
    checkHostAccess("download", "buffer", buffer, bytes);
    return hostArray(dtype, new Uint8Array(memoryOf(buffer).memory.buffer, buffer.ptr, bytes).slice());
  };

  return {
    name: "wasm",
    threads,
    features,
    relaxedSimd: relaxed,
    kernels,
    allocate: (dtype, n) => {
      const bytes = n * BYTES_PER_ELEMENT[dtype];
      const { memory, ptr, size: block } = memories.allocate(bytes, () => `a ${dtype} tensor of ${n} elements (${formatBytes(bytes)})`);
      return { memory, ptr, bytes, block, writes: 0 };
    },
    view: (buffer, dtype, start, n) => {
      const bytes = n * BYTES_PER_ELEMENT[dtype];
      checkHostAccess("view", "buffer", buffer, (start + n) * BYTES_PER_ELEMENT[dtype]);
      // A view of a view is a view of the allocated buffer: its write count is the one that matters.
      return { memory: buffer.memory, ptr: buffer.ptr + start * BYTES_PER_ELEMENT[dtype], bytes, block: 0, parent: buffer.parent ?? buffer };
    },
    free: (buffer) => {
      if (buffer.parent) throw new Error("wasm backend: free was given a view; only allocated buffers are freed (the core frees a view's parent)");
      bufferWritten(buffer);
      memories.release({ memory: buffer.memory, ptr: buffer.ptr, size: buffer.block });
    },
    upload: (buffer, _dtype, data) => {
      checkHostAccess("upload", "buffer", buffer, data.byteLength);
      bufferWritten(buffer);
      new Uint8Array(memoryOf(buffer).memory.buffer, buffer.ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
    rawBytes: (buffer, dtype, n) => {
      const bytes = n * BYTES_PER_ELEMENT[dtype];
      checkHostAccess("rawBytes", "buffer", buffer, bytes);
      bufferWritten(buffer);
      return new Uint8Array(memoryOf(buffer).memory.buffer, buffer.ptr, bytes);
    },
    download: async (buffer, dtype, n) => read(buffer, dtype, n),
    downloadSync: read,
    // Totals across memories; the peak adds each memory's own peak (they need not coincide, so it is an upper bound).
    memoryUsage: () => {
      let inUse = 0, reserved = 0, peak = 0;
      for (const { arena } of memories.list) (inUse += arena.inUse), (reserved += arena.reserved), (peak += arena.highWater);
      return { inUse, reserved, peak, limit: Math.min(memories.limits.total, memories.maxMemories * perMemory) };
    },
    memoryUsageByMemory: () => memories.list.map(({ arena }) => ({ inUse: arena.inUse, reserved: arena.reserved, peak: arena.highWater })),
    placeGroup: (bytes) => memories.preferMemoryFor(bytes),
    // Kernels run to completion before they return (the caller waits for its workers).
    sync: async () => {},
    dispose: () => pool?.close(),
    measureReadBandwidth: (bytes = 256 * 2 ** 20, runs = 9) => {
      const block = memories.allocate(bytes, "the bandwidth probe");
      const home = memories.at(block.memory);
      try {
        new Uint8Array(home.memory.buffer, block.ptr, bytes).fill(1); // touch every page first
        const times: number[] = [];
        for (let r = 0; r < runs; r++) {
          const t0 = performance.now();
          run("streamRead", Infinity, { ptr: { ptr: block.ptr, bytes: block.size }, bytes }, { ptr: bytes }, home);
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        return bytes / (times[Math.floor(runs / 2)]! / 1000) / 1e9;
      } finally {
        memories.release(block);
      }
    },
  };
}
