// Training against PyTorch + transformers (test/fixtures/train, from scripts/golden/make_training_fixtures.py),
// on every backend; gradient accumulation; schedules.

import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { createJsBackend, hfTensorName, learningRate, loadOlmo, memory, TokenDataset, Tokenizer, Trainer, type AnyBackend, type Tensor, type TrainOptions, type WeightName } from "../src/index.js";
import {
  CheckpointRun, createNodeWebGpuBackend, folderSource, latestCheckpointFolder, readLatest, restoreTrainerState, saveTrainingCheckpoint, loadTrainableModel,
} from "../src/node/index.js";
import { readJson, relativeDifference, repoRoot, wasmBackendsUnderTest, webGpuBackendUnderTest } from "./helpers.js";

interface Fixture {
  options: TrainOptions & { seqLen: number };
  ids: number[];
  mask: number[];
  steps: { loss: number; gradNorm: number; lr: number }[];
  final: Record<string, number[]>;
}
const fixture = readJson<Fixture>("test/fixtures/train/expected.json");
const INIT = `${repoRoot}test/fixtures/train/init`;
const [wasm1, wasm2] = await wasmBackendsUnderTest();
const webgpu = await webGpuBackendUnderTest("the webgpu cases of train.test"); // null without a Vulkan driver
// WebGPU again with 2 KiB storage bindings: the embedding, LM head, their gradients and optimizer
// state (6 KiB each) and the logits are split into blocks, as OLMo-1B's are on a 128 MiB device.
const webgpuSplit = webgpu && (await createNodeWebGpuBackend({ maxBindingBytes: 2048 }));
const backends: [string, AnyBackend][] = [
  ["js", createJsBackend()], ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!],
  ...(webgpu && webgpuSplit ? ([["webgpu", webgpu], ["webgpu, 2 KiB bindings", webgpuSplit]] as [string, AnyBackend][]) : []),
];

async function trainer(backend: AnyBackend, overrides: Partial<TrainOptions> = {}) {
  const { model } = await loadOlmo(folderSource(INIT), backend, { weightDType: "f32" });
  const data = new TokenDataset(Uint16Array.from(fixture.ids), Uint8Array.from(fixture.mask), fixture.options.seqLen, model.config.vocabSize);
  return new Trainer(model, data, { ...fixture.options, shuffle: false, ...overrides });
}

async function weights(t: Trainer): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, w] of t.model.weights as Map<WeightName, Tensor>) out.set(hfTensorName(name), Float32Array.from(await w.data()));
  return out;
}

test("the schedule matches OLMo's warmup and cosine / linear decay", () => {
  const o = { lr: 1, warmup: 4, tMax: 14, alphaF: 0.1 };
  const near = (a: number, b: number) => Math.abs(a - b) < 1e-12;
  if (!near(learningRate(1, o), 0.1 + 0.9 / 4) || !near(learningRate(4, o), 1)) throw new Error("warmup");
  if (!near(learningRate(9, o), 0.1 + 0.9 * 0.5) || !near(learningRate(14, o), 0.1) || !near(learningRate(99, o), 0.1)) throw new Error("cosine");
  if (!near(learningRate(9, { ...o, schedule: "linear" }), 0.55) || !near(learningRate(9, { ...o, schedule: "constant" }), 1)) throw new Error("linear / constant");
  fixture.steps.forEach((s, k) => {
    if (!near(learningRate(k + 1, { ...fixture.options, tMax: fixture.options.tMax! }), s.lr)) throw new Error(`step ${k + 1} lr`);
  });
});

for (const [name, backend] of backends) {
  test(`${name}: 10 steps match PyTorch (losses, gradient norms, weight updates)`, async () => {
    const t = await trainer(backend);
    const initial = await weights(t);
    for (const [k, want] of fixture.steps.entries()) {
      const m = await t.trainStep();
      // f32 losses of O(1) computed in other orders agree to ~1e-6; 1e-4 relative bounds that 100 times
      // over (ten steps compound the differences) and is far below what a wrong loss or update changes.
      if (Math.abs(m.loss - want.loss) > 1e-4 * Math.abs(want.loss)) throw new Error(`step ${k + 1}: loss ${m.loss}, PyTorch ${want.loss}`);
      if (Math.abs(m.grad_norm - want.gradNorm) > 1e-3 * want.gradNorm) throw new Error(`step ${k + 1}: grad norm ${m.grad_norm}, PyTorch ${want.gradNorm}`);
    }
    const final = await weights(t);
    for (const [tensorName, want] of Object.entries(fixture.final)) {
      const init = initial.get(tensorName)!, got = final.get(tensorName)!;
      // The update (final - initial) agrees to 1% of its norm. Not tighter: Adam divides by
      // sqrt(v) + 1e-5, which amplifies f32 differences in tiny gradients. Tight enough: a wrong update
      // rule moves it far more (without bias correction the first step's update is 0.1 / sqrt(0.05),
      // 0.45 times Adam's at these betas).
      const wantDelta = want.map((v, i) => v - init[i]!), gotDelta = Array.from(got, (v, i) => v - init[i]!);
      const rel = relativeDifference(gotDelta, wantDelta);
      if (!(rel < 0.01)) throw new Error(`${tensorName}: update differs from PyTorch's by ${(100 * rel).toFixed(2)}% of its norm`);
    }
    t.model.dispose();
    t.optimizer.dispose();
  });
}

test("training steps with clipping and accumulation keep live tensors and bytes flat", async () => {
  const t = await trainer(wasm1!, { batchSize: 4, microBatchSize: 2, maxGradNorm: 0.1 });
  await t.trainStep();
  const after1 = memory();
  for (let i = 0; i < 5; i++) await t.trainStep();
  const after6 = memory();
  if (after6.tensors !== after1.tensors || after6.bytes !== after1.bytes) throw new Error(`memory grew: ${JSON.stringify(after1)} -> ${JSON.stringify(after6)}`);
  t.model.dispose();
  t.optimizer.dispose();
});

test("gradient accumulation over micro-batches gives the whole batch's update", async () => {
  const whole = await trainer(wasm1!, { batchSize: 4 });
  const split = await trainer(wasm1!, { batchSize: 4, microBatchSize: 1 });
  for (let i = 0; i < 3; i++) {
    const a = await whole.trainStep(), b = await split.trainStep();
    if (Math.abs(a.loss - b.loss) > 1e-5 * a.loss) throw new Error(`step ${i + 1}: loss ${a.loss} vs ${b.loss}`);
  }
  const [wa, wb] = [await weights(whole), await weights(split)];
  for (const [name, a] of wa) {
    const rel = relativeDifference(wb.get(name)!, a);
    if (!(rel < 1e-5)) throw new Error(`${name}: accumulated weights differ by ${rel}`);
  }
});

test("bad data: size not a multiple of the dtype, mask of the wrong length, ids past the vocabulary", () => {
  const expectError = (fn: () => unknown, fragment: string) => {
    try {
      fn();
    } catch (e) {
      if (!(e as Error).message.includes(fragment)) throw new Error(`"${(e as Error).message}" lacks "${fragment}"`);
      return;
    }
    throw new Error(`no error mentioning ${fragment}`);
  };
  expectError(() => TokenDataset.idsFromBytes(new Uint8Array(7), "uint16", "input_ids.npy"), "input_ids.npy: 7 bytes is not a whole number of uint16 ids");
  expectError(() => new TokenDataset(new Uint16Array(20), new Uint8Array(19), 4, 64), "label mask has 19 entries but input_ids has 20 tokens");
  expectError(() => new TokenDataset(Uint16Array.from([1, 2, 3, 64]), null, 2, 64), "token 3 is id 64, outside the model's vocabulary [0, 64)");
  expectError(() => new TokenDataset(new Uint16Array(3), null, 4, 64), "fewer than one instance of seq_len 4");
});

test("N steps, or N/2 + save + resume + N/2, give identical weights", async () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-resume-"));
  const options = { steps: 6, tMax: 6, shuffle: true, seed: 5 };
  const straight = await trainer(wasm2!, options);
  for (let i = 0; i < 6; i++) await straight.trainStep();
  const first = await trainer(wasm2!, options);
  for (let i = 0; i < 3; i++) await first.trainStep();
  await saveTrainingCheckpoint(dir, first, {});
  const { model, folder } = await loadTrainableModel(dir, wasm2!);
  if (!folder.endsWith("step-3")) throw new Error(`latest is ${folder}`);
  const data = new TokenDataset(Uint16Array.from(fixture.ids), Uint8Array.from(fixture.mask), fixture.options.seqLen, 64);
  const resumed = new Trainer(model, data, { ...fixture.options, ...options });
  await restoreTrainerState(folder, resumed, false);
  if (resumed.step !== 3 || resumed.optimizer.step !== 3) throw new Error(`resumed at ${resumed.step} / ${resumed.optimizer.step}`);
  for (let i = 0; i < 3; i++) await resumed.trainStep();
  const [a, b] = [await weights(straight), await weights(resumed)];
  for (const [name, w] of a) if (w.join() !== b.get(name)!.join()) throw new Error(`${name} differs after resuming`);
  // --reset-trainer-state keeps weights and optimizer moments but restarts the step.
  const { model: again } = await loadTrainableModel(dir, wasm2!);
  const reset = new Trainer(again, data, { ...fixture.options, ...options });
  await restoreTrainerState(folder, reset, true);
  if (reset.step !== 0 || reset.optimizer.step !== 3) throw new Error(`reset: step ${reset.step}, optimizer step ${reset.optimizer.step}`);
  rmSync(dir, { recursive: true });
});

test("olmo train: metrics, loss curve, HF checkpoint; a NaN loss stops with the last good checkpoint kept and named", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-train-cli-"));
  writeFileSync(join(dir, "input_ids.npy"), new Uint8Array(Uint16Array.from(fixture.ids).buffer));
  writeFileSync(join(dir, "label_mask.npy"), Uint8Array.from(fixture.mask));
  const cli = (...args: string[]) => spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "train", "--model", INIT, "--data", dir, "--seq-len", "8", "--batch-size", "2", "--threads", "1", ...args], { encoding: "utf8" });
  const ok = cli("--steps", "4", "--lr", "1e-3", "--save", join(dir, "run"), "--save-every", "2");
  if (ok.status !== 0) throw new Error(ok.stderr);
  const lines = readFileSync(join(dir, "run", "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  if (lines.length !== 4 || !["step", "loss", "grad_norm", "lr", "tokens_per_s"].every((k) => typeof lines[3][k] === "number")) throw new Error(JSON.stringify(lines));
  if (!readFileSync(join(dir, "run", "loss.svg"), "utf8").startsWith("<svg")) throw new Error("no loss curve");
  if (readFileSync(join(dir, "run", "latest"), "utf8").trim() !== "step-4" || !existsSync(join(dir, "run", "step-2", "model.safetensors"))) throw new Error("checkpoints");
  const nan = cli("--steps", "5", "--lr", "1e30", "--warmup", "0", "--max-grad-norm", "0", "--save", join(dir, "nan"), "--save-every", "1");
  if (nan.status === 0 || !nan.stderr.includes("is not a finite number")) throw new Error(`status ${nan.status}: ${nan.stderr}`);
  const latest = readFileSync(join(dir, "nan", "latest"), "utf8").trim();
  if (!existsSync(join(dir, "nan", latest, "model.safetensors")) || existsSync(join(dir, "nan", `${latest}.tmp`))) throw new Error(`latest ${latest}`);
  if (!nan.stderr.includes(`the last checkpoint this run saved is ${join(dir, "nan", latest)}`)) throw new Error(nan.stderr);
  // Without --save-every nothing was saved, and the message says so instead of promising a checkpoint.
  const none = cli("--steps", "5", "--lr", "1e30", "--warmup", "0", "--max-grad-norm", "0", "--save", join(dir, "none"));
  if (none.status !== 1 || !none.stderr.includes("is not a finite number") || !none.stderr.includes("this run saved nothing") || none.stderr.includes("kept")) {
    throw new Error(`status ${none.status}: ${none.stderr}`);
  }
  rmSync(dir, { recursive: true });
});

test("olmo prepare-data: chat JSONL labels only the final answer and its EOS, as OLMo's Tulu script", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-prep-"));
  const tok = `${repoRoot}models/olmo-tiny-shakespeare/tokenizer.json`; // OLMo's allenai_gpt-neox-olmo-dolma-v1_5.json
  writeFileSync(join(dir, "chat.jsonl"), JSON.stringify({ messages: [{ role: "user", content: "Hi there" }, { role: "assistant", content: "Hello!" }] }) + "\n");
  const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "prepare-data", "--tokenizer", tok, "--input", join(dir, "chat.jsonl"), "--seq-len", "32", "--out", join(dir, "out")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const ids = new Uint16Array(Uint8Array.from(readFileSync(join(dir, "out", "input_ids.npy"))).buffer);
  const mask = readFileSync(join(dir, "out", "label_mask.npy"));
  if (ids.length !== 32 || mask.length !== 32) throw new Error(`lengths ${ids.length}, ${mask.length}`);
  const t = new Tokenizer(readFileSync(tok, "utf8"));
  const labelled = [...ids].filter((_, i) => mask[i]);
  if (t.decode(labelled) !== "Hello!<|endoftext|>") throw new Error(`labelled tokens decode to ${JSON.stringify(t.decode(labelled))}`);
  // As OLMo's prepare_tulu_data.py: the prompt is "<|user|>\nHi there\n<|assistant|>\n", then the answer and EOS, then padding.
  if (t.decode([...ids].filter((_, i) => !mask[i] && ids[i] !== 1)) !== "<|user|>\nHi there\n<|assistant|>\n" || ids[31] !== 1) {
    throw new Error(`unexpected layout: ${t.decode([...ids])}`);
  }
  rmSync(dir, { recursive: true });
});

/** A folder with the fixture's data as OLMo's raw files, and `olmo train` on it with the fixture's model. */
function trainFolder() {
  const dir = mkdtempSync(join(tmpdir(), "olmo-train-"));
  writeFileSync(join(dir, "input_ids.npy"), new Uint8Array(Uint16Array.from(fixture.ids).buffer));
  writeFileSync(join(dir, "label_mask.npy"), Uint8Array.from(fixture.mask));
  const base = ["train", "--data", dir, "--seq-len", "8", "--batch-size", "2", "--threads", "1", "--lr", "1e-3"];
  const run = (...args: string[]) => spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...base, ...args], { encoding: "utf8" });
  return { dir, run, base };
}

test("olmo train refuses every out-of-range numeric flag, naming the flag and its range, before reading anything", () => {
  const { dir, run } = trainFolder();
  const cases: [string, string, string][] = [
    ["--lr", "-1", "--lr must be a number > 0, got -1"],
    ["--max-grad-norm", "-1", "--max-grad-norm must be a number >= 0, got -1"],
    ["--alpha-f", "5", "--alpha-f must be a number in [0, 1], got 5"],
    ["--steps", "0", "--steps must be an integer >= 1, got 0"],
    ["--steps", "-3", "--steps must be an integer >= 1, got -3"],
    ["--steps", "1.5", "--steps must be an integer >= 1, got 1.5"],
    ["--warmup", "-5", "--warmup must be an integer >= 0, got -5"],
    ["--t-max", "0", "--t-max must be an integer >= 1, got 0"],
    ["--weight-decay", "-1", "--weight-decay must be a number >= 0, got -1"],
    ["--eps", "-1", "--eps must be a number > 0, got -1"],
    ["--save-every", "-1", "--save-every must be an integer >= 0, got -1"],
    ["--keep", "0", "--keep must be an integer >= 1, got 0"],
    ["--stop-on-spike", "1", "--stop-on-spike must be a number > 1, got 1"],
    ["--ids-dtype", "int8", "--ids-dtype must be uint16 or uint32, got int8"],
    ["--seq-len", "abc", "--seq-len must be an integer in [2, 1048576], got abc"],
    ["--batch-size", "100000000", "--batch-size must be an integer in [1, 65536], got 100000000"],
    ["--betas", "0.9,1.5", "--betas must be two numbers in [0, 1), got 0.9,1.5"],
    ["--micro-batch-size", "3", "--micro-batch-size 3 must divide --batch-size 2"],
  ];
  for (const [flag, value, message] of cases) {
    // The flag given last overrides the base's, as parseArgs keeps the last value.
    const r = run("--model", INIT, "--steps", "2", "--save", join(dir, "never"), flag, value);
    if (r.status !== 2 || !r.stderr.startsWith(`olmo train: ${message}`) || existsSync(join(dir, "never"))) throw new Error(`${flag} ${value}: status ${r.status}: ${r.stderr}`);
  }
  rmSync(dir, { recursive: true });
});

test("olmo train refuses data that is not OLMo's raw layout, pointing to olmo prepare-data", () => {
  const { dir, run } = trainFolder();
  const ids = Uint16Array.from(fixture.ids);
  const npy = new Uint8Array(128 + ids.byteLength);
  npy.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0]);
  npy.set(new Uint8Array(ids.buffer), 128);
  writeFileSync(join(dir, "saved.npy"), npy);
  writeFileSync(join(dir, "text.bin"), "First Citizen:\nBefore we proceed any further, hear me speak.\n");
  writeFileSync(join(dir, "shakespeare.txt"), "First Citizen:\n");
  writeFileSync(join(dir, "ids32.bin"), new Uint8Array(Uint32Array.from(fixture.ids).buffer));
  writeFileSync(join(dir, "masked.bin"), new Uint8Array(fixture.ids.length));
  const cases: [string[], string][] = [
    [["--data", join(dir, "shakespeare.txt")], "is text, not token ids: tokenize it into OLMo's format first with `olmo prepare-data"],
    [["--data", join(dir, "text.bin")], "looks like text, not token ids: tokenize it first with `olmo prepare-data"],
    [["--data", join(dir, "saved.npy")], "is an .npy file with a header (numpy.save)"],
    [["--data", join(dir, "ids32.bin")], "as uint32 ids read as uint16 are: pass --ids-dtype uint32"],
    [["--data", join(dir, "input_ids.npy"), "--label-mask", join(dir, "masked.bin")], "masks every token: there is nothing to train on"],
    [["--data", join(dir, "input_ids.npy"), "--label-mask", join(dir, "ids32.bin")], "a label mask holds one byte per token"],
    [["--data", join(dir, "nothing-here")], "does not exist"],
  ];
  for (const [args, message] of cases) {
    const r = run("--model", INIT, "--steps", "2", "--save", join(dir, "never"), ...args);
    if (r.status !== 1 || !r.stderr.startsWith("olmo train: ") || !r.stderr.includes(message) || existsSync(join(dir, "never"))) {
      throw new Error(`${args.join(" ")}: status ${r.status}: ${r.stderr}`);
    }
  }
  // The same uint32 file read as what it is trains.
  const ok = run("--model", INIT, "--steps", "1", "--save", join(dir, "ok"), "--data", join(dir, "ids32.bin"), "--ids-dtype", "uint32");
  if (ok.status !== 0) throw new Error(ok.stderr);
  rmSync(dir, { recursive: true });
});

test("olmo train --config OLMo-7B on wasm is refused from the size arithmetic, before allocating", () => {
  const { dir, run } = trainFolder();
  // 6.9 B weights at 16 bytes each (f32 weights, gradients, two moments): 110 GB, past any machine here.
  const r = run("--config", "OLMo-7B", "--steps", "1", "--save", join(dir, "big"));
  const said = ["training needs at least 110.", "WebAssembly memories of at most 4 GiB each", "--lora-r"].every((s) => r.stderr.includes(s));
  if (r.status !== 1 || !said || existsSync(join(dir, "big"))) {
    throw new Error(`status ${r.status}: ${r.stderr}`);
  }
  rmSync(dir, { recursive: true });
});

test("generate and logits accept a training run folder (its latest step)", () => {
  const { dir, run } = trainFolder();
  const r = run("--model", INIT, "--steps", "2", "--save-every", "1", "--save", join(dir, "run"));
  if (r.status !== 0 || !r.stderr.includes(`saved ${join(dir, "run", "step-2")}`) || !r.stderr.includes("elapsed") || !r.stderr.includes("eta")) throw new Error(r.stderr);
  const cli = (...args: string[]) => spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
  const g = cli("generate", "--model", join(dir, "run"), "--ids", "1,2,3", "--max-new-tokens", "2", "--json", "--threads", "1");
  if (g.status !== 0 || JSON.parse(g.stdout).new_tokens !== 2) throw new Error(`generate: ${g.stdout}${g.stderr}`);
  const out = join(dir, "logits.npy");
  const l = cli("logits", "--model", join(dir, "run"), "--ids", "1,2,3", "--out", out, "--threads", "1");
  if (l.status !== 0 || !existsSync(out)) throw new Error(`logits: ${l.stderr}`);
  rmSync(dir, { recursive: true });
});

test("a new run into a folder holding a run is refused; a resumed run prunes only its own saves", () => {
  const { dir, run } = trainFolder();
  const save = join(dir, "run");
  const first = run("--model", INIT, "--steps", "2", "--save", save);
  if (first.status !== 0) throw new Error(first.stderr);
  // Other checkpoints in the folder (higher step numbers), which nothing of what follows may touch.
  cpSync(join(save, "step-2"), join(save, "step-29"), { recursive: true });
  cpSync(join(save, "step-2"), join(save, "step-30"), { recursive: true });
  const before = readFileSync(join(save, "step-2", "model.safetensors"));
  // A new run there would replace its steps and its log (OLMo's trainer refuses too, without save_overwrite).
  const fresh = run("--model", INIT, "--steps", "3", "--save", save);
  if (fresh.status !== 2 || !fresh.stderr.includes(`--save ${save} already holds a training run (latest, step-2, step-29, ...): resume it with --load ${save}, or give a new folder`)) {
    throw new Error(`status ${fresh.status}: ${fresh.stderr}`);
  }
  if (readFileSync(join(save, "latest"), "utf8").trim() !== "step-2" || !readFileSync(join(save, "step-2", "model.safetensors")).equals(before)) throw new Error("the refused run touched the folder");
  // Resumed, --keep 2 with a save every step: this run's last two remain, besides the folders from before it.
  const kept = run("--load", save, "--steps", "6", "--save-every", "1", "--keep", "2", "--save", save);
  if (kept.status !== 0) throw new Error(kept.stderr);
  const after = readdirSync(save).filter((f) => f.startsWith("step-")).sort();
  if (after.join() !== "step-2,step-29,step-30,step-5,step-6") throw new Error(after.join());
  // A batch larger than the data: it runs (the order wraps around), and says that it repeats instances.
  const wide = run("--model", INIT, "--steps", "1", "--batch-size", "64", "--save", join(dir, "wide"));
  if (wide.status !== 0 || !/holds \d+ instance\(s\) of --seq-len 8, fewer than --batch-size 64: every batch repeats instances/.test(wide.stderr)) throw new Error(wide.stderr);
  // A kill between a first save's rename and its `latest` leaves a complete step-N alone: --load takes the newest.
  const crashed = join(dir, "crashed");
  const one = run("--model", INIT, "--steps", "1", "--save", crashed);
  if (one.status !== 0) throw new Error(one.stderr);
  rmSync(join(crashed, "latest"));
  const resumed = run("--load", crashed, "--steps", "2", "--save", crashed);
  if (resumed.status !== 0 || !resumed.stderr.includes("steps 2..2") || readFileSync(join(crashed, "latest"), "utf8").trim() !== "step-2") throw new Error(resumed.stderr);
  rmSync(dir, { recursive: true });
});

test("re-saving a step keeps latest on a complete folder, and a save finishes a re-save a crash interrupted", async () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-resave-"));
  const t = await trainer(wasm1!, { steps: 4 });
  await t.trainStep();
  await saveTrainingCheckpoint(dir, t, {});
  const before = readFileSync(join(dir, "step-1", "model.safetensors"));
  await t.trainStep();
  t.step = 1; // the same step again, with other weights
  await saveTrainingCheckpoint(dir, t, {});
  const after = readFileSync(join(dir, "step-1", "model.safetensors"));
  if ((await readLatest(dir)) !== "step-1" || after.equals(before) || readdirSync(dir).sort().join() !== "latest,step-1") throw new Error(readdirSync(dir).join());
  // A crash after `latest` moved to the staging folder and step-1 was removed: loading works, and the
  // next save moves the staging folder into place before writing its own.
  cpSync(join(dir, "step-1"), join(dir, "step-1.tmp"), { recursive: true });
  rmSync(join(dir, "step-1"), { recursive: true });
  writeFileSync(join(dir, "latest"), "step-1.tmp\n");
  const { folder } = await loadTrainableModel(dir, wasm1!);
  if (!folder.endsWith("step-1.tmp")) throw new Error(folder);
  t.step = 2;
  await saveTrainingCheckpoint(dir, t, {});
  if ((await readLatest(dir)) !== "step-2" || readdirSync(dir).sort().join() !== "latest,step-1,step-2") throw new Error(readdirSync(dir).join());
  if (!readFileSync(join(dir, "step-1", "model.safetensors")).equals(after)) throw new Error("step-1 changed");
  // CheckpointRun prunes only what it saved.
  const own = new CheckpointRun(dir, 1);
  t.step = 3;
  await own.save(t, {});
  t.step = 4;
  await own.save(t, {});
  if (readdirSync(dir).sort().join() !== "latest,step-1,step-2,step-4") throw new Error(readdirSync(dir).join());
  t.model.dispose();
  t.optimizer.dispose();
  rmSync(dir, { recursive: true });
});

test("a NaN loss, a non-finite gradient norm or a loss spike stops before the update: the weights are the step before's", async () => {
  for (const overrides of [{ lr: 1e30, warmup: 0, maxGradNorm: 0 }, { lr: 10, warmup: 0, maxGradNorm: 0, stopOnSpike: 2 }] as Partial<TrainOptions>[]) {
    const t = await trainer(wasm1!, { ...overrides, steps: 20 });
    let stopped: Error | null = null;
    for (let i = 0; i < 20 && !stopped; i++) {
      const before = await weights(t);
      try {
        await t.trainStep();
      } catch (e) {
        stopped = e as Error;
        const now = await weights(t);
        for (const [name, w] of before) if (w.join() !== now.get(name)!.join()) throw new Error(`${name} changed by the refused step`);
        if (t.step !== i || t.params.some((p) => p.tensor.grad)) throw new Error(`step ${t.step}, gradients left behind`);
      }
    }
    if (!stopped || !/before its update/.test(stopped.message)) throw new Error(`${JSON.stringify(overrides)}: ${stopped?.message ?? "never stopped"}`);
    t.model.dispose();
    t.optimizer.dispose();
  }
});

test("olmo train --stop-on-spike stops before the spiking step is saved", () => {
  const { dir, run } = trainFolder();
  const r = run("--model", INIT, "--steps", "6", "--lr", "10", "--warmup", "0", "--max-grad-norm", "0", "--save-every", "1", "--stop-on-spike", "2", "--save", join(dir, "run"));
  const metrics = readFileSync(join(dir, "run", "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number });
  const last = metrics.at(-1)!.step;
  if (r.status !== 1 || !r.stderr.includes("--stop-on-spike 2") || readFileSync(join(dir, "run", "latest"), "utf8").trim() !== `step-${last}` || existsSync(join(dir, "run", `step-${last + 1}`))) {
    throw new Error(`status ${r.status}, last logged step ${last}: ${r.stderr}`);
  }
  rmSync(dir, { recursive: true });
});

/** Start olmo train, wait for `marker` on stderr, send `signal`, and resolve with the exit code and stderr. */
function interrupt(args: string[], marker: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "", sent = false;
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (!sent && stderr.includes(marker)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

test("olmo train saves a checkpoint on SIGINT (exit 130) and SIGTERM (exit 143) without --save-every", async () => {
  const { dir, base } = trainFolder();
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const save = join(dir, signal);
    const r = await interrupt([...base, "--model", INIT, "--steps", "100000", "--save", save], "step 3/", signal);
    const latest = readFileSync(join(save, "latest"), "utf8").trim();
    const step = Number(latest.slice(5));
    if (r.code !== code || !(step >= 3) || !r.stderr.includes(`stopped by ${signal} after step ${step}`) || !r.stderr.includes(`saved ${join(save, latest)}`)) {
      throw new Error(`${signal}: exit ${r.code}, latest ${latest}: ${r.stderr.slice(-400)}`);
    }
    const { model, folder } = await loadTrainableModel(save, wasm1!);
    if (!folder.endsWith(latest)) throw new Error(folder);
    model.dispose();
  }
  rmSync(dir, { recursive: true });
});

test("a `latest` that names anything but a step folder beside it is refused, never followed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-latest-"));
  mkdirSync(join(dir, "run"));
  mkdirSync(join(dir, "victim.tmp"));
  for (const name of ["../victim.tmp", "../victim", "/etc", "step-1/../../victim"]) {
    writeFileSync(join(dir, "run", "latest"), name);
    let message = "";
    try {
      await latestCheckpointFolder(join(dir, "run"));
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes(`names "${name}", expected step-N`)) throw new Error(`latest = ${name}: ${message || "accepted"}`);
  }
  if (!existsSync(join(dir, "victim.tmp"))) throw new Error("the folder outside the run was touched");
  rmSync(dir, { recursive: true });
});

/** Overwrite element `index` of tensor `name` in a safetensors file (F32) with `value`. */
function poke(file: string, name: string, index: number, value: number): void {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const entry = (JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as Record<string, { data_offsets: [number, number] }>)[name];
  if (!entry) throw new Error(`${file} has no ${name}`);
  bytes.writeFloatLE(value, 8 + length + entry.data_offsets[0] + 4 * index);
  writeFileSync(file, bytes);
}

test("a resumed run refuses moments no update gives, a step folder without its moments, and a trainer_state.json that is not JSON", () => {
  const { dir, run } = trainFolder();
  const save = join(dir, "run");
  const first = run("--model", INIT, "--steps", "2", "--save", save);
  if (first.status !== 0) throw new Error(first.stderr);
  const step = join(save, "step-2"), optimizer = join(step, "optimizer.safetensors");
  const pristine = readFileSync(optimizer);
  const resume = () => run("--load", save, "--steps", "3", "--save", save);
  const expectRefusal = (...fragments: string[]) => {
    const r = resume();
    if (r.status === 0 || !fragments.every((f) => r.stderr.includes(f))) throw new Error(`status ${r.status}: ${r.stderr}`);
    if (readFileSync(join(save, "latest"), "utf8").trim() !== "step-2") throw new Error("latest moved");
  };
  const name = "exp_avg_sq.model.layers.0.mlp.up_proj.weight";
  poke(optimizer, name, 3, -1);
  expectRefusal(`${optimizer}: ${name} element 3 is -1; a second moment must be finite and >= 0`);
  writeFileSync(optimizer, pristine);
  poke(optimizer, "exp_avg.model.layers.0.mlp.up_proj.weight", 0, NaN);
  expectRefusal(`exp_avg.model.layers.0.mlp.up_proj.weight element 0 is NaN; a moment must be finite`);
  // Without its moments the run would restart at step 0 without a word.
  rmSync(optimizer);
  expectRefusal(`${optimizer} is missing beside ${join(step, "trainer_state.json")}: the run cannot resume where it stopped`, `--model ${step}`);
  writeFileSync(optimizer, pristine);
  const state = readFileSync(join(step, "trainer_state.json"), "utf8");
  writeFileSync(join(step, "trainer_state.json"), state.slice(0, 30));
  expectRefusal(`${join(step, "trainer_state.json")}: not valid JSON`);
  writeFileSync(join(step, "trainer_state.json"), "null");
  expectRefusal(`${join(step, "trainer_state.json")}: expected a JSON object, got null`);
  writeFileSync(join(step, "trainer_state.json"), state);
  // A line of the log that is JSON but not a step's metrics.
  const log = readFileSync(join(save, "metrics.jsonl"), "utf8");
  writeFileSync(join(save, "metrics.jsonl"), "null\n" + log);
  expectRefusal(`${join(save, "metrics.jsonl")}:1: expected a step's metrics`);
  writeFileSync(join(save, "metrics.jsonl"), log);
  if (resume().status !== 0) throw new Error("the restored run does not resume");
  rmSync(dir, { recursive: true });
});

test("a save refuses a step whose weights are not finite (latest keeps the last good step) and never writes through a planted latest.tmp link", async () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-save-guard-"));
  const t = await trainer(wasm1!, { steps: 4 });
  await t.trainStep();
  await saveTrainingCheckpoint(dir, t, {});
  // A link where the save writes latest.tmp, pointing outside the folder.
  const victim = join(dir, "..", `${dir.split("/").pop()}-victim.txt`);
  writeFileSync(victim, "VICTIM");
  symlinkSync(victim, join(dir, "latest.tmp"));
  await t.trainStep();
  await saveTrainingCheckpoint(dir, t, {});
  if (readFileSync(victim, "utf8") !== "VICTIM" || (await readLatest(dir)) !== "step-2" || lstatSync(join(dir, "latest")).isSymbolicLink()) throw new Error("the save wrote through the link");
  // A NaN weight after an update (the loss check sees it only at the next step): not saved.
  const w = t.model.weights.get("layers.0.up") as Tensor;
  const values = Float32Array.from(await w.data());
  values[7] = NaN;
  w.backend.upload(w.bufferFor("test"), "f32", values);
  t.step = 3; // (a trainStep would stop on the NaN loss first)
  let message = "";
  try {
    await saveTrainingCheckpoint(dir, t, {});
  } catch (e) {
    message = (e as Error).message;
  }
  if (!/^step 3: model\.layers\.0\.mlp\.up_proj\.weight holds NaN at element 7 after the update; the step was not saved/.test(message)) throw new Error(message);
  if ((await readLatest(dir)) !== "step-2" || existsSync(join(dir, "step-3")) || existsSync(join(dir, "step-3.tmp"))) throw new Error(readdirSync(dir).join());
  t.optimizer.dispose();
  t.model.dispose();
  rmSync(dir, { recursive: true });
  rmSync(victim);
});

test("prepare-data refuses JSON Lines in a file named otherwise and data under one instance, reads past a BOM, warns of chat examples left unlabelled", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-prepare-guard-"));
  const tok = `${repoRoot}models/olmo-tiny-shakespeare/tokenizer.json`;
  const prepare = (input: string, seqLen: string, out = join(dir, "out")) =>
    spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "prepare-data", "--tokenizer", tok, "--input", input, "--seq-len", seqLen, "--out", out], { encoding: "utf8" });
  const chat = JSON.stringify({ messages: [{ role: "user", content: "Who is there?" }, { role: "assistant", content: "Nay, answer me." }] });
  writeFileSync(join(dir, "chat.json"), chat + "\n");
  const named = prepare(join(dir, "chat.json"), "16");
  if (named.status !== 2 || !named.stderr.includes(`--input ${join(dir, "chat.json")} looks like JSON Lines (its first line is a record with "messages")`)) throw new Error(named.stderr);
  // Any case of .jsonl, and .ndjson, read as records; a BOM before the first record is not part of it.
  writeFileSync(join(dir, "chat.NDJSON"), "\uFEFF" + chat + "\n");
  const ndjson = prepare(join(dir, "chat.NDJSON"), "32");
  if (ndjson.status !== 0 || ndjson.stderr !== "") throw new Error(`status ${ndjson.status}: ${ndjson.stderr}`);
  // Text shorter than one instance (chat examples are padded to --seq-len; text is not).
  writeFileSync(join(dir, "short.txt"), "Who is there?");
  const short = prepare(join(dir, "short.txt"), "4096");
  if (short.status !== 1 || !short.stderr.includes("less than one instance of --seq-len 4096: nothing to train on")) throw new Error(short.stderr);
  // A prompt that fills --seq-len leaves nothing to learn: said, with the line.
  const long = JSON.stringify({ messages: [{ role: "user", content: "word ".repeat(64) }, { role: "assistant", content: "Ay." }] });
  writeFileSync(join(dir, "long.jsonl"), chat + "\n" + long + "\n");
  const warned = prepare(join(dir, "long.jsonl"), "32");
  if (warned.status !== 0 || !warned.stderr.includes(`warning: 1 chat example(s) have no label token left, their prompt filling --seq-len 32 (${join(dir, "long.jsonl")}:2)`)) throw new Error(warned.stderr);
  writeFileSync(join(dir, "a-file"), "x");
  const file = prepare(join(dir, "long.jsonl"), "32", join(dir, "a-file"));
  if (file.status !== 2 || !file.stderr.includes(`--out ${join(dir, "a-file")} is a file`)) throw new Error(file.stderr);
  rmSync(dir, { recursive: true });
});

test("64-bit ids read as uint32 are refused, as uint32 ids read as uint16 are; ids that are all 0 are not taken for either", () => {
  const ids64 = new BigUint64Array(64).map((_, i) => BigInt(1 + (i % 50)));
  const refused = (bytes: Uint8Array, dtype: "uint16" | "uint32") => {
    try {
      TokenDataset.idsFromBytes(bytes, dtype, "ids.bin");
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };
  if (!refused(new Uint8Array(ids64.buffer), "uint32").includes("ids.bin: every second uint32 id is 0, as 64-bit ids read as uint32 are")) throw new Error("int64 as uint32 taken");
  if (refused(new Uint8Array(256), "uint16") !== "" || refused(new Uint8Array(256), "uint32") !== "") throw new Error("all-zero ids refused as wider ids");
});

test.run();
