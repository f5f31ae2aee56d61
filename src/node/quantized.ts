// Writing a quantized checkpoint folder (`olmo quantize`; the formats: src/io/quantized.ts).
//
// The model is loaded quantized (the loader streams and quantizes each weight), then written tensor by
// tensor into safetensors shards of at most SHARD_BYTES, so the host holds one shard at a time, never
// the model twice. The folder is built under a temporary name beside the target and renamed into
// place at the end: a crash leaves no half-written model folder behind.

import { existsSync, readdirSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { QuantizedWeight, type QuantScheme, type Weight } from "../core/quantize.js";
import { hfTensorName, readTextFile, type ModelSource } from "../io/checkpoint.js";
import { quantizationConfig, scalesTensorName } from "../io/quantized.js";
import { encodeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import type { Olmo } from "../model/olmo.js";

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
  if (weight.dtype !== "f32" && weight.dtype !== "bf16" && weight.dtype !== "f16") throw new Error(`saveQuantizedCheckpoint: ${name} is ${weight.dtype}`);
  return [{ name, dtype: SAFETENSORS_DTYPE[weight.dtype], shape: weight.shape, bytes: bytes(await weight.rawData()) }];
}

/**
 * Write `model` (loaded with loadOlmo(..., { quantize: scheme })) as a checkpoint folder at `out`,
 * with `source`'s config.json (plus quantization_config) and tokenizer files. `out` must not exist
 * or be an empty folder. Returns the bytes of weights written.
 */
export async function saveQuantizedCheckpoint(model: Olmo, scheme: QuantScheme, source: ModelSource, out: string): Promise<number> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`olmo quantize: ${out} exists and is not empty; give a new folder`);
  const staging = join(dirname(out), `.${basename(out)}.${process.pid}.partial`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const config = JSON.parse((await readTextFile(source, "config.json"))!) as Record<string, unknown>;
    config.quantization_config = quantizationConfig(scheme);
    await writeFile(join(staging, "config.json"), JSON.stringify(config, null, 2) + "\n");
    for (const file of FOLDER_FILES) {
      const text = await readTextFile(source, file);
      if (text !== null) await writeFile(join(staging, file), text);
    }
    // Group the tensors into shards in the model's order, then write each shard as it fills.
    const shards: TensorToWrite[][] = [[]];
    const weightMap: Record<string, number> = {};
    let shardBytes = 0, total = 0;
    const files: string[] = [];
    const flush = async (index: number) => {
      const file = `shard-${index}`;
      files[index] = file;
      await writeFile(join(staging, file), encodeSafetensors(shards[index]!));
      shards[index] = []; // free the bytes
    };
    for (const [weight, w] of model.weights) {
      for (const t of await tensorsOf(hfTensorName(weight), w)) {
        if (shardBytes + t.bytes.length > SHARD_BYTES && shards.at(-1)!.length > 0) {
          await flush(shards.length - 1);
          shards.push([]);
          shardBytes = 0;
        }
        shards.at(-1)!.push(t);
        weightMap[t.name] = shards.length - 1;
        shardBytes += t.bytes.length;
        total += t.bytes.length;
      }
    }
    await flush(shards.length - 1);
    // Hugging Face's names: one model.safetensors, or model-0000i-of-0000n.safetensors with an index.
    const count = shards.length;
    const finalName = (i: number) => (count === 1 ? "model.safetensors" : `model-${String(i + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`);
    for (let i = 0; i < count; i++) await rename(join(staging, files[i]!), join(staging, finalName(i)));
    if (count > 1) {
      const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(Object.entries(weightMap).map(([name, i]) => [name, finalName(i)])) };
      await writeFile(join(staging, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
    }
    if (existsSync(out)) await rm(out, { recursive: true }); // the empty folder checked above
    await rename(staging, out);
    return total;
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}
