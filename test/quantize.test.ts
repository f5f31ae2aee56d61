// The quantization schemes (src/core/quantize.ts) against an independent numpy implementation, bit for
// bit: the host functions and the reference backend's four kernels. Fixtures: test/fixtures/quantize.json
// and test/fixtures/olmo-8bit/, written by scripts/golden/make_quantize_fixtures.py (see its header).

import { readFileSync } from "node:fs";
import { test } from "uvu";
import { createJsBackend, type JsBuffer } from "../src/index.js";
import {
  dequantizeHost, QUANT_GROUP, quantizeActivationRow, quantizedShapes, quantizeHost, quantizeProblem, roundHalfEven,
  type QuantizedHost, type QuantScheme,
} from "../src/core/quantize.js";
import { f32ToBf16 } from "../src/core/dtype.js";
import { readJson, repoRoot } from "./helpers.js";

interface Scheme { values: number[]; scaleBits: string; dequantizedBits: string }
interface WeightCase { name: string; rows: number; cols: number; xBits: string; int8: Scheme; int4?: Scheme }
interface ActivationCase { name: string; rows: number; cols: number; xBits: string; q: number[]; scaleBits: string }
interface MatmulCase { name: string; scheme: QuantScheme; m: number; k: number; n: number; aBits: string; wBits: string; expected: number[]; absSum: number[] }
const fixture = readJson<{ version: number; group: number; weights: WeightCase[]; activations: ActivationCase[]; matmul: MatmulCase[] }>("test/fixtures/quantize.json");

/** The little-endian bytes of a base64 string, in a fresh (aligned) buffer. */
function bytes(base64: string): ArrayBuffer {
  const b = Buffer.from(base64, "base64");
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}
const f32s = (base64: string) => new Float32Array(bytes(base64));
const u16s = (base64: string) => new Uint16Array(bytes(base64));

/** Throw at the first element whose bits differ, naming it and both bit patterns. */
function assertSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, hexDigits = 8): void {
  if (actual.length !== expected.length) throw new Error(`${label}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      const hex = (v: number) => `0x${((v >>> 0) % 2 ** (4 * hexDigits)).toString(16).padStart(hexDigits, "0")}`;
      throw new Error(`${label}: element ${i} is ${hex(actual[i]!)}, numpy gives ${hex(expected[i]!)}`);
    }
  }
}
const f32Bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
/** Quantized values as the fixture stores them: int8 q as is, int4 packed bytes as 0..255. */
const storedValues = (scheme: QuantScheme, values: Int8Array) => (scheme === "int8" ? Array.from(values) : Array.from(values, (v) => v & 0xff));
/** Scale bits: f32 as uint32, f16 as uint16. */
const scaleBits = (scales: Float32Array | Uint16Array) => (scales instanceof Float32Array ? f32Bits(scales) : scales);
const expectedScaleBits = (scheme: QuantScheme, s: Scheme) => (scheme === "int8" ? new Uint32Array(bytes(s.scaleBits)) : u16s(s.scaleBits));
/** The fixture's quantized weight as the host functions take it. */
function fixtureQuantized(scheme: QuantScheme, s: Scheme): QuantizedHost {
  return { values: Int8Array.from(s.values, (v) => (v << 24) >> 24), scales: scheme === "int8" ? f32s(s.scaleBits) : u16s(s.scaleBits) };
}
function schemesOf(c: WeightCase): [QuantScheme, Scheme][] {
  return c.int4 ? [["int8", c.int8], ["int4", c.int4]] : [["int8", c.int8]];
}

test("the fixture is the version this test reads, with groups of 32", () => {
  if (fixture.version !== 2 || fixture.group !== QUANT_GROUP) throw new Error(`quantize.json version ${fixture.version}, group ${fixture.group}`);
});

test("roundHalfEven: ties go to the even integer, like numpy.rint and torch.round", () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [-2.5, -2], [126.5, 126], [-126.5, -126], [2.4999999, 2], [2.5000001, 3]];
  for (const [x, want] of cases) {
    if (!Object.is(roundHalfEven(x), want)) throw new Error(`roundHalfEven(${x}) = ${roundHalfEven(x)}, expected ${want}`);
  }
  // In the scheme: absmax 127 makes the factor f32(127 / 127) = 1, so these land exactly on .5.
  const q = quantizeHost("int8", [127, 2.5, -2.5, 3.5, 0.5, -126.5], 1, 6).values;
  if (Array.from(q).join() !== "127,2,-2,4,0,-126") throw new Error(`int8 ties quantize to ${Array.from(q)}`);
});

test("quantizeProblem: int4 needs K % 32 == 0, the scheme must be known; quantizeHost throws the same message", () => {
  const int4 = quantizeProblem("int4", 3, 45);
  if (!int4 || !int4.includes("multiple of 32") || !int4.includes("45") || !int4.includes("use int8")) throw new Error(`int4 K = 45: ${int4}`);
  if (quantizeProblem("int8", 3, 45) !== null || quantizeProblem("int4", 3, 64) !== null) throw new Error("valid shapes reported as problems");
  const unknown = quantizeProblem("int3" as QuantScheme, 2, 32);
  if (!unknown || !unknown.includes('unknown quantization scheme "int3"') || !unknown.includes('"int8" or "int4"')) throw new Error(`int3: ${unknown}`);
  for (const [scheme, cols, needle] of [["int4", 45, "multiple of 32"], ["int3", 32, "unknown quantization scheme"]] as const) {
    let message = "";
    try { quantizeHost(scheme as QuantScheme, new Float32Array(2 * cols), 2, cols); } catch (e) { message = (e as Error).message; }
    if (!message.startsWith("quantize: ") || !message.includes(needle)) throw new Error(`quantizeHost(${scheme}, K = ${cols}) threw "${message}"`);
  }
});

for (const c of fixture.weights) {
  for (const [scheme, expected] of schemesOf(c)) {
    test(`quantizeHost / dequantizeHost ${scheme}: ${c.name} [${c.rows}, ${c.cols}]`, () => {
      const q = quantizeHost(scheme, f32s(c.xBits), c.rows, c.cols);
      assertSameBits(storedValues(scheme, q.values), expected.values, `${scheme} values`, 2);
      assertSameBits(scaleBits(q.scales), expectedScaleBits(scheme, expected), `${scheme} scales`, scheme === "int8" ? 8 : 4);
      const want = new Uint32Array(bytes(expected.dequantizedBits));
      assertSameBits(f32Bits(dequantizeHost(scheme, q, c.rows, c.cols)), want, `${scheme} dequantized`);
      // Dequantizing numpy's own quantization too, so dequant is checked apart from quantize.
      assertSameBits(f32Bits(dequantizeHost(scheme, fixtureQuantized(scheme, expected), c.rows, c.cols)), want, `${scheme} dequantized from numpy's q`);
    });
  }
}

for (const c of fixture.activations) {
  test(`quantizeActivationRow: ${c.name} [${c.rows}, ${c.cols}]`, () => {
    const x = f32s(c.xBits), scales = new Uint32Array(bytes(c.scaleBits)), blocks = Math.ceil(c.cols / QUANT_GROUP);
    for (let r = 0; r < c.rows; r++) {
      const row = quantizeActivationRow(x, r * c.cols, c.cols);
      assertSameBits(Array.from(row.q), c.q.slice(r * c.cols, (r + 1) * c.cols), `row ${r} q`, 2);
      assertSameBits(f32Bits(row.scales), scales.subarray(r * blocks, (r + 1) * blocks), `row ${r} scales`);
    }
  });
}

// --- the reference backend's kernels on the same fixtures ------------------------------------------
const backend = createJsBackend();

function upload(dtype: "f32" | "bf16" | "f16" | "i8" | "i32", data: Float32Array | Uint16Array | Int8Array | Int32Array): JsBuffer {
  const buffer = backend.allocate(dtype, data.length);
  backend.upload(buffer, dtype, data);
  return buffer;
}
const read = <T>(buffer: JsBuffer, dtype: "f32" | "f16" | "i8", size: number) => backend.downloadSync!(buffer, dtype, size) as T;

/** The backend's quantize kernel on x (uploaded as f32, or as bf16 bits when every value is a bf16). */
function quantizeOnBackend(scheme: QuantScheme, x: Float32Array, rows: number, cols: number, xDType: "f32" | "bf16") {
  const shapes = quantizedShapes(scheme, rows, cols);
  const values = backend.allocate("i8", shapes.values[0] * shapes.values[1]);
  const scales = backend.allocate(shapes.scalesDType, shapes.scales.reduce((a, b) => a * b, 1));
  const input = xDType === "f32" ? upload("f32", x) : upload("bf16", Uint16Array.from(x, f32ToBf16));
  backend.kernels.quantize({ x: input, xDType, values, scales, scheme, rows, cols });
  return { values, scales, shapes };
}

for (const c of fixture.weights) {
  for (const [scheme, expected] of schemesOf(c)) {
    const x = f32s(c.xBits);
    const bf16Valued = x.every((v) => Number.isNaN(v) || new Float32Array(new Uint32Array([f32ToBf16(v) << 16]).buffer)[0] === v);
    test(`js kernels quantize / dequantize / embeddingQuantized ${scheme}: ${c.name}`, () => {
      for (const xDType of bf16Valued ? (["f32", "bf16"] as const) : (["f32"] as const)) {
        const { values, scales, shapes } = quantizeOnBackend(scheme, x, c.rows, c.cols, xDType);
        const valueCount = shapes.values[0] * shapes.values[1], scaleCount = shapes.scales.reduce((a, b) => a * b, 1);
        assertSameBits(storedValues(scheme, read<Int8Array>(values, "i8", valueCount)), expected.values, `${scheme} values (x ${xDType})`, 2);
        const gotScales = scheme === "int8" ? f32Bits(read<Float32Array>(scales, "f32", scaleCount)) : read<Uint16Array>(scales, "f16", scaleCount);
        assertSameBits(gotScales, expectedScaleBits(scheme, expected), `${scheme} scales (x ${xDType})`, scheme === "int8" ? 8 : 4);
      }
      // dequantize and the quantized embedding from numpy's values and scales.
      const q = fixtureQuantized(scheme, expected);
      const values = upload("i8", q.values), scales = q.scales instanceof Float32Array ? upload("f32", q.scales) : upload("f16", q.scales);
      const want = new Uint32Array(bytes(expected.dequantizedBits));
      const out = backend.allocate("f32", c.rows * c.cols);
      backend.kernels.dequantize({ values, scales, out, scheme, rows: c.rows, cols: c.cols });
      assertSameBits(f32Bits(read<Float32Array>(out, "f32", c.rows * c.cols)), want, `${scheme} dequantize kernel`);
      const ids = Int32Array.from([c.rows - 1, 0, Math.floor(c.rows / 2), c.rows - 1]);
      const gathered = backend.allocate("f32", ids.length * c.cols);
      backend.kernels.embeddingQuantized({ values, scales, scheme, ids: upload("i32", ids), out: gathered, count: ids.length, vocab: c.rows, dim: c.cols });
      const wantRows = Uint32Array.from(Array.from(ids).flatMap((id) => Array.from(want.subarray(id * c.cols, (id + 1) * c.cols))));
      assertSameBits(f32Bits(read<Float32Array>(gathered, "f32", ids.length * c.cols)), wantRows, `${scheme} embeddingQuantized`);
    });
  }
}

for (const c of fixture.matmul) {
  test(`js kernel matmulQuantized ${c.scheme}: ${c.name} [${c.m}, ${c.k}] x [${c.n}, ${c.k}]^T`, () => {
    const { values, scales } = quantizeOnBackend(c.scheme, f32s(c.wBits), c.n, c.k, "f32");
    const out = backend.allocate("f32", c.m * c.n);
    backend.kernels.matmulQuantized({ a: upload("f32", f32s(c.aBits)), values, scales, out, scheme: c.scheme, m: c.m, k: c.k, n: c.n });
    const got = read<Float32Array>(out, "f32", c.m * c.n);
    // The fixture is exact up to float64 sums. A kernel rounds each block's term s * w_scale * dot
    // (an exact integer dot) at most twice in f32, adds the B block terms in f32 in any order (each
    // addition rounds a partial sum bounded by the sum of the terms' magnitudes) and stores an f32:
    // |error| <= (B + 2) * 2^-24 * sum_b |term_b|, to first order.
    const blocks = Math.ceil(c.k / QUANT_GROUP);
    for (let i = 0; i < got.length; i++) {
      const bound = (blocks + 2) * 2 ** -24 * c.absSum[i]! + 1e-30;
      if (!(Math.abs(got[i]! - c.expected[i]!) <= bound)) {
        throw new Error(`element ${i} is ${got[i]}, expected ${c.expected[i]} (diff ${Math.abs(got[i]! - c.expected[i]!)}, bound ${bound})`);
      }
    }
  });
}

// --- the load_in_8bit checkpoint folder: what it holds, as expected_logits.json describes it -----------
test("olmo-8bit: the tensors transformers saves for load_in_8bit, and a consistent int8 quantization", () => {
  const folder = repoRoot + "test/fixtures/olmo-8bit/";
  const config = JSON.parse(readFileSync(folder + "config.json", "utf8"));
  const q = config.quantization_config;
  if (q.quant_method !== "bitsandbytes" || q.load_in_8bit !== true || q.load_in_4bit !== false || q.llm_int8_has_fp16_weight !== false) {
    throw new Error(`config.json quantization_config: ${JSON.stringify(q)}`);
  }
  const expected = JSON.parse(readFileSync(folder + "expected_logits.json", "utf8"));
  const file = readFileSync(folder + "model.safetensors");
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString("utf8"));
  const names = Object.keys(header).filter((k) => k !== "__metadata__").sort();
  if (names.join() !== Object.keys(expected.tensors).join()) throw new Error(`tensors: ${names}`);
  const dtypes: Record<string, string> = { int8: "I8", float32: "F32", float16: "F16", uint8: "U8" };
  const data = (name: string) => file.subarray(8 + headerLength + header[name].data_offsets[0], 8 + headerLength + header[name].data_offsets[1]);
  for (const name of names) {
    const want = expected.tensors[name];
    if (header[name].dtype !== dtypes[want.dtype] || header[name].shape.join() !== want.shape.join()) throw new Error(`${name}: ${JSON.stringify(header[name])}`);
    if (!name.endsWith(".weight_format")) continue;
    const module = name.slice(0, -".weight_format".length);
    if (header[name].shape.length !== 0 || data(name)[0] !== 0) throw new Error(`${name} should be a 0-dim uint8 holding 0 (row-major)`);
    // Every quantized row reaches +-127 (its absmax element) unless it is all zeros with SCB 0.
    const [rows, cols] = header[module + ".weight"].shape as [number, number];
    const w = new Int8Array(data(module + ".weight")), scb = new Float32Array(bytes(data(module + ".SCB").toString("base64")));
    for (let n = 0; n < rows; n++) {
      let max = 0;
      for (let k = 0; k < cols; k++) max = Math.max(max, Math.abs(w[n * cols + k]!));
      if (scb[n] === 0 ? max !== 0 : max !== 127 || !(scb[n]! > 0)) throw new Error(`${module} row ${n}: max |q| ${max}, SCB ${scb[n]}`);
    }
  }
  for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) if (header[name].dtype !== "F16") throw new Error(`${name} should stay F16`);
  if (expected.logitsInt8.length !== expected.prompt.length * config.vocab_size) throw new Error("expected_logits.json: wrong logits length");
});

test.run();
