// config.json: every field is checked for type and range before anything is allocated from it, and
// what the model does not implement (RoPE scaling, biases) is refused; errors name the file and field.

import { test } from "uvu";
import { configFromHf, configToHf, ConfigError, OLMO_PRESETS, validateConfig } from "../src/index.js";
import { readJson } from "./helpers.js";

const good = readJson<Record<string, unknown>>("models/olmo-tiny-shakespeare/config.json");

/** Throws unless configFromHf(json) throws a ConfigError whose message contains every fragment. */
function expectError(json: unknown, ...fragments: string[]): void {
  let error: unknown = null;
  try {
    configFromHf(json as Record<string, unknown>, "dir/config.json");
  } catch (e) {
    error = e;
  }
  if (error === null) throw new Error(`expected an error mentioning ${fragments.join(", ")}; none was thrown`);
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  for (const f of ["dir/config.json", ...fragments]) if (!error.message.includes(f)) throw new Error(`error "${error.message}" does not mention "${f}"`);
}

test("the bundled model's config and every preset round-trip through config.json", () => {
  const c = configFromHf(good);
  if (c.vocabSize !== 50304 || c.headDim !== 32 || c.eosTokenId !== 50279 || !c.tieWordEmbeddings) throw new Error(JSON.stringify(c));
  for (const [name, preset] of Object.entries(OLMO_PRESETS)) {
    const back = configFromHf(JSON.stringify(configToHf(preset)), name);
    for (const key of Object.keys(preset) as (keyof typeof preset)[]) {
      if (back[key] !== preset[key]) throw new Error(`${name}: ${key} is ${back[key]} after the round trip, ${preset[key]} before`);
    }
  }
});

test("a config.json that is not an object is refused", () => {
  for (const json of [null, [1, 2], 3, "x", true]) expectError(JSON.stringify(json), "config.json must be a JSON object");
  expectError("{oops", "not valid JSON");
});

test("RoPE scaling is refused, not ignored", () => {
  expectError({ ...good, rope_scaling: { type: "linear", factor: 2 } }, "rope_scaling must be null", "linear");
  expectError({ ...good, rope_scaling: { rope_type: "dynamic", factor: 2 } }, "rope_scaling must be null");
  expectError({ ...good, rope_parameters: { rope_type: "yarn", rope_theta: 10000, factor: 4 } }, 'rope_parameters.rope_type must be "default"');
  expectError({ ...good, rope_parameters: { rope_theta: 10000, factor: 4 } }, "rope_parameters.factor is not supported");
  expectError({ ...good, rope_parameters: 5 }, "rope_parameters must be an object");
  // transformers 5's own form is accepted.
  const c = configFromHf({ ...good, rope_theta: undefined, rope_parameters: { rope_type: "default", rope_theta: 500000 } });
  if (c.ropeTheta !== 500000) throw new Error(`rope_theta ${c.ropeTheta}`);
});

test("every field is checked for its type and range, the field named", () => {
  expectError({ ...good, eos_token_id: 50304 }, "eos_token_id must be an integer id from 0 to vocab_size - 1 = 50303", "50304");
  expectError({ ...good, eos_token_id: [] }, "eos_token_id");
  expectError({ ...good, eos_token_id: "50279" }, "eos_token_id must be an integer");
  expectError({ ...good, pad_token_id: "1" }, "pad_token_id must be an integer");
  expectError({ ...good, pad_token_id: -1 }, "pad_token_id must be an integer id");
  expectError({ ...good, vocab_size: 0 }, "vocab_size must be a positive integer");
  expectError({ ...good, vocab_size: 2.5 }, "vocab_size must be an integer");
  expectError({ ...good, hidden_size: "128" }, "hidden_size must be an integer");
  expectError({ ...good, hidden_size: 2 ** 53 + 2 }, "hidden_size must be an integer");
  expectError({ ...good, num_hidden_layers: -1 }, "num_hidden_layers must be a positive integer");
  expectError({ ...good, num_attention_heads: 5 }, "hidden_size (128) must be a multiple of num_attention_heads (5)");
  expectError({ ...good, num_key_value_heads: 3 }, "num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
  expectError({ ...good, head_dim: 25 }, "head dimension (25) must be even");
  expectError({ ...good, max_position_embeddings: 0 }, "max_position_embeddings must be a positive integer");
  expectError({ ...good, rope_theta: -1 }, "rope_theta must be a positive number");
  expectError({ ...good, rope_theta: "1e4" }, "rope_theta must be a number");
  expectError({ ...good, clip_qkv: "8" }, "clip_qkv must be a number or null");
  expectError({ ...good, clip_qkv: 0 }, "clip_qkv must be a positive number or null");
  expectError({ ...good, tie_word_embeddings: "yes" }, "tie_word_embeddings must be true or false");
  expectError({ ...good, attention_bias: true }, "attention_bias = true is not supported");
  expectError({ ...good, attention_bias: 1 }, "attention_bias must be true or false");
  expectError({ ...good, hidden_act: "gelu" }, 'hidden_act must be "silu"');
  expectError({ ...good, model_type: "olmo2" }, 'model_type must be "olmo"');
  expectError({ ...good, vocab_size: undefined }, "vocab_size must be an integer", "missing");
});

test("sizes past what a JS host can hold are refused, with the numbers, before any allocation", () => {
  expectError({ ...good, vocab_size: 1_000_000_000_000 }, "the embedding", "1000000000000 x 128", "2147483647");
  expectError({ ...good, intermediate_size: 2 ** 40 }, "the fused MLP projection");
  expectError({ ...good, num_hidden_layers: 1_000_000 }, "num_hidden_layers is 1000000; at most 10000");
  // Each tensor fits, but 10,000 layers of 2.5 billion weights do not.
  expectError({ ...good, hidden_size: 8192, num_attention_heads: 64, intermediate_size: 100_000, num_hidden_layers: 10_000 }, "weights; at most 1099511627776");
});

test("validateConfig checks configurations built in code too", () => {
  const preset = OLMO_PRESETS["OLMo-1B"]!;
  for (const [patch, fragment] of [
    [{ eosTokenId: 60000 }, "eos_token_id"],
    [{ numKvHeads: 0 }, "num_key_value_heads must be a positive integer"],
    [{ ropeTheta: Number.NaN }, "rope_theta"],
    [{ tieWordEmbeddings: undefined }, "tie_word_embeddings"],
  ] as const) {
    let message = "";
    try {
      validateConfig({ ...preset, ...patch } as never, "preset");
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes(fragment)) throw new Error(`${JSON.stringify(patch)}: "${message}" lacks "${fragment}"`);
  }
});

test.run();
