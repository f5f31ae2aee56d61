// OLMo: configuration, model, loading and generation.
import type { AnyBackend } from "../core/tensor.js";
import { loadCheckpoint, type LoadOptions, type ModelSource } from "../io/checkpoint.js";
import { Tokenizer } from "../tokenizer/index.js";
import { Olmo } from "./olmo.js";

export { Olmo, KVCache } from "./olmo.js";
export { generate, chooseToken, banRepeatedNgrams, topKFilter, topPFilter, type GenerateOptions, type GenerateResult } from "./generate.js";
export { OLMO_PRESETS, configFromHf, configToHf, parameterCount, validateConfig, ConfigError, type OlmoConfig } from "./config.js";

/** Load a model folder: the model on `backend`, and its tokenizer when the folder has tokenizer.json. */
export async function loadOlmo(
  source: ModelSource,
  backend: AnyBackend,
  options: LoadOptions = {},
): Promise<{ model: Olmo; tokenizer: Tokenizer | null; layout: "hf" | "olmo" }> {
  const checkpoint = await loadCheckpoint(source, backend, options);
  const model = new Olmo(checkpoint.config, checkpoint.weights);
  const tokenizer = checkpoint.tokenizerJson ? new Tokenizer(checkpoint.tokenizerJson, { eosTokenId: checkpoint.config.eosTokenId }) : null;
  return { model, tokenizer, layout: checkpoint.layout };
}
