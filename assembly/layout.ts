// Layout kernels: reductions, broadcasts, permutes and slices, for any rank up to MAX_RANK.
// Shapes arrive as i32 arrays in memory (the caller writes them to a small parameter block).
// Each walks the flat index of the array it writes and derives the other's offset from strides.

import { MAX_RANK, partEnd, partStart, Pointer } from "./common";

// Per-call scratch on the wasm value stack is not addressable, so coordinates live in a static block;
// one block per thread (up to 64 threads).
const coords = memory.data(MAX_RANK * 4 * 64);
const strideA = memory.data(MAX_RANK * 4 * 64);
const strideB = memory.data(MAX_RANK * 4 * 64);

@inline function get(ptr: usize, i: i32): i32 {
  return load<i32>(ptr + (<usize>i << 2));
}
@inline function set(ptr: usize, i: i32, v: i32): void {
  store<i32>(ptr + (<usize>i << 2), v);
}

/** Row-major strides (in elements) of `shape` into dst. */
function stridesOf(shape: usize, rank: i32, dst: usize): void {
  let s = 1;
  for (let axis = rank - 1; axis >= 0; axis--) {
    set(dst, axis, s);
    s *= get(shape, axis);
  }
}

/**
 * Copies elements: for flat index f in [f0, f1) of an array of shape `walk`, dst[dstOffset + f * 1 (in
 * walk order, or via dstStrides)] = src[srcOffset + coord . srcStrides]. Used by permute and slices.
 * Works a run along the last axis at a time: the offsets are computed once per run, and a run that is
 * contiguous on both sides (heads moved between [T, H, D] and [H, T, D], rows into a KV cache) is one
 * memory.copy. Prefill moves every head's rows this way, so per-element offset arithmetic would show in
 * a model's profile.
 */
function copyStrided(
  src: usize, srcOffset: i64, srcStrides: usize, dst: usize, dstOffset: i64, dstStrides: usize, walk: usize, rank: i32,
  elementBytes: i32, f0: i32, f1: i32, coord: usize,
): void {
  if (f0 >= f1) return;
  if (rank == 0) {
    memory.copy(dst + <usize>dstOffset * elementBytes, src + <usize>srcOffset * elementBytes, elementBytes);
    return;
  }
  // The coordinate of f0, then advanced run by run like an odometer.
  let rest = f0;
  for (let axis = rank - 1; axis >= 0; axis--) {
    const n = get(walk, axis);
    set(coord, axis, rest % n);
    rest /= n;
  }
  const last = rank - 1, runLength = get(walk, last);
  const srcStep = get(srcStrides, last), dstStep = get(dstStrides, last);
  for (let f = f0; f < f1; ) {
    let s = srcOffset, d = dstOffset;
    for (let axis = 0; axis < rank; axis++) {
      s += <i64>get(coord, axis) * get(srcStrides, axis);
      d += <i64>get(coord, axis) * get(dstStrides, axis);
    }
    const start = get(coord, last), count = min<i32>(runLength - start, f1 - f);
    if (srcStep == 1 && dstStep == 1) {
      memory.copy(dst + <usize>d * elementBytes, src + <usize>s * elementBytes, <usize>count * elementBytes);
    } else if (elementBytes == 4) {
      for (let i = 0; i < count; i++) store<u32>(dst + (<usize>(d + <i64>i * dstStep) << 2), load<u32>(src + (<usize>(s + <i64>i * srcStep) << 2)));
    } else {
      for (let i = 0; i < count; i++) store<u16>(dst + (<usize>(d + <i64>i * dstStep) << 1), load<u16>(src + (<usize>(s + <i64>i * srcStep) << 1)));
    }
    f += count;
    // Next run: the last axis back to 0 and a carry into the axes before it.
    set(coord, last, 0);
    for (let axis = last - 1; axis >= 0; axis--) {
      const c = get(coord, axis) + 1;
      if (c < get(walk, axis)) {
        set(coord, axis, c);
        break;
      }
      set(coord, axis, 0);
    }
  }
}

function sizeOf(shape: usize, rank: i32): i32 {
  let n = 1;
  for (let axis = 0; axis < rank; axis++) n *= get(shape, axis);
  return n;
}

@inline function scratch(base: usize, tid: i32): usize {
  return base + <usize>(tid * MAX_RANK * 4);
}

/** params: perm[rank]. out.shape[i] = shape[perm[i]]. */
export function permute(x: Pointer, elementBytes: i32, out: Pointer, shape: Pointer, perm: Pointer, rank: i32, outShape: Pointer, tid: i32, threads: i32): void {
  const inStrides = scratch(strideA, tid), permutedStrides = scratch(strideB, tid), outStrides = scratch(coords, tid);
  stridesOf(shape, rank, inStrides);
  // Input stride of each output axis; the output is walked contiguously.
  for (let i = 0; i < rank; i++) set(permutedStrides, i, get(inStrides, get(perm, i)));
  stridesOf(outShape, rank, outStrides);
  const size = sizeOf(outShape, rank);
  const f0 = partStart(size, tid, threads, 1), f1 = partEnd(size, tid, threads, 1);
  // copyStrided needs its own coordinate block: reuse inStrides (no longer needed).
  copyStrided(x, 0, permutedStrides, out, 0, outStrides, outShape, rank, elementBytes, f0, f1, inStrides);
}

/**
 * Copy between a block of a larger array and a smaller contiguous one: the block of `big` (shape
 * bigShape) at `start` with the small array's shape. toSmall: small = block (slice); else block =
 * small (sliceAssign). Threads split the small array's elements.
 */
function copyBlock(
  big: usize, bigShape: usize, start: usize, small: usize, smallShape: usize, rank: i32, elementBytes: i32, toSmall: bool,
  tid: i32, threads: i32,
): void {
  const bigStrides = scratch(strideA, tid), smallStrides = scratch(strideB, tid), coord = scratch(coords, tid);
  stridesOf(bigShape, rank, bigStrides);
  stridesOf(smallShape, rank, smallStrides);
  let offset: i64 = 0;
  for (let axis = 0; axis < rank; axis++) offset += <i64>get(start, axis) * get(bigStrides, axis);
  const size = sizeOf(smallShape, rank);
  const f0 = partStart(size, tid, threads, 1), f1 = partEnd(size, tid, threads, 1);
  if (toSmall) copyStrided(big, offset, bigStrides, small, 0, smallStrides, smallShape, rank, elementBytes, f0, f1, coord);
  else copyStrided(small, 0, smallStrides, big, offset, bigStrides, smallShape, rank, elementBytes, f0, f1, coord);
}

/** out = x[start .. start + outShape] for x of `shape`. */
export function slice(x: Pointer, elementBytes: i32, out: Pointer, shape: Pointer, start: Pointer, outShape: Pointer, rank: i32, tid: i32, threads: i32): void {
  copyBlock(x, shape, start, out, outShape, rank, elementBytes, true, tid, threads);
}

/** out[start .. start + xShape] = x, for out of `shape`; other elements untouched. */
export function sliceAssign(x: Pointer, elementBytes: i32, out: Pointer, shape: Pointer, start: Pointer, xShape: Pointer, rank: i32, tid: i32, threads: i32): void {
  copyBlock(out, shape, start, x, xShape, rank, elementBytes, false, tid, threads);
}

// Per-thread partial sums of sumAll, read by the caller once every thread is done.
const partials = memory.data(8 * 64);

/** Where sumAll leaves thread t's partial sum: an f64 at sumPartials() + 8 t. */
export function sumPartials(): usize {
  return partials;
}

/**
 * The sum of all `size` elements of x, in `threads` parts: thread t sums its contiguous share into
 * partials[t] (in f64, four lanes at a time); the caller adds the parts. A sum to one element cannot
 * be split by output elements like `sum` below, which would leave all the work to one thread.
 */
export function sumAll(x: Pointer, size: i32, tid: i32, threads: i32): void {
  const i0 = partStart(size, tid, threads, 4), i1 = partEnd(size, tid, threads, 4);
  let low = f64x2.splat(0), high = f64x2.splat(0);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    low = f64x2.add(low, f64x2.promote_low_f32x4(v));
    high = f64x2.add(high, f64x2.promote_low_f32x4(v128.shuffle<i32>(v, v, 2, 3, 2, 3)));
  }
  const lanes = f64x2.add(low, high);
  let total = f64x2.extract_lane(lanes, 0) + f64x2.extract_lane(lanes, 1);
  for (; i < i1; i++) total += <f64>load<f32>(x + (<usize>i << 2));
  store<f64>(partials + (<usize>tid << 3), total);
}

/**
 * Sum over the axes where reduce[i] != 0; out has the reduced shape (those axes of size 1).
 * Threads split the output elements; each sums its elements' inputs.
 */
export function sum(x: Pointer, out: Pointer, shape: Pointer, reduce: Pointer, rank: i32, tid: i32, threads: i32): void {
  // Split the axes into kept (walked by output index) and reduced (walked per output element).
  const keptShape = scratch(coords, tid), xStrides = scratch(strideA, tid);
  stridesOf(shape, rank, xStrides);
  let outSize = 1, inner = 1;
  for (let axis = 0; axis < rank; axis++) {
    const n = get(shape, axis);
    if (get(reduce, axis) != 0) inner *= n;
    else outSize *= n;
    set(keptShape, axis, get(reduce, axis) != 0 ? 1 : n);
  }
  const o1 = partEnd(outSize, tid, threads, 1);
  for (let o = partStart(outSize, tid, threads, 1); o < o1; o++) {
    // Base offset of output element o in x (reduced axes at 0).
    let rest = o;
    let base: i64 = 0;
    for (let axis = rank - 1; axis >= 0; axis--) {
      const n = get(keptShape, axis);
      base += <i64>(rest % n) * get(xStrides, axis);
      rest /= n;
    }
    // Walk the reduced axes.
    let acc: f64 = 0;
    for (let r = 0; r < inner; r++) {
      let restR = r;
      let offset = base;
      for (let axis = rank - 1; axis >= 0; axis--) {
        if (get(reduce, axis) == 0) continue;
        const n = get(shape, axis);
        offset += <i64>(restR % n) * get(xStrides, axis);
        restR /= n;
      }
      acc += <f64>load<f32>(x + (<usize>offset << 2));
    }
    store<f32>(out + (<usize>o << 2), <f32>acc);
  }
}

/** The transpose of sum: out (of `shape`) = x (reduced shape) repeated along the reduced axes. */
export function broadcast(x: Pointer, out: Pointer, shape: Pointer, reduce: Pointer, rank: i32, tid: i32, threads: i32): void {
  const xStrides = scratch(strideA, tid), outStrides = scratch(strideB, tid), coord = scratch(coords, tid);
  // Strides of the reduced x seen from out's coordinates: 0 along reduced axes.
  let s = 1;
  for (let axis = rank - 1; axis >= 0; axis--) {
    const reduced = get(reduce, axis) != 0;
    set(xStrides, axis, reduced ? 0 : s);
    if (!reduced) s *= get(shape, axis);
  }
  stridesOf(shape, rank, outStrides);
  const size = sizeOf(shape, rank);
  copyStrided(x, 0, xStrides, out, 0, outStrides, shape, rank, 4, partStart(size, tid, threads, 1), partEnd(size, tid, threads, 1), coord);
}
