// The backend interface: the whole contract between the tensor core and a place that computes.
//
// A backend owns opaque buffers (a JS typed array, a range of WebAssembly memory, a GPUBuffer) and
// offers five things: allocate, free, upload, download, and one kernel per entry of `KernelArgs`.
// The core never touches a buffer's contents; it only passes buffers and sizes to kernels. That keeps
// the contract small enough for kernels that run in a worker or on a GPU:
//   - kernels return nothing: a GPU backend may queue the work and run it later;
//   - download is async, so a GPU can map its buffer; CPU backends may add a sync path;
//   - a fresh buffer's contents are unspecified: kernels write every element of `out`.
//
// `KernelTable<B>` maps every kernel name to a function, so a backend that lacks one does not compile
// (typed tables, not string registries that fail at run time; see "A fact lives in one place" in
// CONTRIBUTING.md).
//
// Shape legend used in the comments below:
//   N = rows, C = columns / channels, M K N (matmul) = out rows, inner, out columns
//   B = batch, H = query heads, G = key/value heads (H % G == 0), Tq / Tk = query / key length,
//   D = head dimension, V = vocabulary size.

import type { DType, HostArray, QuantScheme, StorageDType } from "./dtype.js";

export type BinaryOp = "add" | "sub" | "mul";

/** The sizes of an attention call (see KernelArgs["attention"]): B, H, G, Tq, Tk, S, D. */
export interface AttentionGeometry {
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  kvCapacity: number;
  headDim: number;
  scale: number;
  causal: boolean;
}

/** Arguments of each kernel. Buffers are of the backend's own type B. */
export interface KernelArgs<B> {
  /** out[i] = value for i < size. */
  fill: { out: B; dtype: DType; size: number; value: number };
  /** Convert between dtypes element by element (f32 <-> bf16/f16 rounding to nearest even, i32 <-> f32). */
  cast: { x: B; from: DType; out: B; to: DType; size: number };
  /**
   * out[i] = a[i % aSize] op b[i % bSize], i < size. The smaller operand repeats over the leading axes
   * of the larger one (its shape is a suffix of the output shape), so size is a multiple of both.
   */
  binary: { op: BinaryOp; a: B; b: B; out: B; size: number; aSize: number; bSize: number };
  /** out = x * factor. */
  scale: { x: B; out: B; size: number; factor: number };
  /** out = x * sigmoid(x). */
  silu: { x: B; out: B; size: number };
  /** dx = dout * d/dx silu(x) = dout * s * (1 + x (1 - s)), s = sigmoid(x). */
  siluBackward: { x: B; dout: B; dx: B; size: number };
  /** out = min(max(x, min), max). */
  clamp: { x: B; out: B; size: number; min: number; max: number };
  /** dx = dout where min <= x <= max, else 0 (PyTorch's clamp backward, bounds inclusive). */
  clampBackward: { x: B; dout: B; dx: B; size: number; min: number; max: number };

  /**
   * out[b] = op(a[b]) @ op(b[b]) for b < batch, where op transposes when asked.
   * a: [batch, M, K] ([batch, K, M] if transA); b: [batch, K, N] ([batch, N, K] if transB);
   * out: [batch, M, N]. A batch stride of 0 reuses one matrix for every batch entry (weights).
   * b may be stored in bf16 / f16 (weights); it is widened to f32 as it is read.
   */
  matmul: {
    a: B;
    b: B;
    out: B;
    bDType: "f32" | StorageDType;
    batch: number;
    m: number;
    k: number;
    n: number;
    transA: boolean;
    transB: boolean;
    aBatchStride: number;
    bBatchStride: number;
  };

  /**
   * Quantized weights (the schemes and their exact arithmetic: src/core/quantize.ts). A quantized
   * [N, K] weight is `values` (i8: int8 [N, K]; int4 two per byte [N, K/2]) and `scales` (int8: f32
   * [N]; int4: f16 [N, K/32]); int4 interleaves its rows four at a time in both (int4ByteOffset).
   *
   * Quantize x ([rows, cols] of f32 / bf16 / f16) into values and scales, exactly as quantizeHost.
   */
  quantize: { x: B; xDType: "f32" | StorageDType; values: B; scales: B; scheme: QuantScheme; rows: number; cols: number };
  /** out = dequant(W): f32 [rows, cols], exactly as dequantizeHost. */
  dequantize: { values: B; scales: B; out: B; scheme: QuantScheme; rows: number; cols: number };
  /**
   * out = a dequant(W)^T with a's rows quantized per block of 32 (quantize.ts): a: f32 [M, K],
   * W: [N, K] quantized, out: f32 [M, N]. Equal to the reference up to the order of f32 sums.
   */
  matmulQuantized: { a: B; values: B; scales: B; out: B; scheme: QuantScheme; m: number; k: number; n: number };
  /** out[n, :] = dequant(table)[ids[n], :]; ids: i32 [N], table: [V, C] quantized, out: f32 [N, C]. */
  embeddingQuantized: { values: B; scales: B; scheme: QuantScheme; ids: B; out: B; count: number; vocab: number; dim: number };

  /**
   * Non-parametric layer norm over the last axis: out = (x - mean) / sqrt(var + eps), x: [N, C].
   * When given, mean and rstd ([N]) are stored for the backward pass.
   */
  layerNorm: { x: B; out: B; rows: number; cols: number; eps: number; mean?: B; rstd?: B };
  /** dx = rstd * (dout - mean(dout) - xhat * mean(dout * xhat)), xhat = (x - mean) * rstd. */
  layerNormBackward: { x: B; mean: B; rstd: B; dout: B; dx: B; rows: number; cols: number };

  /**
   * Rotary position embedding, half-split ("rotate_half") layout as in HF Llama/OLMo:
   * x: [B, H, T, D]; position of row t is positionOffset + t; inv_freq[i] = theta^(-2i/D), i < D/2;
   * out[..., i]       = x[..., i] cos - x[..., i + D/2] sin
   * out[..., i + D/2] = x[..., i + D/2] cos + x[..., i] sin.
   * inverse = true rotates by -angle (the transpose), which is the backward pass.
   */
  rotaryEmbedding: {
    x: B;
    out: B;
    batchHeads: number;
    seqLen: number;
    headDim: number;
    positionOffset: number;
    theta: number;
    inverse: boolean;
  };

  /**
   * Causal scaled-dot-product attention, fused: out = softmax(scale * q k^T + causal mask) v.
   * q: [B, H, Tq, D], k, v: [B, G, S, D] of which the first Tk rows per head are used (S = kvCapacity
   * >= Tk: a preallocated KV cache), out: [B, H, Tq, D]; query head h reads kv head h / (H / G).
   * Query t sits at absolute position (Tk - Tq) + t (the earlier Tk - Tq keys come from a KV cache) and
   * sees keys at positions <= its own. When given, lse ([B, H, Tq]) receives each row's log-sum-exp of
   * the scaled scores, so the backward pass can recompute the probabilities.
   */
  attention: AttentionGeometry & { q: B; k: B; v: B; out: B; lse?: B };
  /** Gradients of attention with respect to q, k and v (dk, dv: [B, G, S, D]; rows past Tk are 0). */
  attentionBackward: AttentionGeometry & { q: B; k: B; v: B; out: B; lse: B; dout: B; dq: B; dk: B; dv: B };

  /** Softmax over the last axis of x: [N, C]. */
  softmax: { x: B; out: B; rows: number; cols: number };
  /** dx = y * (dout - sum(dout * y)), y = softmax output. */
  softmaxBackward: { y: B; dout: B; dx: B; rows: number; cols: number };
  /** Log-softmax over the last axis of x: [N, C]. */
  logSoftmax: { x: B; out: B; rows: number; cols: number };
  /** dx = dout - exp(y) * sum(dout), y = log-softmax output. */
  logSoftmaxBackward: { y: B; dout: B; dx: B; rows: number; cols: number };

  /** out[n, :] = table[ids[n], :]; ids: i32 [N], table: [V, C] (f32 or a storage dtype). */
  embedding: { table: B; tableDType: "f32" | StorageDType; ids: B; out: B; count: number; vocab: number; dim: number };
  /** dtable = 0, then dtable[ids[n], :] += dout[n, :] (a scatter-add: repeated ids accumulate). */
  embeddingBackward: { ids: B; dout: B; dtable: B; count: number; vocab: number; dim: number };

  /**
   * Per-row negative log-likelihood: nll[n] = logsumexp(logits[n, :]) - logits[n, targets[n]],
   * logits: [N, V], targets: i32 [N]. lse ([N]) receives the log-sum-exp for the backward pass.
   */
  crossEntropy: { logits: B; targets: B; nll: B; lse: B; rows: number; vocab: number };
  /** dlogits[n, j] = dnll[n] * (softmax(logits[n])[j] - (j == targets[n])). */
  crossEntropyBackward: { logits: B; targets: B; lse: B; dnll: B; dlogits: B; rows: number; vocab: number };

  /**
   * Sum over the axes where reduce[i] is true: x has `shape`, out has `shape` with those axes set to 1.
   */
  sum: { x: B; out: B; shape: readonly number[]; reduce: readonly boolean[] };
  /** The transpose of `sum`: out (of `shape`) takes x (reduced shape) repeated along the reduced axes. */
  broadcast: { x: B; out: B; shape: readonly number[]; reduce: readonly boolean[] };

  /**
   * One AdamW step in place, as torch.optim.AdamW (decoupled weight decay):
   *   param *= 1 - lr * weightDecay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
   *   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
   */
  adamw: {
    param: B;
    grad: B;
    m: B;
    v: B;
    size: number;
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    step: number;
  };

  /** out = x with its axes reordered: out.shape[i] = shape[perm[i]]. */
  permute: { x: B; dtype: DType; out: B; shape: readonly number[]; perm: readonly number[] };
  /** out = x[start[0] : start[0] + outShape[0], ...] for x of `shape`. */
  slice: { x: B; dtype: DType; out: B; shape: readonly number[]; start: readonly number[]; outShape: readonly number[] };
  /** The region out[start[0] : start[0] + xShape[0], ...] = x, other elements untouched; out has `shape`. */
  sliceAssign: {
    x: B;
    dtype: DType;
    out: B;
    shape: readonly number[];
    start: readonly number[];
    xShape: readonly number[];
  };
}

export type KernelName = keyof KernelArgs<unknown>;

/** One function per kernel: leaving one out is a compile error. */
export type KernelTable<B> = { readonly [K in KernelName]: (args: KernelArgs<B>[K]) => void };

/** Bytes a backend holds: in live buffers, reserved from its host (live + free blocks kept for reuse), and its limit. */
export interface MemoryUsage {
  /** Bytes in live buffers. */
  inUse: number;
  /** Bytes taken from the host: live buffers plus freed blocks kept for reuse (reserved - inUse is the slack). */
  reserved: number;
  /** The highest `reserved` has been. */
  peak: number;
  /** The most this backend can hold (Infinity where the host sets no limit the backend knows of). */
  limit: number;
}

export interface Backend<B = unknown> {
  /** Short name used in messages and on the command line: "js", "wasm", "webgpu". */
  readonly name: string;
  /** A buffer for `size` elements of `dtype`; contents unspecified. */
  allocate(dtype: DType, size: number): B;
  free(buffer: B): void;
  /** Copy host data (the raw bits of `dtype`) into the buffer. */
  upload(buffer: B, dtype: DType, data: HostArray): void;
  /** Read a buffer back to the host as the raw bits of `dtype`: a fresh array the caller owns. */
  download(buffer: B, dtype: DType, size: number): Promise<HostArray>;
  /** CPU backends can read synchronously. */
  downloadSync?(buffer: B, dtype: DType, size: number): HostArray;
  /**
   * The buffer's bytes as a host view that may be written directly (a loader reads a file straight into
   * it: no intermediate copy), for backends whose buffers live in host memory and hold the raw bits of
   * `dtype`; absent or null otherwise (use upload). The view is valid until the next allocation, and
   * is for writing the buffer before it is next passed to a kernel (a backend may remember what it
   * found in a buffer until the buffer is written, and counts this call as the write).
   */
  rawBytes?(buffer: B, dtype: DType, size: number): Uint8Array | null;
  /**
   * Elements [start, start + size) of `buffer` (of `dtype`) as a buffer of their own that shares its
   * memory: kernels read and write through it, and it is never passed to free (the core frees the
   * parent once neither it nor any view is in use; Tensor.viewRange). Backends whose buffers cannot
   * start at an arbitrary offset (WebGPU binds storage at 256-byte steps) leave it out.
   */
  view?(buffer: B, dtype: DType, start: number, size: number): B;
  readonly kernels: KernelTable<B>;
  /** Resolves once every kernel called so far has finished (a GPU's queue drained); throws errors it reported. */
  sync(): Promise<void>;
  memoryUsage(): MemoryUsage;
  /**
   * Placement hint: the next allocations, about `bytes` in all (one layer's weights), belong together. A
   * backend that spreads tensors over several memories (wasm beyond 4 GiB) keeps them in one where it can;
   * 0 ends the group. Others need not implement it.
   */
  placeGroup?(bytes: number): void;
  /** Release what the backend holds (worker threads, a GPU device). It must not be used afterwards. */
  dispose(): void;
}
