// What `--model` names, for every command that reads a model: a folder on disk (a model folder, or a
// training run's --save folder, read at its latest step), or a Hugging Face Hub repo. A path that
// exists is always a folder; a Hub repo id is tried only for something that does not exist and looks
// like "owner/name" and not like a path, so a mistyped path says "no such folder" instead of going to
// the network.

import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { loadLoraAdapters, type ModelSource, type Olmo, type QuantScheme } from "../index.js";
import { cachedHubSource, folderSource, isLoraFolder, latestCheckpointFolder } from "../node/index.js";
import { UsageError, type OptionSpec } from "./args.js";

/** The default model shipped in the package (see models/olmo-tiny-shakespeare/RECIPE.md). */
export { DEFAULT_MODEL_DIR as DEFAULT_MODEL } from "../node/index.js";

export type ModelLocation = { kind: "folder"; folder: string } | { kind: "hub"; repo: string };

/** Where `--model ARG` points (checked before anything is loaded or printed). */
export async function locateModel(arg: string, revision: string | undefined): Promise<ModelLocation> {
  if (existsSync(arg)) {
    if (!statSync(arg).isDirectory()) throw new UsageError(`--model ${arg} is a file; expected a model folder (config.json, model.safetensors) or a training run's --save folder`);
    if (revision !== undefined) throw new UsageError(`--revision needs --model to be a Hub repo (owner/name); ${arg} is a folder`);
    // A training run's --save folder: its latest complete step.
    const folder = await latestCheckpointFolder(arg);
    if (!existsSync(`${folder}/config.json`) && isLoraFolder(folder)) {
      throw new UsageError(`--model ${arg}: ${folder} holds a LoRA adapter, not a model; give its base model with --model and this folder with --adapter`);
    }
    if (!existsSync(`${folder}/config.json`)) throw new UsageError(`--model ${arg}: no config.json in ${folder}; expected a model folder or a training run's --save folder`);
    return { kind: "folder", folder };
  }
  const parts = arg.split("/");
  const looksLikePath = arg.startsWith(".") || isAbsolute(arg) || arg.startsWith("~") || parts.length !== 2 || existsSync(parts[0]!);
  if (looksLikePath || !/^[\w.-]+\/[\w.-]+$/.test(arg)) {
    throw new UsageError(`--model ${arg}: no such folder${parts.length === 2 && !looksLikePath ? " (and not a Hub repo id owner/name)" : ""}`);
  }
  return { kind: "hub", repo: arg };
}

export function modelSource(
  location: ModelLocation, revision: string | undefined, onProgress?: (file: string, read: number, total: number) => void,
): ModelSource {
  return location.kind === "folder"
    ? folderSource(location.folder)
    : cachedHubSource({ repo: location.repo, revision, endpoint: process.env.HF_ENDPOINT, onProgress });
}

/** The options that quantize a model as it loads (src/core/quantize.ts), shared by every command that reads one. */
export const quantizeOptions: Record<string, OptionSpec> = {
  quantize: {
    kind: "value", choices: ["int8", "int4", "none"],
    help: "quantize the float weights as they load: int8 (per-row, as bitsandbytes' load_in_8bit) or int4 (groups of 32); default none: every weight as the folder stores it",
  },
  "load-in-8bit": { kind: "flag", help: "the model card's spelling of --quantize int8" },
  embedding: {
    kind: "value", choices: ["float", "int8", "int4"],
    help: "with --quantize: the embedding and LM head float, int8 (more precise logits under int4, a little slower) or int4 (int4 layers only); default: --quantize's scheme",
  },
  adapter: { kind: "value", placeholder: "DIR", help: "a LoRA adapter applied to the model: a folder in PEFT's format (adapter_config.json + adapter_model.safetensors) or a LoRA run's --save folder" },
};

/** --max-memory-per-instance, on every command that loads a model onto the wasm backend. */
export const maxMemoryPerInstanceOption: OptionSpec = {
  kind: "value", placeholder: "BYTES", number: { integer: true, min: 2 ** 22, max: 2 ** 32 },
  help: "wasm: bytes one WebAssembly memory may hold (default 4 GiB); a larger model spans several memories",
};

/** Attach the LoRA adapter folder --adapter names, when it is given, to the model loaded from `location`. */
export async function attachAdapter(model: Olmo, values: ReadonlyMap<string, string>, location: ModelLocation): Promise<void> {
  const adapter = values.get("adapter");
  if (adapter === undefined) return;
  if (!existsSync(adapter) || !statSync(adapter).isDirectory()) throw new UsageError(`--adapter ${adapter}: no such folder`);
  // A LoRA run's --save folder: its latest step.
  const folder = await latestCheckpointFolder(adapter);
  model.lora = await loadLoraAdapters(folderSource(folder), model);
  warnIfOtherBase(folder, location);
}

/**
 * Warn when an adapter's recorded base (adapter_config.json's base_model_name_or_path) is not the model
 * it is applied to. Only a warning: the shapes were checked, and the same base may live in another
 * folder or under a Hub name; but an adapter on the wrong base computes garbage silently.
 */
export function warnIfOtherBase(adapterFolder: string, location: ModelLocation): void {
  let recorded: unknown;
  try {
    recorded = (JSON.parse(readFileSync(join(adapterFolder, "adapter_config.json"), "utf8")) as Record<string, unknown>).base_model_name_or_path;
  } catch {
    return; // the loader has read it already; nothing to compare
  }
  if (typeof recorded !== "string" || recorded === "") return;
  const given = location.kind === "folder" ? location.folder : location.repo;
  const same = location.kind === "folder" ? existsSync(recorded) && realpathSync(recorded) === realpathSync(given) : recorded === given;
  if (!same) console.error(`warning: the adapter in ${adapterFolder} was trained on ${recorded} (its adapter_config.json's base_model_name_or_path), not ${given}`);
}

/**
 * What --embedding asks of the embedding and LM head (loadOlmo's quantizeEmbedding): false (float), a
 * scheme, or undefined (--quantize's). Checked here, so that the command line names its own flags.
 */
export function embeddingChoice(values: ReadonlyMap<string, string>, quantize: QuantScheme | "none" | undefined): boolean | QuantScheme | undefined {
  const embedding = values.get("embedding");
  if (embedding === undefined) return undefined;
  if (!["float", "int8", "int4"].includes(embedding)) throw new UsageError(`--embedding must be float, int8 or int4, got ${embedding}`);
  if (quantize === undefined || quantize === "none") throw new UsageError(`--embedding ${embedding} needs --quantize int8 or int4 (without it every weight loads as the folder stores it)`);
  if (embedding === "int4" && quantize === "int8") throw new UsageError("--embedding int4 goes with --quantize int4: int8 layers are more precise than a 4-bit LM head would be");
  return embedding === "float" ? false : (embedding as QuantScheme);
}

/** The scheme --quantize / --load-in-8bit ask for: undefined (like "none") loads every weight as the folder stores it. */
export function quantizeChoice({ values, flags }: { values: ReadonlyMap<string, string>; flags: ReadonlySet<string> }): QuantScheme | "none" | undefined {
  const quantize = values.get("quantize"), eightBit = flags.has("load-in-8bit");
  if (quantize !== undefined && !["int8", "int4", "none"].includes(quantize)) throw new UsageError(`--quantize must be int8, int4 or none, got ${quantize}`);
  if (eightBit && quantize !== undefined && quantize !== "int8") throw new UsageError(`--load-in-8bit means --quantize int8; it cannot go with --quantize ${quantize}`);
  return eightBit ? "int8" : (quantize as QuantScheme | "none" | undefined);
}
