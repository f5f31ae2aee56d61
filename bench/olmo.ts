// OLMo-1B-shaped inference on the WASM backend: a random checkpoint with OLMo-1B's exact shapes
// (generated locally into .cache/, never committed), loaded in bf16; load speed beside the speed of
// writing fresh memory (and again into memory already touched: the loader alone), prefill at 64 / 512
// / 2048 tokens beside the GEMM bound, decode beside the memory-bandwidth bound, and peak memory — each
// bound measured in the same run. Then the same model quantized as it loads (int8, int4), each on a
// backend of its own: decode rounds taking turns with bf16's (the ratios then share the machine's
// drift), beside each scheme's own read bound, 512-token prefill against bf16's, and the logits' error
// against bf16's.
//
// Weights are random bf16 values (a 1M-value block drawn from N(0, 0.02), tiled with a different
// offset per tensor); speed does not depend on the values.

import { createWriteStream, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import {
  configToHf, createJsBackend, encodeSafetensors, generate, hfTensorName, loadOlmo, matmul, narrowFromF32, noGrad, OLMO_PRESETS, parameterCount, randn, scope, tensor,
  weightBytes as bytesOfWeight, weightShapes, type Olmo, type OlmoConfig, type QuantScheme, type TensorToWrite, type WasmBackend,
} from "../src/index.js";
import { measureMatmul, medianTime } from "../src/cli/bench.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";

// Kept outside build/ (which every build wipes) so the 2.35 GB file is written once.
export const DIR = new URL("../../.cache/olmo-1b-random", import.meta.url).pathname;

/** Every tensor of a Hugging Face OLMo checkpoint of this shape (names and shapes from src/model/weights.ts), the LM head last as the Hub's files have it. */
export function tensorsOf(c: OlmoConfig): { name: string; shape: [number, number] }[] {
  const list = [...weightShapes(c)].map(([weight, shape]) => ({ name: hfTensorName(weight), shape }));
  return [...list.filter((t) => t.name !== "lm_head.weight"), ...list.filter((t) => t.name === "lm_head.weight")];
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

/** The short generation steadyDecode runs before it times anything. */
export async function warmUp(model: Olmo, prompt: number[]): Promise<void> {
  await noGrad(() => generate(model, prompt.slice(0, 8), { maxNewTokens: 4, eosTokenId: null }));
}

/**
 * Steady-state decode tokens/s: a short generation first (the kernels' first calls run V8's baseline
 * code until the optimized code, compiled in the background, replaces it; and they touch fresh
 * memory), then `rounds` generations of `steps` decode steps after the prompt, timed: the median
 * round's tokens/s (the first round after the warm-up still measured 10% below the others on OLMo-1B),
 * and that round's result. `warm`: the caller ran warmUp already.
 */
export async function steadyDecode(model: Olmo, prompt: number[], steps = 32, rounds = 3, warm = false) {
  if (!warm) await warmUp(model, prompt);
  const runs = [];
  for (let r = 0; r < rounds; r++) runs.push(await decodeRound(model, prompt, steps));
  runs.sort((a, b) => a.tokensPerS - b.tokensPerS);
  const median = runs[Math.floor(rounds / 2)]!;
  return { tokensPerS: median.tokensPerS, steps, rounds, result: median.result };
}

/** One timed generation of `steps` decode steps after the prompt: its tokens/s and result. */
async function decodeRound(model: Olmo, prompt: number[], steps: number) {
  const result = await noGrad(() => generate(model, prompt, { maxNewTokens: steps + 1, eosTokenId: null }));
  return { tokensPerS: (result.newIds.length - 1) / result.decodeSeconds, result };
}

/** Write speed into fresh WebAssembly memory (first touch of every page): the floor of any loader here. */
function freshMemoryGBps(bytes = 256 * 2 ** 20): number {
  const memory = new WebAssembly.Memory({ initial: bytes / 65536, maximum: bytes / 65536, shared: true } as WebAssembly.MemoryDescriptor);
  const t0 = performance.now();
  new Uint8Array(memory.buffer).fill(1);
  return bytes / ((performance.now() - t0) / 1000) / 1e9;
}

/** Multiply-adds x 2 of one prompt token in a T-token prefill: the layers' linear maps and causal attention. */
function prefillFlopsPerToken(c: OlmoConfig, promptTokens: number): number {
  const C = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const linear = C * (q + 2 * kv) + q * C + 3 * C * c.intermediateSize;
  // q k^T and p v over on average T / 2 earlier positions (causal), per head.
  const attention = 2 * c.numHeads * c.headDim * (promptTokens / 2);
  return 2 * c.numLayers * (linear + attention);
}

/** Seconds of one prefill of `tokens` tokens (a cache of the context's size, last position's logits only). */
async function prefillSeconds(model: Olmo, tokens: number): Promise<number> {
  const ids = Array.from({ length: tokens }, (_, i) => (i * 7919) % model.config.vocabSize);
  const cache = model.createCache(1, model.config.maxPositionEmbeddings);
  try {
    const t0 = performance.now();
    const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, tokens], { backend: model.backend }), { cache, lastOnly: true })));
    await logits.data();
    logits.dispose();
    return (performance.now() - t0) / 1000;
  } finally {
    cache.dispose();
  }
}

export async function benchOlmo1b(threads = 2): Promise<void> {
  const config = OLMO_PRESETS["OLMo-1B"]!;
  const started = performance.now();
  await ensureCheckpoint(config);
  const writeSeconds = (performance.now() - started) / 1000;
  const freshGBps = freshMemoryGBps();
  const backend = await createNodeWasmBackend({ threads });
  const weightBytes = parameterCount(config) * 2;
  const loadStart = performance.now();
  const { model } = await loadOlmo(folderSource(DIR), backend, { weightDType: "bf16" });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  // The GEMM bound of prefill, measured in this run on the same threads: f32 1024^3, and the shape of
  // OLMo-1B's MLP in a 512-token prefill with bf16 weights as stored ([N, K], transposed).
  const gemm = measureMatmul(backend, threads, 1024, 1024, 1024, "f32").gflops;
  const mlpShape = noGrad(() => {
    const x = randn([512, 2048], { seed: 1, backend }), w = randn([8192, 2048], { seed: 2, backend, dtype: "bf16", std: 0.02 });
    const { medianMs } = medianTime(() => scope(() => void matmul(x, w, { transB: true })), 2);
    x.dispose();
    w.dispose();
    return (2 * 512 * 2048 * 8192) / (medianMs / 1000) / 1e9;
  });
  // Decode first (after its own warm-up): its 64-token prompt also warms up the prefill path (the
  // first call touches fresh memory for the KV cache and activations, which is slow on hosts that
  // fault pages in lazily), so the prefill figures below are steady-state.
  const prompt = Array.from({ length: 64 }, (_, i) => (i * 7919) % 50000);
  const decode = await steadyDecode(model, prompt);
  const referenceLogits = await promptLogits(model, prompt);
  const decodeTokensPerS = decode.tokensPerS;
  const prefill = [];
  for (const tokens of [64, 512, 2048]) {
    const seconds = await prefillSeconds(model, tokens);
    const tokensPerS = tokens / seconds;
    const bound = gemm / (prefillFlopsPerToken(config, tokens) / 1e9);
    prefill.push({ tokens, tokensPerS, bound, gflops: (tokens * prefillFlopsPerToken(config, tokens)) / seconds / 1e9 });
  }
  const bandwidth = backend.measureReadBandwidth();
  // A decode step reads every weight once: the layers plus the (tied) embedding as the LM head.
  const decodeBound = bandwidth / (weightBytes / 1e9);
  const usage = backend.memoryUsage();
  console.log(`\nOLMo-1B shapes (${(parameterCount(config) / 1e9).toFixed(2)}B parameters), bf16 weights, wasm backend, ${threads} threads`);
  console.log(
    `  load: ${(weightBytes / 1e9).toFixed(2)} GB (${writeSeconds > 1 ? `written in ${writeSeconds.toFixed(1)} s` : "cached"}) in ${loadSeconds.toFixed(1)} s = ` +
      `${(weightBytes / loadSeconds / 1e9).toFixed(2)} GB/s; writing fresh WebAssembly memory runs ${freshGBps.toFixed(2)} GB/s here (${((100 * weightBytes) / loadSeconds / 1e9 / freshGBps).toFixed(0)}% of it)`,
  );
  console.log(`  GEMM in this run, ${threads} threads: f32 1024^3 ${gemm.toFixed(1)} GFLOP/s; bf16-weight 512x2048x8192 (transposed) ${mlpShape.toFixed(1)} GFLOP/s`);
  for (const p of prefill) {
    console.log(
      `  prefill ${String(p.tokens).padStart(4)} tokens: ${p.tokensPerS.toFixed(1).padStart(6)} tokens/s = ${p.gflops.toFixed(1)} GFLOP/s; ` +
        `the f32 GEMM bound is ${p.bound.toFixed(1)} tokens/s: ${((100 * p.tokensPerS) / p.bound).toFixed(0)}% of it`,
    );
  }
  console.log(`  decode:  ${decodeTokensPerS.toFixed(2)} tokens/s (median of ${decode.rounds} runs of ${decode.steps} steps) = ${((decodeTokensPerS * weightBytes) / 1e9).toFixed(1)} GB/s of weights`);
  console.log(`  streaming-read bandwidth here: ${bandwidth.toFixed(1)} GB/s -> bound ${decodeBound.toFixed(2)} tokens/s; decode reaches ${((100 * decodeTokensPerS) / decodeBound).toFixed(0)}% of it`);
  console.log(`  peak WebAssembly memory: ${(usage.peak / 2 ** 30).toFixed(2)} GiB of ${(usage.limit / 2 ** 30).toFixed(0)} GiB (2048-token prefill included); process RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`);
  model.dispose();

  // The loader's own speed: the same load again, into the memory the first load and the prefills
  // touched (a WebAssembly memory never shrinks, so its pages stay faulted in). Where writing fresh
  // memory is slow (freshGBps), the first load measures the host; this one measures the loader. The
  // reloaded model stays for the schemes' decode below.
  const reloadStart = performance.now();
  const { model: reloaded } = await loadOlmo(folderSource(DIR), backend, { weightDType: "bf16" });
  const reloadSeconds = (performance.now() - reloadStart) / 1000;
  console.log(
    `  load again, into memory this process has touched: ${reloadSeconds.toFixed(2)} s = ${(weightBytes / reloadSeconds / 1e9).toFixed(2)} GB/s ` +
      `(the loader's own speed; the first load also faulted in every page, at the fresh-memory speed above)`,
  );

  // The same checkpoint quantized while it loads, each scheme on a backend of its own (its own
  // memories and threads, so no model's weights share a memory with another's activations). Decode
  // then takes turns, bf16 / int8 / int4 a round each, so the machine's drift (its memory bandwidth
  // moves within minutes here) reaches every scheme alike and the ratios hold; the read bound is the
  // mean of probes before and after.
  const bf16Prefill512 = prefill.find((p) => p.tokens === 512)!.tokensPerS;
  type Scheme = { name: string; model: Olmo; backend?: WasmBackend; bytes: number; loadS?: number; prefill512: number; logits: Float32Array };
  const schemes: Scheme[] = [
    { name: "bf16", model: reloaded, bytes: weightBytes, prefill512: bf16Prefill512, logits: referenceLogits },
  ];
  for (const scheme of ["int8", "int4"] as QuantScheme[]) {
    const own = await createNodeWasmBackend({ threads });
    const t0 = performance.now();
    const { model: quantized } = await loadOlmo(folderSource(DIR), own, { quantize: scheme });
    const loadS = (performance.now() - t0) / 1000;
    const bytes = [...quantized.weights.values()].reduce((sum, w) => sum + bytesOfWeight(w), 0);
    // Untimed, a 64-token prefill first, as bf16's 512-token prefill above came after its decode and its
    // 64-token prefill: a fresh backend's first forward also faults in memory and runs its kernels before
    // V8 has optimized them (a 512-token prefill measured about 12% slower first than after, for every scheme).
    await prefillSeconds(quantized, 64);
    const prefill512 = 512 / (await prefillSeconds(quantized, 512));
    schemes.push({ name: scheme, model: quantized, backend: own, bytes, loadS, prefill512, logits: await promptLogits(quantized, prompt) });
  }
  const probeBefore = backend.measureReadBandwidth();
  for (const s of schemes) await warmUp(s.model, prompt);
  const rounds = 5, steps = 32;
  const tokensPerS: number[][] = schemes.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, s] of schemes.entries()) tokensPerS[i]!.push((await decodeRound(s.model, prompt, steps)).tokensPerS);
  }
  const probe = (probeBefore + backend.measureReadBandwidth()) / 2;
  const medians = tokensPerS.map((t) => [...t].sort((a, b) => a - b)[Math.floor(rounds / 2)]!);
  console.log(
    `\n  quantized (same run, ${threads} threads, decode rounds of ${steps} steps taking turns, median of ${rounds} each): decode vs bf16 and vs each ` +
      `scheme's read bound (probe ${probe.toFixed(1)} GB/s, mean of before and after), 512-token prefill vs bf16, logits vs bf16 on a 64-token prompt`,
  );
  for (const [i, s] of schemes.entries()) {
    const bound = probe / (s.bytes / 1e9);
    const vsBf16 = i === 0 ? "" : ` = ${(medians[i]! / medians[0]!).toFixed(2)}x bf16`;
    const error = relativeError(s.logits, referenceLogits);
    const rest = i === 0 ? "" : `; loaded in ${s.loadS!.toFixed(1)} s; logits error vs bf16: max ${error.max.toExponential(2)}, mean ${error.mean.toExponential(2)} (relative)`;
    console.log(
      `    ${s.name}: decode ${medians[i]!.toFixed(2)} tokens/s (rounds ${Math.min(...tokensPerS[i]!).toFixed(1)}-${Math.max(...tokensPerS[i]!).toFixed(1)})${vsBf16} ` +
        `(${(s.bytes / 1e9).toFixed(2)} GB a token, bound ${bound.toFixed(2)}: ${((100 * medians[i]!) / bound).toFixed(0)}%); ` +
        `prefill 512 ${s.prefill512.toFixed(1)} tokens/s${i === 0 ? "" : ` = ${(s.prefill512 / bf16Prefill512).toFixed(2)}x bf16`}${rest}`,
    );
  }
  for (const s of schemes) {
    s.model.dispose();
    s.backend?.dispose();
  }
  backend.dispose();
}

/** |logits - reference|: its largest element over the reference's largest, and its mean over the reference's mean magnitude. */
function relativeError(logits: Float32Array, reference: Float32Array): { max: number; mean: number } {
  let maxError = 0, maxReference = 0, sumError = 0, sumReference = 0;
  for (let j = 0; j < logits.length; j++) {
    const error = Math.abs(logits[j]! - reference[j]!), magnitude = Math.abs(reference[j]!);
    maxError = Math.max(maxError, error);
    maxReference = Math.max(maxReference, magnitude);
    sumError += error;
    sumReference += magnitude;
  }
  return { max: maxError / maxReference, mean: sumError / sumReference };
}

/** Every position's logits for a prompt, as one array. */
async function promptLogits(model: Olmo, prompt: number[]): Promise<Float32Array> {
  const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(prompt), [1, prompt.length], { backend: model.backend }))));
  const values = (await logits.data()) as Float32Array;
  logits.dispose();
  return values;
}
