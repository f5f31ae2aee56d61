// OLMo model configurations: the released presets and any Hugging Face config.json with
// model_type "olmo" (transformers' OlmoConfig).

export interface OlmoConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention when fewer than numHeads). */
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  ropeTheta: number;
  /** Clamp q, k and v to [-clipQkv, clipQkv] (OLMo-7B-0424), or null. */
  clipQkv: number | null;
  /** The LM head is the embedding matrix (OLMo-1B). */
  tieWordEmbeddings: boolean;
  eosTokenId: number;
  padTokenId: number;
}

const common = { vocabSize: 50304, ropeTheta: 10000, eosTokenId: 50279, padTokenId: 1 };

/** The released OLMo models (hidden size, MLP size, heads, layers, context; see the OLMo paper). */
export const OLMO_PRESETS: Record<string, OlmoConfig> = {
  "OLMo-1B": {
    ...common, hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 16, numKvHeads: 16, headDim: 128,
    maxPositionEmbeddings: 2048, clipQkv: null, tieWordEmbeddings: true,
  },
  "OLMo-7B": {
    ...common, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128,
    maxPositionEmbeddings: 2048, clipQkv: null, tieWordEmbeddings: false,
  },
  "OLMo-7B-Twin-2T": {
    ...common, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128,
    maxPositionEmbeddings: 2048, clipQkv: null, tieWordEmbeddings: false,
  },
  "OLMo-7B-0424": {
    ...common, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128,
    maxPositionEmbeddings: 4096, clipQkv: 8, tieWordEmbeddings: false,
  },
};

/** Number of weights (embedding and LM head counted once when tied). */
export function parameterCount(c: OlmoConfig): number {
  const attention = c.hiddenSize * c.headDim * (2 * c.numHeads + 2 * c.numKvHeads);
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const embeddings = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  return c.numLayers * (attention + mlp) + embeddings;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Check a configuration's numbers fit together; errors name the field. */
export function validateConfig(c: OlmoConfig, where = "config"): OlmoConfig {
  const positive = ["vocabSize", "hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "maxPositionEmbeddings"] as const;
  for (const key of positive) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new ConfigError(`${where}: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) throw new ConfigError(`${where}: num_attention_heads (${c.numHeads}) must be a multiple of num_key_value_heads (${c.numKvHeads})`);
  if (c.headDim % 2 !== 0) throw new ConfigError(`${where}: the head dimension (${c.headDim}) must be even for rotary embeddings`);
  if (!(c.ropeTheta > 0)) throw new ConfigError(`${where}: rope_theta must be positive, got ${c.ropeTheta}`);
  if (c.clipQkv !== null && !(c.clipQkv > 0)) throw new ConfigError(`${where}: clip_qkv must be positive or null, got ${c.clipQkv}`);
  for (const key of ["eosTokenId", "padTokenId"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 0) throw new ConfigError(`${where}: ${key} must be a non-negative integer, got ${c[key]}`);
  }
  return c;
}

/** An OlmoConfig from a Hugging Face config.json (its text or parsed object). `file` names it in errors. */
export function configFromHf(source: string | Record<string, unknown>, file = "config.json"): OlmoConfig {
  let json: Record<string, unknown>;
  if (typeof source === "string") {
    try {
      json = JSON.parse(source) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
    }
  } else json = source;
  if (json.model_type !== "olmo") {
    throw new ConfigError(`${file}: model_type must be "olmo", got ${JSON.stringify(json.model_type)} (OLMo 2 and other families are not supported)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v)) throw new ConfigError(`${file}: ${key} must be an integer, got ${JSON.stringify(v)}`);
    return v;
  };
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") throw new ConfigError(`${file}: hidden_act must be "silu", got ${JSON.stringify(json.hidden_act)}`);
  if (json.attention_bias === true) throw new ConfigError(`${file}: attention_bias = true is not supported (OLMo has no biases)`);
  // transformers 5 nests rope settings in rope_parameters; 4.x has rope_theta and rope_scaling.
  const rope = (json.rope_parameters ?? {}) as Record<string, unknown>;
  const ropeType = rope.rope_type ?? (json.rope_scaling as Record<string, unknown> | null | undefined)?.rope_type ?? "default";
  if (ropeType !== "default") throw new ConfigError(`${file}: rope type ${JSON.stringify(ropeType)} is not supported (only "default")`);
  const ropeTheta = rope.rope_theta ?? json.rope_theta ?? 10000;
  if (typeof ropeTheta !== "number") throw new ConfigError(`${file}: rope_theta must be a number, got ${JSON.stringify(ropeTheta)}`);
  const numHeads = int("num_attention_heads");
  const hiddenSize = int("hidden_size");
  const eos = Array.isArray(json.eos_token_id) ? json.eos_token_id[0] : json.eos_token_id;
  const clip = json.clip_qkv ?? null;
  if (clip !== null && typeof clip !== "number") throw new ConfigError(`${file}: clip_qkv must be a number or null, got ${JSON.stringify(clip)}`);
  return validateConfig(
    {
      vocabSize: int("vocab_size"),
      hiddenSize,
      intermediateSize: int("intermediate_size"),
      numLayers: int("num_hidden_layers"),
      numHeads,
      numKvHeads: json.num_key_value_heads == null ? numHeads : int("num_key_value_heads"),
      headDim: json.head_dim == null ? hiddenSize / numHeads : int("head_dim"),
      maxPositionEmbeddings: int("max_position_embeddings", 2048),
      ropeTheta,
      clipQkv: clip,
      tieWordEmbeddings: json.tie_word_embeddings === true,
      eosTokenId: typeof eos === "number" ? eos : 50279,
      padTokenId: typeof json.pad_token_id === "number" ? json.pad_token_id : 1,
    },
    file,
  );
}

/** The config.json transformers writes for this configuration (loadable by OlmoForCausalLM). */
export function configToHf(c: OlmoConfig): Record<string, unknown> {
  return {
    architectures: ["OlmoForCausalLM"],
    model_type: "olmo",
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    max_position_embeddings: c.maxPositionEmbeddings,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    clip_qkv: c.clipQkv,
    tie_word_embeddings: c.tieWordEmbeddings,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    bos_token_id: null,
    torch_dtype: "float32",
  };
}
