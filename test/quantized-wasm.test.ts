// The WASM backend's quantized-weight kernels against the reference backend's (src/core/quantize.ts
// is the definition both compute): quantize, dequantize and the quantized embedding bit for bit, the
// quantized matmul within a bound on f32 summation order; on odd sizes and sizes that cross the
// kernels' edges (int8 rows not a multiple of 16 or 32, partial activation blocks, int4 rows of 1-9
// groups, N not a multiple of the GEMV's four rows or the thread split, M on both sides of the
// GEMV / GEMM switch and across the GEMM's MR, NR, KC, MC, NC), on 1 and 2 threads in both builds and
// on 3 and 4 threads in the relaxed one.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { createJsBackend, createWasmBackend, type AnyBackend } from "../src/index.js";
import { f32ToBf16, f32ToF16, type DType, type HostArray } from "../src/core/dtype.js";
import { int4ScaleIndex, quantizeActivationRow, quantizedScale, quantizedShapes, quantizedValue, quantizeHost, type QuantScheme } from "../src/core/quantize.js";
import { createNodeWasmBackend } from "../src/node/index.js";
import { plainWasmBackendUnderTest, wasmBackendsUnderTest } from "./helpers.js";

const reference = createJsBackend();
const [wasm1, wasm2] = await wasmBackendsUnderTest();
const backends: [string, AnyBackend][] = [
  ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!],
  ["wasm plain SIMD, 1 thread", await createWasmBackend({ threads: 1, relaxedSimd: false })], ["wasm plain SIMD, 2 threads", await plainWasmBackendUnderTest()],
  // Odd thread counts split int4's rows at blocks of four differently (matmulQuantized aligns each
  // thread's range to four rows).
  ["wasm 3 threads", await createNodeWasmBackend({ threads: 3, parallelMinWork: 0 })], ["wasm 4 threads", await createNodeWasmBackend({ threads: 4, parallelMinWork: 0 })],
];

/** A seeded generator of floats in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

/**
 * A [rows, cols] matrix that exercises the schemes' corners: values over several magnitudes; row 1 all
 * zeros (and -0); in row 2 a group with ties of magnitude (+a before -a: int4 takes the first) and
 * exact halves to round (x / d = k + 0.5 for int4, x * 127 / SCB = k + 0.5 for int8); optionally a NaN
 * and an infinity in the last row.
 */
function weights(rows: number, cols: number, seed: number, special = false): Float32Array {
  const next = random(seed), x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = next() * 2 ** Math.floor(4 * next());
  if (rows > 1) for (let c = 0; c < cols; c++) x[cols + c] = c % 2 ? -0 : 0;
  if (rows > 2 && cols >= 32) {
    const row = 2 * cols;
    x[row] = 8; // int4 group 0: m = 8 (the first of the tie with -8), d = -1: x / d exact
    x[row + 5] = -8;
    for (let i = 1; i < 5; i++) x[row + i] = i + 0.5;
    for (let i = 6; i < 32; i++) x[row + i] = Math.round(next() * 16) / 2;
  }
  if (special && rows > 3) {
    x[(rows - 1) * cols + 1] = NaN;
    x[(rows - 1) * cols + cols - 1] = Infinity;
  }
  return x;
}

/** A buffer on `backend` holding `data`. */
function upload(backend: AnyBackend, dtype: DType, data: HostArray): unknown {
  const buffer = (backend as AnyBackend & { allocate(d: DType, n: number): unknown }).allocate(dtype, data.length);
  (backend as unknown as { upload(b: unknown, d: DType, x: HostArray): void }).upload(buffer, dtype, data);
  return buffer;
}
const empty = (backend: AnyBackend, dtype: DType, n: number) => (backend as unknown as { allocate(d: DType, n: number): unknown }).allocate(dtype, n);
const download = (backend: AnyBackend, buffer: unknown, dtype: DType, n: number) =>
  (backend as unknown as { download(b: unknown, d: DType, n: number): Promise<HostArray> }).download(buffer, dtype, n);
const free = (backend: AnyBackend, ...buffers: unknown[]) => buffers.forEach((b) => (backend as unknown as { free(b: unknown): void }).free(b));

/** Throws unless the two arrays hold the same bits. */
function expectSameBits(actual: HostArray, expected: HostArray, label: string): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength), e = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.length !== e.length) throw new Error(`${label}: ${a.length} bytes, expected ${e.length}`);
  const width = expected.BYTES_PER_ELEMENT;
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) {
      const at = Math.floor(i / width);
      throw new Error(`${label}: element ${at} is ${actual[at]}, expected ${expected[at]} (bits differ)`);
    }
  }
}

/** The quantized weight of x ([rows, cols] f32) on the host: values and scales as the kernels store them. */
function quantizedOnHost(scheme: QuantScheme, x: Float32Array, rows: number, cols: number) {
  const q = quantizeHost(scheme, x, rows, cols);
  const scalesDType: DType = scheme === "int8" ? "f32" : "f16";
  return { values: q.values, scales: q.scales, scalesDType };
}

/** Runs the quantize kernel on `backend`: x as dtype (f32 values narrowed to bf16 / f16 first). */
async function runQuantize(backend: AnyBackend, scheme: QuantScheme, dtype: "f32" | "bf16" | "f16", x: Float32Array, rows: number, cols: number) {
  const data = dtype === "f32" ? x : Uint16Array.from(x, (v) => (dtype === "bf16" ? f32ToBf16(v) : f32ToF16(v)));
  const shapes = quantizedShapes(scheme, rows, cols);
  const nValues = shapes.values[0] * shapes.values[1], nScales = shapes.scales.reduce((a, b) => a * b, 1);
  const input = upload(backend, dtype, data), values = empty(backend, "i8", nValues), scales = empty(backend, shapes.scalesDType, nScales);
  backend.kernels.quantize({ x: input as never, xDType: dtype, values: values as never, scales: scales as never, scheme, rows, cols });
  const result = { values: await download(backend, values, "i8", nValues), scales: await download(backend, scales, shapes.scalesDType, nScales) };
  free(backend, input, values, scales);
  return result;
}

const quantizeCases: [QuantScheme, number, number][] = [["int8", 9, 70], ["int8", 5, 16], ["int8", 4, 1], ["int8", 3, 333], ["int4", 9, 96], ["int4", 4, 32], ["int4", 5, 288]];
for (const [scheme, rows, cols] of quantizeCases) {
  for (const dtype of ["f32", "bf16", "f16"] as const) {
    test(`wasm = js, bit for bit: quantize ${scheme} [${rows}, ${cols}] from ${dtype}`, async () => {
      const x = weights(rows, cols, rows * 1000 + cols, true);
      const want = await runQuantize(reference, scheme, dtype, x, rows, cols);
      for (const [label, backend] of backends) {
        const got = await runQuantize(backend, scheme, dtype, x, rows, cols);
        expectSameBits(got.values, want.values, `${label}: values`);
        expectSameBits(got.scales, want.scales, `${label}: scales`);
      }
    });
  }
}

for (const [scheme, rows, cols] of quantizeCases) {
  test(`wasm = js, bit for bit: dequantize ${scheme} [${rows}, ${cols}]; embeddingQuantized`, async () => {
    const q = quantizedOnHost(scheme, weights(rows, cols, cols + 7), rows, cols);
    const ids = Int32Array.from({ length: 11 }, (_, i) => (i * 7 + 3) % rows);
    const run = async (backend: AnyBackend) => {
      const values = upload(backend, "i8", q.values), scales = upload(backend, q.scalesDType, q.scales);
      const out = empty(backend, "f32", rows * cols), idBuffer = upload(backend, "i32", ids), gathered = empty(backend, "f32", ids.length * cols);
      backend.kernels.dequantize({ values: values as never, scales: scales as never, out: out as never, scheme, rows, cols });
      backend.kernels.embeddingQuantized({
        values: values as never, scales: scales as never, scheme, ids: idBuffer as never, out: gathered as never, count: ids.length, vocab: rows, dim: cols,
      });
      const result = [await download(backend, out, "f32", rows * cols), await download(backend, gathered, "f32", ids.length * cols)];
      free(backend, values, scales, out, idBuffer, gathered);
      return result;
    };
    const [wantDequantized, wantGathered] = await run(reference);
    for (const [label, backend] of backends) {
      const [dequantized, gathered] = await run(backend);
      expectSameBits(dequantized!, wantDequantized!, `${label}: dequantize`);
      expectSameBits(gathered!, wantGathered!, `${label}: embeddingQuantized`);
    }
  });
}

test("wasm embeddingQuantized: an id out of range is refused with its position, as the reference does", () => {
  const rows = 6, cols = 32;
  for (const [label, backend] of [["js", reference] as [string, AnyBackend], ...backends]) {
    for (const scheme of ["int8", "int4"] as const) {
      const q = quantizedOnHost(scheme, weights(rows, cols, 3), rows, cols);
      const values = upload(backend, "i8", q.values), scales = upload(backend, q.scalesDType, q.scales);
      const ids = upload(backend, "i32", Int32Array.from([0, 5, 6, 1])), out = empty(backend, "f32", 4 * cols);
      let message = "";
      try {
        backend.kernels.embeddingQuantized({ values: values as never, scales: scales as never, scheme, ids: ids as never, out: out as never, count: 4, vocab: rows, dim: cols });
      } catch (e) {
        message = (e as Error).message;
      }
      free(backend, values, scales, ids, out);
      if (message !== "embedding: token id 6 at position 2 is out of range [0, 6)") throw new Error(`${label} ${scheme}: "${message}"`);
    }
  }
});

// The matmul: out[m, n] = sum over blocks b of s[m, b] d[n, b] (integer dot), where each block's
// integer dot and the activations' qx and s are the same in both backends (both quantize in f32 the
// same way; the quantize tests above check those operations bit for bit). What differs is f32
// rounding: the reference sums in f64 and rounds once; the GEMV rounds each block's f32 term and sums
// at most K / 32 + 8 of them in f32; the GEMM multiplies dequantized f32 factors (qx s and q d, each
// rounded) and sums K products in f32. Each rounding is at most 2^-24 relative, of a partial sum
// bounded by sum_k |qx s| |q d| =: mag, so |error| <= (K + 8) * 2^-23 * mag covers every order.
const matmulCases: [QuantScheme, number, number, number][] = [
  ["int8", 1, 70, 67], ["int8", 2, 300, 13], ["int8", 3, 33, 5], ["int8", 5, 70, 3], ["int8", 17, 257, 31], ["int8", 130, 45, 29], ["int8", 33, 40, 2000], ["int8", 32, 37, 9],
  ["int8", 1, 16, 1], ["int8", 4, 1, 9],
  // Long rows (K of thousands) with M > 1 on the GEMV path.
  ["int8", 3, 24000, 37], ["int4", 5, 26016, 29],
  ["int4", 1, 96, 67], ["int4", 2, 288, 13], ["int4", 3, 32, 5], ["int4", 5, 160, 3], ["int4", 17, 288, 31], ["int4", 130, 64, 29], ["int4", 33, 96, 7], ["int4", 1, 320, 6],
  ["int4", 1, 64, 9], ["int4", 1, 32, 13], ["int4", 2, 64, 37],
];
for (const [scheme, m, k, n] of matmulCases) {
  test(`wasm ~ js: matmulQuantized ${scheme} M ${m} K ${k} N ${n}`, async () => {
    const q = quantizedOnHost(scheme, weights(n, k, n * 31 + k), n, k);
    const next = random(m * 17 + k), a = Float32Array.from({ length: m * k }, () => next() * 3);
    if (m > 1) a.fill(0, k, k + Math.min(k, 40)); // a zero activation block (s = 0)
    const run = async (backend: AnyBackend) => {
      const values = upload(backend, "i8", q.values), scales = upload(backend, q.scalesDType, q.scales);
      const input = upload(backend, "f32", a), out = empty(backend, "f32", m * n);
      backend.kernels.matmulQuantized({ a: input as never, values: values as never, scales: scales as never, out: out as never, scheme, m, k, n });
      const result = await download(backend, out, "f32", m * n);
      free(backend, values, scales, input, out);
      return result as Float32Array;
    };
    const want = await run(reference);
    const magnitude = new Float64Array(m * n);
    for (let i = 0; i < m; i++) {
      const row = quantizeActivationRow(a, i * k, k);
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += Math.abs(row.q[p]! * row.scales[p >> 5]! * quantizedValue(scheme, q.values, n, k, j, p) * quantizedScale(scheme, q.scales, n, k, j, p));
        magnitude[i * n + j] = sum;
      }
    }
    for (const [label, backend] of backends) {
      const got = await run(backend);
      for (let i = 0; i < want.length; i++) {
        const bound = (k + 8) * 2 ** -23 * magnitude[i]!;
        if (!(Math.abs(got[i]! - want[i]!) <= bound)) {
          throw new Error(`${label}: out[${Math.floor(i / n)}, ${i % n}] is ${got[i]}, expected ${want[i]} (bound ${bound.toExponential(2)})`);
        }
      }
    }
  });
}

// The GEMV quantizes each row of activations itself, block by block, with a fast path for blocks of 32
// whose largest magnitude is finite, nonzero and not tiny. One-hot weights (output j reads activation j
// alone) turn every output into s * qx of one activation, so an integer off by one anywhere (a half
// rounded the wrong way, say) moves an output by 1/127 or more of itself: far outside the two
// roundings (2^-22 relative) the single product may take. Row 0's blocks: exact halves under max|x| =
// 127 (127 / max|x| = 1), random, zeros (and -0), tiny (127 / max|x| overflows: integers +-127), random,
// small with subnormal members (the fast path on subnormals), and for int8 a partial last block; rows 1 and 2 hold an infinity and a NaN (which make every output of
// their row NaN: each output sums all blocks, s = inf or NaN times a dot of 0). The tiny block is also
// what sends int8's GEMV down its unfolded path (foldInt8Scales: a scale below 2^-118), the only test
// that takes it.
test("wasm = js: the GEMV's activation quantization on every kind of block (halves, zeros, tiny, infinity, NaN, a tail)", async () => {
  for (const scheme of ["int8", "int4"] as QuantScheme[]) {
    const k = scheme === "int8" ? 199 : 192, n = k, m = 3;
    const a = new Float32Array(m * k), next = random(7);
    a[0] = 127;
    for (let i = 1; i < 32; i++) a[i] = (i % 2 ? -1 : 1) * (i + 0.5) * (i > 28 ? 4 : 1); // up to 126.5
    for (let i = 32; i < 64; i++) a[i] = next() * 3;
    for (let i = 64; i < 96; i++) a[i] = i % 2 ? -0 : 0;
    for (let i = 96; i < 128; i++) a[i] = i % 3 ? 1e-38 : -2e-38;
    for (let i = 128; i < 160; i++) a[i] = next() * 3;
    // Just above 127 / FLT_MAX (the fast path), with subnormal members: 1e-38 / 4e-37 * 127 rounds to 3.
    for (let i = 160; i < 192; i++) a[i] = i === 160 ? 4e-37 : (i % 2 ? -1 : 1) * 1e-38 * (1 + (i % 5));
    for (let i = 192; i < k; i++) a[i] = i === 192 ? 127 : (i % 2 ? -1 : 1) * (i - 191.5);
    a.copyWithin(k, 0, k), a.copyWithin(2 * k, 0, k);
    a[k + 140] = Infinity, a[2 * k + 170] = NaN;
    const identity = new Float32Array(n * k);
    for (let j = 0; j < n; j++) identity[j * k + j] = 1;
    const q = quantizedOnHost(scheme, identity, n, k);
    const run = async (backend: AnyBackend) => {
      const values = upload(backend, "i8", q.values), scales = upload(backend, q.scalesDType, q.scales);
      const input = upload(backend, "f32", a), out = empty(backend, "f32", m * n);
      backend.kernels.matmulQuantized({ a: input as never, values: values as never, scales: scales as never, out: out as never, scheme, m, k, n });
      const result = (await download(backend, out, "f32", m * n)) as Float32Array;
      free(backend, values, scales, input, out);
      return result;
    };
    const want = await run(reference);
    assert.ok(want.slice(64, 96).every((v) => v === 0) && want.slice(96, 128).every((v) => v !== 0), `${scheme}: 0 for the zero block, not for the tiny one (its integers are +-127)`);
    assert.ok(want.slice(0, k).every(Number.isFinite) && want.slice(k).every(Number.isNaN), `${scheme}: row 0 finite, rows 1 and 2 NaN`);
    for (const [label, backend] of backends) {
      const got = await run(backend);
      for (let j = 0; j < m * n; j++) {
        // The tiny block's s (2e-38 / 127) is an f32 subnormal, and so is int4's f32 product s * d, which
        // the GEMV rounds (a step of 2^-149) before multiplying the integer dot (up to 127 * 8 < 2^10).
        const ok = Number.isNaN(want[j]!) ? Number.isNaN(got[j]!) : Math.abs(got[j]! - want[j]!) <= Math.max(2 ** -22 * Math.abs(want[j]!), 2 ** -139);
        if (!ok) throw new Error(`${label} ${scheme}: out[${Math.floor(j / n)}, ${j % n}] (activation ${a[j]}) is ${got[j]}, expected ${want[j]}`);
      }
    }
  }
});

// The int4 GEMV's fast loop converts a quad's four f16 scales at a time in a way exact for finite
// halves only; the host scans each scales buffer once and sends a weight with an infinity or a NaN
// down the exact row-by-row path. Infinities and NaN in the scales (K 256: eight groups; N 9: two full
// quads and a last row) and a largest finite half beside them must give what the reference gives
// (NaN where it has NaN, the same infinity, the finite rows within the bound above).

/** Throws unless `got` is the reference's `want` for one row of a: non-finite outputs exactly, finite ones within the matmul bound. */
function expectInt4Row(label: string, got: Float32Array, want: Float32Array, values: Int8Array, scales: Uint16Array, a: Float32Array, n: number, k: number): void {
  const row = quantizeActivationRow(a, 0, k);
  for (let j = 0; j < n; j++) {
    if (!Number.isFinite(want[j]!)) {
      assert.ok(Object.is(got[j], want[j]), `${label}: out[${j}] is ${got[j]}, expected ${want[j]}`);
      continue;
    }
    let magnitude = 0;
    for (let p = 0; p < k; p++) magnitude += Math.abs(row.q[p]! * row.scales[p >> 5]! * quantizedValue("int4", values, n, k, j, p) * quantizedScale("int4", scales, n, k, j, p));
    const bound = (k + 8) * 2 ** -23 * magnitude;
    assert.ok(Math.abs(got[j]! - want[j]!) <= bound, `${label}: out[${j}] is ${got[j]}, expected ${want[j]} (bound ${bound.toExponential(2)})`);
  }
}

/** out = a W^T on `backend`, W int4 [n, k] from host values and a scales buffer already there. */
async function int4Matmul(backend: AnyBackend, values: HostArray, scales: unknown, a: Float32Array, n: number, k: number): Promise<Float32Array> {
  const v = upload(backend, "i8", values), input = upload(backend, "f32", a), out = empty(backend, "f32", n);
  backend.kernels.matmulQuantized({ a: input as never, values: v as never, scales: scales as never, out: out as never, scheme: "int4", m: 1, k, n });
  const result = await download(backend, out, "f32", n);
  free(backend, v, input, out);
  return result as Float32Array;
}

test("wasm ~ js: matmulQuantized int4 with infinite and NaN scales (the exact path)", async () => {
  const k = 256, n = 9;
  const q = quantizedOnHost("int4", weights(n, k, 5), n, k);
  const scales = q.scales as Uint16Array;
  scales[int4ScaleIndex(n, k, 0, 1)] = 0x7c00; // +inf
  scales[int4ScaleIndex(n, k, 2, 5)] = 0x7e00; // NaN
  scales[int4ScaleIndex(n, k, 5, 0)] = 0xfc00; // -inf
  scales[int4ScaleIndex(n, k, 7, 6)] = 0x7bff; // 65504, the largest finite half
  scales[int4ScaleIndex(n, k, 8, 3)] = 0x7c00; // +inf in the last, one-row quad
  const next = random(99), a = Float32Array.from({ length: k }, () => next() * 3);
  const run = async (backend: AnyBackend) => {
    const sc = upload(backend, "f16", scales);
    const result = await int4Matmul(backend, q.values, sc, a, n, k);
    free(backend, sc);
    return result;
  };
  const want = await run(reference);
  assert.ok(Number.isNaN(want[2]!) && !Number.isFinite(want[0]!) && !Number.isFinite(want[5]!) && !Number.isFinite(want[8]!) && Number.isFinite(want[7]!), "the reference's special rows");
  for (const [label, backend] of backends) expectInt4Row(label, await run(backend), want, q.values, scales, a, n, k);
});

// The fast loop also multiplies each activation scale by 2^112 (the part of the f16 conversion it
// leaves out), which would overflow f32 from a scale of 2^16 (a block with |x| >= 2^16 * 127): a call
// with such a block in any row of a computes every row on the exact path. Activations of 1e7 in one block (scale 78740) must give
// the reference's finite outputs, not infinities; 65535 * 127 (scale 65535, just below) stays on the
// fast loop and must too. Weights of up to 8 (N 9: two full quads and a last row) make the outputs
// large, near 1e8.
test("wasm ~ js: matmulQuantized int4 with activations of 1e7 (scales past the fast loop's limit)", async () => {
  const k = 128, n = 9;
  const q = quantizedOnHost("int4", weights(n, k, 11), n, k);
  for (const big of [1e7, 65535 * 127]) {
    const next = random(3), a = Float32Array.from({ length: k }, (_, p) => (p >= 64 && p < 96 ? big * (p % 2 ? -1 : 1) * (p === 70 ? 1 : 0.5 + next() / 4) : next() * 3));
    const want = await int4Matmul(reference, q.values, upload(reference, "f16", q.scales), a, n, k);
    assert.ok(want.every(Number.isFinite) && Math.max(...want.map(Math.abs)) > 1e6, `the reference's outputs for activations of ${big} are finite and large`);
    for (const [label, backend] of backends) {
      const scales = upload(backend, "f16", q.scales);
      expectInt4Row(`${label}, activations of ${big}`, await int4Matmul(backend, q.values, scales, a, n, k), want, q.values, q.scales as Uint16Array, a, n, k);
      free(backend, scales);
    }
  }
});

// The host remembers a scales buffer found finite until something writes it: an upload, a view from
// rawBytes written through, a kernel writing it (fill here). Each write below makes a buffer already
// used (and found finite) hold infinities; a stale memory would take the fast loop and give finite
// numbers where the reference gives infinities and NaN.
test("wasm matmulQuantized int4: a scales buffer written after use (upload, rawBytes, a kernel) is checked again", async () => {
  const k = 64, n = 8;
  const q = quantizedOnHost("int4", weights(n, k, 7), n, k);
  const finite = q.scales as Uint16Array, infinite = finite.map((h, i) => (i % 3 === 0 ? 0x7c00 : h));
  const next = random(5), a = Float32Array.from({ length: k }, () => next() * 3);
  const wantFinite = await int4Matmul(reference, q.values, upload(reference, "f16", finite), a, n, k);
  const wantInfinite = await int4Matmul(reference, q.values, upload(reference, "f16", infinite), a, n, k);
  const allInfinite = new Uint16Array(finite.length).fill(0x7c00);
  const wantAllInfinite = await int4Matmul(reference, q.values, upload(reference, "f16", allInfinite), a, n, k);
  assert.ok(wantInfinite.some((v) => !Number.isFinite(v)) && wantAllInfinite.every((v) => !Number.isFinite(v)), "the reference's non-finite rows");
  type Writable = AnyBackend & { rawBytes(b: unknown, d: DType, n: number): Uint8Array | null };
  const writes: [string, Uint16Array, Float32Array, (backend: AnyBackend, scales: unknown) => void][] = [
    ["upload", infinite, wantInfinite, (backend, scales) => (backend as unknown as { upload(b: unknown, d: DType, x: HostArray): void }).upload(scales, "f16", infinite)],
    ["rawBytes", infinite, wantInfinite, (backend, scales) => {
      const view = (backend as Writable).rawBytes(scales, "f16", infinite.length)!;
      new Uint16Array(view.buffer, view.byteOffset, infinite.length).set(infinite);
    }],
    ["the fill kernel", allInfinite, wantAllInfinite, (backend, scales) => backend.kernels.fill({ out: scales as never, dtype: "f16", size: finite.length, value: Infinity })],
  ];
  for (const [label, backend] of backends) {
    for (const [how, written, want, write] of writes) {
      const scales = upload(backend, "f16", finite);
      expectInt4Row(`${label}, before`, await int4Matmul(backend, q.values, scales, a, n, k), wantFinite, q.values, finite, a, n, k);
      write(backend, scales);
      expectInt4Row(`${label}, after writing the scales by ${how}`, await int4Matmul(backend, q.values, scales, a, n, k), want, q.values, written, a, n, k);
      free(backend, scales);
    }
  }
});

// The same, for rows of a after the first (M 3: the exact path's offsets per row), and with the scales
// in a second WebAssembly memory (memories of 16 MiB; fillers take the first): the scan must read the
// memory the buffer lives in.
test("wasm ~ js: matmulQuantized int4 with an infinite scale, M 3, and with the scales in a second memory", async () => {
  const m = 3, k = 96, n = 6;
  const q = quantizedOnHost("int4", weights(n, k, 11), n, k);
  const scales = q.scales as Uint16Array;
  scales[int4ScaleIndex(n, k, 1, 2)] = 0xfc00; // -inf, in the first quad (rows 4-5 are a partial quad, always exact)
  const next = random(13), a = Float32Array.from({ length: m * k }, () => next() * 3);
  const run = async (backend: AnyBackend, sc: unknown) => {
    const values = upload(backend, "i8", q.values), input = upload(backend, "f32", a), out = empty(backend, "f32", m * n);
    backend.kernels.matmulQuantized({ a: input as never, values: values as never, scales: sc as never, out: out as never, scheme: "int4", m, k, n });
    const result = await download(backend, out, "f32", m * n);
    free(backend, values, input, out);
    return result as Float32Array;
  };
  const want = await run(reference, upload(reference, "f16", scales));
  const check = (label: string, got: Float32Array) => {
    for (let i = 0; i < m; i++) expectInt4Row(`${label}, row ${i} of a`, got.subarray(i * n, (i + 1) * n), want.subarray(i * n, (i + 1) * n), q.values, scales, a.subarray(i * k, (i + 1) * k), n, k);
  };
  for (const [label, backend] of backends) {
    const sc = upload(backend, "f16", scales);
    check(label, await run(backend, sc));
    free(backend, sc);
  }
  // The probes hold finite scales, so memory 0 holds those at the address the scales get in memory 1
  // (the memories lay out alike): a scan of the wrong memory would find them finite.
  const split = await createNodeWasmBackend({ threads: 2, maxMemoryPerInstance: 16 * 2 ** 20 });
  const finite = (q.scales as Uint16Array).map((h) => (h === 0xfc00 ? 0x3c00 : h));
  const fillers: unknown[] = [];
  let sc = upload(split, "f16", finite);
  while ((sc as { memory: number }).memory === 0) {
    free(split, sc);
    fillers.push(empty(split, "f32", 2 ** 18));
    sc = upload(split, "f16", finite);
  }
  (split as unknown as { upload(b: unknown, d: DType, x: HostArray): void }).upload(sc, "f16", scales);
  check("scales in memory 1", await run(split, sc));
  free(split, sc, ...fillers);
  split.dispose();
});

test.run();
