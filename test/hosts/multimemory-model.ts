// The model of the multi-memory tests (test/multimemory.test.ts in Node, multimemory.html in Chromium)
// and the run both hosts make with it.
//
// Its weights are a hash of (tensor, element), not a random generator's output, so that
// scripts/golden/make_multimemory_fixture.py builds the very same bf16 bits in PyTorch and records what
// transformers computes from them (test/fixtures/multimemory.json), with no 10 MB checkpoint committed.
// Six layers of 1.7 MiB in bf16 (3.3 MiB in f32): a CAP of 8 MiB per memory puts one or two layers in
// each memory, so the model spans 3 or more.

import {
  configToHf, encodeSafetensors, generate, hfTensorName, loadOlmo, narrowFromF32, noGrad, tensor, TokenDataset, Trainer, weightShapes,
  type ModelSource, type OlmoConfig, type WasmBackend,
} from "../../src/index.js";

export const CONFIG: OlmoConfig = {
  vocabSize: 512, hiddenSize: 256, intermediateSize: 768, numLayers: 6, numHeads: 4, numKvHeads: 4, headDim: 64,
  maxPositionEmbeddings: 64, ropeTheta: 10000, clipQkv: null, tieWordEmbeddings: true, eosTokenId: 0, padTokenId: 1,
};
export const CAP = 8 * 2 ** 20;
export const PROMPT = [5, 17, 300, 42, 8, 99, 511, 3];
export const NEW_TOKENS = 16;

/**
 * Element i of tensor `k`: a 32-bit integer hash of (k, i) mapped to [-scale, scale), rounded to f32.
 * Every step is exact integer or float64 arithmetic, so NumPy computes the same bits (the fixture
 * script's `hash_weights`). The embedding (k = 1) is wider than the blocks: with every weight as small,
 * the tied LM head would repeat the last token, and greedy ids would check little.
 */
export function hashWeights(k: number, count: number): Float32Array {
  const scale = k === 1 ? 0.5 : 0.15;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let h = (Math.imul(i, 0x9e3779b1) + Math.imul(k, 0x85ebca77)) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 0xc2b2ae3d) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    out[i] = (h / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** The checkpoint's tensors in the order of their hash index k (1, 2, ...: weightShapes' order), with HF's names. */
export function tensorShapes(c: OlmoConfig = CONFIG): [string, [number, number]][] {
  return [...weightShapes(c)].map(([weight, shape]) => [hfTensorName(weight), shape]);
}

/** config.json and model.safetensors (bf16) of the model, as bytes. */
export function checkpointFiles(): { "config.json": string; "model.safetensors": Uint8Array } {
  const tensors = tensorShapes().map(([name, shape], k) => {
    const bits = narrowFromF32(hashWeights(k + 1, shape[0] * shape[1]), "bf16");
    return { name, dtype: "BF16" as const, shape, bytes: new Uint8Array(bits.buffer) };
  });
  const chunks = encodeSafetensors(tensors);
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), (at += c.byteLength));
  return { "config.json": JSON.stringify({ ...configToHf(CONFIG), torch_dtype: "bfloat16" }), "model.safetensors": bytes };
}

export interface MemoryRun {
  /** Logits of PROMPT, [1, T, V] flattened. */
  logits: number[];
  /** NEW_TOKENS greedy ids after PROMPT (KV-cache decode). */
  ids: number[];
  /** How many memories the backend had opened by the end. */
  memories: number;
}

/** Load the model from `source` (bf16, or as `load` says) on `backend`: the prompt's logits and greedy ids. */
export async function logitsAndGreedy(backend: WasmBackend, source: ModelSource, load: Parameters<typeof loadOlmo>[2] = { weightDType: "bf16" }): Promise<MemoryRun> {
  const { model } = await loadOlmo(source, backend, load);
  const logits = noGrad(() => {
    const ids = tensor(Int32Array.from(PROMPT), [1, PROMPT.length], { backend });
    const out = model.forward(ids);
    ids.dispose();
    const values = Array.from(out.dataSync() as Float32Array);
    out.dispose();
    return values;
  });
  const { newIds } = await noGrad(() => generate(model, PROMPT, { maxNewTokens: NEW_TOKENS, eosTokenId: null }));
  model.dispose();
  return { logits, ids: newIds, memories: backend.memoryUsageByMemory().length };
}

/** The losses of 10 AdamW steps (f32 weights, fixed batches) from `source` on `backend`, and the memories used. */
export async function tenTrainingSteps(backend: WasmBackend, source: ModelSource): Promise<{ losses: number[]; memories: number }> {
  const ids = Uint16Array.from({ length: 200 }, (_, i) => (i * 7919 + 13) % CONFIG.vocabSize);
  const { model } = await loadOlmo(source, backend, { weightDType: "f32" });
  const data = new TokenDataset(ids, null, 16, CONFIG.vocabSize);
  const trainer = new Trainer(model, data, { steps: 10, batchSize: 2, lr: 0.01, warmup: 3, schedule: "cosine", tMax: 10, weightDecay: 0.1, maxGradNorm: 0.5, shuffle: false });
  const losses: number[] = [];
  for (let step = 0; step < 10; step++) losses.push((await trainer.trainStep()).loss);
  const memories = backend.memoryUsageByMemory().length;
  model.dispose();
  trainer.optimizer.dispose();
  return { losses, memories };
}

/** The first index where `got` and `want` differ in bits (Object.is), or -1 when they are identical. */
export function firstDifference(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Math.min(got.length, want.length);
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) return i;
  return -1;
}
