// Writing a model folder in Hugging Face's layout from weights on a backend: a quantized checkpoint
// (`olmo quantize`; the formats: src/io/quantized.ts) or a model with LoRA adapters merged into it
// (`olmo merge-lora`).
//
// The weights are written tensor by tensor into safetensors shards of at most SHARD_BYTES, so the host
// holds one shard at a time, never the model twice. The folder appears whole or not at all
// (writeFolderAtomic): a crash leaves no half-written model folder behind.

import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { QuantizedWeight, type QuantScheme, type Weight } from "../core/quantize.js";
import { hfTensorName, readTextFile, type ModelSource } from "../io/checkpoint.js";
import { quantizationConfig, scalesTensorName } from "../io/quantized.js";
import { encodeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import type { WeightName } from "../model/weights.js";
import { writeFolderAtomic } from "./fs.js";

/** Largest shard written (Hugging Face's default max_shard_size is 5 GB; smaller keeps host memory low). */
const SHARD_BYTES = 2 ** 30;

/** Small files of a model folder copied beside the weights when present. */
const FOLDER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"];

const SAFETENSORS_DTYPE = { f32: "F32", bf16: "BF16", f16: "F16" } as const;

/** The tensors of one weight as the folder stores it: a float weight, or values and scales. */
async function tensorsOf(name: string, weight: Weight): Promise<TensorToWrite[]> {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (weight instanceof QuantizedWeight) {
    const values = await weight.values.rawData(), scales = await weight.scales.rawData();
    return [
      { name, dtype: weight.scheme === "int8" ? "I8" : "U8", shape: weight.values.shape, bytes: bytes(values) },
      { name: scalesTensorName(name, weight.scheme), dtype: weight.scheme === "int8" ? "F32" : "F16", shape: weight.scales.shape, bytes: bytes(scales) },
    ];
  }
  if (weight.dtype !== "f32" && weight.dtype !== "bf16" && weight.dtype !== "f16") throw new Error(`saveModelFolder: ${name} is ${weight.dtype}`);
  return [{ name, dtype: SAFETENSORS_DTYPE[weight.dtype], shape: weight.shape, bytes: bytes(await weight.rawData()) }];
}

/**
 * Write `weights` (a model's, e.g. loaded with loadOlmo(..., { quantize: scheme })) as a model folder
 * at `out`, with `source`'s config.json and tokenizer files. config.json's quantization_config follows
 * the weights written: int4's when any is int4 (the only config that says how its rows are stored; the
 * int8 weights beside them load by their SCB), bitsandbytes' 8-bit one when the quantized ones are all
 * int8 and the embedding and LM head float (olmo-js's int8 one when they are int8 too), none for a float model. `out` must not exist or be an empty folder; `what` names the caller in
 * errors. Returns the bytes of weights written.
 */
export async function saveModelFolder(weights: ReadonlyMap<WeightName, Weight>, source: ModelSource, out: string, options: { what: string }): Promise<number> {
  let total = 0;
  const quantized = [...weights.values()].filter((w): w is QuantizedWeight => w instanceof QuantizedWeight);
  const scheme: QuantScheme | null = quantized.some((w) => w.scheme === "int4") ? "int4" : quantized.length > 0 ? "int8" : null;
  await writeFolderAtomic(out, options.what, async (staging) => {
    const config = JSON.parse((await readTextFile(source, "config.json"))!) as Record<string, unknown>;
    const embeddingQuantized = weights.get("embed") instanceof QuantizedWeight || weights.get("lmHead") instanceof QuantizedWeight;
    if (scheme) config.quantization_config = quantizationConfig(scheme, { embeddingQuantized });
    else delete config.quantization_config;
    await writeFile(join(staging, "config.json"), JSON.stringify(config, null, 2) + "\n");
    for (const file of FOLDER_FILES) {
      const text = await readTextFile(source, file);
      if (text !== null) await writeFile(join(staging, file), text);
    }
    // Tensors go into shards in the model's order; each shard is written (and its bytes freed) as it fills.
    const shardFile = (i: number) => join(staging, `shard-${i}`);
    const shardOf: Record<string, number> = {};
    let shard: TensorToWrite[] = [], shardBytes = 0, count = 0;
    const flush = async () => {
      await writeFile(shardFile(count++), encodeSafetensors(shard));
      shard = [];
      shardBytes = 0;
    };
    for (const [weight, w] of weights) {
      for (const t of await tensorsOf(hfTensorName(weight), w)) {
        if (shardBytes + t.bytes.length > SHARD_BYTES && shard.length > 0) await flush();
        shard.push(t);
        shardOf[t.name] = count;
        shardBytes += t.bytes.length;
        total += t.bytes.length;
      }
    }
    await flush();
    // Hugging Face's names: one model.safetensors, or model-0000i-of-0000n.safetensors with an index.
    const finalName = (i: number) => (count === 1 ? "model.safetensors" : `model-${String(i + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`);
    for (let i = 0; i < count; i++) await rename(shardFile(i), join(staging, finalName(i)));
    if (count > 1) {
      const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(Object.entries(shardOf).map(([name, i]) => [name, finalName(i)])) };
      await writeFile(join(staging, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
    }
  });
  return total;
}
