// Memory is the engine's job: a long training loop must not grow live tensors or bytes.

import { test } from "uvu";
import {
  add, backward, createJsBackend, crossEntropy, grad, initialWeights, matmul, memory, noGrad, Olmo, Random, requireGrad, scale, scope,
  setBackend, slice, sub, sum, tensor, valueAndGrad, type OlmoConfig, type Tensor,
} from "../src/index.js";

const backend = createJsBackend();
setBackend(backend);

/** The real model at a tiny size: one block, clip_qkv set (its clamp on the tape), tied embeddings. */
const TINY: OlmoConfig = {
  vocabSize: 19, hiddenSize: 8, intermediateSize: 16, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 4,
  maxPositionEmbeddings: 16, ropeTheta: 10000, clipQkv: 8, tieWordEmbeddings: true, eosTokenId: 0, padTokenId: 0,
};

/** Mean next-token cross-entropy of ids [B, T+1]. */
function nextTokenLoss(model: Olmo, ids: Tensor): Tensor {
  const [B, T1] = ids.shape as [number, number];
  return crossEntropy(model.forward(slice(ids, [0, 0], [B, T1 - 1])), slice(ids, [0, 1], [B, T1 - 1]));
}

/** p -= lr * p.grad for every weight, then clear the gradients. */
function sgdStep(model: Olmo, lr: number): void {
  noGrad(() =>
    scope(() => {
      for (const p of model.weights.values() as Iterable<Tensor>) {
        if (p.grad) p.assign(sub(p, scale(p.grad, lr)));
        p.grad?.dispose();
        p.grad = null;
      }
    }),
  );
}

test("100 steps of forward + backward + update keep live tensors and bytes flat", async () => {
  const model = new Olmo(TINY, initialWeights(TINY, 1, backend, 0.02 * Math.sqrt(64 / TINY.hiddenSize)));
  for (const w of model.weights.values()) requireGrad(w as Tensor);
  const random = new Random(5);
  const batch = () => tensor(Int32Array.from({ length: 2 * 7 }, () => Math.floor(random.uniform() * 19)), [2, 7]);
  const snapshots: ReturnType<typeof memory>[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 100; step++) {
    const loss = scope(() => {
      const l = nextTokenLoss(model, batch());
      backward(l);
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
    sgdStep(model, 0.5);
    snapshots.push(memory());
  }
  const [first, last] = [snapshots[0]!, snapshots[99]!];
  if (first.tensors !== last.tensors || first.bytes !== last.bytes || first.buffers !== last.buffers) {
    throw new Error(`memory grew: after step 1 ${JSON.stringify(first)}, after step 100 ${JSON.stringify(last)}`);
  }
  // Only the parameters remain between steps.
  const parameters = model.weights.size;
  if (last.tensors !== parameters) throw new Error(`expected the ${parameters} parameters to be the only live tensors, found ${last.tensors}`);
  // And the loop really trained (the memory check would be empty if it did nothing).
  if (!(losses[99]! < losses[0]! - 0.1)) throw new Error(`loss did not fall: ${losses[0]} -> ${losses[99]}`);
  model.dispose();
  if (memory().tensors !== 0 || memory().bytes !== 0) throw new Error(`leak after disposing parameters: ${JSON.stringify(memory())}`);
});

test("valueAndGrad frees every intermediate; value and gradients belong to the caller", async () => {
  const w = tensor([[1, 2], [3, 4]]);
  const x = tensor([[0.5, -1]]);
  const before = memory();
  for (let i = 0; i < 10; i++) {
    const { value, grads } = valueAndGrad((w) => sum(matmul(x, w)))(w);
    if ((await value.item()) !== 0.5 * 1 - 1 * 3 + 0.5 * 2 - 1 * 4) throw new Error("wrong value");
    value.dispose();
    grads.forEach((g) => g.dispose());
  }
  const after = memory();
  if (after.tensors !== before.tensors || after.bytes !== before.bytes) throw new Error(`leak: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  w.dispose();
  x.dispose();
});

test("inference under noGrad saves nothing for backward", () => {
  const w = requireGrad(tensor([[1, 2], [3, 4]]));
  const y = noGrad(() => add(matmul(w, w), w));
  if (y.gradFn || y.requiresGrad) throw new Error("noGrad recorded a graph");
  y.dispose();
  w.dispose();
});

test("grad of an unused input is zero and nothing leaks", async () => {
  const a = tensor([1, 2]), b = tensor([3, 4]);
  const before = memory().tensors;
  const [ga, gb] = grad((a, _b) => sum(a))(a, b);
  if ((await ga!.data()).join() !== "1,1" || (await gb!.data()).join() !== "0,0") throw new Error("wrong gradients");
  ga!.dispose();
  gb!.dispose();
  if (memory().tensors !== before) throw new Error("grad leaked tensors");
  a.dispose();
  b.dispose();
});

test.run();
