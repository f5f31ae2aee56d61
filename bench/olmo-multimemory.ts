// A model across several WebAssembly memories on the WASM backend: a random checkpoint with a preset's
// exact shapes (OLMo-7B by default), written into .cache/ sharded as the Hub shards it
// (model-0000k-of-0000n.safetensors + model.safetensors.index.json, never committed), then loaded
// (bf16, or quantized as it loads) and decoded on 2 threads. Reports load seconds, the memories used,
// peak RSS, and decode tokens/s beside the bound from the streaming-read bandwidth measured in the same
// run (the mean of a probe right before the decode and one right after it). `--compare-one-memory`
// runs the same decode on a backend with a single memory too (models under 4 GiB, such as OLMo-1B with
// --max-memory-per-instance 1073741824), for the cost of the split: in a process of its own, since a
// second model loaded into one process decodes some 10% slower either way.
//
//   npm run build && node build/bench/olmo-multimemory.js --preset OLMo-7B --quantize int4
//   node build/bench/olmo-multimemory.js --preset OLMo-7B-0424 --weights-from .cache/olmo-7b-random
//   node build/bench/olmo-multimemory.js --preset OLMo-1B --dir .cache/olmo-1b-random \
//     --max-memory-per-instance 1073741824 --compare-one-memory
//
// The OLMo-7B checkpoint is 13.8 GB of disk in bf16, and writing it takes minutes (`--write-only` writes
// it and stops: bench/decode-browser.ts reads it too).

import { spawnSync } from "node:child_process";
import { createWriteStream, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import {
  configToHf, createJsBackend, encodeSafetensors, loadOlmo, narrowFromF32, OLMO_PRESETS, randn, weightBytes,
  type OlmoConfig, type QuantScheme, type TensorToWrite, type WasmBackend,
} from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { steadyDecode, tensorsOf, warmUp } from "./olmo.js";

/**
 * Write a random bf16 checkpoint of `c` into `dir`, in shards of at most `shardBytes` as the Hub does,
 * unless it is there. Every tensor is a view of one random block as large as the largest tensor (at a
 * different offset each), so the writer holds that block, not the model.
 */
export async function writeShardedCheckpoint(c: OlmoConfig, dir: string, shardBytes = 5e9): Promise<void> {
  if (existsSync(join(dir, "model.safetensors.index.json"))) return;
  mkdirSync(dir, { recursive: true });
  const list = tensorsOf(c);
  const largest = Math.max(...list.map(({ shape }) => shape[0] * shape[1]));
  const seed = narrowFromF32(randn([1 << 20], { seed: 1, std: 0.02, backend: createJsBackend() }).dataSync() as Float32Array, "bf16");
  const block = new Uint16Array(largest + 4096);
  for (let i = 0; i < block.length; i += seed.length) block.set(seed.subarray(0, Math.min(seed.length, block.length - i)), i);
  const bytes = new Uint8Array(block.buffer);
  const shards: TensorToWrite[][] = [[]];
  let inShard = 0;
  for (const [k, { name, shape }] of list.entries()) {
    const n = 2 * shape[0] * shape[1];
    if (inShard > 0 && inShard + n > shardBytes) (shards.push([]), (inShard = 0));
    const offset = 2 * ((k * 997) % 4096);
    shards.at(-1)!.push({ name, dtype: "BF16", shape, bytes: bytes.subarray(offset, offset + n) });
    inShard += n;
  }
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [s, tensors] of shards.entries()) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const out = createWriteStream(join(dir, `${file}.tmp`));
    for (const chunk of encodeSafetensors(tensors)) if (!out.write(chunk)) await once(out, "drain");
    out.end();
    await once(out, "finish");
    renameSync(join(dir, `${file}.tmp`), join(dir, file));
    for (const t of tensors) (weightMap[t.name] = file), (totalSize += t.bytes.length);
    console.error(`  wrote ${file} (${tensors.length} tensors)`);
  }
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...configToHf(c), torch_dtype: "bfloat16" }, null, 2));
  // Written last: its presence says the checkpoint is complete.
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
}

/**
 * A checkpoint of `c` in `dir` whose weights are those of the checkpoint in `from` (hard links to its
 * shards and index, no bytes copied), for a preset whose tensors have another's shapes: OLMo-7B-0424
 * is OLMo-7B's shapes with clip_qkv and a 4096-token context.
 */
function linkWeights(from: string, c: OlmoConfig, dir: string): void {
  const index = join(from, "model.safetensors.index.json");
  if (!existsSync(index)) throw new Error(`--weights-from ${from}: no model.safetensors.index.json (write it first: --preset ... --write-only)`);
  const source = JSON.parse(readFileSync(join(from, "config.json"), "utf8")) as Record<string, unknown>;
  const own = configToHf(c);
  for (const key of ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "tie_word_embeddings"]) {
    if (source[key] !== own[key]) throw new Error(`--weights-from ${from}: its ${key} is ${source[key]}, this preset's ${own[key]}`);
  }
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(from).filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f))) linkSync(join(from, file), join(dir, file));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...own, torch_dtype: "bfloat16" }, null, 2));
  linkSync(index, join(dir, "model.safetensors.index.json"));
}

/**
 * Load `dir` on `backend`, time 16 decode steps after a 32-token prompt (after a short warm-up
 * generation); the figures of that run. With `probe`, the read bandwidth right before and right after
 * the decode, with the model loaded: this machine's bandwidth moves by tens of percent from one minute
 * to the next, so one probe taken apart from the decode can say more about the minute than about the
 * decode. The first probe waits for the warm-up: right after a load larger than half the machine's
 * memory, the kernel is still evicting page cache, and a probe then read 13 GB/s where one a minute
 * later read 59. The memories and the peak RSS are taken before the probes, whose 256 MiB would count.
 */
async function loadAndDecode(dir: string, backend: WasmBackend, scheme: QuantScheme | null, probe: boolean) {
  const t0 = performance.now();
  const { model } = await loadOlmo(folderSource(dir), backend, scheme ? { quantize: scheme } : { weightDType: "bf16" });
  const loadSeconds = (performance.now() - t0) / 1000;
  const bytes = [...model.weights.values()].reduce((sum, w) => sum + weightBytes(w), 0);
  const prompt = Array.from({ length: 32 }, (_, i) => (i * 7919) % model.config.vocabSize);
  await warmUp(model, prompt);
  const memories = backend.memoryUsageByMemory().length;
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const bandwidthBefore = probe ? backend.measureReadBandwidth() : NaN;
  const { tokensPerS: decodeTokensPerS, result } = await steadyDecode(model, prompt, 16, 1, true);
  const bandwidthAfter = probe ? backend.measureReadBandwidth() : NaN;
  model.dispose();
  return { loadSeconds, bytes, decodeTokensPerS, memories, peakRssBytes, ids: result.ids, bandwidthBefore, bandwidthAfter };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const at = args.indexOf(flag);
    return at < 0 ? undefined : args[at + 1];
  };
  const preset = value("--preset") ?? "OLMo-7B";
  const config = OLMO_PRESETS[preset];
  if (!config) throw new Error(`unknown preset ${preset}`);
  const dir = value("--dir") ?? new URL(`../../.cache/${preset.toLowerCase()}-random`, import.meta.url).pathname;
  const scheme = (value("--quantize") ?? null) as QuantScheme | null;
  const threads = Number(value("--threads") ?? 2);
  const cap = value("--max-memory-per-instance");
  const maxMemoryPerInstance = cap === undefined ? undefined : Number(cap);
  const weightsFrom = value("--weights-from");
  if (weightsFrom !== undefined && !existsSync(join(dir, "config.json"))) linkWeights(weightsFrom, config, dir);
  if (!existsSync(join(dir, "config.json"))) await writeShardedCheckpoint(config, dir);
  if (args.includes("--write-only")) return void console.log(`${preset}'s shapes, random bf16 weights: ${dir}`);

  const backend = await createNodeWasmBackend({ threads, maxMemoryPerInstance });
  const oneMemoryChild = args.includes("--one-memory-json");
  const run = await loadAndDecode(dir, backend, scheme, !oneMemoryChild);
  if (oneMemoryChild) {
    backend.dispose();
    return void console.log(JSON.stringify({ decodeTokensPerS: run.decodeTokensPerS, ids: run.ids }));
  }
  let oneMemory: { decodeTokensPerS: number; ids: number[] } | null = null;
  if (args.includes("--compare-one-memory")) {
    const childArgs = ["--preset", preset, "--dir", dir, "--threads", String(threads), ...(scheme ? ["--quantize", scheme] : []), "--one-memory-json"];
    const child = spawnSync(process.execPath, [process.argv[1]!, ...childArgs], { encoding: "utf8" });
    if (child.status !== 0) throw new Error(`the one-memory run failed: ${child.stderr}`);
    oneMemory = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
  }
  backend.dispose();
  const bandwidth = (run.bandwidthBefore + run.bandwidthAfter) / 2;
  const bound = bandwidth / (run.bytes / 1e9);
  console.log(`${preset} shapes, ${scheme ?? "bf16"} weights (${(run.bytes / 1e9).toFixed(2)} GB), wasm backend, ${threads} threads`);
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  console.log(
    `  load: ${run.loadSeconds.toFixed(1)} s into ${run.memories} WebAssembly memories; peak RSS ${gib(run.peakRssBytes)} GiB through load and ` +
      `a warm-up generation (${gib(process.resourceUsage().maxRSS * 1024)} GiB at the end, with the read probes' 256 MiB)`,
  );
  const ratio = Math.max(run.bandwidthBefore, run.bandwidthAfter) / Math.min(run.bandwidthBefore, run.bandwidthAfter);
  if (ratio > 1.3) console.log(`  (the two read probes differ ${ratio.toFixed(1)}x: the machine's read bandwidth moved during the decode)`);
  console.log(
    `  decode: ${run.decodeTokensPerS.toFixed(2)} tokens/s; streaming-read bandwidth ${run.bandwidthBefore.toFixed(1)} GB/s before it, ` +
      `${run.bandwidthAfter.toFixed(1)} after: mean ${bandwidth.toFixed(1)} GB/s -> bound ${bound.toFixed(2)} tokens/s: ` +
      `${((100 * run.decodeTokensPerS) / bound).toFixed(0)}% of it`,
  );
  if (oneMemory) {
    const same = oneMemory.ids.join() === run.ids.join();
    console.log(
      `  one memory (its own process): decode ${oneMemory.decodeTokensPerS.toFixed(2)} tokens/s (${run.memories} memories: ` +
        `${(run.decodeTokensPerS / oneMemory.decodeTokensPerS).toFixed(3)}x); greedy ids ${same ? "identical" : "DIFFER"}`,
    );
  }
}

await main();
