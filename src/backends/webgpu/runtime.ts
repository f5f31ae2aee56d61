// The machinery under the WebGPU kernels: buffers and their pool, compiled pipelines, and command
// batching. The kernels (the family files beside this one) only say "run entry E of kernel file F with
// these parameters and buffers on this many workgroups"; this file turns that into WebGPU calls.
//
// Batching: dispatches are recorded into one compute pass and submitted together, when a batch is
// full, before an upload (queue.writeBuffer runs ahead of unsubmitted commands), or when the host
// reads a result back. Each dispatch's Params live in a 256-byte slot of one uniform buffer bound with
// a dynamic offset; the slots are written with one writeBuffer just before the submit.
//
// Errors: WebGPU reports validation and out-of-memory errors asynchronously, so they are collected
// with error scopes and thrown by the next read-back (`read`), together with any bad ids the kernels
// reported in the status buffer. A lost device makes every later call throw at once.

import type { MemoryUsage } from "../../core/backend.js";
import { formatBytes } from "../../core/format.js";
import { kernelFile, STATUS_KERNELS, type KernelFile, type KernelFileName } from "./shaders.js";

// WebGPU's flag values (GPUBufferUsage, GPUMapMode, GPUShaderStage), spelled out so this file does not
// depend on those globals existing (Node's Dawn binding installs them only on request).
const USAGE_MAP_READ = 0x1, USAGE_COPY_SRC = 0x4, USAGE_COPY_DST = 0x8, USAGE_UNIFORM = 0x40, USAGE_STORAGE = 0x80;
const MAP_READ = 0x1;
const STAGE_COMPUTE = 0x4;

/** Bytes per dispatch for its Params (WebGPU's usual minUniformBufferOffsetAlignment). */
const PARAM_SLOT = 256;
const MAX_DISPATCHES_PER_SUBMIT = 1024;
const MAX_GROUPS_PER_DIMENSION = 65535;

export interface GpuBuffer {
  readonly buffer: GPUBuffer;
  /** Bytes the tensor needs. */
  readonly bytes: number;
  /** Bytes of the GPUBuffer (>= bytes, a multiple of 16). */
  readonly capacity: number;
}

/** A buffer, or a byte range of one (for data larger than one storage binding). */
export type BindingResource = GpuBuffer | { buffer: GpuBuffer; offset: number; size: number };

export interface Dispatch {
  params: Record<string, number | boolean | readonly number[]>;
  buffers: Record<string, BindingResource>;
  /** Workgroups in x, y, z. */
  groups: readonly [number, number, number];
  /** Pipeline-overridable constants (WGSL `override`). */
  constants?: Record<string, number>;
}

/** A 1-D count of workgroups as a 2-D grid (kernels recover the index with flatGroup). */
export function grid(workgroups: number, z = 1): [number, number, number] {
  if (workgroups <= MAX_GROUPS_PER_DIMENSION) return [Math.max(workgroups, 0), 1, z];
  const y = Math.ceil(workgroups / MAX_GROUPS_PER_DIMENSION);
  if (y > MAX_GROUPS_PER_DIMENSION) throw new Error(`webgpu backend: ${workgroups} workgroups exceed the 65535 x 65535 grid`);
  return [MAX_GROUPS_PER_DIMENSION, y, z];
}

export class GpuRuntime {
  /** Largest storage binding, in bytes (the device's limit, or a smaller one asked for in tests). */
  readonly maxBindingBytes: number;
  readonly offsetAlignment: number;
  /** Set when the device is lost or the backend disposed: every later call throws this. */
  private dead: string | null = null;

  private readonly pool = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  private liveBytes = 0;
  private peakBytes = 0;
  private readonly poolLimitBytes: number;

  private readonly modules = new Map<KernelFileName, GPUShaderModule>();
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; names: string[] }>();
  private readonly placeholders = new Map<string, GpuBuffer>();

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly paramWords = new Uint32Array((PARAM_SLOT / 4) * MAX_DISPATCHES_PER_SUBMIT);
  private readonly paramFloats = new Float32Array(this.paramWords.buffer);
  private readonly paramInts = new Int32Array(this.paramWords.buffer);
  private readonly paramBuffer: GPUBuffer;
  /** [kernel code, position, value, limit] of the first bad id a kernel met (see common.wgsl). */
  readonly status: GpuBuffer;

  private errors: Promise<string | null>[] = [];

  constructor(
    readonly device: GPUDevice,
    options: { maxBindingBytes?: number; poolLimitBytes?: number } = {},
  ) {
    const limits = device.limits;
    this.maxBindingBytes = Math.min(limits.maxStorageBufferBindingSize, options.maxBindingBytes ?? Infinity);
    this.offsetAlignment = limits.minStorageBufferOffsetAlignment;
    this.poolLimitBytes = options.poolLimitBytes ?? 512 * 2 ** 20;
    void device.lost.then((info) => {
      this.dead ??= `webgpu backend: the GPU device was lost (${info.reason ?? "unknown"}): ${info.message}`;
    });
    this.pushScopes();
    this.paramBuffer = device.createBuffer({ size: this.paramWords.byteLength, usage: USAGE_UNIFORM | USAGE_COPY_DST });
    this.status = this.allocate(16, "the status buffer");
    this.write(this.status, new Uint32Array(4));
  }

  private check(): void {
    if (this.dead) throw new Error(this.dead);
  }

  // -------------------------------------------------------------------------------------------------
  // Buffers

  /** A buffer of at least `bytes`; `what` names it in errors ("an f32 tensor of 12 elements"). */
  allocate(bytes: number, what: string): GpuBuffer {
    this.check();
    const capacity = bytes <= 65536 ? Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1)))) : Math.ceil(bytes / 65536) * 65536;
    if (capacity > this.device.limits.maxBufferSize) {
      throw new Error(
        `webgpu backend: cannot allocate ${formatBytes(bytes)} for ${what}: this device's maxBufferSize is ` +
          `${formatBytes(this.device.limits.maxBufferSize)}`,
      );
    }
    let buffer = this.pool.get(capacity)?.pop();
    if (buffer) {
      this.pooledBytes -= capacity;
    } else {
      this.device.pushErrorScope("out-of-memory");
      buffer = this.device.createBuffer({ size: capacity, usage: USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST });
      const live = this.liveBytes;
      this.errors.push(
        this.device.popErrorScope().then((e) =>
          e ? `out of GPU memory allocating ${formatBytes(capacity)} for ${what} (${formatBytes(live)} already in use): ${e.message}` : null,
        ),
      );
    }
    this.liveBytes += capacity;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes + this.pooledBytes);
    return { buffer, bytes, capacity };
  }

  release(b: GpuBuffer): void {
    if (this.dead) return;
    this.liveBytes -= b.capacity;
    if (this.pooledBytes + b.capacity <= this.poolLimitBytes) {
      // Reuse is safe without waiting: later commands that write it run after earlier ones that read it.
      let list = this.pool.get(b.capacity);
      if (!list) this.pool.set(b.capacity, (list = []));
      list.push(b.buffer);
      this.pooledBytes += b.capacity;
    } else {
      this.flush(); // commands recorded but not submitted may still use it
      b.buffer.destroy();
    }
  }

  /** Bytes held by live buffers and by the pool of freed ones. */
  memoryUsage(): MemoryUsage {
    // The device's memory is not known to WebGPU; the largest buffer it allows is the only limit we can name.
    return { inUse: this.liveBytes, reserved: this.liveBytes + this.pooledBytes, peak: this.peakBytes, limit: Infinity };
  }

  /** Copy host bytes into the start of a buffer. */
  write(target: GpuBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.check();
    this.flush(); // writeBuffer runs before commands not yet submitted, which may read the old contents
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // writeBuffer takes whole 4-byte words from an unshared ArrayBuffer: copy when that is not so.
    if (bytes.byteLength % 4 !== 0 || !(bytes.buffer instanceof ArrayBuffer)) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    this.device.queue.writeBuffer(target.buffer, byteOffset, bytes as Uint8Array<ArrayBuffer>);
  }

  /** The first `bytes` of a buffer, after every command recorded so far; throws collected errors. */
  async read(source: GpuBuffer, bytes: number): Promise<ArrayBuffer> {
    this.check();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size: size + 16, usage: USAGE_MAP_READ | USAGE_COPY_DST });
    this.endPass();
    const encoder = (this.encoder ??= this.device.createCommandEncoder());
    if (size > 0) encoder.copyBufferToBuffer(source.buffer, 0, staging, 0, size);
    encoder.copyBufferToBuffer(this.status.buffer, 0, staging, size, 16);
    this.flush();
    await this.throwCollectedErrors();
    try {
      await staging.mapAsync(MAP_READ);
    } catch (e) {
      this.check();
      throw new Error(`webgpu backend: reading a buffer back failed: ${(e as Error).message}`);
    }
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    const status = new Uint32Array(copy, size, 4);
    if (status[0] !== 0) {
      const { kernel, what } = STATUS_KERNELS[status[0]!] ?? { kernel: `kernel ${status[0]}`, what: "id" };
      this.write(this.status, new Uint32Array(4));
      throw new RangeError(`${kernel}: ${what} ${status[2]! | 0} at position ${status[1]} is out of range [0, ${status[3]})`);
    }
    return copy.slice(0, bytes);
  }

  private async throwCollectedErrors(): Promise<void> {
    this.popScopes();
    this.pushScopes();
    const messages = (await Promise.all(this.errors)).filter((m): m is string => m !== null);
    this.errors = [];
    this.check();
    if (messages.length > 0) throw new Error(`webgpu backend: ${messages.join("; ")}`);
  }

  private pushScopes(): void {
    this.device.pushErrorScope("validation");
    this.device.pushErrorScope("internal");
  }

  private popScopes(): void {
    for (let i = 0; i < 2; i++) {
      this.errors.push(
        this.device.popErrorScope().then(
          (e) => (e ? e.message : null),
          () => null, // only when the device is lost; `dead` says so
        ),
      );
    }
  }

  /**
   * A small buffer for a binding that a shader declares but this call does not need (a kernel's
   * optional output, say): every statically used binding must be bound. One per name, so two such
   * outputs never alias.
   */
  placeholder(name: string): GpuBuffer {
    let b = this.placeholders.get(name);
    if (!b) this.placeholders.set(name, (b = this.allocate(16, `the placeholder for "${name}"`)));
    return b;
  }

  // -------------------------------------------------------------------------------------------------
  // Pipelines and dispatches

  private pipeline(file: KernelFile, entry: string, names: string[], constants: Record<string, number> | undefined) {
    const key = `${file.name}:${entry}:${names.join(",")}:${constants ? JSON.stringify(constants) : ""}`;
    let found = this.pipelines.get(key);
    if (!found) {
      let module = this.modules.get(file.name);
      if (!module) this.modules.set(file.name, (module = this.device.createShaderModule({ label: `kernels/${file.name}.wgsl`, code: file.code })));
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: STAGE_COMPUTE, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: file.paramBytes } },
      ];
      for (const name of names) {
        const { binding, writable } = file.bindings.get(name)!;
        entries.push({ binding, visibility: STAGE_COMPUTE, buffer: { type: writable ? "storage" : "read-only-storage" } });
      }
      const layout = this.device.createBindGroupLayout({ entries });
      const pipeline = this.device.createComputePipeline({
        label: `${file.name}.${entry}`,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: entry, ...(constants ? { constants } : {}) },
      });
      this.pipelines.set(key, (found = { pipeline, layout, names }));
    }
    return found;
  }

  /** Record one dispatch of entry point `entry` of kernels/<fileName>.wgsl. */
  run(fileName: KernelFileName, entry: string, d: Dispatch): void {
    this.check();
    const file = kernelFile(fileName);
    if (d.groups[0] === 0 || d.groups[1] === 0 || d.groups[2] === 0) return;
    // Params, by name, into this dispatch's slot.
    const slot = this.dispatches;
    const base = (slot * PARAM_SLOT) / 4;
    this.paramWords.fill(0, base, base + PARAM_SLOT / 4);
    for (const field of file.params) {
      const value = d.params[field.name];
      if (value === undefined) throw new Error(`webgpu backend: ${fileName}.${entry}: missing parameter "${field.name}"`);
      if (field.words > 1) {
        const values = value as readonly number[];
        if (values.length > field.words) throw new Error(`webgpu backend: ${fileName}.${entry}: "${field.name}" holds at most ${field.words} values, got ${values.length}`);
        values.forEach((v, i) => (this.paramWords[base + field.offset + i] = v));
      } else if (field.type === "f32") {
        this.paramFloats[base + field.offset] = Number(value);
      } else if (field.type === "i32") {
        this.paramInts[base + field.offset] = Number(value);
      } else {
        const n = Number(value);
        if (!(n >= 0 && n <= 0xffffffff && Number.isInteger(n))) {
          throw new Error(`webgpu backend: ${fileName}.${entry}: parameter "${field.name}" must be a u32, got ${n}`);
        }
        this.paramWords[base + field.offset] = n;
      }
    }
    for (const name of Object.keys(d.params)) {
      if (!file.params.some((f) => f.name === name)) throw new Error(`webgpu backend: kernels/${fileName}.wgsl has no parameter "${name}"`);
    }
    // Bindings, by name. WebGPU forbids a buffer that one binding writes from being bound again in the
    // same dispatch, so that is refused here with the names rather than by a validation error later.
    const names = Object.keys(d.buffers).sort();
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.paramBuffer, offset: 0, size: PARAM_SLOT } }];
    const bound: { name: string; buffer: GPUBuffer; writable: boolean }[] = [];
    for (const name of names) {
      const binding = file.bindings.get(name);
      if (!binding) throw new Error(`webgpu backend: kernels/${fileName}.wgsl has no storage binding "${name}"`);
      const resource = d.buffers[name]!;
      const range = "offset" in resource ? resource : { buffer: resource, offset: 0, size: resource.capacity };
      if (range.buffer.bytes > this.maxBindingBytes && !("offset" in resource)) {
        throw new Error(
          `webgpu backend: ${entry}: "${name}" is ${formatBytes(range.buffer.bytes)}, more than this device's largest storage ` +
            `binding (maxStorageBufferBindingSize ${formatBytes(this.maxBindingBytes)}), and this kernel does not split it`,
        );
      }
      const size = Math.min(range.size, range.buffer.capacity - range.offset, this.maxBindingBytes);
      entries.push({ binding: binding.binding, resource: { buffer: range.buffer.buffer, offset: range.offset, size } });
      for (const other of bound) {
        if (other.buffer === range.buffer.buffer && (other.writable || binding.writable)) {
          throw new Error(`webgpu backend: ${entry}: "${name}" and "${other.name}" are the same buffer, and one of them is written`);
        }
      }
      bound.push({ name, buffer: range.buffer.buffer, writable: binding.writable });
    }
    const { pipeline, layout } = this.pipeline(file, entry, names, d.constants);
    const bindGroup = this.device.createBindGroup({ layout, entries });
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup, [slot * PARAM_SLOT]);
    this.pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
    this.dispatches++;
    if (this.dispatches === MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.dispatches > 0) this.device.queue.writeBuffer(this.paramBuffer, 0, this.paramWords, 0, (this.dispatches * PARAM_SLOT) / 4);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.dispatches = 0;
  }

  /** Wait until the GPU has finished everything submitted; throws collected errors. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.throwCollectedErrors();
  }

  dispose(): void {
    if (this.dead) return;
    this.flush();
    this.dead = "webgpu backend: the backend was disposed";
    this.device.destroy();
  }
}
