// Quantized weights on the WASM backend: the decode GEMV (M = 1) on OLMo-1B's weight shapes with bf16,
// int8 and int4 weights, 1 and 2 threads, as GB/s of weight bytes read and as a share of the
// streaming-read bound (measureReadBandwidth) of the same threads in the same run; the time ratio to
// bf16 is the decode speed-up those layers get. Then rows of a from 1 to 16 (where the GEMV hands over
// to the GEMM), prefill (M = 512) against bf16, and quantize's speed (load time).
//
// `node build/bench/quantized.js [--quick]` after `npm run build`; `npm run bench` runs it too.
// Weights are cycled through at least 128 MiB per case so the GEMV reads memory, not the cache.

import { medianTime } from "../src/cli/bench.js";
import { f32ToBf16 } from "../src/core/dtype.js";
import { quantizedShapes, type QuantScheme } from "../src/core/quantize.js";
import { createNodeWasmBackend } from "../src/node/index.js";
import type { WasmBackend, WasmBuffer } from "../src/index.js";

const CYCLE_BYTES = 128 * 2 ** 20;
type Weights = "bf16" | QuantScheme;
const WEIGHTS: Weights[] = ["bf16", "int8", "int4"];

/** Bytes one [N, K] weight reads in each format. */
function weightBytes(w: Weights, n: number, k: number): number {
  if (w === "bf16") return 2 * n * k;
  const shapes = quantizedShapes(w, n, k);
  return shapes.values[0] * shapes.values[1] + shapes.scales.reduce((a, b) => a * b, 1) * (shapes.scalesDType === "f32" ? 4 : 2);
}

/** Random bf16 weights [N, K] (values ~ N(0, 0.02)-sized; speed does not depend on them). */
function bf16Weights(backend: WasmBackend, n: number, k: number, seed: number): WasmBuffer {
  const block = new Uint16Array(1 << 20);
  let s = seed;
  for (let i = 0; i < block.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    block[i] = f32ToBf16(((s >>> 8) / 2 ** 24 - 0.5) * 0.07);
  }
  const buffer = backend.allocate("bf16", n * k);
  const bytes = backend.rawBytes!(buffer, "bf16", n * k)!;
  const view = new Uint16Array(bytes.buffer, bytes.byteOffset, n * k);
  for (let i = 0; i < n * k; i += block.length) view.set(block.subarray(0, Math.min(block.length, n * k - i)), i);
  return buffer;
}

interface Operands {
  /** One product out = a W^T with the i-th weight copy. */
  product: (i: number) => void;
  dispose: () => void;
  quantizeMs: number;
}

/** `copies` weight copies of one format, an activation a [M, K] and out [M, N] on `backend`. */
function operands(backend: WasmBackend, w: Weights, m: number, k: number, n: number, copies: number): Operands {
  const a = backend.allocate("f32", m * k), out = backend.allocate("f32", m * n);
  const av = backend.rawBytes!(a, "f32", m * k)!;
  new Float32Array(av.buffer, av.byteOffset, m * k).forEach((_, i, x) => (x[i] = Math.sin(i)));
  const buffers: WasmBuffer[] = [a, out];
  const weights: { values: WasmBuffer; scales?: WasmBuffer }[] = [];
  let quantizeMs = 0;
  for (let c = 0; c < copies; c++) {
    const bf16 = bf16Weights(backend, n, k, c + 1);
    if (w === "bf16") {
      weights.push({ values: bf16 });
      buffers.push(bf16);
      continue;
    }
    const shapes = quantizedShapes(w, n, k);
    const values = backend.allocate("i8", shapes.values[0] * shapes.values[1]);
    const scales = backend.allocate(shapes.scalesDType, shapes.scales.reduce((x, y) => x * y, 1));
    const t0 = performance.now();
    backend.kernels.quantize({ x: bf16, xDType: "bf16", values, scales, scheme: w, rows: n, cols: k });
    quantizeMs += performance.now() - t0;
    backend.free(bf16);
    weights.push({ values, scales });
    buffers.push(values, scales);
  }
  return {
    product: (i) => {
      const { values, scales } = weights[i % copies]!;
      if (w === "bf16") {
        backend.kernels.matmul({ a, b: values, out, bDType: "bf16", batch: 1, m, k, n, transA: false, transB: true, aBatchStride: 0, bBatchStride: 0 });
      } else {
        backend.kernels.matmulQuantized({ a, values, scales: scales!, out, scheme: w, m, k, n });
      }
    },
    dispose: () => buffers.forEach((b) => backend.free(b)),
    quantizeMs: quantizeMs / copies,
  };
}

/** Median ms of one product. */
function measure(backend: WasmBackend, w: Weights, m: number, k: number, n: number, seconds: number): { ms: number; quantizeMs: number } {
  const copies = m === 1 ? Math.max(1, Math.ceil(CYCLE_BYTES / weightBytes(w, n, k))) : 1;
  const ops = operands(backend, w, m, k, n, copies);
  const { medianMs } = medianTime(ops.product, seconds);
  ops.dispose();
  return { ms: medianMs, quantizeMs: ops.quantizeMs };
}

/** Sections to run: all by default; `--only decode|rows|prefill` picks one. */
export async function benchQuantized(quick = false, only?: string): Promise<void> {
  const seconds = quick ? 0.3 : 1;
  const backends = [await createNodeWasmBackend({ threads: 1 }), await createNodeWasmBackend({ threads: 2 })];
  if (!only || only === "decode") await decode(backends, seconds);
  if (!only || only === "rows") rows(backends[1]!, quick, seconds);
  if (!only || only === "prefill") prefill(backends[1]!, seconds);
  backends.forEach((b) => b.dispose());
}

async function decode(backends: WasmBackend[], seconds: number): Promise<void> {
  const build = backends[0]!.relaxedSimd ? "relaxed-SIMD build" : "plain-SIMD build";
  console.log(`\nquantized weights, decode GEMV (M = 1) on OLMo-1B shapes, wasm ${build}: GB/s of weight bytes, % of the read bound, time vs bf16`);
  for (const backend of backends) {
    const bound = backend.measureReadBandwidth();
    console.log(`${backend.threads} thread(s): streaming-read bound ${bound.toFixed(1)} GB/s`);
    for (const [n, k] of [[8192, 2048], [2048, 8192], [50304, 2048]] as const) {
      const times: Partial<Record<Weights, number>> = {};
      const cells = WEIGHTS.map((w) => {
        const { ms, quantizeMs } = measure(backend, w, 1, k, n, seconds);
        times[w] = ms;
        const gbps = weightBytes(w, n, k) / (ms / 1000) / 1e9;
        const quantized = w === "bf16" ? "" : `, quantize ${(2 * n * k / (quantizeMs / 1000) / 1e9).toFixed(2)} GB/s of bf16`;
        return `${w} ${ms.toFixed(3)} ms ${gbps.toFixed(1)} GB/s ${((100 * gbps) / bound).toFixed(0)}%${w === "bf16" ? "" : ` ${(times.bf16! / ms).toFixed(2)}x`}${quantized}`;
      });
      console.log(`  N ${n} K ${k}: ${cells.join(" | ")}`);
    }
  }
}

function rows(two: WasmBackend, quick: boolean, seconds: number): void {
  console.log(`\nquantized matmul by rows of a (K 2048, N 8192, 2 threads): ms per product (the GEMV up to its row limit, then the GEMM)`);
  for (const m of quick ? [1, 4, 8, 16, 24] : [1, 2, 3, 4, 6, 8, 12, 16, 17, 24, 32]) {
    const cells = WEIGHTS.map((w) => `${w} ${measure(two, w, m, 2048, 8192, seconds / 2).ms.toFixed(2)}`);
    console.log(`  M ${String(m).padStart(2)}: ${cells.join("  ")}`);
  }
}

function prefill(two: WasmBackend, seconds: number): void {
  console.log(`\nprefill M 512, K 2048, N 8192, 2 threads: GFLOP/s and speed vs bf16`);
  const prefill: Partial<Record<Weights, number>> = {};
  for (const w of WEIGHTS) {
    const ms = measure(two, w, 512, 2048, 8192, seconds).ms;
    prefill[w] = ms;
    console.log(`  ${w}: ${ms.toFixed(1)} ms, ${(2 * 512 * 2048 * 8192 / (ms / 1000) / 1e9).toFixed(1)} GFLOP/s${w === "bf16" ? "" : `, ${(prefill.bf16! / ms).toFixed(2)}x bf16`}`);
  }
}

// Run standalone (`node build/bench/quantized.js`), not when bench/run.ts imports it.
if (process.argv[1]?.endsWith("quantized.js")) {
  const only = process.argv.indexOf("--only");
  await benchQuantized(process.argv.includes("--quick"), only > 0 ? process.argv[only + 1] : undefined);
  process.exit(0);
}
