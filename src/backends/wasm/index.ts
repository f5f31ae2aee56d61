// The WASM SIMD backend: the kernels of assembly/ compiled to WebAssembly with 128-bit SIMD, on one
// WebAssembly memory that holds every tensor, optionally shared by a pool of worker threads.
//
// The kernels run on a shared memory where the host has SharedArrayBuffer and shared WebAssembly
// memories (threads), else on an unshared one (browser pages that are not cross-origin isolated): the
// same binary, with its memory import marked shared or not (module.ts). Both need SIMD; a host without
// it gets a clear error (the js backend still works there). Two binaries: one with relaxed SIMD (fused
// multiply-adds in matmul and the GEMVs: 1.2-1.7x the plain build's matmul on one thread here), used
// wherever the host has relaxed SIMD (Chromium 114+, Firefox 120+, Node 22+, Deno; Node 20 behind a
// flag, which createNodeWasmBackend turns on), and the plain one for the other hosts or when
// options.relaxedSimd is false. Fused results round once, so the two differ in the last bits.

import type { Backend, KernelArgs, KernelTable } from "../../core/backend.js";
import { BINARY_CODE, DTYPE_CODE, MAX_RANK } from "../codes.js";
import { BYTES_PER_ELEMENT, type DType, type HostArray } from "../../core/dtype.js";
import { formatBytes } from "../../core/format.js";
import { Arena, MAX_WASM_BYTES, WASM_PAGE } from "./arena.js";
import { probeWasmFeatures, type WasmFeatures } from "./features.js";
import { ThreadPool, type SpawnWorker } from "./pool.js";
import plainKernels from "../../../build/wasm/kernels.wasm";
import relaxedKernels from "../../../build/wasm/kernels-relaxed.wasm";
import { withSharedMemory } from "./module.js";

export { probeWasmFeatures, type WasmFeatures } from "./features.js";
export { WasmOutOfMemoryError } from "./arena.js";
export type { SpawnWorker, PoolWorker } from "./pool.js";
export { spawnWebWorker } from "./web-worker.js";

export interface WasmBuffer {
  readonly ptr: number;
  /** Bytes the buffer was asked for. */
  readonly bytes: number;
  /** Size of the arena block (>= bytes). */
  readonly block: number;
}

export interface WasmBackendOptions {
  /** Threads (the caller plus workers); default 1. More than 1 needs `spawnWorker` and shared memory. */
  threads?: number;
  /** Starts a worker (worker_threads in Node, Web Workers elsewhere); see src/node for Node's. */
  spawnWorker?: SpawnWorker;
  /** Upper bound of the memory in bytes (default and maximum 4 GiB). */
  maxMemoryBytes?: number;
  /** Work (elements, or multiply-adds) below which a kernel runs on the calling thread alone. */
  parallelMinWork?: number;
  /**
   * Run the relaxed-SIMD build (fused multiply-adds) if the host has relaxed SIMD (the default), or
   * the plain-SIMD build (false): results differ between the two in the last bits.
   */
  relaxedSimd?: boolean;
}

export interface WasmBackend extends Backend<WasmBuffer> {
  readonly threads: number;
  readonly features: WasmFeatures;
  /** Whether this backend runs the relaxed-SIMD build (a host with relaxed SIMD, options.relaxedSimd not false). */
  readonly relaxedSimd: boolean;
  /** Streaming-read bandwidth of this backend's threads over a `bytes` buffer, in GB/s (median of runs). */
  measureReadBandwidth(bytes?: number, runs?: number): number;
}

const KERNELS = [
  "fill", "cast", "binary", "scale", "silu", "siluBackward", "clamp", "clampBackward", "matmul", "layerNorm",
  "layerNormBackward", "softmax", "softmaxBackward", "logSoftmax", "logSoftmaxBackward", "rotaryEmbedding", "attention",
  "attentionBackward", "embedding", "embeddingBackward", "crossEntropy", "crossEntropyBackward", "sum", "sumAll", "broadcast",
  "permute", "slice", "sliceAssign", "adamw", "streamRead",
] as const;
type WasmKernel = (typeof KERNELS)[number];
type Exports = Record<WasmKernel, (...args: number[]) => number> & {
  heapBase(): number;
  matmulWorkspaceBytes(): number;
  sumPartials(): number;
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
  const limit = Math.min(options.maxMemoryBytes ?? MAX_WASM_BYTES, MAX_WASM_BYTES);
  const shared = features.threads;
  const memory = new WebAssembly.Memory({ initial: 2, maximum: Math.ceil(limit / WASM_PAGE), shared } as WebAssembly.MemoryDescriptor);
  const relaxed = options.relaxedSimd !== false && features.relaxedSimd;
  const binary = relaxed ? relaxedKernels : plainKernels;
  const module = await WebAssembly.compile(shared ? withSharedMemory(binary) : binary);
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as Exports;
  const arena = new Arena(memory, exports.heapBase(), limit);
  const pool = threads > 1 ? await ThreadPool.start(threads, module, memory, KERNELS, options.spawnWorker!) : null;

  // Fixed blocks: each thread's matmul packing workspace, and a parameter block for shapes.
  const workspace = arena.allocate(threads * exports.matmulWorkspaceBytes(), "the matmul workspace").ptr;
  const params = arena.allocate(4 * MAX_RANK * 4, "kernel parameters").ptr;

  const parallelMinWork = options.parallelMinWork ?? DEFAULT_PARALLEL_MIN_WORK;
  /** The threads a kernel with this much work runs on. */
  const threadsFor = (work: number) => (pool && work >= parallelMinWork ? threads : 1);
  const run = (name: WasmKernel, work: number, ...args: number[]): number =>
    threadsFor(work) > 1 ? pool!.run(KERNELS.indexOf(name), exports[name], args) : exports[name](...args, 0, 1) | 0;

  /** Throws unless each buffer holds the bytes the kernel will touch: a wrong call fails here, not in memory. */
  const need = (kernel: string, ...checks: [string, WasmBuffer | undefined, number][]) => {
    for (const [name, buffer, bytes] of checks) {
      if (buffer && buffer.bytes < bytes) {
        throw new Error(`wasm backend: ${kernel}: buffer "${name}" holds ${buffer.bytes} bytes but the call needs ${bytes}`);
      }
    }
  };

  /** Write i32 arrays into the parameter block; returns their addresses. */
  const writeParams = (kernel: string, ...arrays: readonly (readonly (number | boolean)[])[]): number[] => {
    const view = new Int32Array(memory.buffer, params, 4 * MAX_RANK);
    return arrays.map((values, k) => {
      if (values.length > MAX_RANK) throw new Error(`wasm backend: ${kernel} supports rank <= ${MAX_RANK}, got ${values.length}`);
      values.forEach((v, i) => (view[k * MAX_RANK + i] = Number(v)));
      return params + k * MAX_RANK * 4;
    });
  };

  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const f32 = (elements: number) => elements * 4;

  const checkIndex = (kernel: string, what: string, result: number, ids: WasmBuffer, limitExclusive: number) => {
    if (result === 0) return;
    const position = result - 1;
    const id = new Int32Array(memory.buffer, ids.ptr + 4 * position, 1)[0];
    throw new RangeError(`${kernel}: ${what} ${id} at position ${position} is out of range [0, ${limitExclusive})`);
  };

  type A<K extends keyof KernelArgs<WasmBuffer>> = KernelArgs<WasmBuffer>[K];
  // Softmax and log-softmax share their argument shapes: x -> out, and (y, dout) -> dx, over [rows, cols].
  const rowwise = (name: "softmax" | "logSoftmax") => ({ x, out, rows, cols }: A<"softmax">) => {
    need(name, ["x", x, f32(rows * cols)], ["out", out, f32(rows * cols)]);
    run(name, rows * cols, x.ptr, out.ptr, rows, cols);
  };
  const rowwiseBackward = (name: "softmaxBackward" | "logSoftmaxBackward") => ({ y, dout, dx, rows, cols }: A<"softmaxBackward">) => {
    need(name, ["y", y, f32(rows * cols)], ["dout", dout, f32(rows * cols)], ["dx", dx, f32(rows * cols)]);
    run(name, rows * cols, y.ptr, dout.ptr, dx.ptr, rows, cols);
  };
  const kernels: KernelTable<WasmBuffer> = {
    fill: ({ out, dtype, size: n, value }: A<"fill">) => {
      need("fill", ["out", out, n * BYTES_PER_ELEMENT[dtype]]);
      run("fill", n, out.ptr, DTYPE_CODE[dtype], n, value);
    },
    cast: ({ x, from, out, to, size: n }: A<"cast">) => {
      need("cast", ["x", x, n * BYTES_PER_ELEMENT[from]], ["out", out, n * BYTES_PER_ELEMENT[to]]);
      run("cast", n, x.ptr, DTYPE_CODE[from], out.ptr, DTYPE_CODE[to], n);
    },
    binary: ({ op, a, b, out, size: n, aSize, bSize }: A<"binary">) => {
      need("binary", ["a", a, f32(aSize)], ["b", b, f32(bSize)], ["out", out, f32(n)]);
      if (n % aSize !== 0 || n % bSize !== 0) throw new Error(`wasm backend: binary: size ${n} is not a multiple of ${aSize} and ${bSize}`);
      run("binary", n, BINARY_CODE[op], a.ptr, b.ptr, out.ptr, n, aSize, bSize);
    },
    scale: ({ x, out, size: n, factor }: A<"scale">) => {
      need("scale", ["x", x, f32(n)], ["out", out, f32(n)]);
      run("scale", n, x.ptr, out.ptr, n, factor);
    },
    silu: ({ x, out, size: n }: A<"silu">) => {
      need("silu", ["x", x, f32(n)], ["out", out, f32(n)]);
      run("silu", n, x.ptr, out.ptr, n);
    },
    siluBackward: ({ x, dout, dx, size: n }: A<"siluBackward">) => {
      need("siluBackward", ["x", x, f32(n)], ["dout", dout, f32(n)], ["dx", dx, f32(n)]);
      run("siluBackward", n, x.ptr, dout.ptr, dx.ptr, n);
    },
    clamp: ({ x, out, size: n, min, max }: A<"clamp">) => {
      need("clamp", ["x", x, f32(n)], ["out", out, f32(n)]);
      run("clamp", n, x.ptr, out.ptr, n, min, max);
    },
    clampBackward: ({ x, dout, dx, size: n, min, max }: A<"clampBackward">) => {
      need("clampBackward", ["x", x, f32(n)], ["dout", dout, f32(n)], ["dx", dx, f32(n)]);
      run("clampBackward", n, x.ptr, dout.ptr, dx.ptr, n, min, max);
    },
    matmul: (p: A<"matmul">) => {
      const bBytes = BYTES_PER_ELEMENT[p.bDType];
      need(
        "matmul",
        ["a", p.a, f32((p.batch - 1) * p.aBatchStride + p.m * p.k)],
        ["b", p.b, bBytes * ((p.batch - 1) * p.bBatchStride + p.k * p.n)],
        ["out", p.out, f32(p.batch * p.m * p.n)],
      );
      run(
        "matmul", p.batch * p.m * p.n * p.k, p.a.ptr, p.b.ptr, p.out.ptr, DTYPE_CODE[p.bDType], p.batch, p.m, p.k, p.n,
        p.transA ? 1 : 0, p.transB ? 1 : 0, p.aBatchStride, p.bBatchStride, workspace,
      );
    },
    layerNorm: ({ x, out, rows, cols, eps, mean, rstd }: A<"layerNorm">) => {
      need("layerNorm", ["x", x, f32(rows * cols)], ["out", out, f32(rows * cols)], ["mean", mean, f32(rows)], ["rstd", rstd, f32(rows)]);
      run("layerNorm", rows * cols, x.ptr, out.ptr, rows, cols, eps, mean?.ptr ?? 0, rstd?.ptr ?? 0);
    },
    layerNormBackward: ({ x, mean, rstd, dout, dx, rows, cols }: A<"layerNormBackward">) => {
      need("layerNormBackward", ["x", x, f32(rows * cols)], ["dout", dout, f32(rows * cols)], ["dx", dx, f32(rows * cols)]);
      run("layerNormBackward", rows * cols, x.ptr, mean.ptr, rstd.ptr, dout.ptr, dx.ptr, rows, cols);
    },
    softmax: rowwise("softmax"),
    softmaxBackward: rowwiseBackward("softmaxBackward"),
    logSoftmax: rowwise("logSoftmax"),
    logSoftmaxBackward: rowwiseBackward("logSoftmaxBackward"),
    rotaryEmbedding: (p: A<"rotaryEmbedding">) => {
      const n = p.batchHeads * p.seqLen * p.headDim;
      need("rotaryEmbedding", ["x", p.x, f32(n)], ["out", p.out, f32(n)]);
      run("rotaryEmbedding", n, p.x.ptr, p.out.ptr, p.batchHeads, p.seqLen, p.headDim, p.positionOffset, p.theta, p.inverse ? 1 : 0);
    },
    attention: (p: A<"attention">) => {
      const qSize = p.batch * p.heads * p.queryLen * p.headDim, kvSize = p.batch * p.kvHeads * p.kvCapacity * p.headDim;
      need("attention", ["q", p.q, f32(qSize)], ["k", p.k, f32(kvSize)], ["v", p.v, f32(kvSize)], ["out", p.out, f32(qSize)],
        ["lse", p.lse, f32(p.batch * p.heads * p.queryLen)]);
      // Each thread's row of scores.
      const scratch = arena.allocate(f32(threads * Math.max(1, p.keyLen)), "attention scores");
      try {
        run(
          "attention", qSize * p.keyLen, p.q.ptr, p.k.ptr, p.v.ptr, p.out.ptr, p.lse?.ptr ?? 0, p.batch, p.heads, p.kvHeads,
          p.queryLen, p.keyLen, p.kvCapacity, p.headDim, p.scale, p.causal ? 1 : 0, scratch.ptr,
        );
      } finally {
        arena.release(scratch.ptr, scratch.size);
      }
    },
    attentionBackward: (p: A<"attentionBackward">) => {
      const qSize = p.batch * p.heads * p.queryLen * p.headDim, kvSize = p.batch * p.kvHeads * p.kvCapacity * p.headDim;
      need("attentionBackward", ["dq", p.dq, f32(qSize)], ["dk", p.dk, f32(kvSize)], ["dv", p.dv, f32(kvSize)], ["dout", p.dout, f32(qSize)]);
      run(
        "attentionBackward", qSize * p.keyLen, p.q.ptr, p.k.ptr, p.v.ptr, p.out.ptr, p.lse.ptr, p.dout.ptr, p.dq.ptr, p.dk.ptr,
        p.dv.ptr, p.batch, p.heads, p.kvHeads, p.queryLen, p.keyLen, p.kvCapacity, p.headDim, p.scale, p.causal ? 1 : 0,
      );
    },
    embedding: ({ table, tableDType, ids, out, count, vocab, dim }: A<"embedding">) => {
      need("embedding", ["table", table, vocab * dim * BYTES_PER_ELEMENT[tableDType]], ["ids", ids, 4 * count], ["out", out, f32(count * dim)]);
      const result = run("embedding", count * dim, table.ptr, DTYPE_CODE[tableDType], ids.ptr, out.ptr, count, vocab, dim);
      checkIndex("embedding", "token id", result, ids, vocab);
    },
    embeddingBackward: ({ ids, dout, dtable, count, vocab, dim }: A<"embeddingBackward">) => {
      need("embeddingBackward", ["ids", ids, 4 * count], ["dout", dout, f32(count * dim)], ["dtable", dtable, f32(vocab * dim)]);
      const result = run("embeddingBackward", (count + vocab) * dim, ids.ptr, dout.ptr, dtable.ptr, count, vocab, dim);
      checkIndex("embedding backward", "token id", result, ids, vocab);
    },
    crossEntropy: ({ logits, targets, nll, lse, rows, vocab }: A<"crossEntropy">) => {
      need("crossEntropy", ["logits", logits, f32(rows * vocab)], ["targets", targets, 4 * rows], ["nll", nll, f32(rows)], ["lse", lse, f32(rows)]);
      const result = run("crossEntropy", rows * vocab, logits.ptr, targets.ptr, nll.ptr, lse.ptr, rows, vocab);
      checkIndex("crossEntropy", "target id", result, targets, vocab);
    },
    crossEntropyBackward: ({ logits, targets, lse, dnll, dlogits, rows, vocab }: A<"crossEntropyBackward">) => {
      need("crossEntropyBackward", ["logits", logits, f32(rows * vocab)], ["dlogits", dlogits, f32(rows * vocab)], ["dnll", dnll, f32(rows)]);
      run("crossEntropyBackward", rows * vocab, logits.ptr, targets.ptr, lse.ptr, dnll.ptr, dlogits.ptr, rows, vocab);
    },
    adamw: ({ param, grad, m, v, size: n, lr, beta1, beta2, eps, weightDecay, step }: A<"adamw">) => {
      need("adamw", ["param", param, f32(n)], ["grad", grad, f32(n)], ["m", m, f32(n)], ["v", v, f32(n)]);
      run("adamw", n, param.ptr, grad.ptr, m.ptr, v.ptr, n, lr, beta1, beta2, eps, weightDecay, step);
    },
    sum: ({ x, out, shape, reduce }: A<"sum">) => {
      need("sum", ["x", x, f32(size(shape))], ["out", out, f32(size(shape.map((n, i) => (reduce[i] ? 1 : n))))]);
      if (shape.every((n, i) => reduce[i] || n === 1)) {
        // Everything summed into one element: each thread sums a share, then the shares are added here.
        const n = size(shape);
        run("sumAll", n, x.ptr, n);
        const parts = new Float64Array(memory.buffer, exports.sumPartials(), threadsFor(n));
        new Float32Array(memory.buffer, out.ptr, 1)[0] = parts.reduce((total, part) => total + part, 0);
        return;
      }
      const [shapePtr, reducePtr] = writeParams("sum", shape, reduce);
      run("sum", size(shape), x.ptr, out.ptr, shapePtr!, reducePtr!, shape.length);
    },
    broadcast: ({ x, out, shape, reduce }: A<"broadcast">) => {
      need("broadcast", ["x", x, f32(size(shape.map((n, i) => (reduce[i] ? 1 : n))))], ["out", out, f32(size(shape))]);
      const [shapePtr, reducePtr] = writeParams("broadcast", shape, reduce);
      run("broadcast", size(shape), x.ptr, out.ptr, shapePtr!, reducePtr!, shape.length);
    },
    permute: ({ x, dtype, out, shape, perm }: A<"permute">) => {
      const bytes = BYTES_PER_ELEMENT[dtype];
      need("permute", ["x", x, bytes * size(shape)], ["out", out, bytes * size(shape)]);
      const [shapePtr, permPtr, outShapePtr] = writeParams("permute", shape, perm, perm.map((axis) => shape[axis]!));
      run("permute", size(shape), x.ptr, bytes, out.ptr, shapePtr!, permPtr!, shape.length, outShapePtr!);
    },
    slice: ({ x, dtype, out, shape, start, outShape }: A<"slice">) => {
      const bytes = BYTES_PER_ELEMENT[dtype];
      need("slice", ["x", x, bytes * size(shape)], ["out", out, bytes * size(outShape)]);
      const [shapePtr, startPtr, outShapePtr] = writeParams("slice", shape, start, outShape);
      run("slice", size(outShape), x.ptr, bytes, out.ptr, shapePtr!, startPtr!, outShapePtr!, shape.length);
    },
    sliceAssign: ({ x, dtype, out, shape, start, xShape }: A<"sliceAssign">) => {
      const bytes = BYTES_PER_ELEMENT[dtype];
      need("sliceAssign", ["x", x, bytes * size(xShape)], ["out", out, bytes * size(shape)]);
      const [shapePtr, startPtr, xShapePtr] = writeParams("sliceAssign", shape, start, xShape);
      run("sliceAssign", size(xShape), x.ptr, bytes, out.ptr, shapePtr!, startPtr!, xShapePtr!, shape.length);
    },
  };

  const hostArray = (dtype: DType, bytes: Uint8Array): HostArray => {
    const buffer = bytes.buffer as ArrayBuffer;
    return dtype === "f32" ? new Float32Array(buffer) : dtype === "i32" ? new Int32Array(buffer) : new Uint16Array(buffer);
  };
  const read = (buffer: WasmBuffer, dtype: DType, n: number): HostArray => {
    const bytes = n * BYTES_PER_ELEMENT[dtype];
    need("download", ["buffer", buffer, bytes]);
    return hostArray(dtype, new Uint8Array(memory.buffer, buffer.ptr, bytes).slice());
  };

  return {
    name: "wasm",
    threads,
    features,
    relaxedSimd: relaxed,
    kernels,
    allocate: (dtype, n) => {
      const bytes = n * BYTES_PER_ELEMENT[dtype];
      const { ptr, size: block } = arena.allocate(bytes, `a ${dtype} tensor of ${n} elements (${formatBytes(bytes)})`);
      return { ptr, bytes, block };
    },
    free: (buffer) => arena.release(buffer.ptr, buffer.block),
    upload: (buffer, _dtype, data) => {
      need("upload", ["buffer", buffer, data.byteLength]);
      new Uint8Array(memory.buffer, buffer.ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
    rawBytes: (buffer, dtype, n) => {
      const bytes = n * BYTES_PER_ELEMENT[dtype];
      need("rawBytes", ["buffer", buffer, bytes]);
      return new Uint8Array(memory.buffer, buffer.ptr, bytes);
    },
    download: async (buffer, dtype, n) => read(buffer, dtype, n),
    downloadSync: read,
    memoryUsage: () => ({ inUse: arena.inUse, reserved: arena.reserved, peak: arena.highWater, limit }),
    // Kernels run to completion before they return (the caller waits for its workers).
    sync: async () => {},
    dispose: () => pool?.close(),
    measureReadBandwidth: (bytes = 256 * 2 ** 20, runs = 9) => {
      const block = arena.allocate(bytes, "the bandwidth probe");
      try {
        new Uint8Array(memory.buffer, block.ptr, bytes).fill(1); // touch every page first
        const times: number[] = [];
        for (let r = 0; r < runs; r++) {
          const t0 = performance.now();
          run("streamRead", Infinity, block.ptr, bytes);
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        return bytes / (times[Math.floor(runs / 2)]! / 1000) / 1e9;
      } finally {
        arena.release(block.ptr, block.size);
      }
    },
  };
}
