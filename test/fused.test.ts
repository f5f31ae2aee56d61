// Ranges of a tensor as tensors (Tensor.viewRange, Backend.view) and the fused projections built on
// them: a quantized layer's q, k, v (and gate, up) stored as the row ranges of one weight, computed for
// one token by one product (FusedRows, core/quantize.ts). The fused model must give the unfused one's
// logits bit for bit: each output row is the same sum either way.

import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  createJsBackend, encodeSafetensors, generate, linear, loadOlmo, LoraAdapters, memory, noGrad, QuantizedWeight, randn, readSafetensorsHeader, scope, tensor,
  type AnyBackend, type Olmo, type QuantScheme, type TensorToWrite,
} from "../src/index.js";
import { folderSource } from "../src/node/index.js";
import { saveModelFolder } from "../src/node/model-folder.js";
import { plainWasmBackendUnderTest, repoRoot, wasmBackendsUnderTest } from "./helpers.js";

const TINY = `${repoRoot}models/olmo-tiny-shakespeare`; // 4 layers, hidden 128, MLP 512: rows whole quads
const js = createJsBackend();
const PROMPT = [464, 3290, 11, 17, 2533, 198];

/** The same backend without views: the loader then gives every weight storage of its own. */
function withoutViews(backend: AnyBackend): AnyBackend {
  return { ...backend, view: undefined };
}

/** The backend, counting the rows of every matmulQuantized call. */
function countingQuantizedCalls(backend: AnyBackend): { backend: AnyBackend; rows: number[] } {
  const rows: number[] = [];
  const kernels = { ...backend.kernels, matmulQuantized: (args: Parameters<typeof backend.kernels.matmulQuantized>[0]) => {
    rows.push(args.n);
    backend.kernels.matmulQuantized(args);
  } };
  return { backend: { ...backend, kernels }, rows };
}

async function backendsUnderTest(): Promise<AnyBackend[]> {
  return [js, ...(await wasmBackendsUnderTest()), await plainWasmBackendUnderTest()];
}

test("viewRange: a range of a tensor's elements shares its bytes, counts no new bytes, and outlives the tensor", async () => {
  for (const backend of await backendsUnderTest()) {
    const start = memory(), used = backend.memoryUsage().inUse;
    const t = tensor(Array.from({ length: 12 }, (_, i) => i), [3, 4], { backend });
    const row = t.viewRange(4, [1, 4]);
    const inner = row.viewRange(1, [2]); // a range of a range: elements 5 and 6 of t
    assert.equal(Array.from(await row.data()), [4, 5, 6, 7], backend.name);
    assert.equal(Array.from(await inner.data()), [5, 6], backend.name);
    assert.equal(memory().buffers, start.buffers + 1, `${backend.name}: one buffer for the three tensors`);
    assert.equal(memory().bytes, start.bytes + 48, `${backend.name}: the bytes of t only`);
    // A write through the range is a write of t (and the other way round).
    backend.upload(inner.bufferFor("test"), "f32", new Float32Array([50, 60]));
    assert.equal(Array.from(await t.data()).slice(4, 8), [4, 50, 60, 7], backend.name);
    t.dispose();
    assert.equal(Array.from(await row.data()), [4, 50, 60, 7], `${backend.name}: the range keeps the bytes alive`);
    row.dispose();
    assert.equal(Array.from(await inner.data()), [50, 60], backend.name);
    inner.dispose();
    assert.equal(memory(), start, `${backend.name}: everything freed with the last range`);
    assert.is(backend.memoryUsage().inUse, used, backend.name);
  }
});

test("viewRange refuses ranges outside the tensor, tensors in autograd, and backends without views", () => {
  const t = tensor([1, 2, 3, 4], [4], { backend: js });
  assert.throws(() => t.viewRange(2, [3]), /elements \[2, 5\) are not a range of tensor #\d+ \[4\] f32/);
  assert.throws(() => t.viewRange(-1, [1]), /not a range/);
  assert.throws(() => t.viewRange(0.5, [1]), /not a range/);
  assert.throws(() => t.viewRange(0, [-1]), /shape \[-1\] must be non-negative integers/);
  assert.throws(() => t.viewRange(0, [0.5, 2]), /must be non-negative integers/);
  const p = randn([4], { backend: js });
  p.requiresGrad = true;
  assert.throws(() => p.viewRange(0, [2]), /takes part in autograd/);
  const noViews = withoutViews(js);
  const u = tensor([1, 2], [2], { backend: noViews });
  assert.is(u.canViewRange, false);
  assert.is(t.canViewRange, true);
  assert.throws(() => u.viewRange(0, [1]), /the js backend cannot view a buffer at an offset/);
  for (const x of [t, p, u]) x.dispose();
});

for (const scheme of ["int8", "int4"] as QuantScheme[]) {
  test(`${scheme}: the loader stores q, k, v and gate, up as one weight each, and the model's logits are the unfused model's bit for bit`, async () => {
    for (const base of await backendsUnderTest()) {
      const { backend, rows } = countingQuantizedCalls(base);
      const fused = (await loadOlmo(folderSource(TINY), backend, { quantize: scheme })).model;
      const plain = (await loadOlmo(folderSource(TINY), withoutViews(base), { quantize: scheme })).model;
      const { hiddenSize: C, intermediateSize: I, numLayers: L } = fused.config;
      for (let i = 0; i < L; i++) {
        const [q, k, v, gate, up] = (["q", "k", "v", "gate", "up"] as const).map((n) => fused.weight(`layers.${i}.${n}`) as QuantizedWeight);
        assert.ok(q!.fused && q!.fused === k!.fused && k!.fused === v!.fused, `${base.name} layer ${i}: q, k, v fused`);
        assert.equal(q!.fused!.whole.shape, [3 * C, C]);
        assert.ok(gate!.fused && gate!.fused === up!.fused && gate!.fused !== q!.fused, `${base.name} layer ${i}: gate, up fused`);
        assert.equal(gate!.fused!.whole.shape, [2 * I, C]);
        assert.is((fused.weight(`layers.${i}.o`) as QuantizedWeight).fused, null);
        assert.is((plain.weight(`layers.${i}.q`) as QuantizedWeight).fused, null, "no views, no fusion");
      }
      // The same bytes in the same places, as far as each weight can tell.
      for (const [name, w] of fused.weights) {
        const p = plain.weights.get(name) as QuantizedWeight, f = w as QuantizedWeight;
        assert.equal(Array.from(await f.values.data()), Array.from(await p.values.data()), `${base.name} ${name} values`);
        assert.equal(Array.from(await f.scales.data()), Array.from(await p.scales.data()), `${base.name} ${name} scales`);
      }
      // A prompt (GEMM on several rows: the parts apart) then tokens one by one (one product per group).
      const caches = [fused.createCache(1, 16), plain.createCache(1, 16)];
      for (const [t, ids] of [PROMPT, [7], [8], [9]].entries()) {
        rows.length = 0;
        const [a, b] = [fused, plain].map((model, m) => noGrad(() => scope(() => model.forward(tensor(ids, [1, ids.length], { dtype: "i32", backend: model.backend }), { cache: caches[m] }))));
        const [x, y] = [await a!.data(), await b!.data()];
        const differ = x.findIndex((value, j) => !Object.is(value, y[j]));
        assert.is(differ, -1, `${base.name} step ${t}: logit ${differ} is ${x[differ]}, unfused ${y[differ]}`);
        const perLayer = t === 0 ? [C, C, C, C, I, I, C] : [3 * C, C, 2 * I, C];
        assert.equal(rows, [...Array.from({ length: L }, () => perLayer).flat(), fused.config.vocabSize], `${base.name} step ${t}: the products`);
        a!.dispose(), b!.dispose();
      }
      for (const c of caches) c.dispose();
      fused.dispose(), plain.dispose();
    }
  });
}

test("fused q, k, v with grouped key/value heads and with clip_qkv (RoPE over q and k at once, one clamp) match the unfused model bit for bit", async () => {
  const fixtures = `${repoRoot}test/fixtures/olmo`;
  const cases: [string, QuantScheme][] = [
    ["gqa-sharded", "int8"], // 4 query heads, 2 key/value heads: q, k, v of 32, 16, 16 rows (MLP 40: not int4)
    ["f32-untied-clip", "int8"], // clip_qkv 0.5; hidden 24 (int4 needs inputs in 32s)
    ["native-layout", "int8"], // OLMo's own att_proj / ff_proj, split into the parts as they load
  ];
  for (const base of [js, (await wasmBackendsUnderTest())[1]!]) {
    for (const [folder, scheme] of cases) {
      const fused = (await loadOlmo(folderSource(`${fixtures}/${folder}`), base, { quantize: scheme })).model;
      const plain = (await loadOlmo(folderSource(`${fixtures}/${folder}`), withoutViews(base), { quantize: scheme })).model;
      const label = `${base.name} ${folder} ${scheme}`;
      assert.ok((fused.weight("layers.1.v") as QuantizedWeight).fused, `${label}: fused`);
      const caches = [fused.createCache(1, 16), plain.createCache(1, 16)];
      for (const [t, ids] of [[5, 9, 2, 77], [3], [50], [11]].entries()) {
        const [a, b] = [fused, plain].map((model, m) => noGrad(() => scope(() => model.forward(tensor(ids, [1, ids.length], { dtype: "i32", backend: model.backend }), { cache: caches[m] }))));
        const [x, y] = [await a!.data(), await b!.data()];
        const differ = x.findIndex((value, j) => !Object.is(value, y[j]));
        assert.is(differ, -1, `${label} step ${t}: logit ${differ} is ${x[differ]}, unfused ${y[differ]}`);
        a!.dispose(), b!.dispose();
      }
      for (const c of caches) c.dispose();
      fused.dispose(), plain.dispose();
    }
  }
});

test("fused weights give way where they cannot apply (an adapter on a part, a part replaced or reassigned, batch 2); disposing frees every byte", async () => {
  const base = (await wasmBackendsUnderTest())[1]!;
  const start = memory(), used = base.memoryUsage().inUse;
  const { backend, rows } = countingQuantizedCalls(base);
  const model = (await loadOlmo(folderSource(TINY), backend, { quantize: "int4" })).model;
  const { hiddenSize: C, intermediateSize: I, numLayers: L, vocabSize: V } = model.config;
  const decode = (m: Olmo) => {
    rows.length = 0;
    const cache = m.createCache(1, 4);
    noGrad(() => scope(() => m.forward(tensor([7], [1, 1], { dtype: "i32", backend: m.backend }), { cache }))).dispose();
    cache.dispose();
    return [...rows];
  };
  // An adapter on q: q, k and v each alone (LoRA adds to q's product), gate and up still as one.
  model.lora = LoraAdapters.create(model.config, { r: 2, alpha: 4, targets: ["q"] }, backend, 1);
  assert.equal(decode(model), [...Array.from({ length: L }, () => [C, C, C, C, 2 * I, C]).flat(), V]);
  model.lora.dispose();
  model.lora = null;
  // A weight replaced since loading: its group is no longer the parts the fused weight holds.
  const replaced = model.weight("layers.0.k") as QuantizedWeight;
  const copy = new QuantizedWeight("int4", replaced.shape, replaced.values.view(replaced.values.shape), replaced.scales.view(replaced.scales.shape));
  model.weights.set("layers.0.k", copy);
  assert.equal(decode(model).slice(0, 7), [C, C, C, C, 2 * I, C, 3 * C]);
  model.weights.set("layers.0.k", replaced);
  copy.dispose();
  assert.equal(decode(model).slice(0, 4), [3 * C, C, 2 * I, C]);
  // A part given other bytes (assign): the whole would not see them, so its group is computed apart.
  const up = model.weight("layers.1.up") as QuantizedWeight;
  const oldValues = up.values.view(up.values.shape);
  const zeros = tensor(new Int8Array(up.values.size), up.values.shape, { dtype: "i8", backend });
  up.values.assign(zeros);
  zeros.dispose(); // up.values holds its bytes now
  assert.equal(decode(model).slice(4, 9), [3 * C, C, I, I, C]);
  up.values.assign(oldValues);
  oldValues.dispose();
  assert.equal(decode(model).slice(4, 8), [3 * C, C, 2 * I, C]);
  // Batch 2 (one token each): the outputs would interleave, so each weight is a product of its own.
  rows.length = 0;
  const cache = model.createCache(2, 4);
  noGrad(() => scope(() => model.forward(tensor([7, 8], [2, 1], { dtype: "i32", backend }), { cache }))).dispose();
  cache.dispose();
  assert.equal(rows.slice(0, 7), [C, C, C, C, I, I, C]);
  model.dispose();
  assert.equal(memory(), start, "every tensor and byte freed");
  assert.is(base.memoryUsage().inUse, used);
});

test("a load that fails halfway (a NaN in layer 2's v, after its q and k went into their fused weight) frees everything", async () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-fused-"));
  try {
    for (const f of ["config.json", "tokenizer.json"]) cpSync(join(TINY, f), join(dir, f));
    const file = (await folderSource(TINY).open("model.safetensors"))!;
    const header = await readSafetensorsHeader(file, []);
    const tensors: TensorToWrite[] = [];
    for (const [name, e] of header.tensors) {
      const bytes = (await file.read(e.begin, e.end - e.begin)).slice();
      if (name === "model.layers.2.self_attn.v_proj.weight") bytes.set([0xc0, 0x7f], 200); // a bf16 NaN
      tensors.push({ name, dtype: e.dtype as "BF16", shape: e.shape, bytes });
    }
    writeFileSync(join(dir, "model.safetensors"), Buffer.concat(encodeSafetensors(tensors)));
    for (const backend of [js, ...(await wasmBackendsUnderTest())]) {
      for (const scheme of ["int8", "int4"] as QuantScheme[]) {
        const start = memory(), used = backend.memoryUsage().inUse;
        let message = "";
        await loadOlmo(folderSource(dir), backend, { quantize: scheme }).catch((e: Error) => (message = e.message));
        assert.match(message, /v_proj/, `${backend.name} ${scheme}: the load fails naming the tensor`);
        assert.equal(memory(), start, `${backend.name} ${scheme}: every tensor freed`);
        assert.is(backend.memoryUsage().inUse, used, `${backend.name} ${scheme}: every byte freed`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a folder saved from a fused int4 model loads back fused, with the same logits, from its stored integers", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "olmo-fused-")), "model");
  try {
    const backend = (await wasmBackendsUnderTest())[1]!;
    const { model } = await loadOlmo(folderSource(TINY), backend, { quantize: "int4" });
    await saveModelFolder(model.weights, folderSource(TINY), out, { what: "olmo quantize" });
    const stored = (await loadOlmo(folderSource(out), backend)).model;
    const plain = (await loadOlmo(folderSource(out), withoutViews(backend))).model;
    assert.ok((stored.weight("layers.0.q") as QuantizedWeight).fused, "fused from the stored integers");
    const step = async (m: Olmo) => {
      const cache = m.createCache(1, 8);
      const out = noGrad(() => scope(() => { m.forward(tensor(PROMPT, [1, PROMPT.length], { dtype: "i32", backend: m.backend }), { cache }); return m.forward(tensor([5], [1, 1], { dtype: "i32", backend: m.backend }), { cache }); }));
      const values = await out.data();
      out.dispose(), cache.dispose();
      return values;
    };
    const [a, b, c] = [await step(model), await step(stored), await step(plain)];
    assert.ok(a.every((v, j) => Object.is(v, b[j]) && Object.is(v, c[j])), "the same logits, bit for bit");
    model.dispose(), stored.dispose(), plain.dispose();
  } finally {
    rmSync(join(out, ".."), { recursive: true, force: true });
  }
});

test("wasm: a write through a part of a fused int4 weight is seen by the whole's product (the scales' finite check is not stale)", async () => {
  for (const backend of await wasmBackendsUnderTest()) {
    const model = (await loadOlmo(folderSource(TINY), backend, { quantize: "int4" })).model;
    const k = model.weight("layers.0.k") as QuantizedWeight, whole = k.fused!.whole;
    const x = randn([1, model.config.hiddenSize], { seed: 3, backend });
    const before = noGrad(() => linear(x, whole));
    assert.ok((await before.data()).every(Number.isFinite));
    // An infinite scale in k's first group: the fast GEMV's conversion is exact for finite scales only,
    // so the whole weight must now take the exact path (infinite or NaN outputs for k's first quad).
    const scales = new Uint16Array(await k.scales.rawData());
    scales[0] = 0x7c00;
    backend.upload(k.scales.bufferFor("test") as never, "f16", scales);
    const after = await noGrad(() => linear(x, whole)).data();
    const C = model.config.hiddenSize;
    assert.not.ok(Number.isFinite(after[C]!), `${backend.name}: k's row 0 (row ${C} of the whole) is ${after[C]}`);
    assert.ok(after.slice(0, C).every(Number.isFinite), "q's rows untouched");
    before.dispose(), x.dispose(), model.dispose();
  }
});

test("generate on a fused int4 model gives the unfused model's tokens (js and wasm)", async () => {
  for (const base of [js, (await wasmBackendsUnderTest())[1]!]) {
    const ids = await Promise.all([base, withoutViews(base)].map(async (backend) => {
      const { model } = await loadOlmo(folderSource(TINY), backend, { quantize: "int4" });
      const { newIds } = await noGrad(() => generate(model, PROMPT, { maxNewTokens: 8, eosTokenId: null }));
      model.dispose();
      return newIds;
    }));
    assert.equal(ids[0], ids[1], base.name);
  }
});

test.run();
