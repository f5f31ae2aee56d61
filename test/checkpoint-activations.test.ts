// Activation checkpointing (core/autograd.ts `checkpoint`, Olmo.forward's checkpointActivations): the
// same gradients and losses as the plain backward, with LoRA, dropout and full training, and a lower
// peak of backend memory on a model with several layers.

import { test } from "uvu";
import {
  backward, checkpoint, createJsBackend, initialWeights, loadLoraAdapters, loadOlmo, LoraAdapters, mul, Olmo, olmoLoss, scope, silu, sum, tensor,
  TokenDataset, Trainer, trainableParameters, type AnyBackend, type OlmoConfig, type TrainOptions,
} from "../src/index.js";
import { folderSource } from "../src/node/index.js";
import { assertClose, readJson, repoRoot, wasmBackendsUnderTest } from "./helpers.js";

const train = readJson<{ options: TrainOptions & { seqLen: number }; ids: number[]; mask: number[] }>("test/fixtures/train/expected.json");
const lora = readJson<{ cases: Record<"all", { steps: { loss: number }[] }> }>("test/fixtures/lora/expected.json");
const BASE = `${repoRoot}test/fixtures/train/init`;
const [, wasm2] = await wasmBackendsUnderTest();

function dataFor(vocab: number) {
  return new TokenDataset(Uint16Array.from(train.ids), Uint8Array.from(train.mask), train.options.seqLen, vocab);
}

test("checkpoint(): the gradients of a recomputed segment equal the recorded ones, for inputs and parameters", async () => {
  const backend = createJsBackend();
  const make = () => ({
    x: tensor([0.5, -1, 2, 0.25], [2, 2], { backend }),
    w: tensor([1.5, -0.5, 0.3, 2], [2, 2], { backend }),
  });
  const fn = (w: ReturnType<typeof tensor>) => (x: ReturnType<typeof tensor>) => mul(silu(mul(x, w)), x);
  const run = async (checkpointed: boolean) => {
    const { x, w } = make();
    x.requiresGrad = true;
    w.requiresGrad = true;
    scope(() => {
      const y = checkpointed ? checkpoint("segment", fn(w), [x], [w]) : fn(w)(x);
      backward(sum(mul(y, y)));
    });
    return [Array.from(await x.grad!.data()), Array.from(await w.grad!.data())];
  };
  const [plain, recomputed] = [await run(false), await run(true)];
  assertClose(recomputed[0]!, plain[0]!, { atol: 0, rtol: 1e-6 }, "dx");
  assertClose(recomputed[1]!, plain[1]!, { atol: 0, rtol: 1e-6 }, "dw");
});

test("LoRA training with checkpointed blocks gives PEFT's losses (all seven targets, wasm 2 threads)", async () => {
  const { model } = await loadOlmo(folderSource(BASE), wasm2!, { weightDType: "f32" });
  model.lora = await loadLoraAdapters(folderSource(`${repoRoot}test/fixtures/lora/all/adapter`), model);
  const t = new Trainer(model, dataFor(64), { ...train.options, shuffle: false, checkpointActivations: true });
  for (const [k, want] of lora.cases.all.steps.entries()) {
    const m = await t.trainStep();
    if (Math.abs(m.loss - want.loss) > 1e-4 * want.loss) throw new Error(`step ${k + 1}: loss ${m.loss}, PEFT ${want.loss}`);
  }
  t.optimizer.dispose();
  model.dispose();
});

async function losses(backend: AnyBackend, checkpointActivations: boolean | number, setup: (model: Olmo) => void): Promise<number[]> {
  const { model } = await loadOlmo(folderSource(BASE), backend, { weightDType: "f32" });
  setup(model);
  const t = new Trainer(model, dataFor(64), { ...train.options, steps: 4, shuffle: false, checkpointActivations });
  const out: number[] = [];
  for (let i = 0; i < 4; i++) out.push((await t.trainStep()).loss);
  t.optimizer.dispose();
  model.dispose();
  return out;
}

test("full training and LoRA with dropout: the same losses with and without checkpointing", async () => {
  const full = (_: Olmo) => {};
  // Dropout masks are drawn once per forward pass and reused by the recomputation.
  const withDropout = (m: Olmo) => {
    m.lora = LoraAdapters.create(m.config, { r: 4, alpha: 8, targets: ["q", "v", "up"], dropout: 0.2 }, m.backend, 3);
  };
  for (const [name, setup] of [["full", full], ["dropout", withDropout]] as const) {
    const [plain, recomputed, firstOnly] = [await losses(wasm2!, false, setup), await losses(wasm2!, true, setup), await losses(wasm2!, 1, setup)];
    // Same kernels on the same values: only the order gradients of a tensor are summed in can differ.
    assertClose(recomputed, plain, { atol: 0, rtol: 1e-6 }, `${name} losses`);
    assertClose(firstOnly, plain, { atol: 0, rtol: 1e-6 }, `${name} losses, the first block checkpointed`);
  }
});

test("checkpointed blocks lower the peak backend memory of a training step (8 layers)", async () => {
  const config: OlmoConfig = {
    vocabSize: 64, hiddenSize: 64, intermediateSize: 256, numLayers: 8, numHeads: 4, numKvHeads: 4, headDim: 16,
    maxPositionEmbeddings: 64, ropeTheta: 10000, clipQkv: null, tieWordEmbeddings: true, eosTokenId: 63, padTokenId: 1,
  };
  const peak = async (checkpointActivations: boolean | number) => {
    const backend = createJsBackend(); // a fresh backend: its peak counts this run only
    const model = new Olmo(config, initialWeights(config, 1, backend));
    model.lora = LoraAdapters.create(config, { r: 4, alpha: 8, targets: ["q", "k", "v", "o", "gate", "up", "down"] }, backend, 2);
    for (const p of trainableParameters(model)) p.tensor.grad = null;
    const ids = tensor(Array.from({ length: 4 * 48 }, (_, i) => (i * 7) % 64), [4, 48], { dtype: "i32", backend });
    const mask = tensor(new Array(4 * 48).fill(1), [4, 48], { backend });
    scope(() => backward(olmoLoss(model, ids, mask, 4 * 48, { checkpointActivations })));
    const grads = await Promise.all(model.lora.parameters().map(async (p) => Array.from(await p.tensor.grad!.data())));
    const bytes = backend.memoryUsage().peak;
    model.dispose();
    return { bytes, grads };
  };
  const [plain, recomputed, half] = [await peak(false), await peak(true), await peak(4)];
  plain.grads.forEach((g, k) => assertClose(recomputed.grads[k]!, g, { atol: 1e-9, rtol: 1e-5 }, `adapter gradient ${k}`));
  plain.grads.forEach((g, k) => assertClose(half.grads[k]!, g, { atol: 1e-9, rtol: 1e-5 }, `adapter gradient ${k}, 4 of 8 blocks checkpointed`));
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  console.log(`peak backend memory of one LoRA step, 8 layers, B 4, T 47: ${mb(plain.bytes)} plain, ${mb(half.bytes)} with 4 blocks checkpointed, ${mb(recomputed.bytes)} with all 8`);
  if (!(recomputed.bytes < 0.6 * plain.bytes)) throw new Error(`checkpointing did not lower the peak enough: ${recomputed.bytes} vs ${plain.bytes}`);
  if (!(recomputed.bytes < half.bytes && half.bytes < plain.bytes)) throw new Error(`checkpointing half the blocks: ${half.bytes}, not between ${recomputed.bytes} and ${plain.bytes}`);
});

test.run();
