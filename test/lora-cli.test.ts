// LoRA on the command line, run as a user would (the built dist/cli.js), on lora.test.ts's fixtures:
// `olmo train --lora-* / --adapter` matches PEFT + torch AdamW and writes PEFT's folder (the very bytes
// PEFT was shown to load), resumes exactly, checkpoints activations to the same losses on a quantized
// base; `olmo merge-lora` equals the adapter applied; bad command lines get clear errors.

import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import type { StepMetrics } from "../src/index.js";
import { assertClose, readJson, relativeDifference, repoRoot } from "./helpers.js";

const lora = readJson<{ cases: Record<"qv" | "tied", { steps: { loss: number; gradNorm: number }[] }> }>("test/fixtures/lora/expected.json");
const train = readJson<{ ids: number[]; mask: number[] }>("test/fixtures/train/expected.json");
const BASE = `${repoRoot}test/fixtures/train/init`;
const TIED_BASE = `${repoRoot}test/fixtures/lora/tied/base`;
const adapterDir = (name: string) => `${repoRoot}test/fixtures/lora/${name}/adapter`;

const dir = mkdtempSync(join(tmpdir(), "olmo-lora-cli-"));
const data = join(dir, "data");
mkdirSync(data);
writeFileSync(join(data, "input_ids.npy"), Uint16Array.from(train.ids));
writeFileSync(join(data, "label_mask.npy"), Uint8Array.from(train.mask));

function olmo(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function olmoOk(...args: string[]): string {
  const r = olmo(...args);
  if (r.status !== 0) throw new Error(`olmo ${args.join(" ")}: status ${r.status}\n${r.stderr}`);
  return r.stderr;
}

function expectFailure(args: string[], ...fragments: string[]): void {
  const r = olmo(...args);
  if (r.status === 0 || !fragments.every((f) => r.stderr.includes(f))) {
    throw new Error(`olmo ${args.join(" ")}: status ${r.status}, stderr lacks one of ${JSON.stringify(fragments)}:\n${r.stderr}`);
  }
}

/** The options of the fixtures' ten steps (test/fixtures/train/expected.json), in flags; AdamW's defaults are OLMo's. */
const trainArgs = (save: string, steps: number, ...more: string[]) => [
  "train", "--data", data, "--seq-len", "8", "--batch-size", "2", "--steps", String(steps), "--lr", "0.01", "--warmup", "3", "--t-max", "10",
  "--max-grad-norm", "0.5", "--no-shuffle", "--backend", "js", "--save", save, ...more,
];

const metrics = (save: string): StepMetrics[] => readFileSync(join(save, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as StepMetrics);

/** A safetensors file's header (names, dtypes, shapes, offsets) and its data as f32 values. */
function readF32Safetensors(file: string): { header: string; values: Float32Array } {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const body = bytes.subarray(8 + length);
  return { header: bytes.subarray(8, 8 + length).toString("utf8"), values: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length)) };
}

/** Logits of a few ids from `olmo logits` (a .npy of f32). */
function logits(...modelArgs: string[]): Float32Array {
  const out = join(dir, `logits-${Math.random().toString(36).slice(2)}.npy`);
  olmoOk("logits", ...modelArgs, "--ids", "5,17,42,9,33", "--backend", "js", "--out", out);
  const npy = readFileSync(out);
  const headerLength = npy.readUInt16LE(8);
  return new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + headerLength, npy.byteOffset + npy.length));
}

const full = join(dir, "full");

test("olmo train --adapter: 10 LoRA steps equal PEFT + torch AdamW; the step folder is the PEFT adapter PEFT loaded", () => {
  olmoOk(...trainArgs(full, 10, "--model", BASE, "--adapter", adapterDir("qv")));
  for (const [k, m] of metrics(full).entries()) {
    const want = lora.cases.qv.steps[k]!;
    // As lora.test.ts: f32 on both sides, ten compounding steps; 1e-4 / 1e-3 relative leave margin.
    if (Math.abs(m.loss - want.loss) > 1e-4 * Math.abs(want.loss)) throw new Error(`step ${k + 1}: loss ${m.loss}, PEFT ${want.loss}`);
    if (Math.abs(m.grad_norm - want.gradNorm) > 1e-3 * want.gradNorm) throw new Error(`step ${k + 1}: grad norm ${m.grad_norm}, PEFT ${want.gradNorm}`);
  }
  const step = join(full, "step-10");
  const config = JSON.parse(readFileSync(join(step, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  const want = { peft_type: "LORA", r: 4, lora_alpha: 8, lora_dropout: 0, base_model_name_or_path: BASE.replace(/\/$/, "") };
  for (const [k, v] of Object.entries(want)) if (config[k] !== v) throw new Error(`adapter_config.json ${k}: ${JSON.stringify(config[k])}, want ${JSON.stringify(v)}`);
  // test/fixtures/lora/ours/adapter is this command's output, which PeftModel.from_pretrained loaded
  // (lora.test.ts checks its logits against PEFT's): the same tensors, names and layout are written today.
  const ours = readF32Safetensors(join(step, "adapter_model.safetensors"));
  const committed = readF32Safetensors(join(adapterDir("ours"), "adapter_model.safetensors"));
  if (ours.header !== committed.header) throw new Error(`adapter_model.safetensors header changed:\n${ours.header}\nvs\n${committed.header}`);
  // Values: the same f32 arithmetic; 1e-5 of the norm allows a kernel summing in another order.
  const rel = relativeDifference(Array.from(ours.values), Array.from(committed.values));
  if (!(rel < 1e-5)) throw new Error(`adapter values differ from the committed ones by ${rel} of their norm`);
});

test("olmo train --load resumes a LoRA run exactly: 4 + 6 steps equal 10", () => {
  const resumed = join(dir, "resumed");
  olmoOk(...trainArgs(resumed, 4, "--model", BASE, "--adapter", adapterDir("qv")));
  // The base comes from trainer_state.json; the adapter, moments and position from the step folder.
  olmoOk(...trainArgs(resumed, 10, "--load", resumed));
  const [a, b] = [metrics(full), metrics(resumed)];
  if (b.length !== 10) throw new Error(`${b.length} steps logged`);
  // Same backend, same arithmetic, moments restored bit for bit: the runs are identical.
  for (const [k, m] of a.entries()) {
    if (m.loss !== b[k]!.loss || m.grad_norm !== b[k]!.grad_norm || m.lr !== b[k]!.lr) throw new Error(`step ${k + 1}: ${JSON.stringify(b[k])} vs ${JSON.stringify(m)}`);
  }
  const weights = (save: string) => readFileSync(join(save, "step-10", "adapter_model.safetensors"));
  if (!weights(full).equals(weights(resumed))) throw new Error("the resumed run's adapter differs from the uninterrupted one's");
  expectFailure(trainArgs(resumed, 12, "--load", resumed, "--lora-r", "2"), "resumes the LoRA run", "drop --lora-r");
  expectFailure(trainArgs(resumed, 12, "--load", resumed, "--quantize", "int4"), "trained with its base loaded as stored, and --load loads it the same way", "drop --quantize");
});

test("LoRA on a folder stored int8, loaded as stored: the state says so, and --load resumes on that same base (2 + 2 steps equal 4)", () => {
  const q8 = join(dir, "tied-int8");
  olmoOk("quantize", "--model", TIED_BASE, "--to", "int8", "--out", q8, "--threads", "1");
  const whole = join(dir, "on-int8"), split = join(dir, "on-int8-resumed");
  olmoOk(...trainArgs(whole, 4, "--model", q8, "--lora-r", "2", "--lora-alpha", "4"));
  olmoOk(...trainArgs(split, 2, "--model", q8, "--lora-r", "2", "--lora-alpha", "4"));
  // quantize: what --load applies again (nothing: the folder as stored, its embedding float);
  // base_quantization: what the frozen layers are.
  const state = JSON.parse(readFileSync(join(split, "step-2", "trainer_state.json"), "utf8")) as { options: Record<string, unknown> };
  if (state.options.quantize !== "none" || state.options.base_quantization !== "int8") throw new Error(JSON.stringify(state.options));
  olmoOk(...trainArgs(split, 4, "--load", split));
  // Quantizing the float embedding on resume would change the LM head and so the losses of steps 3-4.
  const [a, b] = [metrics(whole), metrics(split)];
  if (b.length !== 4) throw new Error(`${b.length} steps logged`);
  for (const [k, m] of a.entries()) if (m.loss !== b[k]!.loss) throw new Error(`step ${k + 1}: ${b[k]!.loss} vs ${m.loss}`);
  expectFailure(trainArgs(split, 6, "--load", split, "--load-in-8bit"), "--load-in-8bit: the run in", "trained with its base loaded as stored (its layers int8)", "drop --load-in-8bit");
});

test("fresh adapters on all seven layers of a tied int8 base, with dropout: checkpointing activations gives the same losses", () => {
  const run = (name: string, ...more: string[]) => {
    const save = join(dir, name);
    olmoOk(...trainArgs(save, 4, "--model", TIED_BASE, "--lora-r", "2", "--lora-alpha", "4", "--lora-targets", "all", "--lora-dropout", "0.1", "--quantize", "int8", ...more));
    return save;
  };
  const plain = run("plain"), checkpointed = run("checkpointed", "--checkpoint-activations");
  const [a, b] = [metrics(plain), metrics(checkpointed)];
  // The recomputed blocks repeat the first pass's arithmetic and dropout masks: equal to rounding.
  for (const [k, m] of a.entries()) if (Math.abs(m.loss - b[k]!.loss) > 1e-6 * m.loss) throw new Error(`step ${k + 1}: ${b[k]!.loss} vs ${m.loss}`);
  // B starts at zero: the first step's loss is the base's, and the adapters then learn.
  if (!(a[3]!.loss !== a[0]!.loss && a.every((m) => Number.isFinite(m.loss)))) throw new Error(`losses ${a.map((m) => m.loss)}`);
  const state = JSON.parse(readFileSync(join(plain, "step-4", "trainer_state.json"), "utf8")) as { options: Record<string, unknown> };
  const loraOptions = state.options.lora as { targets: string[]; dropout: number };
  if (state.options.quantize !== "int8" || state.options.base_quantization !== "int8" || loraOptions.targets.length !== 7 || loraOptions.dropout !== 0.1) throw new Error(JSON.stringify(state.options));
  const config = JSON.parse(readFileSync(join(plain, "step-4", "adapter_config.json"), "utf8")) as { target_modules: string[] };
  if (config.target_modules.join() !== "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj") throw new Error(`${config.target_modules}`);
});

test("olmo merge-lora writes an ordinary model folder whose logits equal the adapter applied (untied and tied)", () => {
  for (const [base, adapter] of [[BASE, full], [TIED_BASE, adapterDir("tied")]] as const) {
    const merged = join(dir, `merged-${base === BASE ? "untied" : "tied"}`);
    olmoOk("merge-lora", "--model", base, "--adapter", adapter, "--out", merged);
    const files = readFileSync(join(merged, "config.json"), "utf8");
    if (files.includes("quantization_config")) throw new Error("merged config.json has a quantization_config");
    // f32 base: W + (alpha / r) B A in f32 against x W^T + (alpha / r) (x A^T) B^T: the same sums in
    // another order, logits of O(5): a few 1e-6.
    assertClose(logits("--model", merged), logits("--model", base, "--adapter", adapter), { atol: 1e-5, rtol: 1e-5 }, `merged ${adapter}`);
  }
  expectFailure(["merge-lora", "--model", BASE, "--adapter", full, "--out", join(dir, "merged-untied")], "exists and is not empty");
  expectFailure(["merge-lora", "--model", BASE, "--adapter", join(dir, "nope"), "--out", join(dir, "m2")], `--adapter ${join(dir, "nope")}: no such folder`);
  expectFailure(["generate", "--model", full, "--ids", "1"], "holds a LoRA adapter, not a model", "--adapter");
});

test("bad LoRA command lines: unknown targets, rank 0 or past the layer, another model's adapter, unsupported PEFT features", () => {
  const save = join(dir, "bad");
  const fresh = (...more: string[]) => trainArgs(save, 2, "--model", BASE, ...more);
  expectFailure(fresh("--lora-r", "2", "--lora-targets", "q,query"), `--lora-targets q,query: unknown target layer "query"`);
  expectFailure(fresh("--lora-r", "0"), "--lora-r");
  expectFailure(fresh("--lora-r", "25", "--lora-targets", "v"), "rank r 25 exceeds v_proj's smaller side", "[24, 24]");
  expectFailure(fresh("--lora-alpha", "16"), "need --lora-r R");
  expectFailure(fresh("--quantize", "int8"), "need LoRA");
  expectFailure(fresh("--adapter", adapterDir("qv"), "--lora-r", "2"), "sets r, alpha, targets and dropout", "drop --lora-r");
  expectFailure(trainArgs(save, 2, "--config", "OLMo-1B", "--lora-r", "2"), "LoRA fine-tunes a trained model", "not --config");
  expectFailure(trainArgs(save, 2, "--config", "OLMo-1B", "--model", BASE), "--config starts from scratch; it cannot go with --model");
  expectFailure(trainArgs(save, 2), "give one of --model DIR_OR_REPO, --config PRESET_OR_JSON or --load DIR");
  expectFailure(
    trainArgs(save, 2, "--model", `${repoRoot}test/fixtures/olmo/gqa-sharded`, "--adapter", adapterDir("qv")),
    "the adapter does not fit this model", "layer 0 q_proj.lora_A is [4,24], the model needs [4,32]",
  );
  // Another base of the same shapes loads (it may be a copy of the base), with a warning naming both.
  const otherBase = olmoOk("logits", "--model", `${repoRoot}test/fixtures/olmo/bf16-tied`, "--adapter", adapterDir("qv"), "--ids", "1", "--out", join(dir, "o.npy"));
  if (!otherBase.includes(`was trained on test/fixtures/train/init (its adapter_config.json's base_model_name_or_path), not ${repoRoot}test/fixtures/olmo/bf16-tied`)) throw new Error(otherBase);
  const dora = join(dir, "dora");
  cpSync(adapterDir("qv"), dora, { recursive: true });
  const config = JSON.parse(readFileSync(join(dora, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(dora, "adapter_config.json"), JSON.stringify({ ...config, use_dora: true }));
  expectFailure(fresh("--adapter", dora), "use_dora is true: DoRA");
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
