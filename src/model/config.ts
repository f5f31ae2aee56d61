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

/** config.json's name of each field, for errors. */
const HF_NAME: Record<keyof OlmoConfig, string> = {
  vocabSize: "vocab_size", hiddenSize: "hidden_size", intermediateSize: "intermediate_size", numLayers: "num_hidden_layers",
  numHeads: "num_attention_heads", numKvHeads: "num_key_value_heads", headDim: "head_dim",
  maxPositionEmbeddings: "max_position_embeddings", ropeTheta: "rope_theta", clipQkv: "clip_qkv",
  tieWordEmbeddings: "tie_word_embeddings", eosTokenId: "eos_token_id", padTokenId: "pad_token_id",
};

/**
 * Most elements in one weight tensor: the kernels (WebAssembly, WGSL) index elements with 32-bit
 * integers, and V8's typed arrays end near there too.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
/** Most weights in a model: 2^40 (1.1 trillion, 2.2 TB in bf16) is past any JS host's memory, and byte counts stay exact. */
export const MAX_PARAMETERS = 2 ** 40;
/** Most layers (released OLMo models have at most 80): bounds the loops that list the expected tensors. */
export const MAX_LAYERS = 10_000;

/**
 * Check a configuration's numbers fit together, before anything is allocated from them; errors name
 * the config.json field and the numbers.
 */
export function validateConfig(c: OlmoConfig, where = "config"): OlmoConfig {
  const fail = (message: string): never => {
    throw new ConfigError(`${where}: ${message}`);
  };
  if (typeof c !== "object" || c === null) fail(`the configuration must be an object, got ${JSON.stringify(c)}`);
  const positive = ["vocabSize", "hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "maxPositionEmbeddings"] as const;
  for (const key of positive) {
    if (!Number.isSafeInteger(c[key]) || c[key] <= 0) fail(`${HF_NAME[key]} must be a positive integer, got ${JSON.stringify(c[key])}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) fail(`num_attention_heads (${c.numHeads}) must be a multiple of num_key_value_heads (${c.numKvHeads})`);
  if (c.headDim % 2 !== 0) fail(`the head dimension (${c.headDim}) must be even for rotary embeddings`);
  if (typeof c.ropeTheta !== "number" || !Number.isFinite(c.ropeTheta) || c.ropeTheta <= 0) fail(`rope_theta must be a positive number, got ${JSON.stringify(c.ropeTheta)}`);
  if (c.clipQkv !== null && (typeof c.clipQkv !== "number" || !Number.isFinite(c.clipQkv) || c.clipQkv <= 0)) {
    fail(`clip_qkv must be a positive number or null, got ${JSON.stringify(c.clipQkv)}`);
  }
  if (typeof c.tieWordEmbeddings !== "boolean") fail(`tie_word_embeddings must be true or false, got ${JSON.stringify(c.tieWordEmbeddings)}`);
  for (const key of ["eosTokenId", "padTokenId"] as const) {
    if (!Number.isSafeInteger(c[key]) || c[key] < 0 || c[key] >= c.vocabSize) {
      fail(`${HF_NAME[key]} must be an integer id from 0 to vocab_size - 1 = ${c.vocabSize - 1}, got ${JSON.stringify(c[key])}`);
    }
  }
  if (c.numLayers > MAX_LAYERS) fail(`num_hidden_layers is ${c.numLayers}; at most ${MAX_LAYERS} are supported`);
  // Every weight matrix, OLMo's fused ones included (att_proj: q | k | v; ff_proj: up | gate).
  const C = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const tensors: [string, number, number][] = [
    ["the embedding (vocab_size x hidden_size)", c.vocabSize, C],
    ["the fused attention projection ((q + 2 kv heads) * head_dim x hidden_size)", q + 2 * kv, C],
    ["the fused MLP projection (2 intermediate_size x hidden_size)", 2 * c.intermediateSize, C],
  ];
  for (const [what, rows, columns] of tensors) {
    if (rows * columns > MAX_TENSOR_ELEMENTS) {
      fail(`${what} would have ${rows} x ${columns} = ${rows * columns} elements; one tensor holds at most ${MAX_TENSOR_ELEMENTS} (2^31 - 1)`);
    }
  }
  const parameters = parameterCount(c);
  if (parameters > MAX_PARAMETERS) fail(`the model would have ${parameters} weights; at most ${MAX_PARAMETERS} (2^40) are supported`);
  return c;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** An OlmoConfig from a Hugging Face config.json (its text or parsed object). `file` names it in errors. */
export function configFromHf(source: string | Record<string, unknown>, file = "config.json"): OlmoConfig {
  let parsed: unknown = source;
  if (typeof source === "string") {
    try {
      parsed = JSON.parse(source);
    } catch (e) {
      throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
    }
  }
  const fail = (message: string): never => {
    throw new ConfigError(`${file}: ${message}`);
  };
  if (!isObject(parsed)) return fail(`config.json must be a JSON object, got ${Array.isArray(parsed) ? "an array" : JSON.stringify(parsed)}`);
  const json = parsed;
  const show = (v: unknown) => (v === undefined ? "nothing (the field is missing)" : JSON.stringify(v).slice(0, 100));
  if (json.model_type !== "olmo") {
    fail(`model_type must be "olmo", got ${show(json.model_type)} (OLMo 2 and other families are not supported)`);
  }
  // Optional fields may be absent or null (transformers writes null for "unset").
  const given = (key: string) => json[key] !== undefined && json[key] !== null;
  const int = (key: string, fallback?: number): number => {
    const v = given(key) ? json[key] : fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) return fail(`${key} must be an integer, got ${show(json[key])}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = given(key) ? json[key] : fallback;
    if (typeof v !== "boolean") return fail(`${key} must be true or false, got ${show(json[key])}`);
    return v;
  };
  if (given("hidden_act") && json.hidden_act !== "silu") fail(`hidden_act must be "silu", got ${show(json.hidden_act)}`);
  if (bool("attention_bias", false)) fail("attention_bias = true is not supported (OLMo has no biases)");
  // transformers 5 nests rope settings in rope_parameters; 4.x has rope_theta and rope_scaling. Any
  // scaling changes the rotary angles, so what is not implemented is refused, not ignored.
  if (given("rope_scaling")) fail(`rope_scaling must be null (RoPE scaling is not supported), got ${show(json.rope_scaling)}`);
  let ropeTheta: unknown = given("rope_theta") ? json.rope_theta : 10000;
  if (given("rope_parameters")) {
    const rope = json.rope_parameters;
    if (!isObject(rope)) return fail(`rope_parameters must be an object or null, got ${show(rope)}`);
    if (rope.rope_type !== undefined && rope.rope_type !== "default") {
      fail(`rope_parameters.rope_type must be "default" (RoPE scaling is not supported), got ${show(rope.rope_type)}`);
    }
    for (const key of Object.keys(rope)) {
      if (key !== "rope_type" && key !== "rope_theta") fail(`rope_parameters.${key} is not supported (only rope_type "default" and rope_theta), got ${show(rope[key])}`);
    }
    if (rope.rope_theta !== undefined) ropeTheta = rope.rope_theta;
  }
  if (typeof ropeTheta !== "number") return fail(`rope_theta must be a number, got ${show(ropeTheta)}`);
  const numHeads = int("num_attention_heads");
  const hiddenSize = int("hidden_size");
  if (!given("head_dim") && numHeads > 0 && hiddenSize % numHeads !== 0) {
    fail(`hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}) when head_dim is not given`);
  }
  // eos_token_id may be a list (generation stops at any of them); the first is the one appended.
  let eos: unknown = json.eos_token_id;
  if (Array.isArray(eos)) {
    if (eos.length === 0) fail("eos_token_id must be an integer or a non-empty list of integers, got []");
    eos = eos[0];
  }
  if (eos !== undefined && eos !== null && (typeof eos !== "number" || !Number.isSafeInteger(eos))) fail(`eos_token_id must be an integer, got ${show(json.eos_token_id)}`);
  const clip = given("clip_qkv") ? json.clip_qkv : null;
  if (clip !== null && typeof clip !== "number") return fail(`clip_qkv must be a number or null, got ${show(clip)}`);
  return validateConfig(
    {
      vocabSize: int("vocab_size"),
      hiddenSize,
      intermediateSize: int("intermediate_size"),
      numLayers: int("num_hidden_layers"),
      numHeads,
      numKvHeads: given("num_key_value_heads") ? int("num_key_value_heads") : numHeads,
      headDim: given("head_dim") ? int("head_dim") : hiddenSize / numHeads,
      maxPositionEmbeddings: int("max_position_embeddings", 2048),
      ropeTheta,
      clipQkv: clip,
      tieWordEmbeddings: bool("tie_word_embeddings", false),
      // transformers' OlmoConfig defaults: eos_token_id 50279, pad_token_id 1.
      eosTokenId: typeof eos === "number" ? eos : 50279,
      padTokenId: int("pad_token_id", 1),
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
