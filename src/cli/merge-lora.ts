// `olmo merge-lora --model DIR --adapter DIR --out DIR`: fold a LoRA adapter into its base model and
// write an ordinary Hugging Face model folder (what PEFT's merge_and_unload + save_pretrained give):
// W' = W + (alpha / r) B A for every adapted layer (LoraAdapters.mergedWeights), in the base's dtype.

import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { loadLoraAdapters, loadOlmo, readTextFile } from "../index.js";
import { folderSource, isLoraFolder, latestCheckpointFolder, saveModelFolder } from "../node/index.js";
import { checkNewFolder } from "../node/fs.js";
import { parseArgs, UsageError, usage, type CommandSpec } from "./args.js";
import { backendByName } from "./backends.js";
import { locateModel, modelSource, warnIfOtherBase } from "./model.js";

const spec: CommandSpec = {
  model: { kind: "value", required: true, placeholder: "DIR_OR_REPO", help: "the base model the adapter was trained on (a folder or a Hub repo owner/name)" },
  revision: { kind: "value", help: "Hub revision: branch, tag or commit (default main)" },
  adapter: { kind: "value", required: true, placeholder: "DIR", help: "the LoRA adapter: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a LoRA run's --save folder" },
  out: { kind: "value", required: true, placeholder: "DIR", help: "the merged model folder (must not exist, or be empty)" },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads of the wasm backend (default: cores, at most 8)" },
};

export async function runMergeLora(args: string[]): Promise<void> {
  const parsed = parseArgs("merge-lora", args, spec);
  if (parsed.help) return void console.log(usage("merge-lora", spec));
  const { values, numbers } = parsed;
  const adapterArg = values.get("adapter")!, out = values.get("out")!;
  // Before loading and merging: --out must be able to become the new folder.
  checkNewFolder(out, "olmo merge-lora");
  if (!existsSync(adapterArg) || !statSync(adapterArg).isDirectory()) throw new UsageError(`--adapter ${adapterArg}: no such folder`);
  const adapterFolder = await latestCheckpointFolder(adapterArg);
  if (!isLoraFolder(adapterFolder)) throw new UsageError(`--adapter ${adapterArg}: no adapter_config.json in ${adapterFolder}; expected a PEFT adapter folder or a LoRA run's --save folder`);
  const location = await locateModel(values.get("model")!, values.get("revision"));
  warnIfOtherBase(adapterFolder, location);
  const source = modelSource(location, values.get("revision"));
  // The merged weights keep the base's dtype, as merge_and_unload does: config.json's dtype (torch_dtype
  // before transformers 5) says which. f32 bases load as f32; bf16 (and f16, which the loader keeps
  // f16) as stored. Without either field, f32: nothing is rounded.
  let config: { dtype?: unknown; torch_dtype?: unknown };
  try {
    config = JSON.parse((await readTextFile(source, "config.json")) ?? "{}") as typeof config;
  } catch (e) {
    throw new Error(`${source.name}/config.json: not valid JSON (${(e as Error).message})`);
  }
  const declared = config.dtype ?? config.torch_dtype;
  const weightDType = declared === "bfloat16" || declared === "float16" ? "bf16" : "f32";
  const backend = await backendByName("wasm", numbers.get("threads") ?? Math.min(8, availableParallelism()));
  try {
    const started = performance.now();
    const { model } = await loadOlmo(source, backend, { quantize: "none", weightDType });
    model.lora = await loadLoraAdapters(folderSource(adapterFolder), model);
    const merged = model.lora.mergedWeights(model.weights);
    try {
      const bytes = await saveModelFolder(merged, source, out, { what: "olmo merge-lora" });
      const { r, alpha } = model.lora.options;
      console.error(
        `wrote ${out}: ${adapterFolder} (r ${r}, alpha ${alpha}, ${model.lora.targets.join(", ")}) merged into ${source.name}, ` +
          `${(bytes / 1e9).toFixed(3)} GB of weights in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    } finally {
      for (const [name, w] of merged) if (w !== model.weights.get(name)) w.dispose();
      model.dispose();
    }
  } finally {
    backend.dispose();
  }
}
