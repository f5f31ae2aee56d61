// The WebGPU backend's quantized-weight kernels (kernels/quantized*.wgsl) against the reference
// backend's (src/backends/js/quantized.ts, the definitions of src/core/quantize.ts): quantize,
// dequantize and the quantized embedding bit for bit, the quantized matmul within the rounding of its
// f32 sums, on odd sizes and tile edges, both schemes, and with buffers split to fit small bindings.

import { test } from "uvu";
import { createJsBackend, type AnyBackend } from "../src/index.js";
import { f32ToBf16, f32ToF16, type DType, type HostArray } from "../src/core/dtype.js";
import { QUANT_GROUP, quantizeActivationRow, quantizedScale, quantizedShapes, quantizedValue, quantizeHost, type QuantScheme } from "../src/core/quantize.js";
import { createNodeWebGpuBackend } from "../src/node/index.js";
import { requireVulkan, testIf } from "./helpers.js";

const reference = createJsBackend();
// Without a Vulkan driver every case is skipped, said on stderr (an error under CI=true).
const gpu = (await requireVulkan("the quantized-webgpu.test cases on Dawn")) ? await createNodeWebGpuBackend() : null;
// 8 KiB bindings: every weight below is split into several blocks of rows.
const small = gpu ? await createNodeWebGpuBackend({ maxBindingBytes: 8192 }) : null;
// 10 KiB bindings hold 10 rows of a K 2048 int4 weight (1 KiB of values a row): a block of rows that
// the offset alignment alone would allow cuts through a group of four interleaved rows.
const tenKiB = gpu ? await createNodeWebGpuBackend({ maxBindingBytes: 10240 }) : null;
const gpuTest = testIf(gpu !== null);

// A seeded generator, so a failure reproduces.
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A [rows, cols] matrix of f32 values with the cases the arithmetic has to get right: a zero row, ties
 * that round half to even, equal magnitudes of both signs (int4 keeps the first), magnitudes from
 * 1e-30 to 1e30 across rows (the quotients 127 / max and x / d far from 1), subnormal elements.
 * `f16`: magnitudes from 1e-6 (f16 subnormals) to 3e4, for f16 inputs and int4's f16 scales (beyond
 * them x or d is infinite, and 0 * inf gives NaNs whose bits no two implementations agree on).
 */
function weights(rows: number, cols: number, seed: number, range: "wide" | "f16" = "wide"): Float32Array {
  const next = random(seed);
  const x = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const magnitude = (range === "wide" ? [1, 1e-30, 1e30, 3.7e-3, 1234.5] : [1, 1e-6, 3e4, 3.7e-3, 1234.5])[r % 5]!;
    for (let c = 0; c < cols; c++) x[r * cols + c] = (next() * 2 - 1) * magnitude;
  }
  if (rows > 1) x.fill(0, cols, 2 * cols); // row 1: zeros
  if (rows > 3) {
    // Row 3, int8: max 127 makes 127 / max = 1, so x.5 values are ties. int4: the first group's
    // m = 8 (then -8: the first is kept) gives d = -1, and x / d = -x.5 are ties.
    const row = 3 * cols, ties = [127, -127, 2.5, -2.5, 3.5, 0.5, -0.5, 126.5, 1e-40, -1e-41, 8, -8, 4.5, -5.5];
    ties.forEach((v, i) => i < cols && (x[row + i] = v));
  }
  if (rows > 4 && cols >= QUANT_GROUP) {
    // Row 4's first group, int4: m = 8 (not the later -8) gives d = -1, so x / d = -x, and x.5 are ties.
    const row = 4 * cols, ties = [8, -8, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 1.5, 7.5, -7.5, 6.5, -6.5, 5.5, 4.5, -4.5];
    x.fill(0, row, row + QUANT_GROUP);
    ties.forEach((v, i) => (x[row + i] = v));
  }
  return x;
}

/** `data` as `dtype` bits (bf16 / f16 rounded from f32). */
function stored(data: Float32Array, dtype: "f32" | "bf16" | "f16"): HostArray {
  if (dtype === "f32") return data;
  const bits = new Uint16Array(data.length);
  data.forEach((v, i) => (bits[i] = dtype === "bf16" ? f32ToBf16(v) : f32ToF16(v)));
  return bits;
}

function upload(backend: AnyBackend, dtype: DType, data: HostArray): unknown {
  const buffer = backend.allocate(dtype, data.length);
  backend.upload(buffer, dtype, data);
  return buffer;
}

function sameBits(actual: HostArray, expected: HostArray, label: string): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength), e = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.length !== e.length) throw new Error(`${label}: ${a.length} bytes, expected ${e.length}`);
  const per = actual.BYTES_PER_ELEMENT;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      const k = Math.floor(i / per);
      throw new Error(`${label}: element ${k} is ${actual[k]}, expected ${expected[k]} (bit for bit)`);
    }
  }
}

/** quantize on a backend: [values, scales] as host arrays. */
async function quantizeOn(backend: AnyBackend, scheme: QuantScheme, x: Float32Array, xDType: "f32" | "bf16" | "f16", rows: number, cols: number) {
  const shapes = quantizedShapes(scheme, rows, cols);
  const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
  const input = upload(backend, xDType, stored(x, xDType));
  const values = backend.allocate("i8", size(shapes.values)), scales = backend.allocate(shapes.scalesDType, size(shapes.scales));
  backend.kernels.quantize({ x: input, xDType, values, scales, scheme, rows, cols });
  const result = [await backend.download(values, "i8", size(shapes.values)), await backend.download(scales, shapes.scalesDType, size(shapes.scales))] as const;
  for (const b of [input, values, scales]) backend.free(b);
  return result;
}

/** A quantized weight of random values on a backend. */
function weightOn(backend: AnyBackend, scheme: QuantScheme, rows: number, cols: number, seed: number) {
  const q = quantizeHost(scheme, weights(rows, cols, seed, scheme === "int4" ? "f16" : "wide"), rows, cols);
  return { q, values: upload(backend, "i8", q.values), scales: upload(backend, scheme === "int8" ? "f32" : "f16", q.scales) };
}

async function dequantizeOn(backend: AnyBackend, scheme: QuantScheme, rows: number, cols: number) {
  const w = weightOn(backend, scheme, rows, cols, rows * 31 + cols);
  const out = backend.allocate("f32", rows * cols);
  backend.kernels.dequantize({ values: w.values, scales: w.scales, out, scheme, rows, cols });
  const result = await backend.download(out, "f32", rows * cols);
  for (const b of [w.values, w.scales, out]) backend.free(b);
  return result;
}

async function embeddingOn(backend: AnyBackend, scheme: QuantScheme, vocab: number, dim: number, ids: number[]) {
  const w = weightOn(backend, scheme, vocab, dim, vocab + dim);
  const idBuffer = upload(backend, "i32", Int32Array.from(ids)), out = backend.allocate("f32", ids.length * dim);
  backend.kernels.embeddingQuantized({ values: w.values, scales: w.scales, scheme, ids: idBuffer, out, count: ids.length, vocab, dim });
  try {
    return await backend.download(out, "f32", ids.length * dim);
  } finally {
    for (const b of [w.values, w.scales, idBuffer, out]) backend.free(b);
  }
}

/** a: [m, k] activations with a zero block and blocks of very different sizes. */
function activations(m: number, k: number, seed: number): Float32Array {
  const next = random(seed), a = new Float32Array(m * k);
  for (let i = 0; i < a.length; i++) a[i] = (next() * 2 - 1) * (Math.floor(i / QUANT_GROUP) % 3 === 1 ? 1e-3 : 3);
  a.fill(0, 0, Math.min(k, QUANT_GROUP)); // row 0, block 0: zeros (s = 0)
  return a;
}

async function matmulOn(backend: AnyBackend, scheme: QuantScheme, m: number, k: number, n: number) {
  const w = weightOn(backend, scheme, n, k, m * 7 + k * 3 + n);
  const a = activations(m, k, m + k + n);
  const aBuffer = upload(backend, "f32", a), out = backend.allocate("f32", m * n);
  backend.kernels.matmulQuantized({ a: aBuffer, values: w.values, scales: w.scales, out, scheme, m, k, n });
  const result = (await backend.download(out, "f32", m * n)) as Float32Array;
  for (const b of [w.values, w.scales, aBuffer, out]) backend.free(b);
  return { result, a, q: w.q };
}

/**
 * The quantized matmul on `backend` against the reference. Both compute the same exact integer dot
 * products per block; they differ only in how the f32 terms s * d * dot are rounded and added (the
 * reference adds in f64 and rounds once, the GPU rounds each product and sum in f32, in its own
 * order). Each term is rounded at most twice (f32(dot) is exact: |dot| <= 32 * 127 * 127 < 2^24), the
 * sum of B terms at most B - 1 times, int8's row scale once and the reference once, each time by at
 * most 2^-24 of a value no larger than S = sum of |terms|: so |gpu - ref| <= (B + 4) 2^-24 S.
 */
async function expectMatmulClose(backend: AnyBackend, label: string, scheme: QuantScheme, m: number, k: number, n: number) {
  const [got, want] = [await matmulOn(backend, scheme, m, k, n), await matmulOn(reference, scheme, m, k, n)];
  const blocks = Math.ceil(k / QUANT_GROUP);
  for (let i = 0; i < m; i++) {
    const row = quantizeActivationRow(want.a, i * k, k);
    for (let j = 0; j < n; j++) {
      let bound = 0;
      for (let b = 0; b < blocks; b++) {
        let dot = 0;
        for (let p = b * QUANT_GROUP; p < Math.min(k, (b + 1) * QUANT_GROUP); p++) dot += row.q[p]! * quantizedValue(scheme, want.q.values, n, k, j, p);
        bound += Math.abs(row.scales[b]! * quantizedScale(scheme, want.q.scales, n, k, j, b * QUANT_GROUP) * dot);
      }
      const tolerance = (blocks + 4) * 2 ** -24 * bound;
      const actual = got.result[i * n + j]!, expected = want.result[i * n + j]!;
      if (!(Math.abs(actual - expected) <= tolerance)) {
        throw new Error(`${label}: out[${i}, ${j}] = ${actual}, reference ${expected}, difference ${Math.abs(actual - expected)} over the bound ${tolerance}`);
      }
    }
  }
}

const INT8_SHAPES: [number, number][] = [[3, 5], [4, 3], [7, 70], [33, 37], [6, 128]];
const INT4_SHAPES: [number, number][] = [[3, 32], [5, 96], [7, 64], [1, 32]]; // 3 and 7 rows: an odd number of f16 scales

for (const xDType of ["f32", "bf16", "f16"] as const) {
  gpuTest(`quantize = js, bit for bit: int8 and int4 from ${xDType}`, async () => {
    for (const [scheme, shapes] of [["int8", INT8_SHAPES], ["int4", INT4_SHAPES]] as const) {
      for (const [rows, cols] of shapes) {
        const x = weights(rows, cols, rows * 100 + cols, scheme === "int4" || xDType === "f16" ? "f16" : "wide");
        const [got, want] = [await quantizeOn(gpu!, scheme, x, xDType, rows, cols), await quantizeOn(reference, scheme, x, xDType, rows, cols)];
        sameBits(got[0], want[0], `${scheme} [${rows}, ${cols}] ${xDType}: values`);
        sameBits(got[1], want[1], `${scheme} [${rows}, ${cols}] ${xDType}: scales`);
      }
    }
  });
}

gpuTest("quantize on the GPU divides exactly: 4096 rows of random magnitudes, int8 and int4", async () => {
  // The host's f32(127 / max) and f32(x / d) are correctly rounded; WGSL's `/` need not be, so the
  // shaders divide by integer long division (common.wgsl's divideRounded). Many quotients near
  // rounding boundaries: every byte must still agree.
  // Rows scaled by 2^-60 .. 2^60 (int4: 2^-20 .. 2^15, so that d stays a finite f16), elements spread
  // over 2^-8 of the row's scale.
  const rows = 4096, cols = 32, next = random(7);
  for (const scheme of ["int8", "int4"] as const) {
    const [low, high] = scheme === "int8" ? [-60, 60] : [-20, 15];
    const x = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const scale = 2 ** (low + Math.floor(next() * (high - low)));
      for (let c = 0; c < cols; c++) x[r * cols + c] = (next() * 2 - 1) * scale * 2 ** -Math.floor(next() * 8);
    }
    const [got, want] = [await quantizeOn(gpu!, scheme, x, "f32", rows, cols), await quantizeOn(reference, scheme, x, "f32", rows, cols)];
    sameBits(got[0], want[0], `${scheme}: values`);
    sameBits(got[1], want[1], `${scheme}: scales`);
  }
});

gpuTest("dequantize = js, bit for bit", async () => {
  for (const [scheme, shapes] of [["int8", INT8_SHAPES], ["int4", INT4_SHAPES]] as const) {
    for (const [rows, cols] of shapes) {
      sameBits(await dequantizeOn(gpu!, scheme, rows, cols), await dequantizeOn(reference, scheme, rows, cols), `${scheme} [${rows}, ${cols}]`);
    }
  }
});

gpuTest("embeddingQuantized = js, bit for bit; a bad id is reported as the embedding reports it", async () => {
  const ids = [0, 32, 3, 3, 1, 17, 5, 31, 2, 0, 9];
  for (const [scheme, dim] of [["int8", 37], ["int8", 3], ["int4", 64]] as const) {
    sameBits(await embeddingOn(gpu!, scheme, 33, dim, ids), await embeddingOn(reference, scheme, 33, dim, ids), `${scheme} [33, ${dim}]`);
  }
  let message = "";
  try {
    await embeddingOn(gpu!, "int4", 33, 32, [1, 2, 99]);
  } catch (e) {
    message = (e as Error).message;
  }
  if (message !== "embedding: token id 99 at position 2 is out of range [0, 33)") throw new Error(message || "no error for id 99");
  const after = await embeddingOn(gpu!, "int8", 33, 5, [4]);
  if (!after.every(Number.isFinite)) throw new Error(`after a report: ${after}`);
});

// [m, k, n]: m = 1 (the GEMV), 2, 5, 65 (past one 64-row tile); n odd and past one 64-column tile;
// int8 with k not a multiple of 32 (a partial last block) or of 4 (rows that start inside a word).
const MATMUL_SHAPES: Record<QuantScheme, [number, number, number][]> = {
  int8: [[1, 70, 67], [1, 3, 5], [1, 2048, 9], [2, 37, 129], [5, 96, 31], [65, 70, 67], [65, 33, 130]],
  int4: [[1, 64, 67], [1, 32, 5], [1, 2048, 9], [2, 32, 129], [5, 96, 31], [65, 64, 67], [65, 160, 130]],
};

for (const scheme of ["int8", "int4"] as const) {
  gpuTest(`matmulQuantized = js within its f32 sums: ${scheme}`, async () => {
    for (const [m, k, n] of MATMUL_SHAPES[scheme]) await expectMatmulClose(gpu!, `${scheme} [${m}, ${k}] x [${n}, ${k}]^T`, scheme, m, k, n);
  });
}

gpuTest("quantized weights larger than one storage binding are split: matmul (GEMV and tiled), embedding, dequantize, quantize", async () => {
  for (const [scheme, k] of [["int8", 70], ["int4", 64]] as const) {
    // [600, k] weights: 42000 / 19200 bytes of values, in blocks of 8 KiB.
    for (const m of [1, 3]) await expectMatmulClose(small!, `8 KiB bindings, ${scheme} [${m}, ${k}] x [600, ${k}]^T`, scheme, m, k, 600);
    // out [40, 600] (96 KB) and a in blocks of rows too.
    await expectMatmulClose(small!, `8 KiB bindings, ${scheme} [40, ${k}] x [600, ${k}]^T`, scheme, 40, k, 600);
    const ids = [599, 0, 311, 128, 127, 598, 5];
    sameBits(await embeddingOn(small!, scheme, 600, k, ids), await embeddingOn(reference, scheme, 600, k, ids), `8 KiB bindings: embedding ${scheme} [600, ${k}]`);
    sameBits(await dequantizeOn(small!, scheme, 600, k), await dequantizeOn(reference, scheme, 600, k), `8 KiB bindings: dequantize ${scheme} [600, ${k}]`);
    const x = weights(301, k, 5, scheme === "int4" ? "f16" : "wide");
    const [got, want] = [await quantizeOn(small!, scheme, x, "bf16", 301, k), await quantizeOn(reference, scheme, x, "bf16", 301, k)];
    sameBits(got[0], want[0], `8 KiB bindings: quantize ${scheme} [301, ${k}] values`);
    sameBits(got[1], want[1], `8 KiB bindings: quantize ${scheme} [301, ${k}] scales`);
  }
});

gpuTest("int4 bindings split by rows keep each group of four interleaved rows together (10 KiB bindings, K 2048): matmul, embedding", async () => {
  for (const n of [21, 30]) {
    await expectMatmulClose(tenKiB!, `10 KiB bindings, int4 [1, 2048] x [${n}, 2048]^T`, "int4", 1, 2048, n);
    // One id a call: the gathered row (8 KiB of f32) is the most one binding of out holds here.
    for (const id of [n - 1, 0, 9, 10, 11, n - 2]) {
      sameBits(await embeddingOn(tenKiB!, "int4", n, 2048, [id]), await embeddingOn(reference, "int4", n, 2048, [id]), `10 KiB bindings: embedding int4 [${n}, 2048] row ${id}`);
    }
    // (dequantize and quantize bind four rows of f32 / bf16 inputs beside them, 32 / 16 KiB: more than
    // these bindings hold, which they refuse; the 8 KiB test above covers them with K 64.)
  }
});

gpuTest("int4 with inputs not a multiple of 32 is refused with the reason", () => {
  let message = "";
  try {
    gpu!.kernels.dequantize({ values: gpu!.allocate("i8", 40), scales: gpu!.allocate("f16", 4), out: gpu!.allocate("f32", 80), scheme: "int4", rows: 2, cols: 40 });
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("int4 quantizes groups of 32 inputs") || !message.startsWith("webgpu backend: dequantize")) throw new Error(message);
});

test.after(() => {
  small?.dispose();
  tenKiB?.dispose();
  gpu?.dispose();
});

test.run();
