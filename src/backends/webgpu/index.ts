// The WebGPU backend: every kernel of the backend interface as a WGSL compute shader (kernels/*.wgsl),
// on whatever GPU the host's WebGPU offers: browsers' and Deno's navigator.gpu, or Dawn in Node
// (createNodeWebGpuBackend in olmo-js/node).
//
// Tensors live in GPU buffers (bf16 / f16 packed two per u32, widened in the shaders); kernels are
// recorded into batches and run when a result is read back (runtime.ts). A buffer larger than the
// device's largest storage binding (maxStorageBufferBindingSize, 128 MiB on many GPUs) is bound in
// blocks by the kernels that meet such buffers in OLMo: the elementwise ones and AdamW, the row kernels
// (layer norm, softmax, cross-entropy: large logits), sums over every axis (gradient norms), the
// embedding table and its gradient, and every operand of an unbatched matmul (OLMo-1B's 50304 x 2048
// output layer and its gradient). Attention and layout kernels bind whole buffers and say so when one
// is too large.

import type { Backend, KernelArgs, KernelTable } from "../../core/backend.js";
import { BINARY_CODE, DTYPE_CODE, MAX_RANK } from "../codes.js";
import { BYTES_PER_ELEMENT, f32ToBf16, f32ToF16, type DType, type HostArray } from "../../core/dtype.js";
import { sizeOf, stridesOf } from "../../core/shape.js";
import { formatBytes } from "../../core/format.js";
import { grid, GpuRuntime, type BindingResource, type Dispatch, type GpuBuffer } from "./runtime.js";
import type { FamilyName } from "./shaders.js";

export type { GpuBuffer } from "./runtime.js";

export interface WebGpuBackendOptions {
  /** The WebGPU entry point; default `navigator.gpu`. Node: see createNodeWebGpuBackend. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Bind at most this many bytes per storage binding (below the device's limit): tests use it to exercise splitting. */
  maxBindingBytes?: number;
  /** Freed buffers kept for reuse, in bytes (default 512 MiB). */
  poolLimitBytes?: number;
}

export interface WebGpuBackend extends Backend<GpuBuffer> {
  /** The adapter in words: vendor, architecture, device and driver description as the host reports them. */
  readonly adapter: string;
  readonly limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
}

/** Rows [start, start + count) of operands bound in blocks; `whole` when there is one block, bound as the whole buffer. */
interface Block {
  start: number;
  count: number;
  whole: boolean;
}

/** What the kernels need from a device, beyond WebGPU's defaults. */
const REQUIRED = { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupStorageSize: 12 * 1024 };
/** attention.wgsl keeps a query row in workgroup memory and four output dimensions per invocation. */
const MAX_HEAD_DIM = 256;

/** Find an adapter and open a device on it, or explain why not. */
export async function requestWebGpuDevice(options: WebGpuBackendOptions = {}): Promise<{ device: GPUDevice; adapter: string }> {
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) {
    throw new Error(
      "webgpu backend: this host has no WebGPU (navigator.gpu is missing). Browsers need WebGPU (Chrome / Edge 113+, " +
        "or a flag); Deno has it built in; in Node use createNodeWebGpuBackend from olmo-js/node (Dawn, from the `webgpu` package).",
    );
  }
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
  if (!adapter) {
    throw new Error(
      "webgpu backend: no GPU adapter: WebGPU is present but found no usable GPU or driver. On Linux without a GPU, " +
        "install a Vulkan driver (Debian: apt-get install libvulkan1 mesa-vulkan-drivers, Mesa 23 or newer for Dawn) " +
        "or point VK_ICD_FILENAMES at one.",
    );
  }
  for (const [name, needed] of Object.entries(REQUIRED)) {
    const has = adapter.limits[name as keyof GPUSupportedLimits] as number;
    if (has < needed) throw new Error(`webgpu backend: the adapter's ${name} is ${has}; the kernels need ${needed}`);
  }
  const info = adapter.info ?? { vendor: "", architecture: "", device: "", description: "" };
  const description = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(" ") || "unknown adapter";
  // The two size limits are asked for in full (model weights and activations are what they are), and
  // the finest storage offset alignment the adapter has (buffers split into blocks start at such offsets).
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      minStorageBufferOffsetAlignment: adapter.limits.minStorageBufferOffsetAlignment,
    },
  });
  return { device, adapter: description };
}

export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const { device, adapter } = await requestWebGpuDevice(options);
  return webGpuBackendOn(device, adapter, options);
}

/** A backend on a device the caller opened (it must have the limits requestWebGpuDevice asks for). */
export function webGpuBackendOn(device: GPUDevice, adapter: string, options: WebGpuBackendOptions = {}): WebGpuBackend {
  const gpu = new GpuRuntime(device, options);
  const run = (family: FamilyName, entry: string, d: Dispatch) => gpu.run(family, entry, d);
  const bytesOf = (dtype: DType, size: number) => size * BYTES_PER_ELEMENT[dtype];

  /**
   * How many rows a block of a split buffer must be a multiple of, so that every block starts at a
   * byte offset the device accepts (minStorageBufferOffsetAlignment), for rows of these byte sizes.
   */
  const rowMultiple = (...rowBytes: number[]) => {
    const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
    return rowBytes.reduce((multiple, bytes) => {
      const own = gpu.offsetAlignment / gcd(gpu.offsetAlignment, bytes);
      return (multiple * own) / gcd(multiple, own);
    }, 1);
  };
  /**
   * The blocks of rows in which to bind [rows, ...] operands, given with their bytes per row: one block
   * when every operand fits one storage binding, else as many rows as the widest row allows, in a
   * multiple of rowMultiple so that every block starts at an aligned offset.
   */
  const blocksOf = (what: string, rows: number, operands: [GpuBuffer, number][]): Block[] => {
    if (operands.every(([buffer]) => buffer.bytes <= gpu.maxBindingBytes)) return [{ start: 0, count: rows, whole: true }];
    const rowBytes = operands.map(([, bytes]) => bytes);
    const widest = Math.max(...rowBytes), multiple = rowMultiple(...rowBytes);
    const perBlock = Math.floor(gpu.maxBindingBytes / widest / multiple) * multiple;
    if (perBlock === 0) throw new Error(`webgpu backend: ${what}: ${multiple} rows of ${formatBytes(widest)} exceed one storage binding (${formatBytes(gpu.maxBindingBytes)})`);
    const blocks: Block[] = [];
    for (let start = 0; start < rows; start += perBlock) blocks.push({ start, count: Math.min(perBlock, rows - start), whole: false });
    return blocks;
  };
  /** A block of rows of a [rows, ...] buffer with `rowBytes` per row, as a binding (the whole buffer for a whole block). */
  const rowRange = (buffer: GpuBuffer, rowBytes: number, { start, count, whole }: Block): BindingResource =>
    whole ? buffer : { buffer, offset: start * rowBytes, size: Math.ceil((count * rowBytes) / 4) * 4 };

  /**
   * Run an elementwise entry point over `size` elements. When an operand is larger than one storage
   * binding, the elements go in blocks (blocksOf), each operand bound at its block's byte range. `shape(count)` gives the Params and
   * the number of invocations for a chunk of `count` elements.
   */
  const elementwise = (
    family: FamilyName,
    entry: string,
    size: number,
    operands: Record<string, [GpuBuffer, DType]>,
    shape: (count: number) => { params: Dispatch["params"]; invocations: number },
  ) => {
    if (size === 0) return;
    const elements = Object.entries(operands).map(([name, [buffer, dtype]]) => [name, buffer, BYTES_PER_ELEMENT[dtype]] as const);
    for (const block of blocksOf(entry, size, elements.map(([, buffer, bytes]) => [buffer, bytes]))) {
      const buffers = Object.fromEntries(elements.map(([name, buffer, bytes]) => [name, rowRange(buffer, bytes, block)]));
      const { params, invocations } = shape(block.count);
      run(family, entry, { params, buffers, groups: grid(Math.ceil(invocations / 256)) });
    }
  };

  const f32Unary = (entry: string, x: GpuBuffer, out: GpuBuffer, size: number, extra: { factor?: number; low?: number; high?: number } = {}) =>
    elementwise("elementwise", entry, size, { a: [x, "f32"], out: [out, "f32"] }, (count) => ({
      params: { size: count, aSize: count, bSize: count, op: 0, factor: extra.factor ?? 0, low: extra.low ?? 0, high: extra.high ?? 0 },
      invocations: count,
    }));

  const f32Backward = (entry: string, x: GpuBuffer, dout: GpuBuffer, dx: GpuBuffer, size: number, low = 0, high = 0) =>
    elementwise("elementwise", entry, size, { a: [x, "f32"], b: [dout, "f32"], out: [dx, "f32"] }, (count) => ({
      params: { size: count, aSize: count, bSize: count, op: 0, factor: 0, low, high },
      invocations: count,
    }));

  /**
   * Run a row kernel (one workgroup per row) over `rows` rows. Operands are [rows, ...] arrays given
   * with their bytes per row; when one is larger than a storage binding, the rows go in blocks
   * (blocksOf), each operand bound at its block. `other` buffers are bound whole.
   */
  const rowwise = (
    family: FamilyName,
    entry: string,
    rows: number,
    perRow: Record<string, [GpuBuffer, number]>,
    other: Record<string, GpuBuffer>,
    params: (rowOffset: number, blockRows: number) => Dispatch["params"],
  ) => {
    for (const block of blocksOf(entry, rows, Object.values(perRow))) {
      const buffers: Record<string, BindingResource> = { ...other };
      for (const [name, [buffer, rowBytes]] of Object.entries(perRow)) buffers[name] = rowRange(buffer, rowBytes, block);
      run(family, entry, { params: params(block.start, block.count), buffers, groups: grid(block.count) });
    }
  };
  const softmaxParams = (cols: number) => (rowOffset: number, rows: number) => ({ rows, cols, rowOffset });

  // Cos / sin tables for RoPE, per (theta, head dimension), grown as longer positions are needed.
  const ropeTables = new Map<string, { buffer: GpuBuffer; positions: number }>();
  const ropeTable = (theta: number, headDim: number, positionsNeeded: number): GpuBuffer => {
    const key = `${theta}:${headDim}`;
    const found = ropeTables.get(key);
    if (found && found.positions >= positionsNeeded) return found.buffer;
    const positions = Math.max(positionsNeeded, 2 * (found?.positions ?? 0));
    const half = headDim / 2;
    // As the reference (src/backends/js/rope.ts): inv_freq and angles rounded to f32 as PyTorch does.
    const invFreq = Array.from({ length: half }, (_, i) => Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim))));
    const table = new Float32Array(positions * half * 2);
    for (let pos = 0; pos < positions; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos * invFreq[i]!);
        table[(pos * half + i) * 2] = Math.cos(angle);
        table[(pos * half + i) * 2 + 1] = Math.sin(angle);
      }
    }
    const buffer = gpu.allocate(table.byteLength, `the RoPE table (${positions} positions)`);
    gpu.write(buffer, table);
    if (found) gpu.release(found.buffer);
    ropeTables.set(key, { buffer, positions });
    return buffer;
  };

  const checkRank = (kernel: string, shape: readonly number[]) => {
    if (shape.length > MAX_RANK) throw new Error(`webgpu backend: ${kernel} supports rank <= ${MAX_RANK}, got ${shape.length}`);
  };

  /** A strided gather or scatter of layout.wgsl; unset fields are zero. */
  const layout = (entry: "gather32" | "gather16" | "scatter32" | "scatter16", x: GpuBuffer, out: GpuBuffer, fields: {
    size: number; rank: number; base?: number; shape: number[]; strides?: number[]; outShape?: number[]; start?: number[]; xStrides?: number[];
  }) => {
    const words = Math.ceil(fields.size / 2);
    const invocations = entry.endsWith("16") ? words : fields.size;
    run("layout", entry, {
      params: {
        size: fields.size, words, rank: fields.rank, base: fields.base ?? 0, shape: fields.shape, strides: fields.strides ?? [],
        outShape: fields.outShape ?? [], start: fields.start ?? [], xStrides: fields.xStrides ?? [],
      },
      buffers: { x, out },
      groups: grid(Math.ceil(invocations / 256)),
    });
  };

  const is16 = (dtype: DType) => dtype === "bf16" || dtype === "f16";

  const kernels: KernelTable<GpuBuffer> = {
    fill: ({ out, dtype, size, value }) => {
      const bits = new Uint32Array(1);
      if (dtype === "f32") new Float32Array(bits.buffer)[0] = value;
      else if (dtype === "i32") bits[0] = value | 0;
      else {
        const half = new Uint16Array(2);
        // One value, encoded on the host by the same rounding the reference uses, repeated in both halves.
        half[0] = half[1] = dtype === "bf16" ? f32ToBf16(value) : f32ToF16(value);
        bits[0] = new Uint32Array(half.buffer)[0]!;
      }
      elementwise("convert", "fill", size, { out: [out, dtype] }, (count) => {
        const words = is16(dtype) ? Math.ceil(count / 2) : count;
        return { params: { size: count, fromType: 0, toType: DTYPE_CODE[dtype], valueBits: bits[0]!, words }, invocations: words };
      });
    },
    cast: ({ x, from, out, to, size }) =>
      elementwise("convert", "convert", size, { x: [x, from], out: [out, to] }, (count) => {
        const words = is16(to) ? Math.ceil(count / 2) : count;
        return { params: { size: count, fromType: DTYPE_CODE[from], toType: DTYPE_CODE[to], valueBits: 0, words }, invocations: words };
      }),
    binary: ({ op, a, b, out, size, aSize, bSize }) => {
      if (aSize === size && bSize === size) {
        elementwise("elementwise", "binary", size, { a: [a, "f32"], b: [b, "f32"], out: [out, "f32"] }, (count) => ({
          params: { size: count, aSize: count, bSize: count, op: BINARY_CODE[op], factor: 0, low: 0, high: 0 },
          invocations: count,
        }));
      } else {
        run("elementwise", "binary", {
          params: { size, aSize, bSize, op: BINARY_CODE[op], factor: 0, low: 0, high: 0 },
          buffers: { a, b, out },
          groups: grid(Math.ceil(size / 256)),
        });
      }
    },
    scale: ({ x, out, size, factor }) => f32Unary("scale", x, out, size, { factor }),
    silu: ({ x, out, size }) => f32Unary("silu", x, out, size),
    siluBackward: ({ x, dout, dx, size }) => f32Backward("siluBackward", x, dout, dx, size),
    clamp: ({ x, out, size, min, max }) => f32Unary("clampValues", x, out, size, { low: min, high: max }),
    clampBackward: ({ x, dout, dx, size, min, max }) => f32Backward("clampBackward", x, dout, dx, size, min, max),

    matmul: (args) => matmul(args),

    layerNorm: ({ x, out, rows, cols, eps, mean, rstd }) => {
      // Mean and rstd are [rows] arrays split with the rows; without them, placeholders take their bindings.
      const stats: Record<string, [GpuBuffer, number]> = mean && rstd ? { meanOut: [mean, 4], rstdOut: [rstd, 4] } : {};
      const placeholders: Record<string, GpuBuffer> = mean && rstd ? {} : { meanOut: gpu.placeholder("meanOut"), rstdOut: gpu.placeholder("rstdOut") };
      rowwise("layernorm", "layerNorm", rows, { x: [x, cols * 4], out: [out, cols * 4], ...stats }, placeholders, (_, count) => ({
        rows: count, cols, eps, saveStats: mean && rstd ? 1 : 0,
      }));
    },
    layerNormBackward: ({ x, mean, rstd, dout, dx, rows, cols }) =>
      rowwise("layernorm", "layerNormBackward", rows,
        { x: [x, cols * 4], meanIn: [mean, 4], rstdIn: [rstd, 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {},
        (_, count) => ({ rows: count, cols, eps: 0, saveStats: 0 })),

    rotaryEmbedding: ({ x, out, batchHeads, seqLen, headDim, positionOffset, theta, inverse }) => {
      const cosSin = ropeTable(theta, headDim, positionOffset + seqLen);
      run("rope", "rotaryEmbedding", {
        params: { batchHeads, seqLen, headDim, positionOffset, inverse: inverse ? 1 : 0 },
        buffers: { x, cosSin, out },
        groups: grid(Math.ceil((batchHeads * seqLen * (headDim / 2)) / 256)),
      });
    },

    attention: ({ q, k, v, out, lse, ...g }) => {
      run("attention", "attention", {
        params: attentionParams("attention", g, lse !== undefined),
        buffers: { q, k, v, outW: out, lseW: lse ?? gpu.placeholder("lseW") },
        groups: grid(g.batch * g.heads * g.queryLen),
      });
    },
    attentionBackward: ({ q, k, v, out, lse, dout, dq, dk, dv, ...g }) => {
      const params = attentionParams("attentionBackward", g, false);
      const delta = gpu.allocate(g.batch * g.heads * g.queryLen * 4, "attention backward's row sums");
      run("attention", "attentionBackwardQueries", {
        params,
        buffers: { q, k, v, out, lse, dout, dq, deltaW: delta },
        groups: grid(g.batch * g.heads * g.queryLen),
      });
      run("attention", "attentionBackwardKeys", {
        params,
        buffers: { q, k, v, lse, dout, deltaIn: delta, dk, dv },
        groups: grid(g.batch * g.kvHeads * g.kvCapacity),
      });
      gpu.release(delta);
    },

    softmax: ({ x, out, rows, cols }) =>
      rowwise("softmax", "softmax", rows, { x: [x, cols * 4], out: [out, cols * 4] }, {}, softmaxParams(cols)),
    softmaxBackward: ({ y, dout, dx, rows, cols }) =>
      rowwise("softmax", "softmaxBackward", rows, { y: [y, cols * 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {}, softmaxParams(cols)),
    logSoftmax: ({ x, out, rows, cols }) =>
      rowwise("softmax", "logSoftmax", rows, { x: [x, cols * 4], out: [out, cols * 4] }, {}, softmaxParams(cols)),
    logSoftmaxBackward: ({ y, dout, dx, rows, cols }) =>
      rowwise("softmax", "logSoftmaxBackward", rows, { y: [y, cols * 4], dout: [dout, cols * 4], out: [dx, cols * 4] }, {}, softmaxParams(cols)),
    crossEntropy: ({ logits, targets, nll, lse, rows, vocab }) =>
      rowwise("softmax", "crossEntropy", rows, { x: [logits, vocab * 4], targets: [targets, 4], nll: [nll, 4], lseOut: [lse, 4] },
        { status: gpu.status }, softmaxParams(vocab)),
    crossEntropyBackward: ({ logits, targets, lse, dnll, dlogits, rows, vocab }) =>
      rowwise("softmax", "crossEntropyBackward", rows,
        { x: [logits, vocab * 4], targets: [targets, 4], lseIn: [lse, 4], dnll: [dnll, 4], out: [dlogits, vocab * 4] }, {}, softmaxParams(vocab)),

    embedding: ({ table, tableDType, ids, out, count, vocab, dim }) => {
      const rowBytes = dim * BYTES_PER_ELEMENT[tableDType];
      for (const block of blocksOf("embedding", vocab, [[table, rowBytes]])) {
        run("embedding", "embedding", {
          params: { count, vocab, dim, vocabStart: block.start, vocabRows: block.count },
          buffers: { ids, table: rowRange(table, rowBytes, block), out, status: gpu.status },
          groups: grid(Math.ceil((count * dim) / 256)),
          constants: { TABLE_DTYPE: DTYPE_CODE[tableDType] },
        });
      }
    },
    embeddingBackward: ({ ids, dout, dtable, count, vocab, dim }) => {
      for (const block of blocksOf("embeddingBackward", vocab, [[dtable, dim * 4]])) {
        const params = { count, vocab, dim, vocabStart: block.start, vocabRows: block.count };
        const rows = rowRange(dtable, dim * 4, block);
        run("embedding", "embeddingBackwardZero", { params, buffers: { dtable: rows }, groups: grid(Math.ceil((block.count * dim) / 256)) });
        run("embedding", "embeddingBackward", { params, buffers: { ids, dout, dtable: rows }, groups: grid(Math.ceil(dim / 256)) });
      }
    },

    sum: ({ x, out, shape, reduce }) => {
      checkRank("sum", shape);
      const strides = stridesOf(shape);
      const kept = shape.map((_, i) => i).filter((i) => !reduce[i]);
      const reduced = shape.map((_, i) => i).filter((i) => reduce[i]);
      const outSize = sizeOf(kept.map((i) => shape[i]!));
      const reducedCount = sizeOf(reduced.map((i) => shape[i]!));
      if (reducedCount === 0) {
        kernels.fill({ out, dtype: "f32", size: outSize, value: 0 });
        return;
      }
      if (x.bytes > gpu.maxBindingBytes && outSize === 1) {
        // Every axis reduced (a gradient norm's sum of squares): blocks of x into partial sums first.
        const blocks = blocksOf("sum", reducedCount, [[x, 4]]);
        const partial = gpu.allocate(blocks.length * 4, "partial sums");
        blocks.forEach((block, i) => sumAll(rowRange(x, 4, block), block.count, partial, i));
        sumAll(partial, blocks.length, out, 0);
        gpu.release(partial);
        return;
      }
      run("reduce", "sum", {
        params: {
          outSize, outOffset: 0, reducedCount, keptRank: kept.length, reducedRank: reduced.length,
          keptShape: kept.map((i) => shape[i]!), keptStrides: kept.map((i) => strides[i]!),
          reducedShape: reduced.map((i) => shape[i]!), reducedStrides: reduced.map((i) => strides[i]!),
        },
        buffers: { x, out },
        groups: grid(outSize),
      });
    },
    broadcast: ({ x, out, shape, reduce }) => {
      checkRank("broadcast", shape);
      const xStrides = stridesOf(shape.map((n, i) => (reduce[i] ? 1 : n)));
      layout("gather32", x, out, { size: sizeOf(shape), rank: shape.length, shape: [...shape], strides: xStrides.map((s, i) => (reduce[i] ? 0 : s)) });
    },
    permute: ({ x, dtype, out, shape, perm }) => {
      checkRank("permute", shape);
      const strides = stridesOf(shape);
      layout(is16(dtype) ? "gather16" : "gather32", x, out, {
        size: sizeOf(shape), rank: shape.length, shape: perm.map((p) => shape[p]!), strides: perm.map((p) => strides[p]!),
      });
    },
    slice: ({ x, dtype, out, shape, start, outShape }) => {
      checkRank("slice", shape);
      const strides = stridesOf(shape);
      layout(is16(dtype) ? "gather16" : "gather32", x, out, {
        size: sizeOf(outShape), rank: shape.length, shape: [...outShape], strides, base: start.reduce((s, v, i) => s + v * strides[i]!, 0),
      });
    },
    sliceAssign: ({ x, dtype, out, shape, start, xShape }) => {
      checkRank("sliceAssign", shape);
      const outStrides = stridesOf(shape);
      if (is16(dtype)) {
        layout("scatter16", x, out, {
          size: sizeOf(shape), rank: shape.length, shape: [...xShape], outShape: [...shape], start: [...start], xStrides: stridesOf(xShape),
        });
      } else {
        layout("scatter32", x, out, {
          size: sizeOf(xShape), rank: shape.length, shape: [...xShape], strides: outStrides,
          base: start.reduce((s, v, i) => s + v * outStrides[i]!, 0),
        });
      }
    },

    adamw: ({ param, grad, m, v, size, lr, beta1, beta2, eps, weightDecay, step }) => {
      // The bias corrections in f64 on the host, as the reference computes them.
      const stepSize = lr / (1 - beta1 ** step);
      const correction2Sqrt = Math.sqrt(1 - beta2 ** step);
      elementwise("adamw", "adamw", size, { param: [param, "f32"], grad: [grad, "f32"], m: [m, "f32"], v: [v, "f32"] }, (count) => ({
        params: { size: count, lr, beta1, beta2, eps, weightDecay, stepSize, correction2Sqrt },
        invocations: count,
      }));
    },
  };

  function attentionParams(kernel: string, g: Omit<KernelArgs<GpuBuffer>["attention"], "q" | "k" | "v" | "out" | "lse">, saveLse: boolean) {
    if (g.headDim > MAX_HEAD_DIM) throw new Error(`webgpu backend: ${kernel} supports head dimensions up to ${MAX_HEAD_DIM}, got ${g.headDim}`);
    if (g.heads % g.kvHeads !== 0) throw new Error(`webgpu backend: ${kernel}: ${g.heads} query heads do not split into ${g.kvHeads} kv heads`);
    if (g.queryLen > g.keyLen || g.keyLen > g.kvCapacity) {
      throw new Error(`webgpu backend: ${kernel}: needs queryLen <= keyLen <= kvCapacity, got ${g.queryLen}, ${g.keyLen}, ${g.kvCapacity}`);
    }
    return {
      batch: g.batch, heads: g.heads, kvHeads: g.kvHeads, queryLen: g.queryLen, keyLen: g.keyLen, kvCapacity: g.kvCapacity,
      headDim: g.headDim, scale: g.scale, causal: g.causal ? 1 : 0, saveLse: saveLse ? 1 : 0,
    };
  }

  /** out[outOffset] = the sum of the `count` values of x. */
  function sumAll(x: BindingResource, count: number, out: GpuBuffer, outOffset: number): void {
    run("reduce", "sum", {
      params: {
        outSize: 1, outOffset, reducedCount: count, keptRank: 0, reducedRank: 1,
        keptShape: [], keptStrides: [], reducedShape: [count], reducedStrides: [1],
      },
      buffers: { x, out },
      groups: [1, 1, 1],
    });
  }

  function matmul(args: KernelArgs<GpuBuffer>["matmul"]): void {
    let { batch, m, aBatchStride } = args;
    const { a, b, out, bDType, k, n, transA, transB, bBatchStride } = args;
    // A batch of row blocks times one shared weight ([B, T, C] @ W) is one [B * T, C] product.
    if (batch > 1 && bBatchStride === 0 && !transA && aBatchStride === m * k) {
      m *= batch;
      batch = 1;
      aBatchStride = 0;
    }
    const strides = {
      aBatchStride, aRowStride: transA ? 1 : k, aColStride: transA ? m : 1,
      bBatchStride, bRowStride: transB ? 1 : n, bColStride: transB ? k : 1,
    };
    const constants = { B_DTYPE: DTYPE_CODE[bDType] };
    const max = gpu.maxBindingBytes;
    const bBytes = BYTES_PER_ELEMENT[bDType];
    // An operand larger than one binding is bound in blocks of its stored rows: A [M, K] by m, A^T
    // stored [K, M] by k, B [K, N] by k, B^T stored [N, K] by n; out [M, N] by m.
    const aSplit = a.bytes <= max ? null : transA ? "k" : "m";
    const bSplit = b.bytes <= max ? null : transB ? "n" : "k";
    const splitM = aSplit === "m" || out.bytes > max;
    const splitK = aSplit === "k" || bSplit === "k";
    if ((splitM || splitK || bSplit) && batch > 1) {
      throw new Error(`webgpu backend: matmul: a batch of ${batch} products with an operand over one storage binding (${formatBytes(max)}) is not split`);
    }
    // Blocks along each axis, for the operands split along it (none: one block).
    const mBlocks = blocksOf("matmul (blocks of m)", m, [...(aSplit === "m" ? [[a, k * 4] as [GpuBuffer, number]] : []), [out, n * 4]]);
    const kBlocks = blocksOf("matmul (blocks of k)", k, [
      ...(aSplit === "k" ? [[a, m * 4] as [GpuBuffer, number]] : []), ...(bSplit === "k" ? [[b, n * bBytes] as [GpuBuffer, number]] : []),
    ]);
    const nBlocks = blocksOf("matmul (blocks of n)", n, bSplit === "n" ? [[b, k * bBytes]] : []);
    for (const mb of mBlocks) {
      for (const kb of kBlocks) {
        for (const nb of nBlocks) {
          const params = {
            m: mb.count, n: nb.count, k: kb.count, ...strides, outColumns: n, nOffset: nb.start,
            aRowOffset: aSplit === "m" ? 0 : mb.start, aKOffset: aSplit === "k" ? 0 : kb.start, bKOffset: bSplit === "k" ? 0 : kb.start,
            accumulate: kb.start > 0 ? 1 : 0,
          };
          const buffers = {
            a: aSplit === "m" ? rowRange(a, k * 4, mb) : aSplit === "k" ? rowRange(a, m * 4, kb) : a,
            b: bSplit === "n" ? rowRange(b, k * bBytes, nb) : bSplit === "k" ? rowRange(b, n * bBytes, kb) : b,
            out: rowRange(out, n * 4, mb),
          };
          if (mb.count === 1 && strides.bRowStride === 1) {
            run("matmul", "gemvRows", { params, buffers, groups: grid(Math.ceil(nb.count / 8), batch), constants });
          } else if (mb.count === 1 && strides.bColStride === 1) {
            run("matmul", "gemvCols", { params, buffers, groups: grid(Math.ceil(nb.count / 256), batch), constants });
          } else {
            const groups: [number, number, number] = [Math.ceil(nb.count / 64), Math.ceil(mb.count / 64), batch];
            if (groups.some((g) => g > 65535)) throw new Error(`webgpu backend: matmul of [${batch}, ${m}, ${k}] x [${k}, ${n}] needs more than 65535 workgroups in one dimension`);
            run("matmul", "matmul", { params, buffers, groups, constants });
          }
        }
      }
    }
  }

  const name = "webgpu";
  return {
    name,
    adapter,
    limits: { maxStorageBufferBindingSize: gpu.maxBindingBytes, maxBufferSize: device.limits.maxBufferSize },
    allocate: (dtype, size) => gpu.allocate(bytesOf(dtype, size), `a ${dtype} tensor of ${size} elements`),
    free: (buffer) => gpu.release(buffer),
    upload: (buffer, dtype, data) => {
      if (data.byteLength > buffer.bytes) throw new Error(`webgpu backend: upload of ${data.byteLength} bytes into a ${buffer.bytes}-byte ${dtype} buffer`);
      gpu.write(buffer, data);
    },
    download: async (buffer, dtype, size) => {
      const bytes = await gpu.read(buffer, bytesOf(dtype, size));
      return hostArray(dtype, bytes);
    },
    kernels,
    sync: () => gpu.sync(),
    memoryUsage: () => gpu.memoryUsage(),
    dispose: () => gpu.dispose(),
  };
}

function hostArray(dtype: DType, bytes: ArrayBuffer): HostArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(bytes);
    case "i32":
      return new Int32Array(bytes);
    case "bf16":
    case "f16":
      return new Uint16Array(bytes);
  }
}
