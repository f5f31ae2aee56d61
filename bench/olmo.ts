// OLMo-1B-shaped inference on the WASM backend: a random checkpoint with OLMo-1B's exact shapes
// (generated locally into build/, never committed), loaded in bf16, prefill and decode speed, peak
// memory, and the memory-bandwidth bound of decoding measured in the same run.
//
// Weights are random bf16 values (a 1M-value block drawn from N(0, 0.02), tiled with a different
// offset per tensor); speed does not depend on the values.

import { createWriteStream, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { configToHf, encodeSafetensors, generate, loadOlmo, narrowFromF32, OLMO_PRESETS, parameterCount, randn, type OlmoConfig, type TensorToWrite, createJsBackend } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";

// Kept outside build/ (which every build wipes) so the 2.35 GB file is written once.
export const DIR = new URL("../../.cache/olmo-1b-random", import.meta.url).pathname;

function tensorsOf(c: OlmoConfig): { name: string; shape: [number, number] }[] {
  const C = c.hiddenSize, I = c.intermediateSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const list: { name: string; shape: [number, number] }[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, C] }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    list.push(
      { name: `${p}self_attn.q_proj.weight`, shape: [q, C] }, { name: `${p}self_attn.k_proj.weight`, shape: [kv, C] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, C] }, { name: `${p}self_attn.o_proj.weight`, shape: [C, q] },
      { name: `${p}mlp.gate_proj.weight`, shape: [I, C] }, { name: `${p}mlp.up_proj.weight`, shape: [I, C] },
      { name: `${p}mlp.down_proj.weight`, shape: [C, I] },
    );
  }
  return list;
}

/** Write the random checkpoint unless it is already there. */
export async function ensureCheckpoint(c: OlmoConfig): Promise<void> {
  if (existsSync(`${DIR}/model.safetensors`)) return;
  mkdirSync(DIR, { recursive: true });
  const block = narrowFromF32(randn([1 << 20], { seed: 1, std: 0.02, backend: createJsBackend() }).dataSync(), "bf16");
  const tensors: TensorToWrite[] = tensorsOf(c).map(({ name, shape }, k) => {
    const n = shape[0] * shape[1];
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i += block.length) bits.set(block.subarray(0, Math.min(block.length, n - i)), i);
    bits.copyWithin(0, k * 997 % 4096); // vary tensors a little
    return { name, dtype: "BF16", shape, bytes: new Uint8Array(bits.buffer) };
  });
  const out = createWriteStream(`${DIR}/model.safetensors.tmp`);
  for (const chunk of encodeSafetensors(tensors)) if (!out.write(chunk)) await once(out, "drain");
  out.end();
  await once(out, "finish");
  renameSync(`${DIR}/model.safetensors.tmp`, `${DIR}/model.safetensors`);
  writeFileSync(`${DIR}/config.json`, JSON.stringify({ ...configToHf(c), torch_dtype: "bfloat16" }, null, 2));
}

export async function benchOlmo1b(threads = 2): Promise<void> {
  const config = OLMO_PRESETS["OLMo-1B"]!;
  const started = performance.now();
  await ensureCheckpoint(config);
  const writeSeconds = (performance.now() - started) / 1000;
  const backend = await createNodeWasmBackend({ threads });
  const loadStart = performance.now();
  const { model } = await loadOlmo(folderSource(DIR), backend, { weightDType: "bf16" });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const prompt = Array.from({ length: 64 }, (_, i) => (i * 7919) % 50000);
  const result = await generate(model, prompt, { maxNewTokens: 16, eosTokenId: null });
  const decodeTokensPerS = (result.newIds.length - 1) / result.decodeSeconds;
  const bandwidth = backend.measureReadBandwidth();
  // A decode step reads every weight once: the layers plus the (tied) embedding as the LM head.
  const weightBytes = parameterCount(config) * 2;
  const bound = bandwidth / (weightBytes / 1e9);
  const usage = backend.memoryUsage();
  console.log(`\nOLMo-1B shapes (${(parameterCount(config) / 1e9).toFixed(2)}B parameters), bf16 weights, wasm backend, ${threads} threads`);
  console.log(`  checkpoint: ${(weightBytes / 1e9).toFixed(2)} GB (${writeSeconds > 1 ? `written in ${writeSeconds.toFixed(1)} s` : "cached"}), loaded in ${loadSeconds.toFixed(1)} s`);
  console.log(`  prefill: ${(result.promptTokens / result.prefillSeconds).toFixed(1)} tokens/s (${result.promptTokens} tokens)`);
  console.log(`  decode:  ${decodeTokensPerS.toFixed(2)} tokens/s over ${result.newIds.length - 1} steps = ${((decodeTokensPerS * weightBytes) / 1e9).toFixed(1)} GB/s of weights`);
  console.log(`  streaming-read bandwidth here: ${bandwidth.toFixed(1)} GB/s -> bound ${bound.toFixed(2)} tokens/s; decode reaches ${((100 * decodeTokensPerS) / bound).toFixed(0)}% of it`);
  console.log(`  peak WebAssembly memory: ${(usage.peak / 2 ** 30).toFixed(2)} GiB of ${(usage.limit / 2 ** 30).toFixed(0)} GiB; process RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`);
  model.dispose();
  backend.dispose();
}
