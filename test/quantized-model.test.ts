// Quantized weights in the model and the loader: loadOlmo({ quantize }) holds exactly the definition's
// values (src/core/quantize.ts) on every CPU backend, a quantized model's logits match between
// backends and between cached decoding and a full forward pass, folders written by `olmo quantize`
// load back bit for bit, a frozen quantized linear layer passes gradients to its input, and bad
// quantized folders and options fail with errors that name the problem.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  backward, CheckpointError, createJsBackend, dequantize, encodeSafetensors, generate, linear, loadCheckpoint, loadOlmo, matmul, noGrad, quantize, QuantizedWeight,
  quantizeHost, randn, readSafetensorsHeader, scope, tensor, type AnyBackend, type QuantScheme, type Tensor, type TensorToWrite,
} from "../src/index.js";
import { folderSource, NodeOlmoGenerator } from "../src/node/index.js";
import { saveModelFolder } from "../src/node/model-folder.js";
import { quantizationConfig } from "../src/io/quantized.js";
import { assertClose } from "./assert.js";
import { repoRoot, wasmBackendsUnderTest, webGpuBackendUnderTest } from "./helpers.js";

const TINY = `${repoRoot}models/olmo-tiny-shakespeare`; // hidden 128, MLP 512: both schemes apply
const UNTIED = `${repoRoot}test/fixtures/olmo/f32-untied-clip`; // hidden 24: not a multiple of 32
const js = createJsBackend();
// 40 tokens: the full forward takes the WASM GEMM path (more than 32 rows), decoding the GEMV path.
const IDS = Array.from({ length: 40 }, (_, i) => ([0, 17, 2533, 50303, 198, 464, 3290, 11][i % 8]! + i) % 50304);

/** What a promise rejects with (failing the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

async function bits(t: Tensor): Promise<Uint8Array> {
  const raw = await t.rawData();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** Fail with the first differing byte (a deep-equal diff of megabytes would take minutes). */
function sameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  if (actual.length !== expected.length) assert.unreachable(`${label}: ${actual.length} bytes, expected ${expected.length}`);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  if (at >= 0) assert.unreachable(`${label}: byte ${at} is ${actual[at]}, expected ${expected[at]} (of ${actual.length})`);
}

async function logits(model: Awaited<ReturnType<typeof loadOlmo>>["model"], backend: AnyBackend): Promise<Float32Array> {
  const out = noGrad(() => scope(() => model.forward(tensor(IDS, [1, IDS.length], { dtype: "i32", backend }))));
  const values = (await out.data()) as Float32Array;
  out.dispose();
  return values;
}

for (const scheme of ["int8", "int4"] as QuantScheme[]) {
  test(`loadOlmo({ quantize: "${scheme}" }) holds the definition's values and scales for every weight, on js, wasm and webgpu`, async () => {
    const float = await loadCheckpoint(folderSource(TINY), js, { weightDType: "f32" });
    // WebGPU has no host view of its buffers: the loader quantizes on the host there (quantizeHost).
    const webgpu = await webGpuBackendUnderTest("loading quantized weights onto webgpu");
    const backends: AnyBackend[] = [js, ...(await wasmBackendsUnderTest()), ...(webgpu ? [webgpu] : [])];
    for (const backend of backends) {
      const { weights } = await loadCheckpoint(folderSource(TINY), backend, { quantize: scheme });
      for (const [name, w] of weights) {
        assert.ok(w instanceof QuantizedWeight, `${name} is quantized`);
        // The embedding (tied LM head) too: it takes the same scheme as every other weight.
        assert.is(w.scheme, scheme, name);
        const f = float.weights.get(name) as Tensor;
        const expected = quantizeHost(w.scheme, (await f.data()) as Float32Array, f.shape[0]!, f.shape[1]!);
        sameBytes(await bits(w.values), new Uint8Array(expected.values.buffer), `${backend.name} ${name} values`);
        sameBytes(await bits(w.scales), new Uint8Array(expected.scales.buffer), `${backend.name} ${name} scales`);
        w.dispose();
      }
    }
    for (const w of float.weights.values()) w.dispose();
  });

  test(`${scheme}: logits agree across backends, and cached decoding equals the full forward pass`, async () => {
    const { model: reference } = await loadOlmo(folderSource(TINY), js, { quantize: scheme });
    const expected = await logits(reference, js);
    const { model: float } = await loadOlmo(folderSource(TINY), js, { quantize: "none" });
    const floatLogits = await logits(float, js);
    float.dispose();
    // Quantization moves the logits, but not far: a model that ignored the scales or mixed up nibbles
    // would be off by the order of the logits themselves. Measured on the default model (8 layers,
    // largest logit 12.4): int8 moves the largest by 0.137, int4 by 1.44; the bounds are 2% and 20% of the
    // largest logit.
    const drift = expected.reduce((m, v, i) => Math.max(m, Math.abs(v - floatLogits[i]!)), 0);
    const scale = floatLogits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(drift > 0 && drift < (scheme === "int8" ? 0.02 : 0.2) * scale, `${scheme} drift from bf16 ${drift}, logits up to ${scale}`);
    for (const backend of await wasmBackendsUnderTest()) {
      const { model } = await loadOlmo(folderSource(TINY), backend, { quantize: scheme });
      // Same integers and scales; the f32 sums over K/32 blocks run in other orders (a few ulps). But
      // activation quantization is a step function: an ulp's difference in one layer's output can carry
      // a value across a rounding boundary of the next layer's quantization, moving that integer by 1
      // (max|x|/127 in one of 32 inputs), and that difference then flows on through the 8 layers.
      // Measured on the full forward: 1.4e-2 (int8) and 2.6e-2 (int4) for a largest logit of 12.4, i.e.
      // 0.1-0.2% of it; 0.5% of the largest logit bounds that twice over, and a real bug (a scale mixed
      // up, a nibble misplaced) moves logits by the order of the logits (the drift from bf16 above is
      // already 1% for int8, 12% for int4).
      const flips = { atol: 5e-3 * scale, rtol: 0 };
      assertClose(await logits(model, backend), expected, flips, `${backend.name} full forward`);
      // Decode token by token through the KV cache (M = 1: the GEMV path) and compare each position.
      const cache = model.createCache(1, IDS.length);
      for (let t = 0; t < IDS.length; t++) {
        const step = noGrad(() => scope(() => model.forward(tensor([IDS[t]!], [1, 1], { dtype: "i32", backend }), { cache })));
        const row = (await step.data()) as Float32Array;
        step.dispose();
        const V = model.config.vocabSize;
        assertClose(row, expected.subarray(t * V, (t + 1) * V), flips, `${backend.name} decode position ${t}`);
      }
      cache.dispose();
      model.dispose();
    }
    reference.dispose();
  });

  test(`${scheme}: a folder written by saveModelFolder loads back with the same weights and logits`, async () => {
    const out = join(mkdtempSync(join(tmpdir(), "olmo-quantized-")), "model");
    try {
      const { model } = await loadOlmo(folderSource(TINY), js, { quantize: scheme, quantizeEmbedding: scheme !== "int8", weightDType: "bf16" });
      await saveModelFolder(model.weights, folderSource(TINY), out, { what: "olmo quantize" });
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
      assert.is(config.quantization_config.quant_method, scheme === "int8" ? "bitsandbytes" : "olmo-js");
      const header = await readSafetensorsHeader((await folderSource(out).open("model.safetensors"))!, []);
      const q = header.tensors.get("model.layers.0.self_attn.q_proj.weight")!;
      assert.is(q.dtype, scheme === "int8" ? "I8" : "U8");
      assert.ok(header.tensors.has(scheme === "int8" ? "model.layers.0.self_attn.q_proj.SCB" : "model.layers.0.self_attn.q_proj.scales"));
      // int8 keeps the embedding float (bitsandbytes' layout); int4 stores it int4, with its scales.
      assert.is(header.tensors.get("model.embed_tokens.weight")!.dtype, scheme === "int8" ? "BF16" : "U8");
      assert.is(header.tensors.has("model.embed_tokens.scales"), scheme === "int4");
      const reloaded = await loadOlmo(folderSource(out), js, { quantize: "none", weightDType: "bf16" });
      for (const [name, w] of model.weights) {
        const r = reloaded.model.weights.get(name)!;
        if (w instanceof QuantizedWeight) {
          assert.ok(r instanceof QuantizedWeight && r.scheme === w.scheme, name);
          sameBytes(await bits(r.values), await bits(w.values), name);
          sameBytes(await bits(r.scales), await bits(w.scales), name);
        } else {
          sameBytes(await bits(r as Tensor), await bits(w), name);
        }
      }
      const [a, b] = [await logits(reloaded.model, js), await logits(model, js)];
      sameBytes(new Uint8Array(a.buffer), new Uint8Array(b.buffer), "logits");
      // Without an option every weight loads as the folder stores it: int4's embedding is int4, int8's
      // stays float (bitsandbytes' layout); quantize "int8" quantizes that float embedding too.
      const auto = await loadCheckpoint(folderSource(out), js);
      assert.is(auto.weights.get("embed") instanceof QuantizedWeight, scheme === "int4");
      assert.is(auto.quantization, scheme);
      for (const w of auto.weights.values()) w.dispose();
      const asked = await loadCheckpoint(folderSource(out), js, { quantize: scheme });
      assert.ok(asked.weights.get("embed") instanceof QuantizedWeight && (asked.weights.get("embed") as QuantizedWeight).scheme === scheme);
      for (const w of asked.weights.values()) w.dispose();
      // Another scheme cannot apply to weights already quantized: refused once for the folder, with what it holds.
      const other = scheme === "int8" ? "int4" : "int8";
      const refused = await rejection(loadCheckpoint(folderSource(out), js, { quantize: other }));
      assert.ok(refused instanceof CheckpointError && refused.problems.length === 1, String(refused));
      assert.match(refused.message, new RegExp(`quantize "${other}" was asked for, but \\d+ tensor\\(s\\) are stored ${scheme}, such as "${scheme === "int4" ? "model\\.embed_tokens\\.weight" : "model\\.layers\\.0\\.self_attn\\.q_proj\\.weight"}": quantized weights cannot be quantized again`));
      if (scheme === "int4") {
        // int4 tensors under a config that does not declare olmo-js int4 (such as bitsandbytes' 8-bit
        // one): the order of their rows is unknown, so they are refused, naming the tensor.
        const moved = join(out, "..", "moved");
        cpSync(out, moved, { recursive: true });
        writeFileSync(join(moved, "config.json"), JSON.stringify({ ...config, quantization_config: quantizationConfig("int8") }));
        const error = await rejection(loadCheckpoint(folderSource(moved), js));
        assert.ok(error instanceof CheckpointError);
        // One problem for the folder, not one per tensor (nor their scales again as unexpected tensors).
        assert.is(error.problems.length, 1, error.message);
        assert.match(error.message, /\d+ tensor\(s\) are int4, such as [^ ]*model\.safetensors: "model\.embed_tokens\.weight" \(with "model\.embed_tokens\.scales"\), but config\.json's quantization_config does not declare olmo-js int4 with "rows_interleaved": 4/);
      }
      // A second write into the same folder is refused: nothing is overwritten.
      assert.match((await rejection(saveModelFolder(model.weights, folderSource(TINY), out, { what: "olmo quantize" }))).message, /exists and is not empty/);
      model.dispose();
      reloaded.model.dispose();
    } finally {
      rmSync(join(out, ".."), { recursive: true, force: true });
    }
  });
}

test("quantizeEmbedding: \"int8\" under int4: the embedding's integers are int8's, the folder saved so loads as stored, and quantize int4 on it says what it holds", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "olmo-mixed-")), "model");
  try {
    const { model } = await loadOlmo(folderSource(TINY), js, { quantize: "int4", quantizeEmbedding: "int8", weightDType: "bf16" });
    // The same integers as quantizing the bf16 embedding to int8 alone.
    const { model: float } = await loadOlmo(folderSource(TINY), js, { weightDType: "bf16" });
    const reference = quantize(float.weight("embed") as Tensor, "int8");
    const embed = model.weight("embed") as QuantizedWeight;
    assert.is(embed.scheme, "int8");
    assert.is((model.weight("layers.0.q") as QuantizedWeight).scheme, "int4");
    sameBytes(await bits(embed.values), await bits(reference.values), "embedding values");
    sameBytes(await bits(embed.scales), await bits(reference.scales), "embedding scales");
    reference.dispose();
    float.dispose();
    // Such a folder (also what olmo-js wrote for int4 before int4 took the embedding too) loads as stored.
    await saveModelFolder(model.weights, folderSource(TINY), out, { what: "olmo quantize" });
    model.dispose();
    const stored = await loadCheckpoint(folderSource(out), js);
    assert.is((stored.weights.get("embed") as QuantizedWeight).scheme, "int8");
    assert.is((stored.weights.get("layers.0.q") as QuantizedWeight).scheme, "int4");
    assert.is(stored.quantization, "int4");
    for (const w of stored.weights.values()) w.dispose();
    const matching = await loadCheckpoint(folderSource(out), js, { quantize: "int4", quantizeEmbedding: "int8" });
    assert.is((matching.weights.get("embed") as QuantizedWeight).scheme, "int8");
    for (const w of matching.weights.values()) w.dispose();
    const refused = await rejection(loadCheckpoint(folderSource(out), js, { quantize: "int4" }));
    assert.ok(refused instanceof CheckpointError && refused.problems.length === 1, String(refused));
    assert.match(
      refused.message,
      /quantize "int4" was asked for, but 1 tensor\(s\) are stored int8, such as "model\.embed_tokens\.weight": quantized weights cannot be quantized again, nor made float\. Use the folder as it is \(loaded without quantize \/ --quantize, it runs as int4, with those 1 in int8 as stored\) \(or ask for it: quantizeEmbedding "int8", olmo quantize --embedding int8\)/,
    );
    // false asks for a float embedding, which stored integers cannot become: refused, naming the option.
    const toFloat = await rejection(loadCheckpoint(folderSource(out), js, { quantize: "int4", quantizeEmbedding: false }));
    assert.match(toFloat.message, /quantizeEmbedding false was asked for, but 1 tensor\(s\) are stored int8, such as "model\.embed_tokens\.weight"/);
  } finally {
    rmSync(join(out, ".."), { recursive: true, force: true });
  }
});

test("an int8 model saved with its embedding int8 too gets olmo-js's int8 config (bitsandbytes' keeps the embedding float) and loads back as stored", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "olmo-int8-embedding-")), "model");
  try {
    const { model } = await loadOlmo(folderSource(TINY), js, { quantize: "int8", weightDType: "bf16" });
    await saveModelFolder(model.weights, folderSource(TINY), out, { what: "olmo quantize" });
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(config.quantization_config, { quant_method: "olmo-js", scheme: "int8" });
    const stored = await loadCheckpoint(folderSource(out), js);
    assert.is(stored.quantization, "int8");
    for (const [name, w] of stored.weights) {
      assert.ok(w instanceof QuantizedWeight && w.scheme === "int8", name);
      sameBytes(await bits(w.values), await bits((model.weight(name) as QuantizedWeight).values), name);
      w.dispose();
    }
    model.dispose();
  } finally {
    rmSync(join(out, ".."), { recursive: true, force: true });
  }
});

test("a frozen quantized linear layer gives its input the gradient dY dequant(W), and itself none", async () => {
  const backends: AnyBackend[] = [js, ...(await wasmBackendsUnderTest())];
  for (const backend of backends) {
    scope(() => {
      const w = randn([40, 64], { seed: 1, backend }), x = randn([3, 5, 64], { seed: 2, backend }), dy = randn([3, 5, 40], { seed: 3, backend });
      x.requiresGrad = true;
      for (const scheme of ["int8", "int4"] as QuantScheme[]) {
        const q = quantizedOnHost(w, scheme, backend);
        const y = linear(x, q);
        assert.equal(y.shape, [3, 5, 40]);
        backward(y, { gradOutput: dy });
        const expected = matmul(dy, dequantize(q));
        assertClose(x.grad!.dataSync(), expected.dataSync(), { atol: 1e-5, rtol: 1e-5 }, `${backend.name} ${scheme}`);
        x.grad!.dispose();
        x.grad = null;
        q.dispose();
      }
    });
  }
});

/** W quantized by the definition on the host, uploaded to W's backend. */
function quantizedOnHost(w: Tensor, scheme: QuantScheme, backend: AnyBackend): QuantizedWeight {
  const shape = w.shape as [number, number];
  const q = quantizeHost(scheme, w.dataSync() as Float32Array, shape[0], shape[1]);
  const values = tensor(q.values, scheme === "int8" ? shape : [shape[0], shape[1] / 2], { dtype: "i8", backend });
  const scales = scheme === "int8" ? tensor(q.scales as Float32Array, [shape[0]], { backend }) : f16Tensor(q.scales as Uint16Array, [shape[0], shape[1] / 32], backend);
  return new QuantizedWeight(scheme, shape, values, scales);
}

function f16Tensor(bitsArray: Uint16Array, shape: number[], backend: AnyBackend): Tensor {
  const t = tensor(new Float32Array(bitsArray.length), shape, { dtype: "f16", backend });
  backend.upload(t.bufferFor("test"), "f16", bitsArray);
  return t;
}

test("a folder in transformers' load_in_8bit layout loads as it is and gives the golden int8 logits", async () => {
  const dir = `${repoRoot}test/fixtures/olmo-8bit`;
  const golden = JSON.parse(readFileSync(`${dir}/expected_logits.json`, "utf8")) as { prompt: number[]; logitsInt8: number[]; logitsF16: number[] };
  for (const backend of [js, ...(await wasmBackendsUnderTest())]) {
    // By default (as with "none") every weight as stored: the int8 layers, the f16 embedding and LM head
    // kept float (as bitsandbytes runs them).
    const { model } = await loadOlmo(folderSource(dir), backend);
    assert.ok(model.weights.get("layers.1.down") instanceof QuantizedWeight && !(model.weights.get("lmHead") instanceof QuantizedWeight));
    const out = noGrad(() => model.forward(tensor(golden.prompt, [1, golden.prompt.length], { dtype: "i32", backend })));
    // The golden forward is float64 over the same integers and scales; ours is f32 through 2 layers
    // (relative rounding ~1e-6 of logits of O(8)) -- while int8 itself moves them by up to 0.5.
    assertClose((await out.data()) as Float32Array, golden.logitsInt8, { atol: 1e-4, rtol: 1e-4 }, `${backend.name} int8 logits`);
    out.dispose();
    model.dispose();
  }
  // quantize "int8" quantizes its float weights too: the embedding and LM head become int8 (faster, not transformers' logits).
  const asked = await loadCheckpoint(folderSource(dir), js, { quantize: "int8" });
  assert.is(asked.quantization, "int8");
  assert.ok(asked.weights.get("embed") instanceof QuantizedWeight && asked.weights.get("lmHead") instanceof QuantizedWeight);
  for (const w of asked.weights.values()) w.dispose();
});

test("the fit check counts an 8-bit folder's float embedding and LM head as float, as they load", async () => {
  const dir = `${repoRoot}test/fixtures/olmo-8bit`;
  // js with a memory limit: its weights as stored take 188,928 bytes (int8 layers, f32 embedding and LM
  // head under weightDType auto), where counting every weight int8 would say 113,728.
  const limited = (limit: number) => new Proxy(js, { get: (t, p) => (p === "memoryUsage" ? () => ({ ...t.memoryUsage(), limit }) : Reflect.get(t, p)) });
  const refused = await rejection(loadCheckpoint(folderSource(dir), limited(150_000)));
  assert.match(refused.message, /the model does not fit the js backend: its [\d,]+ weights take 188928 bytes as they load \(int8 and float\)/);
  const fits = await loadCheckpoint(folderSource(dir), limited(250_000));
  for (const w of fits.weights.values()) w.dispose();
});

test("the one-line API takes quantize and generates what loadOlmo + generate give on the same weights", async () => {
  const olmo = await NodeOlmoGenerator.fromPretrained(TINY, { backend: "wasm", threads: 1, quantize: "int4" });
  const text = await olmo.generate("ROMEO:", { maxNewTokens: 12 });
  olmo.dispose();
  const [wasm1] = await wasmBackendsUnderTest();
  const { model, tokenizer } = await loadOlmo(folderSource(TINY), wasm1!, { quantize: "int4" });
  const result = await generate(model, tokenizer!.encode("ROMEO:"), { maxNewTokens: 12 });
  assert.is(text, tokenizer!.decode(result.newIds));
  model.dispose();
  // quantizeEmbedding reaches the loader.
  const head8 = await NodeOlmoGenerator.fromPretrained(TINY, { backend: "wasm", threads: 1, quantize: "int4", quantizeEmbedding: "int8" });
  assert.is((head8.model.weight("embed") as QuantizedWeight).scheme, "int8");
  assert.is((head8.model.weight("layers.0.up") as QuantizedWeight).scheme, "int4");
  head8.dispose();
});

// ---------------------------------------------------------------------------------------------------
// Bad input

/** A copy of the untied fixture with its linear weights replaced by `edit`'s tensors, and a config edit. */
async function editedFolder(edit: (tensors: Map<string, TensorToWrite>) => void, configEdit: (c: Record<string, unknown>) => void = () => {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "olmo-bad-quantized-"));
  const file = (await folderSource(UNTIED).open("model.safetensors"))!;
  const header = await readSafetensorsHeader(file, []);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, e] of header.tensors) tensors.set(name, { name, dtype: e.dtype as "F32", shape: e.shape, bytes: await file.read(e.begin, e.end - e.begin) });
  edit(tensors);
  writeFileSync(join(dir, "model.safetensors"), Buffer.concat(encodeSafetensors([...tensors.values()])));
  const config = JSON.parse(readFileSync(join(UNTIED, "config.json"), "utf8"));
  configEdit(config);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

/** The untied fixture's q_proj of layer 0 ([24, 24]) as int8: I8 values and F32 SCB. */
function int8QProj(tensors: Map<string, TensorToWrite>, scb: Float32Array = new Float32Array(24).fill(1)) {
  const name = "model.layers.0.self_attn.q_proj.weight";
  tensors.set(name, { name, dtype: "I8", shape: [24, 24], bytes: new Uint8Array(24 * 24) });
  tensors.set("model.layers.0.self_attn.q_proj.SCB", { name: "model.layers.0.self_attn.q_proj.SCB", dtype: "F32", shape: [scb.length], bytes: new Uint8Array(scb.buffer) });
}

async function loadError(dir: string, options = {}): Promise<string> {
  try {
    await loadCheckpoint(folderSource(dir), js, options);
  } catch (e) {
    return (e as Error).message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`${dir} loaded`);
}

test("a hand-written int8 weight with its SCB loads; wrong or missing scales are named", async () => {
  const good = await editedFolder((t) => int8QProj(t));
  const loaded = await loadCheckpoint(folderSource(good), js, { quantize: "none" });
  assert.ok(loaded.weights.get("layers.0.q") instanceof QuantizedWeight);
  assert.ok(!(loaded.weights.get("layers.0.k") instanceof QuantizedWeight));
  rmSync(good, { recursive: true });

  const missing = await editedFolder((t) => {
    int8QProj(t);
    t.delete("model.layers.0.self_attn.q_proj.SCB");
  });
  assert.match(await loadError(missing), /q_proj\.weight" has dtype I8; expected F32, BF16 or F16 \(an int8 weight needs its scales "model\.layers\.0\.self_attn\.q_proj\.SCB"/);
  const short = await editedFolder((t) => int8QProj(t, new Float32Array(23).fill(1)));
  assert.match(await loadError(short), /q_proj\.SCB" \(the scales of int8 "model\.layers\.0\.self_attn\.q_proj\.weight"\) must be F32 \[24\], got F32 \[23\]/);
  const nan = await editedFolder((t) => int8QProj(t, new Float32Array(24).fill(NaN)));
  assert.match(await loadError(nan, { quantize: "none" }), /q_proj\.SCB" element 0 is NaN/);
});

test("int4 on weights whose inputs are not a multiple of 32 is refused, naming the tensor; unknown schemes, 4-bit bitsandbytes and pre-interleaving int4 folders too", async () => {
  const message = await loadError(await editedFolder(() => {}), { quantize: "int4" });
  assert.match(message, /model\.layers\.0\.self_attn\.q_proj\.weight" \(layers\.0\.q\): int4 quantizes groups of 32 inputs, but the weight has 24 inputs per row/);
  assert.match(await loadError(await editedFolder(() => {}), { quantize: "int3" }), /unknown quantization scheme "int3"/);
  const nf4 = await editedFolder(() => {}, (c) => (c.quantization_config = { quant_method: "bitsandbytes", load_in_4bit: true }));
  assert.match(await loadError(nf4), /bitsandbytes 4-bit \(NF4 \/ FP4\), which olmo-js does not read/);
  const gptq = await editedFolder(() => {}, (c) => (c.quantization_config = { quant_method: "gptq", bits: 4 }));
  assert.match(await loadError(gptq), /quant_method "gptq"/);
  // An int4 folder from before rows were interleaved holds the same tensors in another order: refused, not misread.
  const before = await editedFolder(() => {}, (c) => (c.quantization_config = { quant_method: "olmo-js", scheme: "int4", group_size: 32, scale_dtype: "float16" }));
  assert.match(await loadError(before), /no "rows_interleaved": the folder was written by an older olmo-js.*olmo quantize --to int4/);
  const eight = await editedFolder(() => {}, (c) => (c.quantization_config = { quant_method: "olmo-js", scheme: "int4", group_size: 32, rows_interleaved: 8 }));
  assert.match(await loadError(eight), /rows_interleaved 8; olmo-js int4 interleaves 4/);
  const dir = await editedFolder(() => {});
  assert.ok((await rejection(loadCheckpoint(folderSource(dir), js, { quantize: "int4" }))) instanceof CheckpointError);
  rmSync(dir, { recursive: true });
});

test("bitsandbytes' weight_format must be row-major; stray buffers, doubled or missing scales and bad options are named once", async () => {
  const format = (value: number, dtype = "U8", shape: number[] = []) => (t: Map<string, TensorToWrite>) => {
    int8QProj(t);
    const name = "model.layers.0.self_attn.q_proj.weight_format";
    t.set(name, { name, dtype: dtype as "U8", shape, bytes: new Uint8Array(shape.reduce((a, b) => a * b, 1) * (dtype === "F32" ? 4 : 1)).fill(value) });
  };
  const row = await editedFolder((t) => {
    format(0)(t);
    // RoPE's inverse frequencies of a layer the model has: a saved buffer, accepted.
    const name = "model.layers.0.self_attn.rotary_emb.inv_freq";
    t.set(name, { name, dtype: "F32", shape: [4], bytes: new Uint8Array(16) });
  });
  const loaded = await loadCheckpoint(folderSource(row), js);
  assert.ok(loaded.weights.get("layers.0.q") instanceof QuantizedWeight);
  for (const w of loaded.weights.values()) w.dispose();
  rmSync(row, { recursive: true });
  // A tiled GPU layout would be read as rows: garbage, so refused.
  assert.match(await loadError(await editedFolder(format(2))), /q_proj\.weight_format" is 2 \(col_turing\); olmo-js reads only row-major int8 weights \(0\)/);
  assert.match(await loadError(await editedFolder(format(0, "F32", [1]))), /q_proj\.weight_format" must be one U8 value \(bitsandbytes' weight layout\), got F32 \[1\]/);
  // Buffers of layers the config does not have, and a weight_format beside a float weight, are unexpected.
  const stray = await editedFolder((t) => {
    for (const name of ["model.layers.9.self_attn.rotary_emb.inv_freq", "model.layers.0.self_attn.k_proj.weight_format"]) t.set(name, { name, dtype: "U8", shape: [], bytes: new Uint8Array(1) });
  });
  const strayMessage = await loadError(stray);
  assert.match(strayMessage, /unexpected tensor "model\.layers\.9\.self_attn\.rotary_emb\.inv_freq"/);
  assert.match(strayMessage, /unexpected tensor "model\.layers\.0\.self_attn\.k_proj\.weight_format"/);
  // Both schemes' scales beside one weight: one problem, and neither reported again as unexpected.
  const both = await editedFolder((t) => {
    int8QProj(t);
    const name = "model.layers.0.self_attn.q_proj.scales";
    t.set(name, { name, dtype: "F16", shape: [24, 1], bytes: new Uint8Array(48) });
  });
  const bothError = await rejection(loadCheckpoint(folderSource(both), js));
  rmSync(both, { recursive: true });
  assert.ok(bothError instanceof CheckpointError && bothError.problems.length === 1, bothError.message);
  assert.match(bothError.message, /q_proj\.weight" has both int8 scales "model\.layers\.0\.self_attn\.q_proj\.SCB" and int4 scales "model\.layers\.0\.self_attn\.q_proj\.scales"/);
  // int4 values without their scales: the message says what is missing.
  const bare = await editedFolder((t) => {
    const name = "model.layers.0.self_attn.q_proj.weight";
    t.set(name, { name, dtype: "U8", shape: [24, 12], bytes: new Uint8Array(24 * 12) });
  });
  assert.match(await loadError(bare), /q_proj\.weight" has shape \[24,12\], config\.json implies \[24,24\] \(as U8 \[24,12\] it would be int4, but its scales "model\.layers\.0\.self_attn\.q_proj\.scales" are missing\)/);
  // Options of the wrong type are refused, not read as truthy or ignored.
  assert.match(await loadError(await editedFolder(() => {}), { quantize: "int8", quantizeEmbedding: "false" }), /quantizeEmbedding must be true, false \(float\), "int8" or "int4", got "false"/);
  // A scheme for the embedding needs quantize, and int4 goes with int4 layers only.
  assert.match(await loadError(await editedFolder(() => {}), { quantizeEmbedding: "int8" }), /quantizeEmbedding "int8" needs quantize "int8" or "int4"/);
  assert.match(await loadError(await editedFolder(() => {}), { quantize: "int8", quantizeEmbedding: "int4" }), /quantizeEmbedding "int4" goes with quantize "int4"/);
  assert.match(await loadError(await editedFolder(() => {}), { weightDType: "int8" }), /weightDType must be "f32", "bf16" or "auto", got "int8"/);
});

test("generate refuses logits that are NaN or infinite instead of picking token 0 forever", async () => {
  // A NaN weight, loaded on purpose (allowNonFinite), stands for any forward pass that overflows f32
  // (a corrupt checkpoint: a weight or scale far out of range).
  const dir = await editedFolder((t) => {
    const name = "model.layers.0.mlp.down_proj.weight", w = t.get(name)!;
    const values = new Float32Array(w.bytes.slice().buffer);
    values[5] = NaN;
    t.set(name, { ...w, bytes: new Uint8Array(values.buffer) });
  });
  try {
    const { model } = await loadOlmo(folderSource(dir), js, { allowNonFinite: true });
    const error = await rejection(generate(model, [1, 2, 3], { maxNewTokens: 4 }));
    assert.match(error.message, /^generate: logit \d+ at position 2 is NaN: the forward pass overflowed f32/);
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
