// The WASM backend's arena: free blocks are split and merged, so memory that was freed serves requests
// of any size; and a long prompt fits a memory that holds the weights, a full-context KV cache and one
// layer's activations, not all layers' at once.

import { test } from "uvu";
import { generate, noGrad, Olmo, randn, type OlmoConfig, type Tensor, type WeightName } from "../src/index.js";
import { Arena, WASM_PAGE } from "../src/backends/wasm/arena.js";
import { createNodeWasmBackend } from "../src/node/index.js";

const KiB = 1024, MiB = 1024 * KiB;
const newArena = (limit = 64 * MiB) => new Arena(new WebAssembly.Memory({ initial: 1, maximum: limit / WASM_PAGE }), 1024, limit);

test("neighbouring free blocks merge and serve a request larger than each", () => {
  const arena = newArena();
  const base = arena.reserved;
  const a = arena.allocate(100 * KiB, "a"), b = arena.allocate(200 * KiB, "b"), c = arena.allocate(300 * KiB, "c");
  const top = arena.reserved;
  arena.release(a.ptr, a.size);
  arena.release(b.ptr, b.size);
  // The 300 KiB hole that a and b leave is reused: the top does not move.
  const d = arena.allocate(300 * KiB, "d");
  if (d.ptr !== a.ptr || arena.reserved !== top) throw new Error(`expected ${a.ptr} with the top at ${top}, got ${d.ptr}, top ${arena.reserved}`);
  arena.release(c.ptr, c.size);
  arena.release(d.ptr, d.size);
  // Everything freed: no holes, the top back at the base.
  if (arena.reserved !== base || arena.inUse !== 0 || arena.largestFree() !== 0) {
    throw new Error(`after freeing all: reserved ${arena.reserved} (base ${base}), in use ${arena.inUse}, largest hole ${arena.largestFree()}`);
  }
});

test("a small request splits a large hole and leaves the rest free", () => {
  const arena = newArena();
  const big = arena.allocate(1 * MiB, "big"), guard = arena.allocate(64, "guard");
  arena.release(big.ptr, big.size);
  const small = arena.allocate(64 * KiB, "small");
  if (small.ptr !== big.ptr || small.size !== 64 * KiB || arena.inUse !== 64 * KiB + 64) throw new Error(JSON.stringify({ small, inUse: arena.inUse }));
  if (arena.largestFree() !== 1 * MiB - 64 * KiB) throw new Error(`largest hole ${arena.largestFree()}`);
  // The rest serves a second request without growing the heap.
  const top = arena.reserved;
  arena.allocate(1 * MiB - 64 * KiB, "rest");
  if (arena.reserved !== top) throw new Error("the rest of the hole was not reused");
  void guard;
});

test("random allocations and frees: blocks never overlap, and freeing everything leaves no holes", () => {
  const arena = newArena(256 * MiB);
  const base = arena.reserved;
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const live: { ptr: number; size: number }[] = [];
  for (let i = 0; i < 3000; i++) {
    if (live.length && random() < 0.45) {
      const [block] = live.splice(Math.floor(random() * live.length), 1);
      arena.release(block!.ptr, block!.size);
    } else {
      live.push(arena.allocate(Math.floor(random() ** 3 * 512 * KiB) + 1, "random"));
    }
    if (i % 100 === 0) {
      const sorted = [...live].sort((x, y) => x.ptr - y.ptr);
      for (let k = 1; k < sorted.length; k++) {
        if (sorted[k - 1]!.ptr + sorted[k - 1]!.size > sorted[k]!.ptr) throw new Error(`blocks overlap at step ${i}`);
      }
      const inUse = live.reduce((s, b) => s + b.size, 0);
      if (inUse !== arena.inUse) throw new Error(`in use ${arena.inUse}, live blocks ${inUse}`);
    }
  }
  for (const block of live) arena.release(block.ptr, block.size);
  if (arena.reserved !== base || arena.largestFree() !== 0) throw new Error(`reserved ${arena.reserved} (base ${base}), hole ${arena.largestFree()}`);
});

/** A random OLMo of this shape (f32 weights on `backend`). */
function randomOlmo(c: OlmoConfig, backend: Awaited<ReturnType<typeof createNodeWasmBackend>>): Olmo {
  const weights = new Map<WeightName, Tensor>();
  const C = c.hiddenSize, I = c.intermediateSize;
  let seed = 1;
  const w = (rows: number, cols: number) => randn([rows, cols], { seed: seed++, std: 0.05, backend });
  weights.set("embed", w(c.vocabSize, C));
  for (let i = 0; i < c.numLayers; i++) {
    for (const p of ["q", "k", "v", "o"] as const) weights.set(`layers.${i}.${p}`, w(C, C));
    weights.set(`layers.${i}.gate`, w(I, C));
    weights.set(`layers.${i}.up`, w(I, C));
    weights.set(`layers.${i}.down`, w(C, I));
  }
  return new Olmo(c, weights);
}

test("a prompt of nearly the whole context fits beside the weights and a full KV cache", async () => {
  // 8 layers; weights 9.4 MiB, a full 1024-token KV cache 8 MiB, and one layer's activations for a
  // 1000-token prompt about 15 MiB (the MLP's three [T, 512] f32 tensors alone are 6 MiB). All eight
  // layers' activations at once (about 120 MiB) do not fit 48 MiB; one layer's at a time does.
  const config: OlmoConfig = {
    vocabSize: 1000, hiddenSize: 128, intermediateSize: 512, numLayers: 8, numHeads: 4, numKvHeads: 4, headDim: 32,
    maxPositionEmbeddings: 1024, ropeTheta: 10000, clipQkv: null, tieWordEmbeddings: true, eosTokenId: 0, padTokenId: 1,
  };
  for (const threads of [1, 2]) {
    const backend = await createNodeWasmBackend({ threads, maxMemoryBytes: 48 * MiB });
    const fresh = backend.memoryUsage();
    const model = randomOlmo(config, backend);
    const prompt = Array.from({ length: 1000 }, (_, i) => (i * 7919) % config.vocabSize);
    const result = await noGrad(() => generate(model, prompt, { maxNewTokens: 24, eosTokenId: null }));
    if (result.ids.length !== 1024) throw new Error(`generated to ${result.ids.length} tokens, expected the 1024-token context`);
    const usage = backend.memoryUsage();
    model.dispose();
    const after = backend.memoryUsage();
    backend.dispose();
    if (usage.peak > 48 * MiB) throw new Error(`peak ${usage.peak}`);
    // With the model freed, the heap is back where it started: no holes left behind.
    if (after.reserved !== fresh.reserved || after.inUse !== fresh.inUse) {
      throw new Error(`after freeing everything: ${JSON.stringify(after)}, fresh backend: ${JSON.stringify(fresh)}`);
    }
  }
});

test.run();
