// `olmo demo`: the real OLMo model (src/model/olmo.ts) at a tiny size, over characters: one block,
// hidden size 32, clip_qkv set, tied embeddings. It trains with the real trainer (AdamW, clipping, the
// schedule) on a paragraph with the reference backend, shows the memory counter staying flat while it
// trains, then generates greedily with the KV cache. Nothing to download: it runs anywhere in seconds.

import {
  createJsBackend, generate, initialWeights, memory, Olmo, TokenDataset, Trainer, type OlmoConfig,
} from "../index.js";
import { parseArgs, usage, type CommandSpec } from "./args.js";

const TEXT =
  "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and arrows " +
  "of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. To die, to sleep; " +
  "no more; and by a sleep to say we end the heart-ache and the thousand natural shocks that flesh is heir to.";

const spec: CommandSpec = {
  steps: { kind: "value", number: { integer: true, min: 1 }, help: "AdamW steps (default 150)" },
  seed: { kind: "value", number: { integer: true, min: 0, max: 2 ** 32 - 1 }, help: "initialisation and data seed (default 0)" },
  lr: { kind: "value", number: { min: 0, minExclusive: true }, help: "peak learning rate (default 1e-2)" },
};

export async function runDemo(args: string[]): Promise<void> {
  const parsed = parseArgs("demo", args, spec);
  if (parsed.help) {
    console.log(`${usage("demo", spec)}\n\nTrains a one-block OLMo over characters with the reference backend, then generates.`);
    return;
  }
  const steps = parsed.numbers.get("steps") ?? 150, seed = parsed.numbers.get("seed") ?? 0, lr = parsed.numbers.get("lr") ?? 1e-2;
  const backend = createJsBackend();
  const chars = [...new Set(TEXT)].sort();
  const encode = (s: string) => [...s].map((c) => chars.indexOf(c));
  const config: OlmoConfig = {
    vocabSize: chars.length, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 4, numKvHeads: 4, headDim: 8,
    maxPositionEmbeddings: 64, ropeTheta: 10000, clipQkv: 8, tieWordEmbeddings: true, eosTokenId: 0, padTokenId: 0,
  };
  const model = new Olmo(config, initialWeights(config, seed, backend));
  const [B, T] = [6, 48];
  // Instances of T + 1 characters: the model reads T and predicts each next one.
  const data = new TokenDataset(Uint16Array.from(encode(TEXT)), null, T + 1, config.vocabSize, "the paragraph");
  const trainer = new Trainer(model, data, { steps, batchSize: B, lr, warmup: Math.min(10, steps), weightDecay: 0, seed });
  console.log(`olmo demo: ${chars.length} characters, B=${B} T=${T}, ${steps} AdamW steps (lr ${lr}), js backend`);
  const started = performance.now();
  while (trainer.step < steps) {
    const { step, loss } = await trainer.trainStep();
    if (step === 1 || step % 25 === 0 || step === steps) {
      const { tensors, bytes } = memory();
      console.log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  live tensors ${tensors}  live bytes ${bytes}`);
    }
  }
  const prompt = "To be, or not";
  // Up to the length it trained on: positions past T were never seen.
  const { newIds } = await generate(model, encode(prompt), { maxLength: T, eosTokenId: null });
  console.log(`sample: ${JSON.stringify(prompt + newIds.map((id) => chars[id]).join(""))}`);
  console.log(`${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  trainer.optimizer.dispose();
  model.dispose();
  backend.dispose();
}
