// Writing a LoRA adapter folder in PEFT's format (the format: src/io/lora.ts).
//
// Both files are written into a temporary folder beside the target, which is renamed into place at
// the end: a crash leaves the old folder or the new one, never an adapter_config.json whose weights
// are missing or belong to another step.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfig, adapterTensors } from "../io/lora.js";
import { encodeSafetensors } from "../io/safetensors.js";
import type { LoraAdapters } from "../model/lora.js";
import { writeFolderAtomic } from "./fs.js";

/**
 * Write `lora` as `out`/adapter_config.json + adapter_model.safetensors, loadable by PEFT's
 * PeftModel.from_pretrained on the base model `baseModel` (its name or path, recorded in the config).
 * `out` must not exist or be an empty folder.
 */
export async function saveLoraAdapter(lora: LoraAdapters, out: string, baseModel: string): Promise<void> {
  await writeFolderAtomic(out, "saveLoraAdapter", async (staging) => {
    await writeFile(join(staging, ADAPTER_CONFIG), JSON.stringify(adapterConfig(lora, baseModel), null, 2) + "\n");
    await writeFile(join(staging, ADAPTER_WEIGHTS), encodeSafetensors(await adapterTensors(lora)));
  });
}
