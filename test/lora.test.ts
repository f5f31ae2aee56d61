// LoRA adapters against Hugging Face PEFT (test/fixtures/lora, from scripts/golden/make_lora_fixtures.py):
// PEFT's saved adapters load and give PEFT's logits; ours write and read back bit for bit, and PEFT
// gives our logits for an adapter olmo-js wrote; ten training steps match PEFT + torch AdamW on every
// backend, untied and tied; a quantized base trains; bad adapters are refused.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import {
  createJsBackend, loadLoraAdapters, Tensor, loadOlmo, LoraAdapters, noGrad, parseAdapterConfig, tensor, TokenDataset, Trainer, trainableParameters,
  type AnyBackend, type Olmo, type TrainOptions,
} from "../src/index.js";
import { folderSource, saveLoraAdapter } from "../src/node/index.js";
import { assertClose, readJson, relativeDifference, repoRoot, wasmBackendsUnderTest, webGpuBackendUnderTest } from "./helpers.js";

interface Case {
  logits: number[];
  steps: { loss: number; gradNorm: number; lr: number }[];
  /** PEFT's parameter names without the adapter name: base_model.model.model.layers.N....lora_A.weight. */
  final: Record<string, number[]>;
}
const CASES = ["qv", "all", "tied"] as const;
type CaseName = (typeof CASES)[number];
const fixture = readJson<{ logitIds: number[][]; cases: Record<CaseName, Case>; ours: { logits: number[] } }>("test/fixtures/lora/expected.json");
const train = readJson<{ options: TrainOptions & { seqLen: number }; ids: number[]; mask: number[] }>("test/fixtures/train/expected.json");
const BASE = `${repoRoot}test/fixtures/train/init`;
/** The tied case's base: train/init with the embedding as the LM head. */
const TIED_BASE = `${repoRoot}test/fixtures/lora/tied/base`;
const adapterDir = (name: string) => `${repoRoot}test/fixtures/lora/${name}/adapter`;

const [wasm1, wasm2] = await wasmBackendsUnderTest();
const webgpu = await webGpuBackendUnderTest("the webgpu cases of lora.test"); // null without a Vulkan driver
const backends: [string, AnyBackend][] = [
  ["js", createJsBackend()], ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!], ...(webgpu ? ([["webgpu", webgpu]] as [string, AnyBackend][]) : []),
];

async function adaptedModel(backend: AnyBackend, adapter: string, quantize?: "int8", base = BASE): Promise<Olmo> {
  const { model } = await loadOlmo(folderSource(base), backend, { weightDType: "f32", ...(quantize ? { quantize } : {}) });
  model.lora = await loadLoraAdapters(folderSource(adapter), model);
  return model;
}

async function logitsOf(model: Olmo): Promise<Float32Array> {
  const ids = tensor(fixture.logitIds.flat(), [1, fixture.logitIds[0]!.length], { dtype: "i32", backend: model.backend });
  const logits = noGrad(() => model.forward(ids));
  const out = Float32Array.from(await logits.data());
  logits.dispose();
  ids.dispose();
  return out;
}

/** Each adapter tensor by PEFT's name (lora_A / lora_B, as in `final`). */
async function adapterValues(model: Olmo): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, pair] of model.lora!.pairs) {
    const [, layer, part] = name.split(".") as [string, string, string];
    const module = ["q", "k", "v", "o"].includes(part) ? `self_attn.${part}_proj` : `mlp.${part}_proj`;
    const prefix = `base_model.model.model.layers.${layer}.${module}`;
    out.set(`${prefix}.lora_A.weight`, Float32Array.from(await pair.a.data()));
    out.set(`${prefix}.lora_B.weight`, Float32Array.from(await pair.b.data()));
  }
  return out;
}

function loraTrainer(model: Olmo, overrides: Partial<TrainOptions> = {}): Trainer {
  const data = new TokenDataset(Uint16Array.from(train.ids), Uint8Array.from(train.mask), train.options.seqLen, model.config.vocabSize);
  return new Trainer(model, data, { ...train.options, shuffle: false, ...overrides });
}

function expectError(fn: () => unknown, fragment: string): void {
  try {
    fn();
  } catch (e) {
    if (!(e as Error).message.includes(fragment)) throw new Error(`"${(e as Error).message}" lacks "${fragment}"`);
    return;
  }
  throw new Error(`no error mentioning ${fragment}`);
}

async function expectRejection(promise: Promise<unknown>, fragment: string): Promise<void> {
  try {
    await promise;
  } catch (e) {
    if (!(e as Error).message.includes(fragment)) throw new Error(`"${(e as Error).message}" lacks "${fragment}"`);
    return;
  }
  throw new Error(`no error mentioning ${fragment}`);
}

const baseOf = (name: CaseName) => (name === "tied" ? TIED_BASE : BASE);

for (const name of CASES) {
  test(`${name}: PEFT's saved adapter gives PEFT's logits`, async () => {
    const model = await adaptedModel(wasm1!, adapterDir(name), undefined, baseOf(name));
    // f32 throughout on both sides; logits of O(5) after 2 layers, summed in other orders: a few 1e-6.
    // 1e-4 leaves margin and fails a missing or mis-scaled adapter (B ~ N(0, 0.1) moves logits by O(0.1)).
    assertClose(await logitsOf(model), fixture.cases[name].logits, { atol: 1e-4, rtol: 1e-4 }, `${name} logits`);
    model.dispose();
  });
}

test("an adapter written by olmo-js reads back bit for bit, with PEFT's config fields", async () => {
  const model = await adaptedModel(wasm1!, adapterDir("all"));
  const dir = mkdtempSync(join(tmpdir(), "olmo-lora-"));
  try {
    const out = join(dir, "adapter");
    await saveLoraAdapter(model.lora!, out, "test/fixtures/train/init");
    const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    const want = { peft_type: "LORA", task_type: "CAUSAL_LM", r: 2, lora_alpha: 16, lora_dropout: 0, bias: "none", fan_in_fan_out: false, use_dora: false };
    for (const [k, v] of Object.entries(want)) if (config[k] !== v) throw new Error(`${k}: ${JSON.stringify(config[k])}, want ${JSON.stringify(v)}`);
    if ((config.target_modules as string[]).join() !== "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj") throw new Error(`targets ${config.target_modules}`);
    // PEFT's own file and ours hold the same tensors under the same names: compare by reading both.
    const again = await adaptedModel(wasm1!, out);
    const [a, b] = [await adapterValues(model), await adapterValues(again)];
    if (a.size !== 28 || b.size !== 28) throw new Error(`${a.size} / ${b.size} tensors`);
    for (const [n, v] of a) if (v.join() !== b.get(n)!.join()) throw new Error(`${n} changed in the round trip`);
    assertClose(await logitsOf(again), fixture.cases.all.logits, { atol: 1e-4, rtol: 1e-4 }, "round-trip logits");
    await expectRejection(saveLoraAdapter(model.lora!, out, "x"), "exists and is not empty");
    again.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test("PEFT loads an adapter olmo-js wrote (`olmo train`'s step folder) and gives our logits", async () => {
  // test/fixtures/lora/ours/adapter came from olmo train (test/lora-cli.test.ts checks it still writes
  // those bytes); PeftModel.from_pretrained read it in make_lora_fixtures.py. f32 on both sides: 1e-4 as above.
  const model = await adaptedModel(wasm1!, adapterDir("ours"));
  assertClose(await logitsOf(model), fixture.ours.logits, { atol: 1e-4, rtol: 1e-4 }, "PEFT's logits of olmo-js's adapter");
  model.dispose();
});

for (const [backendName, backend] of backends) {
  for (const name of CASES) {
    test(`${backendName}, ${name}: 10 LoRA steps match PEFT + torch AdamW (losses, gradient norms, adapter updates)`, async () => {
      const model = await adaptedModel(backend, adapterDir(name), undefined, baseOf(name));
      const t = loraTrainer(model);
      if (t.params.length !== model.lora!.pairs.size * 2) throw new Error(`${t.params.length} trainable parameters`);
      const initial = await adapterValues(model);
      for (const [k, want] of fixture.cases[name].steps.entries()) {
        const m = await t.trainStep();
        // As train.test.ts: f32 losses of O(1) in other orders agree to ~1e-6; 1e-4 relative bounds ten
        // compounding steps with margin. Every step is clipped (max norm 0.5), so the norm is checked too.
        if (Math.abs(m.loss - want.loss) > 1e-4 * Math.abs(want.loss)) throw new Error(`step ${k + 1}: loss ${m.loss}, PEFT ${want.loss}`);
        if (Math.abs(m.grad_norm - want.gradNorm) > 1e-3 * want.gradNorm) throw new Error(`step ${k + 1}: grad norm ${m.grad_norm}, PEFT ${want.gradNorm}`);
      }
      const final = await adapterValues(model);
      for (const [tensorName, want] of Object.entries(fixture.cases[name].final)) {
        const init = initial.get(tensorName), got = final.get(tensorName);
        if (!init || !got) throw new Error(`no adapter ${tensorName}`);
        // The update agrees to 1% of its norm (train.test.ts says why not tighter: Adam's 1 / (sqrt(v) + eps)).
        const rel = relativeDifference(Array.from(got, (v, i) => v - init[i]!), want.map((v, i) => v - init[i]!));
        if (!(rel < 0.01)) throw new Error(`${tensorName}: update differs from PEFT's by ${(100 * rel).toFixed(2)}% of its norm`);
      }
      // The base stayed frozen: no gradient, no AdamW state.
      for (const w of model.weights.values()) if (w instanceof Tensor && (w.requiresGrad || w.grad)) throw new Error("a base weight requires or holds a gradient");
      if (t.optimizer.m.size !== t.params.length) throw new Error(`AdamW holds state for ${t.optimizer.m.size} tensors`);
      t.optimizer.dispose();
      model.dispose();
    });
  }
}

test("fresh adapters: PEFT's init (A uniform within 1/sqrt(in), B zero) leaves the logits unchanged", async () => {
  const { model } = await loadOlmo(folderSource(BASE), wasm1!, { weightDType: "f32" });
  const before = await logitsOf(model);
  model.lora = LoraAdapters.create(model.config, { r: 4, alpha: 8, targets: ["q", "v", "down"] }, model.backend, 7);
  const after = await logitsOf(model);
  if (before.join() !== after.join()) throw new Error("a fresh adapter changed the logits");
  const q = model.lora.pairs.get("layers.1.q")!, down = model.lora.pairs.get("layers.0.down")!;
  const bound = (n: number) => 1 / Math.sqrt(n);
  for (const [t, n] of [[q.a, 24], [down.a, 40]] as const) {
    const v = await t.data();
    if (v.some((x) => Math.abs(x) > bound(n)) || Math.max(...v) < 0.5 * bound(n)) throw new Error(`A of in ${n} not uniform within ${bound(n)}`);
  }
  if ((await q.b.data()).some((x) => x !== 0)) throw new Error("B is not zero");
  if (trainableParameters(model).map((p) => p.name).join() !== model.lora.parameters().map((p) => p.name).join()) throw new Error("trainable parameters are not the adapters");
  model.dispose();
});

test("an int8 base trains its adapters: the loss falls, the quantized weights stay as they were", async () => {
  const model = await adaptedModel(wasm2!, adapterDir("qv"), "int8");
  // All 6 instances in every batch: the same data each step, so the loss must fall.
  const t = loraTrainer(model, { batchSize: 6, warmup: 0, schedule: "constant", maxGradNorm: 1 });
  const losses: number[] = [];
  for (let i = 0; i < 8; i++) losses.push((await t.trainStep()).loss);
  if (!(losses.at(-1)! < 0.9 * losses[0]!)) throw new Error(`losses did not fall: ${losses.map((l) => l.toFixed(4)).join(" ")}`);
  t.optimizer.dispose();
  model.dispose();
});

test("dropout: on only while training, the same mask for a pass, and trains", async () => {
  const { model } = await loadOlmo(folderSource(BASE), wasm1!, { weightDType: "f32" });
  const lora = LoraAdapters.fromPairs(model.config, { r: 4, alpha: 8, targets: ["q_proj", "v_proj"], dropout: 0.3 }, (await adaptedModel(wasm1!, adapterDir("qv"))).lora!.pairs);
  model.lora = lora;
  assertClose(await logitsOf(model), fixture.cases.qv.logits, { atol: 1e-4, rtol: 1e-4 }, "eval mode ignores dropout");
  lora.training = true;
  const dropped = await logitsOf(model);
  lora.training = false;
  if (relativeDifference(dropped, fixture.cases.qv.logits) < 1e-4) throw new Error("dropout changed nothing in training mode");
  const t = loraTrainer(model);
  for (let i = 0; i < 3; i++) if (!Number.isFinite((await t.trainStep()).loss)) throw new Error("non-finite loss");
  if (lora.training) throw new Error("the trainer left training mode on");
  t.optimizer.dispose();
  model.dispose();
});

test("bad input: unknown targets, rank 0 or past the layer, adapters of another shape, PEFT features not supported", async () => {
  const { model } = await loadOlmo(folderSource(BASE), wasm1!, { weightDType: "f32" });
  const c = model.config, b = model.backend;
  expectError(() => LoraAdapters.create(c, { r: 4, alpha: 8, targets: ["q", "wq"] }, b), 'unknown target layer "wq"');
  expectError(() => LoraAdapters.create(c, { r: 0, alpha: 8, targets: ["q"] }, b), "rank r must be a positive integer, got 0");
  expectError(() => LoraAdapters.create(c, { r: 25, alpha: 8, targets: ["q"] }, b), "rank r 25 exceeds q_proj's smaller side");
  expectError(() => LoraAdapters.create(c, { r: 4, alpha: 8, targets: [] }, b), "no target layers");
  expectError(() => LoraAdapters.create(c, { r: 4, alpha: 8, targets: ["q"], dropout: 1 }, b), "lora_dropout must be in [0, 1)");
  const base = JSON.parse(readFileSync(join(adapterDir("qv"), "adapter_config.json"), "utf8")) as Record<string, unknown>;
  const refused: [Record<string, unknown>, string][] = [
    [{ use_dora: true }, "use_dora is true"], [{ bias: "all" }, 'bias is "all"'], [{ use_rslora: true }, "use_rslora is true"],
    [{ modules_to_save: ["lm_head"] }, "modules_to_save"], [{ rank_pattern: { q_proj: 8 } }, "rank_pattern"], [{ alpha_pattern: { v_proj: 2 } }, "alpha_pattern"],
    [{ peft_type: "IA3" }, "peft_type"], [{ target_modules: ["q_proj", "attn_out"] }, 'unknown target layer "attn_out"'],
  ];
  for (const [change, fragment] of refused) expectError(() => parseAdapterConfig({ ...base, ...change }, "adapter_config.json"), fragment);
  // A PEFT adapter whose config says r 2 while its tensors are r 4: the shapes do not fit the model.
  const dir = mkdtempSync(join(tmpdir(), "olmo-lora-bad-"));
  try {
    cpSync(adapterDir("qv"), dir, { recursive: true });
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...base, r: 2 }));
    await expectRejection(loadLoraAdapters(folderSource(dir), model), "layer 0 q_proj.lora_A is [4,24], the model needs [2,24]");
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...base, target_modules: ["q_proj"] }));
    await expectRejection(loadLoraAdapters(folderSource(dir), model), "have no place for: base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight");
    // A config that is not JSON, or not an object, is named; a NaN adapter value too (it would make a merged model NaN).
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(base).slice(0, 40));
    await expectRejection(loadLoraAdapters(folderSource(dir), model), `${dir}/adapter_config.json: not valid JSON`);
    writeFileSync(join(dir, "adapter_config.json"), "null");
    await expectRejection(loadLoraAdapters(folderSource(dir), model), `${dir}/adapter_config.json: expected a JSON object, got null`);
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(base));
    const weights = join(dir, "adapter_model.safetensors"), bytes = readFileSync(weights);
    const length = Number(bytes.readBigUInt64LE(0));
    const entries = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const name = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    if (entries[name]!.dtype !== "F32") throw new Error(`the fixture's ${name} is ${entries[name]!.dtype}`);
    bytes.writeFloatLE(NaN, 8 + length + entries[name]!.data_offsets[0] + 4 * 5);
    writeFileSync(weights, bytes);
    await expectRejection(loadLoraAdapters(folderSource(dir), model), `${dir}/adapter_model.safetensors: ${name} element 5 is NaN; adapter values must be finite`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  model.dispose();
});

test("olmo logits --adapter applies a PEFT adapter folder and writes PEFT's logits; a missing folder is named", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-lora-cli-"));
  try {
    const cli = (...args: string[]) => spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
    const r = cli("logits", "--model", `${repoRoot}test/fixtures/train/init`, "--adapter", adapterDir("qv"), "--ids", fixture.logitIds[0]!.join(","), "--backend", "js", "--out", join(dir, "l.npy"));
    if (r.status !== 0) throw new Error(r.stderr);
    const npy = readFileSync(join(dir, "l.npy"));
    const headerLength = npy.readUInt16LE(8);
    const values = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + headerLength, npy.byteOffset + npy.length));
    // As the library test above: f32 on both sides, a few 1e-6 apart; the adapter moves logits by >= 0.1.
    assertClose(values, fixture.cases.qv.logits, { atol: 1e-4, rtol: 1e-4 }, "CLI logits with the adapter");
    const missing = cli("logits", "--model", `${repoRoot}test/fixtures/train/init`, "--adapter", join(dir, "nope"), "--ids", "1", "--out", join(dir, "x.npy"));
    if (missing.status === 0 || !missing.stderr.includes(`--adapter ${join(dir, "nope")}: no such folder`)) throw new Error(missing.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
