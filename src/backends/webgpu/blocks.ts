// Binding operands larger than one storage binding. A GPU buffer may be larger than the largest range
// one binding may cover (maxStorageBufferBindingSize, 128 MiB on many GPUs): OLMo-1B's 50304 x 2048
// embedding is 206 MB in bf16. Kernels that meet such buffers bind them in blocks of rows, each block a
// byte range of the buffer starting at an offset the device accepts (minStorageBufferOffsetAlignment),
// and dispatch once per block. Elementwise kernels count elements as rows.

import { BYTES_PER_ELEMENT, type DType } from "../../core/dtype.js";
import { formatBytes } from "../../core/format.js";
import { grid, type BindingResource, type Dispatch, type GpuBuffer, type GpuRuntime } from "./runtime.js";
import type { KernelFileName } from "./shaders.js";

/** Rows [start, start + count) of operands bound in blocks; `whole` when there is one block, bound as the whole buffer. */
export interface Block {
  start: number;
  count: number;
  whole: boolean;
}

/**
 * How many rows a block of a split buffer must be a multiple of, so that every block starts at a
 * byte offset the device accepts (minStorageBufferOffsetAlignment), for rows of these byte sizes.
 */
function rowMultiple(offsetAlignment: number, rowBytes: number[]): number {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return rowBytes.reduce((multiple, bytes) => {
    const own = offsetAlignment / gcd(offsetAlignment, bytes);
    return (multiple * own) / gcd(multiple, own);
  }, 1);
}

/**
 * The blocks of rows in which to bind [rows, ...] operands, given with their bytes per row: one block
 * when every operand fits one storage binding, else as many rows as the widest row allows, in a
 * multiple of rowMultiple so that every block starts at an aligned offset, and of `rowsTogether`
 * (int4 weights interleave their rows four at a time: a block must not cut through four).
 */
export function blocksOf(gpu: GpuRuntime, what: string, rows: number, operands: [GpuBuffer, number][], rowsTogether = 1): Block[] {
  if (operands.every(([buffer]) => buffer.bytes <= gpu.maxBindingBytes)) return [{ start: 0, count: rows, whole: true }];
  const rowBytes = operands.map(([, bytes]) => bytes);
  const aligned = rowMultiple(gpu.offsetAlignment, rowBytes), gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  const widest = Math.max(...rowBytes), multiple = (aligned * rowsTogether) / gcd(aligned, rowsTogether);
  const perBlock = Math.floor(gpu.maxBindingBytes / widest / multiple) * multiple;
  if (perBlock === 0) throw new Error(`webgpu backend: ${what}: ${multiple} rows of ${formatBytes(widest)} exceed one storage binding (${formatBytes(gpu.maxBindingBytes)})`);
  const blocks: Block[] = [];
  for (let start = 0; start < rows; start += perBlock) blocks.push({ start, count: Math.min(perBlock, rows - start), whole: false });
  return blocks;
}

/** A block of rows of a [rows, ...] buffer with `rowBytes` per row, as a binding (the whole buffer for a whole block). */
export function rowRange(buffer: GpuBuffer, rowBytes: number, { start, count, whole }: Block): BindingResource {
  return whole ? buffer : { buffer, offset: start * rowBytes, size: Math.ceil((count * rowBytes) / 4) * 4 };
}

/**
 * Run an elementwise entry point over `size` elements. When an operand is larger than one storage
 * binding, the elements go in blocks (blocksOf), each operand bound at its block's byte range.
 * `shape(count)` gives the Params and the number of invocations for a block of `count` elements.
 */
export function runElementwise(
  gpu: GpuRuntime,
  file: KernelFileName,
  entry: string,
  size: number,
  operands: Record<string, [GpuBuffer, DType]>,
  shape: (count: number) => { params: Dispatch["params"]; invocations: number },
): void {
  if (size === 0) return;
  const elements = Object.entries(operands).map(([name, [buffer, dtype]]) => [name, buffer, BYTES_PER_ELEMENT[dtype]] as const);
  for (const block of blocksOf(gpu, entry, size, elements.map(([, buffer, bytes]) => [buffer, bytes]))) {
    const buffers = Object.fromEntries(elements.map(([name, buffer, bytes]) => [name, rowRange(buffer, bytes, block)]));
    const { params, invocations } = shape(block.count);
    gpu.run(file, entry, { params, buffers, groups: grid(Math.ceil(invocations / 256)) });
  }
}

/**
 * Run a row kernel (one workgroup per row) over `rows` rows. Operands are [rows, ...] arrays given
 * with their bytes per row; when one is larger than a storage binding, the rows go in blocks
 * (blocksOf), each operand bound at its block. `other` buffers are bound whole.
 */
export function runRows(
  gpu: GpuRuntime,
  file: KernelFileName,
  entry: string,
  rows: number,
  perRow: Record<string, [GpuBuffer, number]>,
  other: Record<string, GpuBuffer>,
  params: (rowOffset: number, blockRows: number) => Dispatch["params"],
): void {
  for (const block of blocksOf(gpu, entry, rows, Object.values(perRow))) {
    const buffers: Record<string, BindingResource> = { ...other };
    for (const [name, [buffer, rowBytes]] of Object.entries(perRow)) buffers[name] = rowRange(buffer, rowBytes, block);
    gpu.run(file, entry, { params: params(block.start, block.count), buffers, groups: grid(block.count) });
  }
}
