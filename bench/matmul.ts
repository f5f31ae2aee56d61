// Matmul throughput: the WASM backend (1 and 2 threads; its default relaxed-SIMD build with fused
// multiply-adds, and the plain-SIMD build hosts without relaxed SIMD run) vs the reference backend vs
// TensorFlow.js's WASM backend (XNNPACK), side by side in one run. Shapes from issue "WASM SIMD
// backend": 256^3, 1024^3, 2048^3, prefill 128x2048x8192, decode 1x2048x8192 (f32 and bf16 weights,
// cycled through 64 MiB).

import * as tf from "@tensorflow/tfjs-core";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import { measureMatmul, medianTime, type MatmulMeasurement } from "../src/cli/bench.js";
import { backendByName } from "../src/cli/backends.js";

const SHAPES: [number, number, number][] = [[256, 256, 256], [1024, 1024, 1024], [2048, 2048, 2048], [128, 2048, 8192], [1, 2048, 8192]];

/** tfjs-wasm on the same shapes (decode: x @ W^T with W [N, K], cycled like ours). */
function measureTfjs(m: number, k: number, n: number, minSeconds = 1): number {
  const decode = m === 1;
  const copies = decode ? Math.ceil((64 * 2 ** 20) / (k * n * 4)) : 1;
  const a = tf.randomNormal([m, k]);
  const weights = Array.from({ length: copies }, () => tf.randomNormal(decode ? [n, k] : [k, n]));
  // (Not inside tf.tidy: there, dataSync made tfjs-wasm ten times slower in our runs.)
  const { medianMs } = medianTime((i) => {
    const c = tf.matMul(a, weights[i % copies]!, false, decode);
    c.dataSync();
    c.dispose();
  }, minSeconds);
  a.dispose();
  weights.forEach((w) => w.dispose());
  return (2 * m * n * k) / (medianMs / 1000) / 1e9;
}

export async function benchMatmul(): Promise<void> {
  tfWasm.setThreadsCount(2);
  await tf.setBackend("wasm");
  await tf.ready();
  const tfThreads = (await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT")) ? tfWasm.getThreadsCount() : 1;
  const wasm1 = await backendByName("wasm", 1), wasm2 = await backendByName("wasm", 2), js = await backendByName("js", 1);
  const plain1 = await backendByName("wasm", 1, { relaxedSimd: false }), plain2 = await backendByName("wasm", 2, { relaxedSimd: false });
  if (!(wasm1 as { relaxedSimd?: boolean }).relaxedSimd) console.log("(this host has no relaxed SIMD: the wasm columns run the plain build too)");
  console.log(`\nmatmul, GFLOP/s (median); decode rows also give GB/s of weights read. tfjs-wasm ${tf.version_core} runs ${tfThreads} thread(s) under Node (no multithread support there).`);
  console.log(
    `${"M x K x N".padEnd(18)} ${"dtype".padEnd(5)} ${"wasm 1t".padStart(9)} ${"wasm 2t".padStart(9)} ${"plain 1t".padStart(8)} ${"plain 2t".padStart(8)} ` +
      `${"js ref".padStart(8)} ${"tfjs-wasm".padStart(9)} ${"1t/tfjs".padStart(8)} ${"2t/tfjs".padStart(8)} ${"plain1t/tfjs".padStart(12)}`,
  );
  for (const [m, k, n] of SHAPES) {
    for (const dtype of m === 1 ? (["f32", "bf16"] as const) : (["f32"] as const)) {
      const one: MatmulMeasurement = measureMatmul(wasm1, 1, m, k, n, dtype);
      const two: MatmulMeasurement = measureMatmul(wasm2, 2, m, k, n, dtype);
      const plainOne = measureMatmul(plain1, 1, m, k, n, dtype), plainTwo = measureMatmul(plain2, 2, m, k, n, dtype);
      // The reference backend is too slow beyond 256^3 (about 0.4 GFLOP/s: 40 s for one 2048^3).
      const ref = m * n * k <= 256 ** 3 || m === 1 ? measureMatmul(js, 1, m, k, n, dtype, 0.5).gflops : NaN;
      const tfjs = dtype === "f32" ? measureTfjs(m, k, n) : NaN;
      const fmt = (v: number, width: number) => (Number.isNaN(v) ? "-" : v.toFixed(2)).padStart(width);
      const gbps = m === 1
        ? `   weights GB/s: ${one.weightGBps.toFixed(1)} 1t, ${two.weightGBps.toFixed(1)} 2t, plain ${plainOne.weightGBps.toFixed(1)} 1t, ${plainTwo.weightGBps.toFixed(1)} 2t`
        : "";
      console.log(
        `${`${m} x ${k} x ${n}`.padEnd(18)} ${dtype.padEnd(5)} ${fmt(one.gflops, 9)} ${fmt(two.gflops, 9)} ${fmt(plainOne.gflops, 8)} ${fmt(plainTwo.gflops, 8)} ` +
          `${fmt(ref, 8)} ${fmt(tfjs, 9)} ${fmt(one.gflops / tfjs, 8)} ${fmt(two.gflops / tfjs, 8)} ${fmt(plainOne.gflops / tfjs, 12)}${gbps}`,
      );
    }
  }
  wasm2.dispose?.();
  plain2.dispose?.();
}
