// Writing a LoRA adapter folder in PEFT's format (the format: src/io/lora.ts).
//
// Both files are written into a temporary folder beside the target, which is renamed into place at
// the end: a crash leaves the old folder or the new one, never an adapter_config.json whose weights
// are missing or belong to another step.

import { existsSync, readdirSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfig, adapterTensors } from "../io/lora.js";
import { encodeSafetensors } from "../io/safetensors.js";
import type { LoraAdapters } from "../model/lora.js";

/**
 * Write `lora` as `out`/adapter_config.json + adapter_model.safetensors, loadable by PEFT's
 * PeftModel.from_pretrained on the base model `baseModel` (its name or path, recorded in the config).
 * `out` must not exist or be an empty folder.
 */
export async function saveLoraAdapter(lora: LoraAdapters, out: string, baseModel: string): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`saveLoraAdapter: ${out} exists and is not empty; give a new folder`);
  const staging = join(dirname(out), `.${basename(out)}.${process.pid}.partial`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    await writeFile(join(staging, ADAPTER_CONFIG), JSON.stringify(adapterConfig(lora, baseModel), null, 2) + "\n");
    await writeFile(join(staging, ADAPTER_WEIGHTS), encodeSafetensors(await adapterTensors(lora)));
    if (existsSync(out)) await rm(out, { recursive: true }); // the empty folder checked above
    await rename(staging, out);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}
