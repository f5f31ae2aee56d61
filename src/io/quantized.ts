// Quantized checkpoints on disk: the folder formats, their quantization_config, and the bytes a model
// takes in each scheme (the schemes themselves: src/core/quantize.ts).
//
// Two folder formats are read (and written by `olmo quantize`), both Hugging Face layouts with
// "quantization_config" in config.json:
//   - int8, as transformers saves a model loaded with load_in_8bit=True (bitsandbytes LLM.int8): each
//     quantized linear layer X has X.weight (I8 [N, K]) and X.SCB (F32 [N], the rows' absmax); the
//     embedding and the LM head stay in their float dtype (bitsandbytes skips them), and
//     quantization_config says {"quant_method": "bitsandbytes", "load_in_8bit": true, ...} (olmo-js writes
//     {"quant_method": "olmo-js", "scheme": "int8"} instead when it stores the embedding int8 too);
//   - int4, this project's format: X.weight (U8 [N, K/2], two 4-bit values per byte as quantize.ts
//     packs them, rows interleaved four at a time) and X.scales (F16 [N, K/32], interleaved the same
//     way); quantization_config says {"quant_method": "olmo-js", "scheme": "int4", "group_size": 32,
//     "rows_interleaved": 4}. Folders from before the interleaving (no "rows_interleaved") are refused
//     with a message to quantize again. The embedding and LM head are int4 there too (an int8 X.weight
//     + X.SCB loads as well: any weight may be stored in either scheme).
// A weight is quantized in a file when its companion tensor (X.SCB or X.scales) is there, so a folder
// may mix quantized and float weights.

import { INT4_ROWS_INTERLEAVED, QUANT_GROUP, type QuantScheme } from "../core/quantize.js";
import type { OlmoConfig } from "../model/config.js";
import { weightShapes } from "../model/weights.js";

/** The scheme a folder's config.json declares in quantization_config, or null for a float checkpoint. Throws on schemes we cannot read. */
export function folderScheme(config: Record<string, unknown>, file: string): QuantScheme | null {
  const q = config.quantization_config;
  if (q === undefined || q === null) return null;
  const fail = (why: string): never => {
    throw new Error(`${file}: quantization_config ${why}`);
  };
  if (typeof q !== "object" || Array.isArray(q)) fail(`must be an object, got ${JSON.stringify(q)}`);
  const c = q as Record<string, unknown>;
  if (c.quant_method === "bitsandbytes") {
    if (c.load_in_4bit === true) {
      fail("is bitsandbytes 4-bit (NF4 / FP4), which olmo-js does not read; quantize the float checkpoint with `olmo quantize --to int4` instead");
    }
    if (c.load_in_8bit !== true) fail(`has quant_method "bitsandbytes" but neither load_in_8bit nor load_in_4bit is true`);
    return "int8";
  }
  if (c.quant_method === "olmo-js") {
    if (c.scheme !== "int8" && c.scheme !== "int4") fail(`has scheme ${JSON.stringify(c.scheme)}; expected "int8" or "int4"`);
    if (c.scheme === "int4" && c.group_size !== QUANT_GROUP) fail(`has group_size ${JSON.stringify(c.group_size)}; olmo-js int4 uses ${QUANT_GROUP}`);
    if (c.scheme === "int4" && c.rows_interleaved !== INT4_ROWS_INTERLEAVED) {
      fail(
        c.rows_interleaved === undefined
          ? `has no "rows_interleaved": the folder was written by an older olmo-js, whose int4 rows were not interleaved; quantize the float checkpoint again (olmo quantize --to int4)`
          : `has rows_interleaved ${JSON.stringify(c.rows_interleaved)}; olmo-js int4 interleaves ${INT4_ROWS_INTERLEAVED}`,
      );
    }
    return c.scheme as QuantScheme;
  }
  return fail(`has quant_method ${JSON.stringify(c.quant_method)}; olmo-js reads "bitsandbytes" (load_in_8bit) and "olmo-js" (int8 / int4) checkpoints`);
}

/**
 * The quantization_config `olmo quantize` writes for a scheme. An int8 folder whose embedding or LM head
 * is int8 too gets olmo-js's own config: bitsandbytes' layout keeps them float, and transformers would
 * read their integers without their scales.
 */
export function quantizationConfig(scheme: QuantScheme, options: { embeddingQuantized?: boolean } = {}): Record<string, unknown> {
  if (scheme === "int8" && options.embeddingQuantized) return { quant_method: "olmo-js", scheme };
  if (scheme === "int8") {
    // What transformers writes for BitsAndBytesConfig(load_in_8bit=True), so transformers loads the folder too.
    return {
      quant_method: "bitsandbytes", load_in_8bit: true, load_in_4bit: false, llm_int8_threshold: 6.0, llm_int8_skip_modules: null,
      llm_int8_enable_fp32_cpu_offload: false, llm_int8_has_fp16_weight: false,
    };
  }
  return {
    quant_method: "olmo-js", scheme, group_size: QUANT_GROUP, rows_interleaved: INT4_ROWS_INTERLEAVED, scale_dtype: "float16",
  };
}

/** The name of a quantized weight's scales tensor, from its weight tensor name ("X.weight" -> "X.SCB" or "X.scales"). */
export function scalesTensorName(weightTensor: string, scheme: QuantScheme): string {
  return weightTensor.replace(/\.weight$/, scheme === "int8" ? ".SCB" : ".scales");
}

/** Bytes a model's weights take on a backend: stored as f32 / bf16, or quantized with a scheme. */
export function modelBytes(config: OlmoConfig, storage: "f32" | "bf16" | QuantScheme): number {
  let bytes = 0;
  for (const [, [n, k]] of weightShapes(config)) {
    if (storage === "f32" || storage === "bf16") bytes += n * k * (storage === "f32" ? 4 : 2);
    else bytes += storage === "int8" ? n * k + 4 * n : (n * k) / 2 + (2 * n * k) / QUANT_GROUP;
  }
  return bytes;
}
