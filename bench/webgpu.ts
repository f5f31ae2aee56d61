// The WebGPU backend's figures: matmul GFLOP/s at 1024^3 and the decode GEMV 1x2048x8192 (f32 and
// bf16 weights, GB/s of weights), and OLMo-1B decode tokens/s on a real GPU. Prints the adapter it ran
// on. Part of `npm run bench`; alone: `npm run bench:webgpu`.
//
// On a CPU-emulated adapter (Mesa's lavapipe, SwiftShader) the figures only show that the kernels run;
// the OLMo-1B run is skipped there (minutes per token).

import { generate, loadOlmo, OLMO_PRESETS, parameterCount } from "../src/index.js";
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

if (process.argv[1]?.endsWith("bench/webgpu.js")) await benchWebGpu();
