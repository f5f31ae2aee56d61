// The WebGPU backend's figures: matmul GFLOP/s at 1024^3 and the decode GEMV 1x2048x8192 (f32, bf16,
// int8 and int4 weights, GB/s of weights), and OLMo-1B decode tokens/s on a real GPU. Prints the
// adapter it ran on. Part of `npm run bench`; alone: `npm run bench:webgpu`.
//
// On a CPU-emulated adapter (Mesa's lavapipe, SwiftShader) the figures only show that the kernels run;
// the OLMo-1B run is skipped there (minutes per token).

import { generate, loadOlmo, OLMO_PRESETS, parameterCount, type WebGpuBackend } from "../src/index.js";
import { f32ToF16 } from "../src/core/dtype.js";
import { quantizedShapes, type QuantScheme } from "../src/core/quantize.js";
import { createNodeWebGpuBackend, folderSource } from "../src/node/index.js";
import { measureMatmulQueued } from "../src/cli/bench.js";
import { DIR, ensureCheckpoint } from "./olmo.js";

export async function benchWebGpu(): Promise<void> {
  let backend;
  try {
    backend = await createNodeWebGpuBackend();
  } catch (e) {
    console.log(`\nwebgpu benchmark skipped: ${(e as Error).message}`);
    return;
  }
  const software = /llvmpipe|lavapipe|swiftshader/i.test(backend.adapter);
  console.log(`\nwebgpu backend on: ${backend.adapter}${software ? "  (CPU-emulated: these figures show the kernels run, not GPU speed)" : ""}`);
  const shapes: [number, number, number, "f32" | "bf16"][] = [[1024, 1024, 1024, "f32"], [1, 2048, 8192, "f32"], [1, 2048, 8192, "bf16"]];
  if (!software) shapes.push([4096, 4096, 4096, "f32"], [128, 2048, 8192, "f32"]);
  for (const [m, k, n, dtype] of shapes) {
    const r = await measureMatmulQueued(backend, m, k, n, dtype, software ? 0.5 : 2);
    const what = m === 1 ? `${r.weightGBps.toFixed(1)} GB/s of weights` : `${r.gflops.toFixed(1)} GFLOP/s`;
    console.log(`  matmul ${`${m}x${k}x${n} ${dtype}`.padEnd(20)} ${what.padStart(24)}   (median ${r.medianMs.toFixed(3)} ms over ${r.runs} products)`);
  }
  // The quantized decode GEMV at the same OLMo-1B shape (compare with the bf16 line above).
  for (const scheme of ["int8", "int4"] as const) {
    const r = await measureQuantizedGemv(backend, 2048, 8192, scheme, software ? 0.5 : 2);
    console.log(`  matmul ${`1x2048x8192 ${scheme}`.padEnd(20)} ${`${r.weightGBps.toFixed(1)} GB/s of weights`.padStart(24)}   (median ${r.medianMs.toFixed(3)} ms over ${r.runs} products)`);
  }
  if (!software) {
    const config = OLMO_PRESETS["OLMo-1B"]!;
    await ensureCheckpoint(config);
    const { model } = await loadOlmo(folderSource(DIR), backend, { weightDType: "bf16" });
    const prompt = Array.from({ length: 64 }, (_, i) => (i * 7919) % 50000);
    await generate(model, prompt.slice(0, 8), { maxNewTokens: 4, eosTokenId: null }); // compile the pipelines
    const result = await generate(model, prompt, { maxNewTokens: 64, eosTokenId: null });
    const decode = (result.newIds.length - 1) / result.decodeSeconds;
    const weightGB = (parameterCount(config) * 2) / 1e9;
    console.log(`  OLMo-1B shapes, bf16 weights: prefill ${(result.promptTokens / result.prefillSeconds).toFixed(1)} tokens/s (${result.promptTokens} tokens), ` +
      `decode ${decode.toFixed(1)} tokens/s = ${(decode * weightGB).toFixed(0)} GB/s of weights`);
    model.dispose();
  }
  backend.dispose();
}

/**
 * The quantized GEMV out[1, N] = Qx(a) dequant(W)^T, W [N, K], called through the kernel table (the
 * weights' values are random bytes: the time does not depend on them). Weights cycle through 64 MiB of
 * copies, as measureMatmulQueued's, so they come from memory rather than the GPU's cache.
 */
async function measureQuantizedGemv(backend: WebGpuBackend, k: number, n: number, scheme: QuantScheme, minSeconds: number) {
  const shapes = quantizedShapes(scheme, n, k);
  const valueCount = shapes.values[0] * shapes.values[1], scaleCount = shapes.scales.reduce((p, d) => p * d, 1);
  const weightBytes = valueCount + scaleCount * (scheme === "int8" ? 4 : 2);
  const copies = Math.max(1, Math.ceil((64 * 2 ** 20) / weightBytes));
  const upload = <T extends Int8Array | Float32Array | Uint16Array>(dtype: "i8" | "f32" | "f16", data: T) => {
    const buffer = backend.allocate(dtype, data.length);
    backend.upload(buffer, dtype, data);
    return buffer;
  };
  const values = new Int8Array(valueCount).map((_, i) => ((i * 2654435761) >>> 24) - 128);
  const scales = scheme === "int8" ? new Float32Array(scaleCount).fill(0.5) : new Uint16Array(scaleCount).fill(f32ToF16(0.01));
  const weights = Array.from({ length: copies }, () => ({ values: upload("i8", values), scales: upload(shapes.scalesDType, scales) }));
  const a = upload("f32", new Float32Array(k).map((_, i) => Math.sin(i)));
  const out = backend.allocate("f32", n);
  let product = 0;
  const sample = async (repeat: number) => {
    const t0 = performance.now();
    for (let r = 0; r < repeat; r++) {
      const w = weights[product++ % copies]!;
      backend.kernels.matmulQuantized({ a, values: w.values, scales: w.scales, out, scheme, m: 1, k, n });
    }
    await backend.sync();
    return (performance.now() - t0) / repeat;
  };
  await sample(1); // compile the pipelines
  const repeat = Math.min(200, Math.max(1, Math.ceil(20 / (await sample(1)))));
  const times: number[] = [];
  const started = performance.now();
  while (times.length < 3 || (performance.now() - started < minSeconds * 1000 && times.length < 200)) times.push(await sample(repeat));
  for (const w of weights) [w.values, w.scales].forEach((b) => backend.free(b));
  [a, out].forEach((b) => backend.free(b));
  times.sort((x, y) => x - y);
  const medianMs = times[Math.floor(times.length / 2)]!;
  return { medianMs, runs: times.length * repeat, weightGBps: weightBytes / (medianMs / 1000) / 1e9 };
}

if (process.argv[1]?.endsWith("bench/webgpu.js")) await benchWebGpu();
