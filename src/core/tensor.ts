// Tensors, their storage, and who frees them.
//
// A Tensor is a shape, a dtype and a reference to Storage: one backend buffer with a reference count,
// so views such as reshape share bytes without copying. Tensors are always contiguous, row-major.
// Where the backend can view a buffer at an offset (Backend.view), a tensor may also be a contiguous
// range of another's elements (viewRange): its storage holds the parent's, which it keeps alive.
//
// Memory is the engine's job:
//   - `scope(fn)` frees every tensor created inside fn when fn returns, except the tensors fn returns
//     (they move to the enclosing scope). A training step is one scope: activations, saved values and
//     intermediate gradients all go when it ends.
//   - Tensors made outside any scope (parameters, say) belong to the caller; `dispose()` frees them.
//   - `memory()` counts live tensors and backend bytes, so tests can assert a loop does not leak.

import type { Backend } from "./backend.js";
import { BYTES_PER_ELEMENT, type DType, type HostArray, widenToF32 } from "./dtype.js";

// ---------------------------------------------------------------------------------------------------
// Backends

// Buffers are opaque to the core, so it holds backends without their buffer type.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyBackend = Backend<any>;

let defaultBackend: AnyBackend | null = null;

/** Make `backend` the one that new tensors are created on. */
export function setBackend(backend: AnyBackend): void {
  defaultBackend = backend;
}

export function getBackend(): AnyBackend {
  if (!defaultBackend) throw new Error("olmo-js: no backend set; call setBackend(createJsBackend()) first");
  return defaultBackend;
}

// ---------------------------------------------------------------------------------------------------
// Storage and the live-memory counter

const live = { tensors: 0, bytes: 0, buffers: 0 };

/** Live tensors, storage buffers and their bytes, across all backends. */
export function memory(): { tensors: number; buffers: number; bytes: number } {
  return { ...live };
}

class Storage {
  private refs = 1;
  /**
   * A buffer of its own, or (parent set) the range of the parent's buffer from element `offset` on: the
   * parent stays alive while this does, and a range is neither counted in `memory()` nor freed (its
   * bytes are the parent's). A parent is never itself a range.
   */
  constructor(
    readonly backend: AnyBackend,
    readonly buffer: unknown,
    readonly bytes: number,
    readonly parent: Storage | null = null,
    readonly offset = 0,
  ) {
    if (parent) {
      parent.retain();
    } else {
      live.buffers++;
      live.bytes += bytes;
    }
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs > 0) return;
    if (this.parent) {
      this.parent.release();
    } else {
      this.backend.free(this.buffer);
      live.buffers--;
      live.bytes -= this.bytes;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Scopes

const scopeStack: Set<Tensor>[] = [];

/**
 * Run fn; free every tensor it created except those in its result (a tensor, or arrays / plain objects
 * holding tensors), which move to the enclosing scope. fn must be synchronous: a scope is a stack frame.
 */
export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  scopeStack.push(created);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error("scope: fn returned a Promise; scopes must be synchronous");
  } catch (e) {
    // Nothing is returned, so nothing it made is reachable: freed as on success (an out-of-memory error
    // halfway through a forward pass must not leave that pass's activations behind for the next try).
    scopeStack.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  scopeStack.pop();
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopeStack[scopeStack.length - 1];
  for (const t of created) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Take t out of every scope: the caller now owns it and frees it with dispose(). */
export function keep<T extends Tensor>(t: T): T {
  for (const frame of scopeStack) frame.delete(t);
  return t;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, into);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, into);
  else if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collectTensors(v, into);
}

// ---------------------------------------------------------------------------------------------------
// Tensor

/** The autograd record of how a tensor was computed; see autograd.ts. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Gradients of the inputs given the gradient of the output; null where an input needs none. */
  readonly backward: (gradOutput: Tensor) => (Tensor | null)[];
  /** Tensors computed in the forward pass only for the backward pass; freed with the node. */
  readonly saved: readonly Tensor[];
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  /** Set for tensors whose gradient is wanted: parameters and everything computed from them. */
  requiresGrad = false;
  /** For a leaf with requiresGrad: the accumulated gradient after backward(). Owned by the tensor. */
  grad: Tensor | null = null;
  /** How this tensor was computed, while the graph is alive. */
  gradFn: GradNode | null = null;
  /** Set when backward() freed this tensor's gradFn: a later backward through it would be wrong. */
  graphReleased = false;
  private storage: Storage | null;

  /** Internal: use the creation functions (tensor, zeros, ...) or ops instead. */
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    storage: Storage,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    this.storage = storage;
    live.tensors++;
    scopeStack[scopeStack.length - 1]?.add(this);
  }

  /** A fresh tensor with uninitialised contents on `backend`. */
  static empty(shape: readonly number[], dtype: DType, backend: AnyBackend = getBackend()): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    const bytes = size * BYTES_PER_ELEMENT[dtype];
    return new Tensor(shape, dtype, new Storage(backend, backend.allocate(dtype, size), bytes));
  }

  /** A tensor of another shape sharing this one's storage (same number of elements). */
  view(shape: readonly number[]): Tensor {
    return new Tensor(shape, this.dtype, this.liveStorage("view").retain());
  }

  /**
   * Elements [start, start + size of `shape`) of this tensor (in row-major order) as a tensor of
   * `shape`, sharing its storage: no copy, and writing one writes the other. For backends that can view
   * a buffer at an offset (Backend.view; the CPU backends): check `canViewRange` first. No gradient
   * flows through it, so a tensor that records one (or wants one) is refused.
   */
  viewRange(start: number, shape: readonly number[]): Tensor {
    const storage = this.liveStorage("viewRange");
    const size = shape.reduce((a, b) => a * b, 1);
    if (!storage.backend.view) throw new Error(`viewRange: the ${storage.backend.name} backend cannot view a buffer at an offset`);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`viewRange: shape [${shape.join(", ")}] must be non-negative integers`);
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(size) || start + size > this.size) {
      throw new Error(`viewRange: elements [${start}, ${start + size}) are not a range of ${this.describe()}`);
    }
    if (this.requiresGrad || this.gradFn) throw new Error(`viewRange: ${this.describe()} takes part in autograd; a range of it would carry no gradient`);
    const root = storage.parent ?? storage, offset = storage.offset + start;
    const buffer = storage.backend.view(root.buffer, this.dtype, offset, size);
    return new Tensor(shape, this.dtype, new Storage(storage.backend, buffer, size * BYTES_PER_ELEMENT[this.dtype], root, offset));
  }

  get backend(): AnyBackend {
    return this.liveStorage("backend").backend;
  }

  /** Whether this tensor and `other` are live and hold bytes of the same buffer (views or ranges of one). */
  sharesStorageWith(other: Tensor): boolean {
    if (!this.storage || !other.storage) return false;
    return (this.storage.parent ?? this.storage) === (other.storage.parent ?? other.storage);
  }

  /** Whether viewRange works here: the backend can view a buffer at an offset. */
  get canViewRange(): boolean {
    return this.liveStorage("canViewRange").backend.view !== undefined;
  }

  /** The backend buffer, for kernels. Throws if the tensor was disposed. */
  bufferFor(op: string): unknown {
    return this.liveStorage(op).buffer;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  private liveStorage(op: string): Storage {
    if (!this.storage) throw new Error(`${op}: ${this.describe()} was disposed and cannot be used`);
    return this.storage;
  }

  /** "tensor #12 [2, 3] f32" for error messages. */
  describe(): string {
    return `tensor #${this.id} [${this.shape.join(", ")}] ${this.dtype}`;
  }

  toString(): string {
    return `Tensor(${this.describe()}${this.disposed ? ", disposed" : ""})`;
  }

  /**
   * Free the storage (when no view shares it), the saved tensors of the graph node and the gradient.
   * Disposing twice is allowed; using a disposed tensor throws.
   */
  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    live.tensors--;
    for (const frame of scopeStack) frame.delete(this);
    this.releaseGraph();
    this.grad?.dispose();
    this.grad = null;
  }

  /** Drop the autograd record, freeing what the forward pass saved for backward. */
  releaseGraph(): void {
    const node = this.gradFn;
    if (!node) return;
    this.gradFn = null;
    this.graphReleased = true;
    for (const t of node.saved) t.dispose();
  }

  /** Replace this tensor's contents with `source`'s (same shape and dtype), sharing its storage. */
  assign(source: Tensor): this {
    if (source.dtype !== this.dtype || source.shape.join() !== this.shape.join()) {
      throw new Error(`assign: cannot assign ${source.describe()} to ${this.describe()}: shapes and dtypes must match`);
    }
    const next = source.liveStorage("assign").retain();
    this.liveStorage("assign").release();
    this.storage = next;
    return this;
  }

  /** Raw contents: the bits of the dtype (Uint16Array for bf16 / f16). */
  async rawData(): Promise<HostArray> {
    const storage = this.liveStorage("data");
    return storage.backend.download(storage.buffer, this.dtype, this.size);
  }

  /** Contents as numbers: Float32Array for float dtypes (bf16 / f16 widened), Int32Array for i32. */
  async data(): Promise<Float32Array | Int32Array> {
    return toNumbers(await this.rawData(), this.dtype);
  }

  /** Synchronous read-back, for CPU backends only. */
  dataSync(): Float32Array | Int32Array {
    const storage = this.liveStorage("dataSync");
    if (!storage.backend.downloadSync) {
      throw new Error(`dataSync: the ${storage.backend.name} backend reads back asynchronously; use await tensor.data()`);
    }
    return toNumbers(storage.backend.downloadSync(storage.buffer, this.dtype, this.size), this.dtype);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: ${this.describe()} has ${this.size} elements, expected 1`);
    return (await this.data())[0]!;
  }

  /** Nested arrays of numbers, for printing and tests. */
  async toArray(): Promise<unknown> {
    const values = Array.from(await this.data());
    const nest = (offset: number, axis: number): unknown => {
      if (axis === this.shape.length) return values[offset];
      const stride = this.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.shape[axis]! }, (_, i) => nest(offset + i * stride, axis + 1));
    };
    return nest(0, 0);
  }
}

function toNumbers(raw: HostArray, dtype: DType): Float32Array | Int32Array {
  if (dtype === "i8") return Int32Array.from(raw as Int8Array);
  return dtype === "bf16" || dtype === "f16" ? widenToF32(raw as Uint16Array, dtype) : (raw as Float32Array | Int32Array);
}
