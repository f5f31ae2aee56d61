// LoRA adapters in Hugging Face PEFT's folder format (what PeftModel.save_pretrained writes and
// PeftModel.from_pretrained reads):
//
//   adapter_config.json        LoraConfig: peft_type "LORA", r, lora_alpha, target_modules, lora_dropout, ...
//   adapter_model.safetensors  per adapted layer N and module:
//     base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, in]
//     base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   [out, r]
//   (PEFT drops the adapter's name, "default", from the saved names; mlp.* for gate, up and down.)
//
// What PEFT can express and olmo-js does not compute is refused by name rather than loaded as something
// else: DoRA, rsLoRA's alpha / sqrt(r), trained biases, per-layer ranks or alphas, extra trained modules.

import { f16ToF32, bf16ToF32 } from "../core/dtype.js";
import { tensor } from "../core/creation.js";
import type { AnyBackend } from "../core/tensor.js";
import { LoraAdapters, LORA_MODULES, loraTargets, type LoraOptions, type LoraPair } from "../model/lora.js";
import type { Olmo } from "../model/olmo.js";
import type { BlockWeight, WeightName } from "../model/weights.js";
import { hfTensorName, parseJsonObject, readTextFile, type ModelSource } from "./checkpoint.js";
import { firstNonFinite, readSafetensorsHeader, type TensorToWrite } from "./safetensors.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** PEFT's name of one adapter matrix: `base_model.model.` + the base weight's name, `.weight` -> `.lora_A.weight`. */
export function loraTensorName(weight: WeightName, matrix: "A" | "B"): string {
  return `base_model.model.${hfTensorName(weight).replace(/\.weight$/, `.lora_${matrix}.weight`)}`;
}

/** adapter_config.json for these adapters, with PEFT's field names and the defaults it writes. */
export function adapterConfig(lora: LoraAdapters, baseModel: string): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: lora.options.r,
    lora_alpha: lora.options.alpha,
    lora_dropout: lora.dropout,
    target_modules: lora.targets.map((t) => LORA_MODULES[t]),
    bias: "none",
    fan_in_fan_out: false,
    use_dora: false,
    use_rslora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

/** Reject what olmo-js does not compute; the LoRA options of a valid config. `where` names the file in errors. */
export function parseAdapterConfig(json: Record<string, unknown>, where: string): LoraOptions {
  const bad = (field: string, why: string) => new Error(`${where}: ${field} ${why}`);
  const isEmpty = (v: unknown) => v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (typeof v === "object" && Object.keys(v as object).length === 0);
  if (json.peft_type !== "LORA") throw bad("peft_type", `is ${JSON.stringify(json.peft_type)}; only "LORA" adapters are supported`);
  if (json.use_dora === true) throw bad("use_dora", "is true: DoRA (weight-decomposed LoRA) is not supported");
  if (json.use_rslora === true) throw bad("use_rslora", "is true: rsLoRA's alpha / sqrt(r) scaling is not supported");
  if ((json.bias ?? "none") !== "none") throw bad("bias", `is ${JSON.stringify(json.bias)}: only "none" is supported (no trained biases; OLMo's linear layers have none)`);
  if (json.lora_bias === true) throw bad("lora_bias", "is true: a bias on lora_B is not supported");
  if (json.fan_in_fan_out === true) throw bad("fan_in_fan_out", "is true: that is for GPT-2's Conv1D layers, OLMo's are nn.Linear");
  for (const field of ["modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform", "layer_replication", "trainable_token_indices", "exclude_modules", "target_parameters"]) {
    if (!isEmpty(json[field])) throw bad(field, `is ${JSON.stringify(json[field])}: not supported (every target layer of every block gets one adapter of rank r)`);
  }
  for (const field of ["use_qalora", "use_bdlora"]) if (json[field] === true) throw bad(field, "is true: not supported");
  const modules = json.target_modules;
  let targets: string[];
  if (modules === "all-linear") targets = Object.values(LORA_MODULES); // PEFT: every linear layer but the output head
  else if (Array.isArray(modules) && modules.every((m) => typeof m === "string")) targets = modules as string[];
  else throw bad("target_modules", `is ${JSON.stringify(modules)}: give a list of module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)`);
  try {
    loraTargets(targets);
  } catch (e) {
    throw new Error(`${where}: target_modules: ${(e as Error).message}`);
  }
  const r = json.r, alpha = json.lora_alpha ?? 8, dropout = json.lora_dropout ?? 0;
  if (typeof r !== "number") throw bad("r", `is ${JSON.stringify(r)}; expected the rank, a positive integer`);
  if (typeof alpha !== "number") throw bad("lora_alpha", `is ${JSON.stringify(alpha)}; expected a number`);
  if (typeof dropout !== "number") throw bad("lora_dropout", `is ${JSON.stringify(dropout)}; expected a number in [0, 1)`);
  return { r, alpha, targets, dropout };
}

/** The adapters' tensors as PEFT names them, f32, in the model's order. */
export async function adapterTensors(lora: LoraAdapters): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const [name, pair] of lora.pairs) {
    for (const [matrix, t] of [["A", pair.a], ["B", pair.b]] as const) {
      const data = Float32Array.from(await t.data());
      out.push({ name: loraTensorName(name, matrix), dtype: "F32", shape: t.shape, bytes: new Uint8Array(data.buffer) });
    }
  }
  return out;
}

/**
 * Read a PEFT adapter folder for `model` (checked against its config: targets, layers, shapes), onto
 * the model's backend as trainable f32 tensors. Attach it with `model.lora = adapters`.
 */
export async function loadLoraAdapters(source: ModelSource, model: Olmo, seed = 0): Promise<LoraAdapters> {
  const text = await readTextFile(source, ADAPTER_CONFIG);
  if (text === null) throw new Error(`${source.name}: ${ADAPTER_CONFIG} is missing (not a PEFT adapter folder)`);
  const options = parseAdapterConfig(parseJsonObject(text, `${source.name}/${ADAPTER_CONFIG}`), `${source.name}/${ADAPTER_CONFIG}`);
  const file = await source.open(ADAPTER_WEIGHTS);
  if (!file) throw new Error(`${source.name}: ${ADAPTER_WEIGHTS} is missing`);
  const problems: string[] = [];
  const { tensors } = await readSafetensorsHeader(file, problems);
  if (problems.length > 0) throw new Error(`${source.name}: ${problems.join("; ")}`);
  const backend: AnyBackend = model.backend;
  const byName = new Map<string, { weight: WeightName; matrix: "A" | "B" }>();
  const targets = loraTargets(options.targets);
  for (let i = 0; i < model.config.numLayers; i++) {
    for (const t of targets as BlockWeight[]) for (const matrix of ["A", "B"] as const) byName.set(loraTensorName(`layers.${i}.${t}`, matrix), { weight: `layers.${i}.${t}`, matrix });
  }
  const found = new Map<WeightName, Partial<LoraPair>>();
  const unknown: string[] = [];
  try {
    for (const [name, entry] of tensors) {
      const where = byName.get(name);
      if (!where) {
        unknown.push(name);
        continue;
      }
      const bytes = await file.read(entry.begin, entry.end - entry.begin);
      const values = toF32(bytes, entry.dtype, `${source.name}/${ADAPTER_WEIGHTS}: ${name}`);
      // A NaN or infinite adapter value would make every output it touches NaN (and a merged model unusable).
      const bad = firstNonFinite(new Uint8Array(values.buffer), "F32");
      if (bad >= 0) throw new Error(`${source.name}/${ADAPTER_WEIGHTS}: ${name} element ${bad} is ${values[bad]}; adapter values must be finite`);
      const t = tensor(values, entry.shape, { backend });
      const pair = found.get(where.weight) ?? {};
      if (where.matrix === "A") pair.a = t;
      else pair.b = t;
      found.set(where.weight, pair);
    }
    if (unknown.length > 0) {
      throw new Error(`${source.name}/${ADAPTER_WEIGHTS}: tensors this model and the config's targets (${options.targets.join(", ")}) have no place for: ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`);
    }
    const pairs = new Map<WeightName, LoraPair>();
    for (const [weight, p] of found) {
      if (!p.a || !p.b) throw new Error(`${source.name}/${ADAPTER_WEIGHTS}: ${loraTensorName(weight, p.a ? "B" : "A")} is missing`);
      pairs.set(weight, { a: p.a, b: p.b });
    }
    return LoraAdapters.fromPairs(model.config, options, pairs, seed);
  } catch (e) {
    for (const p of found.values()) {
      p.a?.dispose();
      p.b?.dispose();
    }
    throw e;
  }
}

/** A tensor's bytes as f32 values (PEFT saves adapters in the model's dtype: f32, bf16 or f16). */
function toF32(bytes: Uint8Array, dtype: string, where: string): Float32Array {
  const copy = bytes.slice(); // aligned
  if (dtype === "F32") return new Float32Array(copy.buffer);
  if (dtype === "BF16" || dtype === "F16") {
    const bits = new Uint16Array(copy.buffer);
    return Float32Array.from(bits, dtype === "BF16" ? bf16ToF32 : f16ToF32);
  }
  throw new Error(`${where} is ${dtype}; adapters must be F32, BF16 or F16`);
}
