// One model across several WebAssembly memories (src/backends/wasm/memories.ts): a checkpoint loaded
// with a small per-memory cap spans 3+ memories and computes exactly what the one-memory run computes
// (the same kernels on the same thread counts, only operands copied between memories), for logits,
// greedy decoding with a KV cache, int8 weights and 10 training steps; an out-of-memory error names the
// memory and the totals.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import {
  checkFits, configToHf, createJsBackend, createWasmBackend, KVCache, OLMO_PRESETS, encodeSafetensors, full, generate, loadOlmo, narrowFromF32, noGrad, randn, tensor, TokenDataset, Trainer,
  QuantizedWeight, type OlmoConfig, type Tensor, type WasmBackend, type WasmBuffer,
} from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const MiB = 2 ** 20;
// Six layers of 1.7 MiB in bf16 (3.3 MiB in f32): an 8 MiB cap puts one or two layers in each memory.
const config: OlmoConfig = {
  vocabSize: 512, hiddenSize: 256, intermediateSize: 768, numLayers: 6, numHeads: 4, numKvHeads: 4, headDim: 64,
  maxPositionEmbeddings: 64, ropeTheta: 10000, clipQkv: null, tieWordEmbeddings: true, eosTokenId: 0, padTokenId: 1,
};
const CAP = 8 * MiB;

/** A random checkpoint of `config` in bf16, in a fresh folder. */
function writeCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), "olmo-multimemory-"));
  const C = config.hiddenSize, I = config.intermediateSize;
  const shapes: [string, [number, number]][] = [["model.embed_tokens.weight", [config.vocabSize, C]]];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    for (const name of ["q_proj", "k_proj", "v_proj", "o_proj"]) shapes.push([`${p}self_attn.${name}.weight`, [C, C]]);
    shapes.push([`${p}mlp.gate_proj.weight`, [I, C]], [`${p}mlp.up_proj.weight`, [I, C]], [`${p}mlp.down_proj.weight`, [C, I]]);
  }
  const js = createJsBackend();
  const tensors = shapes.map(([name, shape], k) => {
    const bits = narrowFromF32(randn(shape, { seed: k + 1, std: 0.05, backend: js }).dataSync() as Float32Array, "bf16");
    return { name, dtype: "BF16" as const, shape, bytes: new Uint8Array(bits.buffer) };
  });
  const chunks = encodeSafetensors(tensors);
  writeFileSync(join(dir, "model.safetensors"), Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...configToHf(config), torch_dtype: "bfloat16" }));
  return dir;
}

const DIR = writeCheckpoint();
const PROMPT = [5, 17, 300, 42, 8, 99, 511, 3];
const backends = new Map<string, WasmBackend>();
/** A backend with `threads` threads, one memory (cap undefined) or memories of `cap` bytes. */
async function backend(threads: number, cap?: number): Promise<WasmBackend> {
  const key = `${threads}/${cap}`;
  if (!backends.has(key)) backends.set(key, await createNodeWasmBackend({ threads, maxMemoryPerInstance: cap }));
  return backends.get(key)!;
}

const BLOCK_WEIGHTS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
/** The memory a weight (a tensor, or a quantized weight's values) lives in. */
function memoryOfWeight(w: Tensor | QuantizedWeight): number {
  const t = w instanceof QuantizedWeight ? w.values : w;
  return (t.bufferFor("test") as WasmBuffer).memory;
}

/** Logits of the prompt, and 16 greedy tokens (KV-cache decode). */
async function run(b: WasmBackend, load: Parameters<typeof loadOlmo>[2] = {}) {
  const { model } = await loadOlmo(folderSource(DIR), b, load);
  const logits = noGrad(() => {
    const ids = tensor(Int32Array.from(PROMPT), [1, PROMPT.length], { backend: b });
    const out = model.forward(ids);
    ids.dispose();
    const values = out.dataSync() as Float32Array;
    out.dispose();
    return values;
  });
  const { ids } = await noGrad(() => generate(model, PROMPT, { maxNewTokens: 16, eosTokenId: null }));
  const memories = b.memoryUsageByMemory().length;
  // The loader kept each layer's weights in one memory (backend.placeGroup), so no weight is copied.
  for (let i = 0; i < config.numLayers; i++) {
    const homes = new Set(BLOCK_WEIGHTS.map((w) => memoryOfWeight(model.weight(`layers.${i}.${w}`))));
    if (homes.size !== 1) throw new Error(`layer ${i}'s weights straddle memories ${[...homes]}`);
  }
  model.dispose();
  return { logits, ids, memories };
}

function assertSame(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) throw new Error(`${what}: value ${i} is ${got[i]}, one memory gives ${want[i]}`);
  }
}

for (const threads of [1, 2]) {
  for (const [scheme, load] of [["bf16", { weightDType: "bf16" }], ["int8", { quantize: "int8" }]] as const) {
    test(`${threads} thread(s), ${scheme}: a model across 3+ memories gives the one-memory logits and greedy ids exactly`, async () => {
      const one = await run(await backend(threads), load);
      const split = await run(await backend(threads, CAP), load);
      if (one.memories !== 1) throw new Error(`the reference run used ${one.memories} memories`);
      if (split.memories < 3) throw new Error(`the capped run used ${split.memories} memories, expected 3 or more`);
      assertSame("logits", split.logits, one.logits);
      assertSame("greedy ids", split.ids, one.ids);
    });
  }
}

test("10 training steps across memories give the one-memory losses exactly", async () => {
  const ids = Uint16Array.from({ length: 200 }, (_, i) => (i * 7919 + 13) % config.vocabSize);
  const losses = async (b: WasmBackend) => {
    const { model } = await loadOlmo(folderSource(DIR), b, { weightDType: "f32" });
    const data = new TokenDataset(ids, null, 16, config.vocabSize);
    const trainer = new Trainer(model, data, { steps: 10, batchSize: 2, lr: 0.01, warmup: 3, schedule: "cosine", tMax: 10, weightDecay: 0.1, maxGradNorm: 0.5, shuffle: false });
    const out: number[] = [];
    for (let step = 0; step < 10; step++) out.push((await trainer.trainStep()).loss);
    const memories = b.memoryUsageByMemory().length;
    model.dispose();
    trainer.optimizer.dispose();
    return { out, memories };
  };
  const one = await losses(await backend(2)), split = await losses(await backend(2, CAP));
  if (split.memories < 3) throw new Error(`training used ${split.memories} memories, expected 3 or more`);
  assertSame("losses", split.out, one.out);
});

test("memoryUsage adds the memories up; out of memory names the memory and the totals", async () => {
  const b = await createNodeWasmBackend({ threads: 1, maxMemoryPerInstance: CAP, maxMemoryBytes: 3 * CAP });
  const parts = b.memoryUsageByMemory(), total = b.memoryUsage();
  if (total.limit !== 3 * CAP) throw new Error(`limit ${total.limit}`);
  const kept = [];
  let message = "";
  try {
    for (let i = 0; i < 10; i++) kept.push(full([1024, 1024], i, { backend: b })); // 4 MiB each
  } catch (e) {
    message = (e as Error).message;
  }
  if (b.memoryUsageByMemory().length !== 3) throw new Error(`${b.memoryUsageByMemory().length} memories`);
  const usage = b.memoryUsage(), sum = b.memoryUsageByMemory().reduce((s, m) => s + m.inUse, 0);
  if (usage.inUse !== sum || sum <= parts[0]!.inUse) throw new Error(`memoryUsage ${JSON.stringify(usage)} vs per memory ${sum}`);
  for (const fragment of ["cannot allocate 4.0 MiB", "memory 0", "across 3 memories", "total limit 24.0 MiB"]) {
    if (!message.includes(fragment)) throw new Error(`"${message}" lacks "${fragment}"`);
  }
  // Values read back from every memory are the ones written there.
  for (const [i, t] of kept.entries()) if ((t.dataSync() as Float32Array)[1000] !== i) throw new Error(`tensor ${i}`);
  for (const t of kept) t.dispose();
  b.dispose();
});

test("the fit check counts every memory: OLMo-7B in bf16 and int4 fits a 24 GiB machine, in f32 it is refused with the numbers", async () => {
  // Nothing is allocated: the limit is 6 memories of 4 GiB (24 GiB / 4 GiB), and the check is arithmetic.
  const b = await createWasmBackend({ maxMemoryBytes: 24 * 2 ** 30 });
  const c = OLMO_PRESETS["OLMo-7B"];
  const extra = KVCache.bytes(c, 1, c.maxPositionEmbeddings) + 256 * MiB;
  checkFits(c, "bf16", b, extra, "OLMo-7B");
  checkFits(c, "int4", b, extra, "OLMo-7B");
  let message = "";
  try {
    checkFits(c, "f32", b, extra, "OLMo-7B");
  } catch (e) {
    message = (e as Error).message;
  }
  for (const fragment of ["does not fit the wasm backend", "27.", "GB in f32", "holds at most 25.77 GB"]) {
    if (!message.includes(fragment)) throw new Error(`"${message}" lacks "${fragment}"`);
  }
  b.dispose();
});

test("olmo generate --max-memory-per-instance: the same ids across memories; --json reports memories and peak RSS", () => {
  const generateJson = (...extra: string[]) => {
    const args = ["generate", "--model", DIR, "--ids", PROMPT.join(","), "--max-new-tokens", "8", "--threads", "2", "--dtype", "bf16", "--json", ...extra];
    const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`olmo ${args.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { ids: number[]; memories: number; peak_rss_bytes: number };
  };
  const one = generateJson(), split = generateJson("--max-memory-per-instance", String(CAP));
  if (one.memories !== 1 || split.memories < 3) throw new Error(`memories: ${one.memories} without a cap, ${split.memories} with`);
  assertSame("ids", split.ids, one.ids);
  if (!(split.peak_rss_bytes > 10 * MiB && split.peak_rss_bytes < 4096 * MiB)) throw new Error(`peak_rss_bytes ${split.peak_rss_bytes}`);
});

test.after(() => {
  for (const b of backends.values()) b.dispose();
  rmSync(DIR, { recursive: true });
});

test.run();
