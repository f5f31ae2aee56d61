// LoRA fine-tuning of an OLMo-1B-shaped model: the random bf16 checkpoint of bench/olmo.ts, frozen,
// with adapters of rank 8 (alpha 16) on all seven linear layers of every block, one sequence of 512
// tokens a step, on the WASM backend (2 threads, one 4 GiB WebAssembly memory, as `olmo train`), beside
// PyTorch + PEFT on CPU with 2 threads in the same run (skipped, and said, when Python, torch or
// peft is missing). Each step's WebAssembly memory is printed: in use, and the peak reserved.
//
// The whole step's activations do not fit beside the 2.35 GB of weights in 4 GiB, so blocks are
// checkpointed: the first CHECKPOINTED of 16 (recomputed in the backward pass), the rest keep theirs.
// PyTorch runs with every block checkpointed (transformers' gradient checkpointing is all or nothing).
//
// `npm run bench` runs 2 timed steps after a warm-up. For the memory figure over a long run:
//   node build/bench/lora.js --steps 50 [--checkpoint-layers N] [--no-torch] [--torch-bf16]

import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { loadOlmo, LoraAdapters, loraParameterCount, OLMO_PRESETS, TokenDataset, Trainer } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { DIR, ensureCheckpoint } from "./olmo.js";

const SCRIPT = new URL("../../scripts/bench/torch_lora.py", import.meta.url).pathname;
// The setting, shared with bench/lora-browser.ts (the same steps in headless Chromium).
export const [SEQ, THREADS, RANK, ALPHA, CHECKPOINTED, LR] = [512, 2, 8, 16, 8, 1e-4];
export const ALL = ["q", "k", "v", "o", "gate", "up", "down"];
const GiB = 2 ** 30;
/** The WebAssembly memory allowed: one 32-bit memory's most. */
export const MEMORY_BYTES = 4 * GiB;

/** The bench's training text: `n` ids spread over the vocabulary (the speed does not depend on them). */
export function benchTokens(n: number): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => 2 + ((i * 7919) % 50000));
}

export async function benchLora(options: { steps?: number; checkpointLayers?: number; torch?: boolean; torchBf16?: boolean } = {}): Promise<void> {
  const { steps = 2, checkpointLayers = CHECKPOINTED, torch = true, torchBf16 = false } = options;
  const config = OLMO_PRESETS["OLMo-1B"]!;
  await ensureCheckpoint(config);
  const backend = await createNodeWasmBackend({ threads: THREADS, maxMemoryBytes: MEMORY_BYTES });
  const { model } = await loadOlmo(folderSource(DIR), backend, { weightDType: "bf16" });
  const lora = { r: RANK, alpha: ALPHA, targets: ALL };
  model.lora = LoraAdapters.create(config, lora, backend, 0);
  const ids = benchTokens(SEQ * (steps + 1));
  const trainer = new Trainer(model, new TokenDataset(ids, null, SEQ, config.vocabSize), {
    steps: steps + 1, batchSize: 1, lr: LR, shuffle: false, checkpointActivations: checkpointLayers,
  });
  const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;
  console.log(
    `\nLoRA fine-tuning, OLMo-1B shapes, bf16 base frozen, r ${RANK} alpha ${ALPHA} on ${ALL.join(",")} ` +
      `(${(loraParameterCount(config, lora) / 1e6).toFixed(1)}M trainable), batch 1 x ${SEQ}, wasm ${THREADS} threads` +
      `, ${checkpointLayers} of ${config.numLayers} blocks checkpointed`,
  );
  console.log(`  weights loaded: ${gib(backend.memoryUsage().inUse)} in use`);
  const timed: number[] = [];
  for (let step = 0; step <= steps; step++) {
    const m = await trainer.trainStep();
    const usage = backend.memoryUsage();
    if (step > 0) timed.push(m.tokens_per_s);
    console.log(
      `  step ${String(m.step).padStart(2)}${step === 0 ? " (warm-up)" : ""}: loss ${m.loss.toFixed(4)}, ${m.tokens_per_s.toFixed(1)} tokens/s, ` +
        `WebAssembly memory in use ${gib(usage.inUse)}, peak ${gib(usage.peak)} of ${gib(usage.limit)}`,
    );
  }
  const ours = timed.length / timed.reduce((s, v) => s + 1 / v, 0); // tokens over time: harmonic mean
  console.log(`  olmo-js wasm: ${ours.toFixed(1)} tokens/s; peak WebAssembly memory ${gib(backend.memoryUsage().peak)}; process RSS ${gib(process.memoryUsage().rss)}`);
  trainer.optimizer.dispose();
  model.dispose();
  backend.dispose();
  if (!torch) return;
  // PyTorch's CPU bf16 matmuls are slower than its f32 ones on CPUs without AMX: f32 is its fast path.
  for (const dtype of torchBf16 ? ["float32", "bfloat16"] : ["float32"]) {
    const args = [SCRIPT, `${DIR}/config.json`, String(SEQ), String(Math.max(1, Math.min(steps, 2))), String(THREADS), dtype, "checkpoint"];
    const run = spawnSync("python3", args, { encoding: "utf8" });
    if (run.status !== 0) {
      console.log(`  PyTorch + PEFT (${dtype}): skipped (${(run.error?.message ?? run.stderr.trim().split("\n").pop() ?? "failed").slice(0, 120)})`);
      continue;
    }
    const result = JSON.parse(run.stdout.trim().split("\n").pop()!) as { tokens_per_s: number; torch: string; peak_rss_bytes: number };
    console.log(
      `  PyTorch ${result.torch} + PEFT CPU, ${dtype} base: ${result.tokens_per_s.toFixed(1)} tokens/s (peak RSS ${gib(result.peak_rss_bytes)})  ->  ` +
        `olmo-js / PyTorch = ${(ours / result.tokens_per_s).toFixed(2)}`,
    );
  }
}

if (process.argv[1]?.endsWith("/lora.js")) {
  const { values } = parseArgs({ options: { steps: { type: "string" }, "checkpoint-layers": { type: "string" }, "no-torch": { type: "boolean" }, "torch-bf16": { type: "boolean" } } });
  const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  await benchLora({ steps: number(values.steps), checkpointLayers: number(values["checkpoint-layers"]), torch: !values["no-torch"], torchBf16: values["torch-bf16"] });
}
