// Training throughput: tokens/s of AdamW steps on a fixed small OLMo (the default model's shape:
// 5.4M parameters, vocabulary 50304) for batch 4 x 128 tokens, olmo-js (wasm, 2 threads) beside
// PyTorch on CPU with 2 threads in the same run (skipped, and said, when Python or torch is missing).

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { configFromHf, Olmo, randn, TokenDataset, Trainer, type WeightName } from "../src/index.js";
import { createNodeWasmBackend } from "../src/node/index.js";

const CONFIG = new URL("../../models/olmo-tiny-shakespeare/train-config.json", import.meta.url).pathname;
const SCRIPT = new URL("../../scripts/bench/torch_train.py", import.meta.url).pathname;
const [BATCH, SEQ, STEPS, THREADS] = [4, 128, 5, 2];

export async function benchTraining(): Promise<void> {
  const config = configFromHf(readFileSync(CONFIG, "utf8"), CONFIG);
  const backend = await createNodeWasmBackend({ threads: THREADS });
  const C = config.hiddenSize, I = config.intermediateSize;
  const shapes: [WeightName, number[]][] = [["embed", [config.vocabSize, C]]];
  for (let i = 0; i < config.numLayers; i++) {
    for (const [n, s] of [["q", [C, C]], ["k", [C, C]], ["v", [C, C]], ["o", [C, C]], ["gate", [I, C]], ["up", [I, C]], ["down", [C, I]]] as const) {
      shapes.push([`layers.${i}.${n}`, [...s]]);
    }
  }
  const model = new Olmo(config, new Map(shapes.map(([n, s], k) => [n, randn(s, { seed: k, std: 0.02, backend })])));
  const ids = Uint16Array.from({ length: BATCH * SEQ * (STEPS + 1) }, (_, i) => 2 + ((i * 7919) % 50000));
  const trainer = new Trainer(model, new TokenDataset(ids, null, SEQ, config.vocabSize), { steps: STEPS + 1, batchSize: BATCH, lr: 1e-4, shuffle: false });
  await trainer.trainStep(); // warm up
  const started = performance.now();
  for (let i = 0; i < STEPS; i++) await trainer.trainStep();
  const ours = (BATCH * SEQ * STEPS) / ((performance.now() - started) / 1000);
  trainer.optimizer.dispose();
  model.dispose();
  backend.dispose();
  console.log(`\ntraining, default-model shape (${config.numLayers} layers, hidden ${C}, vocab ${config.vocabSize}), batch ${BATCH} x ${SEQ}, ${THREADS} threads`);
  console.log(`  olmo-js wasm: ${ours.toFixed(0)} tokens/s`);
  const torch = spawnSync("python3", [SCRIPT, CONFIG, String(BATCH), String(SEQ), String(STEPS), String(THREADS)], { encoding: "utf8" });
  if (torch.status !== 0) {
    console.log(`  PyTorch: skipped (${(torch.error?.message ?? torch.stderr.trim().split("\n").pop() ?? "failed").slice(0, 120)})`);
    return;
  }
  const result = JSON.parse(torch.stdout.trim().split("\n").pop()!) as { tokens_per_s: number; torch: string };
  console.log(`  PyTorch ${result.torch} CPU: ${result.tokens_per_s.toFixed(0)} tokens/s  ->  olmo-js / PyTorch = ${(ours / result.tokens_per_s).toFixed(2)}`);
}
