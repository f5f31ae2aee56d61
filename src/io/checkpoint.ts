// Loading OLMo checkpoints from the folders users already have.
//
// A ModelSource is a folder of files, whatever holds it (a directory on disk, a URL prefix, files a
// user picked in a browser); this module only asks it for files by name and reads byte ranges, so the
// same loader runs on every host. Two layouts are understood:
//   - Hugging Face (`OlmoForCausalLM.save_pretrained`): model.embed_tokens, model.layers.N.self_attn.
//     {q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, lm_head (absent when tied);
//   - OLMo's own: transformer.wte, transformer.blocks.N.att_proj (q | k | v stacked by rows),
//     attn_out, ff_proj (up | gate stacked by rows), ff_out, transformer.ff_out (the LM head).
// in one model.safetensors or sharded with model.safetensors.index.json. Every name, shape and dtype
// is checked against config.json before any weight is read, and all problems are reported together.
// Weights may be quantized as they stream in (options.quantize), or come quantized in the folder
// (the formats: src/io/quantized.ts).

import { formatBytes } from "../core/format.js";
import { BYTES_PER_ELEMENT, narrowFromF32, widenToF32, type DType, type HostArray } from "../core/dtype.js";
import {
  emptyFusedRows, INT4_ROWS_INTERLEAVED, QUANT_SCHEMES, quantizedShapes, quantizeHost, quantizeProblem, QuantizedWeight, type QuantScheme, type Weight,
} from "../core/quantize.js";
import { Tensor, type AnyBackend } from "../core/tensor.js";
import { quantize as quantizeOp } from "../ops/quantized.js";
import { configFromHf, parameterCount, type OlmoConfig } from "../model/config.js";
import { Olmo } from "../model/olmo.js";
import { FUSED_PROJECTIONS, weightShapes, type WeightName } from "../model/weights.js";
import { Tokenizer } from "../tokenizer/index.js";
import { folderScheme, modelBytes, scalesTensorName } from "./quantized.js";
import { assertFinite, readInto, readSafetensorsHeader, type ByteSource, type TensorEntry } from "./safetensors.js";

export interface ModelSource {
  /** Shown in errors: the folder path or URL. */
  readonly name: string;
  /** A file of the folder, or null when there is no such file. */
  open(file: string): Promise<ByteSource | null>;
}

const MAX_PROBLEMS_SHOWN = 20;

export class CheckpointError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    // A folder that is wrong throughout (another model's config, an old layout) can have hundreds of
    // problems; the first ones say what is wrong, the property keeps them all.
    const shown = problems.length > MAX_PROBLEMS_SHOWN ? [...problems.slice(0, MAX_PROBLEMS_SHOWN), `... and ${problems.length - MAX_PROBLEMS_SHOWN} more`] : problems;
    super(`cannot load the checkpoint in ${source}: ${problems.length} problem(s):\n  - ${shown.join("\n  - ")}`);
    this.name = "CheckpointError";
  }
}

export interface LoadOptions {
  /** Storage of the weights: "f32", "bf16" (f16 files stay f16), or "auto" (default): f32 below 200M parameters. */
  weightDType?: "f32" | "bf16" | "auto";
  /** Called as bytes are read. */
  onProgress?: (bytesRead: number, bytesTotal: number) => void;
  /** Extra bytes the caller will need on the backend (KV cache, activations), for the fit check. */
  extraBytes?: number | ((config: OlmoConfig) => number);
  /** Load weights that are NaN or infinite instead of refusing them (default false). */
  allowNonFinite?: boolean;
  /**
   * Quantize the float weights as they stream in (src/core/quantize.ts), the embedding and LM head
   * too unless quantizeEmbedding says otherwise. Default "none": every weight loads as the folder stores
   * it, so a quantized folder's quantized weights stay quantized and its float ones (such as a
   * transformers 8-bit folder's embedding and LM head) stay float, as transformers runs them. A scheme
   * the folder's quantized weights are not in is refused: they cannot be quantized again.
   */
  quantize?: QuantScheme | "none";
  /**
   * With quantize, the embedding and LM head (the largest single weights; OLMo-1B reads its tied one whole
   * for every token): true (default) quantizes them with quantize's scheme; a scheme of their own
   * ("int8" under int4 keeps the logits more precise, as ggml keeps its output layer above Q4_0, for
   * about 5% of an int4 token's time on OLMo-1B; "int4" only under int4); false keeps them float, as
   * bitsandbytes' load_in_8bit does. Stored quantized ones must already be in the scheme asked (they
   * cannot be quantized again, nor made float). A scheme here needs quantize.
   */
  quantizeEmbedding?: boolean | QuantScheme;
}

export interface LoadedCheckpoint {
  config: OlmoConfig;
  weights: Map<WeightName, Weight>;
  /** tokenizer.json of the folder, when present. */
  tokenizerJson: string | null;
  layout: "hf" | "olmo";
  /** The dtype of the float weights. */
  weightDType: DType;
  /** The scheme of the quantized weights, or null when none is quantized. */
  quantization: QuantScheme | null;
}

export async function readTextFile(source: ModelSource, file: string): Promise<string | null> {
  const bytes = await source.open(file);
  if (!bytes) return null;
  return new TextDecoder().decode(await bytes.read(0, bytes.size));
}

/**
 * The JSON object in `text`, the contents of `file` (named in errors): text that is not JSON, or JSON
 * that is not an object (a file hand-edited or cut short by a crash), is an error naming the file.
 */
export function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${file}: expected a JSON object, got ${JSON.stringify(value)?.slice(0, 40)}`);
  return value as Record<string, unknown>;
}

/** One model weight and where its rows come from in the files. */
interface Slice {
  weight: WeightName;
  shape: [number, number];
  entry: TensorEntry;
  /** First row taken from the file tensor (fused OLMo tensors hold several weights). */
  rowStart: number;
  /** Set when the file holds this weight quantized. */
  quantized?: QuantizedEntry;
}

/** A weight the file holds quantized: its scheme, its scales tensor, and (int8) bitsandbytes' weight_format beside it. */
interface QuantizedEntry {
  scheme: QuantScheme;
  scales: TensorEntry;
  format?: TensorEntry;
}

/** The Hugging Face tensor name of a weight (as OlmoForCausalLM.save_pretrained writes it). */
export function hfTensorName(weight: WeightName): string {
  if (weight === "embed") return "model.embed_tokens.weight";
  if (weight === "lmHead") return "lm_head.weight";
  const [, layer, part] = weight.split(".") as [string, string, string];
  const module = ["q", "k", "v", "o"].includes(part) ? `self_attn.${part}_proj` : `mlp.${part}_proj`;
  return `model.layers.${layer}.${module}.weight`;
}

/** The file tensor name(s) each weight comes from, with the expected file shapes. */
function expectedTensors(c: OlmoConfig, layout: "hf" | "olmo", prefix: string): Map<string, { shape: [number, number]; slices: [WeightName, number, number][] }> {
  const shapes = weightShapes(c);
  const m = new Map<string, { shape: [number, number]; slices: [WeightName, number, number][] }>();
  /** One file tensor holding `weights` stacked by rows, in this order. */
  const add = (name: string, weights: WeightName[]) => {
    const columns = shapes.get(weights[0]!)![1];
    let rows = 0;
    const slices: [WeightName, number, number][] = weights.map((w) => {
      const start = rows;
      rows += shapes.get(w)![0];
      return [w, start, shapes.get(w)![0]];
    });
    m.set(prefix + name, { shape: [rows, columns], slices });
  };
  if (layout === "hf") {
    for (const weight of shapes.keys()) add(hfTensorName(weight), [weight]);
  } else {
    add("transformer.wte.weight", ["embed"]);
    if (!c.tieWordEmbeddings) add("transformer.ff_out.weight", ["lmHead"]);
    for (let i = 0; i < c.numLayers; i++) {
      const p = `transformer.blocks.${i}.`;
      add(`${p}att_proj.weight`, [`layers.${i}.q`, `layers.${i}.k`, `layers.${i}.v`]);
      add(`${p}attn_out.weight`, [`layers.${i}.o`]);
      // OLMo's MLP: x, gate = ff_proj(h).chunk(2); act(gate) * x: the first half of the rows is "up".
      add(`${p}ff_proj.weight`, [`layers.${i}.up`, `layers.${i}.gate`]);
      add(`${p}ff_out.weight`, [`layers.${i}.down`]);
    }
  }
  return m;
}

/** Open the weight files: model.safetensors, or the shards named by model.safetensors.index.json. */
async function openWeightFiles(source: ModelSource, problems: string[], inMissingShards: Set<string>): Promise<Map<string, TensorEntry>> {
  const entries = new Map<string, TensorEntry>();
  const missing = new Set<string>();
  const indexName = `${source.name}/model.safetensors.index.json`;
  const indexText = await readTextFile(source, "model.safetensors.index.json");
  let files: string[];
  let weightMap: Record<string, string> | null = null;
  if (indexText !== null) {
    let index: unknown;
    try {
      index = JSON.parse(indexText);
    } catch (e) {
      problems.push(`${indexName}: not valid JSON (${(e as Error).message})`);
      return entries;
    }
    const map = typeof index === "object" && index !== null ? (index as { weight_map?: unknown }).weight_map : undefined;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      problems.push(`${indexName}: no "weight_map" object`);
      return entries;
    }
    // Shards are files of this folder: a name with a separator or ".." would read outside it.
    const problemsBefore = problems.length;
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== "string" || file === "" || file === "." || file === ".." || /[/\\]/.test(file)) {
        problems.push(`${indexName}: weight_map["${name}"] must be the file name of a shard in the folder (no "/", "\\" or ".."), got ${JSON.stringify(file)}`);
      }
    }
    if (problems.length > problemsBefore) return entries;
    weightMap = map as Record<string, string>;
    files = [...new Set(Object.values(weightMap))];
  } else {
    files = ["model.safetensors"];
  }
  for (const file of files) {
    const bytes = await source.open(file);
    if (!bytes) {
      missing.add(file);
      problems.push(
        indexText !== null ? `${source.name}/${file}: shard named in model.safetensors.index.json is missing` : `${source.name}: no model.safetensors or model.safetensors.index.json`,
      );
      continue;
    }
    const header = await readSafetensorsHeader(bytes, problems);
    for (const [name, entry] of header.tensors) {
      if (entries.has(name)) problems.push(`${bytes.name}: tensor "${name}" also appears in ${entries.get(name)!.file.name}`);
      else if (weightMap && weightMap[name] !== undefined && weightMap[name] !== file) {
        problems.push(`${bytes.name}: tensor "${name}" is listed under ${weightMap[name]} in the index`);
      } else entries.set(name, entry);
    }
  }
  if (weightMap) {
    for (const [name, file] of Object.entries(weightMap)) {
      // A missing shard is one problem, not one per tensor it should hold.
      if (missing.has(file)) inMissingShards.add(name);
      else if (!entries.has(name) && files.includes(file)) problems.push(`${source.name}/${file}: tensor "${name}" is in the index but not in the shard`);
    }
  }
  return entries;
}

/**
 * Throw, with the numbers, when a model's weights (stored as `storage`: f32, bf16, or quantized) plus
 * `extraBytes` (KV cache, activations) cannot fit what the backend can still hold (its memoryUsage()
 * limit less what is in use); a backend whose limit is Infinity accepts everything. `exactWeightBytes`,
 * when the caller knows each weight's storage (a folder with quantized and float weights side by
 * side), replaces the estimate from `storage`.
 */
export function checkFits(
  config: OlmoConfig, storage: "f32" | "bf16" | QuantScheme, backend: AnyBackend, extraBytes: number, name: string, exactWeightBytes?: number,
): void {
  const usage = backend.memoryUsage();
  const weightBytes = exactWeightBytes ?? modelBytes(config, storage);
  if (usage.inUse + weightBytes + extraBytes > usage.limit) {
    // Below a gigabyte in MiB (formatBytes): an edge runtime's budget is 128 MiB, which "0.13 GB" would blur.
    const amount = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : formatBytes(b));
    throw new Error(
      `${name}: the model does not fit the ${backend.name} backend: its ${parameterCount(config).toLocaleString("en")} weights take ` +
        `${amount(weightBytes)} ${exactWeightBytes === undefined ? `in ${storage}` : `as they load (${storage} and float)`} plus ${amount(extraBytes)} for the KV cache, activations or training state, but the ${backend.name} backend holds ` +
        `at most ${amount(usage.limit)} (${amount(usage.inUse)} already in use). ` +
        (storage === "f32"
          ? "Store the weights in bf16 (--dtype bf16)."
          : storage === "bf16"
            ? "Quantize them (--quantize int8 or int4), or use a backend with more memory (webgpu on a GPU)."
            : "Use a backend with more memory (webgpu on a GPU) for models of this size."),
    );
  }
}

/** The safetensors dtypes the loader reads, as the engine's dtypes. */
const FILE_DTYPE = { F32: { dtype: "f32", bytes: 4 }, BF16: { dtype: "bf16", bytes: 2 }, F16: { dtype: "f16", bytes: 2 } } as const;

/** Bytes read per step, so progress moves while a large tensor (an embedding of 200 MB) streams in. */
const READ_CHUNK_BYTES = 32 * 2 ** 20;

/**
 * One weight from a file onto the backend, as `storage`. Where the backend's buffers are host memory
 * (wasm, js), the file's bytes are read into the tensor's own memory (the source copies them there, with
 * no host array of the whole tensor) — or, when the dtype changes, into a staging tensor of the file's
 * dtype that the backend's `cast` kernel converts (on every thread). Elsewhere (WebGPU) they are read,
 * converted on the host and uploaded. Both paths give the same bits: cast rounds f32 to bf16 to nearest even, as
 * narrowFromF32 does, and widening is exact.
 */
async function loadTensor(
  file: ByteSource, offset: number, shape: [number, number], fileDType: string, storage: DType, backend: AnyBackend, progress: (bytes: number) => void,
  checkFinite?: (fileBytes: Uint8Array, firstElement: number) => void,
): Promise<Tensor> {
  const from = FILE_DTYPE[fileDType as keyof typeof FILE_DTYPE].dtype;
  const tensor = Tensor.empty(shape, storage, backend);
  const staging = from === storage || !backend.rawBytes ? tensor : Tensor.empty(shape, from, backend);
  try {
    if (backend.rawBytes?.(staging.bufferFor("load"), from, staging.size)) {
      const length = staging.size * BYTES_PER_ELEMENT[from];
      if (file.prefault) prefault(backend, staging);
      for (let done = 0; done < length; done += READ_CHUNK_BYTES) {
        // Asked for again each time: growing a WebAssembly memory may replace its ArrayBuffer.
        const view = backend.rawBytes(staging.bufferFor("load"), from, staging.size)!;
        const chunk = Math.min(READ_CHUNK_BYTES, length - done);
        await readInto(file, offset + done, view.subarray(done, done + chunk));
        checkFinite?.(view.subarray(done, done + chunk), done / BYTES_PER_ELEMENT[from]);
        progress(chunk * (BYTES_PER_ELEMENT[storage] / BYTES_PER_ELEMENT[from]));
      }
      if (staging !== tensor) {
        backend.kernels.cast({ x: staging.bufferFor("load"), from, out: tensor.bufferFor("load"), to: storage, size: tensor.size });
      }
    } else {
      const bytes = await file.read(offset, tensor.size * BYTES_PER_ELEMENT[from]);
      checkFinite?.(bytes, 0);
      backend.upload(tensor.bufferFor("load"), storage, convert(bytes, fileDType, storage));
      progress(tensor.size * BYTES_PER_ELEMENT[storage]);
    }
  } catch (e) {
    tensor.dispose();
    throw e;
  } finally {
    if (staging !== tensor) staging.dispose();
  }
  return tensor;
}

/**
 * Write zeros over a new tensor on every thread of the backend, before a file read fills it, for
 * sources that ask (ByteSource.prefault): where a host makes the first touch of a page slow, the
 * faults then run on every core (src/node/fs.ts says why, bench/NOTES.md "Loading" measures it).
 * Where pages are cheap, this costs a memset.
 */
function prefault(backend: AnyBackend, tensor: Tensor): void {
  backend.kernels.fill({ out: tensor.bufferFor("load"), dtype: tensor.dtype, size: tensor.size, value: 0 });
}

/** The host array of a file tensor's bytes converted to the storage dtype. */
function convert(bytes: Uint8Array, fileDType: string, storage: DType): HostArray {
  // Views need aligned, exclusive buffers: copy when the reader handed out a shared or unaligned slice.
  const own = bytes.byteOffset % 4 === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  if (fileDType === "F32") {
    const values = new Float32Array(own.buffer, own.byteOffset, own.byteLength / 4);
    return storage === "f32" ? values : narrowFromF32(values, storage as "bf16" | "f16");
  }
  const bits = new Uint16Array(own.buffer, own.byteOffset, own.byteLength / 2);
  const fileStorage = fileDType === "BF16" ? "bf16" : "f16";
  if (storage === fileStorage) return bits;
  return storage === "f32" ? widenToF32(bits, fileStorage) : narrowFromF32(widenToF32(bits, fileStorage), storage as "bf16" | "f16");
}

/** Load an OLMo checkpoint folder onto `backend`. Throws CheckpointError listing every problem found. */
export async function loadCheckpoint(source: ModelSource, backend: AnyBackend, options: LoadOptions = {}): Promise<LoadedCheckpoint> {
  // The options first: nothing is read for a call that cannot run.
  if (options.quantize !== undefined && options.quantize !== "none" && !QUANT_SCHEMES.includes(options.quantize)) {
    throw new CheckpointError(source.name, [`unknown quantization scheme ${JSON.stringify(options.quantize)}; expected "int8", "int4" or "none"`]);
  }
  const embedding = options.quantizeEmbedding;
  if (embedding !== undefined && typeof embedding !== "boolean" && !QUANT_SCHEMES.includes(embedding)) {
    throw new CheckpointError(source.name, [`quantizeEmbedding must be true, false (float), "int8" or "int4", got ${JSON.stringify(embedding)}`]);
  }
  if (typeof embedding === "string" && (options.quantize === undefined || options.quantize === "none")) {
    throw new CheckpointError(source.name, [`quantizeEmbedding "${embedding}" needs quantize "int8" or "int4" (without quantize every weight loads as stored)`]);
  }
  if (embedding === "int4" && options.quantize === "int8") {
    throw new CheckpointError(source.name, [`quantizeEmbedding "int4" goes with quantize "int4": int8 layers are more precise than a 4-bit LM head would be`]);
  }
  if (options.weightDType !== undefined && !["f32", "bf16", "auto"].includes(options.weightDType)) {
    throw new CheckpointError(source.name, [`weightDType must be "f32", "bf16" or "auto", got ${JSON.stringify(options.weightDType)}`]);
  }
  const configText = await readTextFile(source, "config.json");
  if (configText === null) throw new CheckpointError(source.name, ["config.json is missing"]);
  const config = configFromHf(configText, `${source.name}/config.json`);
  const tokenizerJson = await readTextFile(source, "tokenizer.json");

  const problems: string[] = [];
  let inFolder: QuantScheme | null = null;
  let configSaysWhy = false; // its quantization_config is wrong, which says why its tensors are not what it declares
  try {
    inFolder = folderScheme(JSON.parse(configText) as Record<string, unknown>, `${source.name}/config.json`);
  } catch (e) {
    problems.push((e as Error).message);
    configSaysWhy = true;
  }
  const quantizeTo = options.quantize === undefined || options.quantize === "none" ? null : options.quantize;
  const inMissingShards = new Set<string>();
  const entries = await openWeightFiles(source, problems, inMissingShards);
  const names = [...entries.keys()];
  const prefix = names.some((n) => n.startsWith("model.transformer.")) ? "model." : "";
  const layout = names.some((n) => n.startsWith(`${prefix}transformer.`)) ? "olmo" : "hf";
  const expected = expectedTensors(config, layout, prefix);
  const slices: Slice[] = [];
  const companions = new Set<string>();
  // Said once for the folder, not once per tensor: int4 tensors whose row order config.json does not
  // declare, and quantized tensors in another scheme than the one asked for.
  const undeclaredInt4: string[] = [];
  /** Quantized tensors stored otherwise than asked, by what was asked and how they are stored. */
  const otherScheme = new Map<string, { asked: string; stored: QuantScheme; embedding: boolean; tensors: string[] }>();
  const embeddingScheme = embedding === false ? null : embedding === true || embedding === undefined ? quantizeTo : embedding;
  /** The weights quantizeEmbedding speaks for. */
  const isEmbedding = (weight: WeightName) => weight === "embed" || weight === "lmHead";
  /** The scheme quantize / quantizeEmbedding ask of a weight (null: none asked: it loads as stored, or float). */
  const askedOf = (weight: WeightName): QuantScheme | null => (!quantizeTo ? null : isEmbedding(weight) ? embeddingScheme : quantizeTo);
  for (const [name, { shape, slices: parts }] of expected) {
    const entry = entries.get(name);
    if (!entry) {
      if (inMissingShards.has(name)) continue;
      if (entries.size > 0 || problems.length === 0) problems.push(`missing tensor "${name}" (${layout === "hf" ? "Hugging Face" : "OLMo"} layout, shape [${shape}])`);
      continue;
    }
    // Its scales, even when malformed (reported once, as its scales, not again as unexpected tensors).
    for (const scheme of QUANT_SCHEMES) if (entries.has(scalesTensorName(name, scheme))) companions.add(scalesTensorName(name, scheme));
    if (entries.has(weightFormatName(name)) && entries.has(scalesTensorName(name, "int8"))) companions.add(weightFormatName(name));
    const quantized = quantizedInFile(name, shape, entry, entries, problems);
    if (quantized === "bad") continue;
    if (quantized?.scheme === "int8" && entries.has(weightFormatName(name))) {
      // Its one byte is read with the weight (loadQuantized), not here: a request of its own per layer.
      const format = entries.get(weightFormatName(name))!;
      if (format.dtype !== "U8" || format.shape.reduce((a, b) => a * b, 1) !== 1) {
        problems.push(`${format.file.name}: tensor "${format.name}" must be one U8 value (bitsandbytes' weight layout), got ${format.dtype} [${format.shape}]`);
      }
      quantized.format = format;
    }
    if (quantized && quantized.scheme === "int4" && inFolder !== "int4") {
      // Only a config that declares olmo-js int4 says in which order the tensor's rows are stored.
      undeclaredInt4.push(`${entry.file.name}: "${name}" (with "${quantized.scales.name}")`);
      continue;
    }
    if (quantized && quantizeTo && quantized.scheme !== askedOf(parts[0]![0])) {
      const embeddingWeight = isEmbedding(parts[0]![0]);
      const asked = embeddingWeight && embedding !== undefined && embedding !== true ? `quantizeEmbedding ${JSON.stringify(embedding)}` : `quantize "${quantizeTo}"`;
      const key = `${asked} ${quantized.scheme}`;
      if (!otherScheme.has(key)) otherScheme.set(key, { asked, stored: quantized.scheme, embedding: embeddingWeight, tensors: [] });
      otherScheme.get(key)!.tensors.push(name);
      continue;
    }
    if (quantized && parts.length > 1) {
      problems.push(`${entry.file.name}: tensor "${name}" is quantized, but quantized checkpoints must use the Hugging Face layout (one tensor per weight)`);
      continue;
    }
    if (quantized) {
      slices.push({ weight: parts[0]![0], shape, entry, rowStart: 0, quantized });
      continue;
    }
    if (entry.shape.join() !== shape.join()) {
      const int4Values = entry.dtype === "U8" && entry.shape.join() === [shape[0], shape[1] / 2].join();
      problems.push(
        `${entry.file.name}: tensor "${name}" has shape [${entry.shape}], config.json implies [${shape}]` +
          (int4Values ? ` (as U8 [${entry.shape}] it would be int4, but its scales "${scalesTensorName(name, "int4")}" are missing)` : ""),
      );
      continue;
    }
    if (!["F32", "BF16", "F16"].includes(entry.dtype)) {
      // Its scales may be in a shard that is missing (said once, above).
      if (QUANT_SCHEMES.some((scheme) => inMissingShards.has(scalesTensorName(name, scheme)))) continue;
      problems.push(`${entry.file.name}: tensor "${name}" has dtype ${entry.dtype}; expected F32, BF16 or F16` + (entry.dtype === "I8" ? ` (an int8 weight needs its scales "${scalesTensorName(name, "int8")}" beside it)` : ""));
      continue;
    }
    for (const [weight, rowStart, rows] of parts) {
      const scheme = askedOf(weight);
      if (scheme) {
        const problem = quantizeProblem(scheme, rows, shape[1]);
        if (problem) problems.push(`tensor "${name}" (${weight}): ${problem}`);
      }
      slices.push({ weight, shape: [rows, shape[1]], entry, rowStart });
    }
  }
  if (undeclaredInt4.length && !configSaysWhy) {
    problems.push(
      `${undeclaredInt4.length} tensor(s) are int4, such as ${undeclaredInt4[0]}, but config.json's quantization_config does not declare ` +
        `olmo-js int4 with "rows_interleaved": ${INT4_ROWS_INTERLEAVED}, so the order of their rows is unknown (an olmo-js int4 folder declares it; one written ` +
        `before the rows were interleaved does not); quantize the float checkpoint again (olmo quantize --to int4)`,
    );
  }
  // A folder may mix schemes: an int4 folder with an int8 embedding (`olmo quantize --embedding int8`, or
  // written before int4 took the embedding too) runs as int4 with that one in int8.
  const asStored = (scheme: QuantScheme, count: number) =>
    inFolder && inFolder !== scheme ? `${inFolder}, with those ${count} in ${scheme} as stored` : scheme;
  for (const { asked, stored, embedding: embeddingWeight, tensors } of otherScheme.values()) {
    const orAsk = embeddingWeight ? ` (or ask for it: quantizeEmbedding "${stored}", olmo quantize --embedding ${stored})` : "";
    problems.push(
      `${asked} was asked for, but ${tensors.length} tensor(s) are stored ${stored}, such as "${tensors[0]}": quantized weights cannot be ` +
        `quantized again, nor made float. Use the folder as it is (loaded without quantize / --quantize, it runs as ${asStored(stored, tensors.length)})${orAsk}, ` +
        `or quantize its float checkpoint`,
    );
  }
  for (const name of names) {
    if (expected.has(name) || companions.has(name)) continue;
    // A tied checkpoint may still carry its LM head; non-persistent buffers (RoPE's inverse frequencies,
    // of the model or of a layer it has) sometimes get saved too. An int8 weight's weight_format is
    // checked beside it above.
    const tiedHead = config.tieWordEmbeddings && (name === `${prefix}lm_head.weight` || name === `${prefix}transformer.ff_out.weight`);
    const layer = /\.(\d+)\./.exec(name);
    const ropeBuffer = name.endsWith("rotary_emb.inv_freq") && (!layer || Number(layer[1]) < config.numLayers);
    if (!tiedHead && !ropeBuffer) problems.push(`${entries.get(name)!.file.name}: unexpected tensor "${name}"`);
  }
  if (problems.length) throw new CheckpointError(source.name, problems);

  const auto = parameterCount(config) < 200e6 ? "f32" : "bf16";
  const requested = options.weightDType === undefined || options.weightDType === "auto" ? auto : options.weightDType;
  const storageOf = (fileDType: string): DType => (requested === "f32" ? "f32" : fileDType === "F16" ? "f16" : "bf16");
  const schemeOf = (s: Slice) => s.quantized?.scheme ?? askedOf(s.weight);
  const bytesOf = (s: Slice) => {
    const scheme = schemeOf(s);
    if (!scheme) return s.shape[0] * s.shape[1] * BYTES_PER_ELEMENT[storageOf(s.entry.dtype)];
    const shapes = quantizedShapes(scheme, s.shape[0], s.shape[1]);
    return shapes.values[0] * shapes.values[1] + shapes.scales.reduce((a, b) => a * b, 1) * (shapes.scalesDType === "f32" ? 4 : 2);
  };
  const total = slices.reduce((sum, s) => sum + bytesOf(s), 0);
  const extra = typeof options.extraBytes === "function" ? options.extraBytes(config) : (options.extraBytes ?? 0);
  const anyQuantized = slices.some((s) => schemeOf(s) !== null);
  checkFits(config, quantizeTo ?? (anyQuantized ? (inFolder ?? "int8") : requested), backend, extra, source.name, anyQuantized ? total : undefined);

  const weights = new Map<WeightName, Weight>();
  let read = 0;
  const progress = (bytes: number) => options.onProgress?.((read += bytes), total);
  // A layer's weights go to one place (backend.placeGroup): on a wasm backend whose memories hold a few
  // layers each, a layer then never straddles two memories, so its kernels copy no weights.
  const groupOf = (s: Slice) => (s.weight.startsWith("layers.") ? s.weight.slice(0, s.weight.indexOf(".", 7)) : s.weight);
  const groupBytes = new Map<string, number>();
  // Quantizing as it loads, a weight is first read whole in the file's dtype beside its quantized form.
  const stagingBytes = (s: Slice) => (schemeOf(s) && !s.quantized ? s.shape[0] * s.shape[1] * FILE_DTYPE[s.entry.dtype as keyof typeof FILE_DTYPE].bytes : 0);
  for (const s of slices) groupBytes.set(groupOf(s), (groupBytes.get(groupOf(s)) ?? 0) + bytesOf(s) + stagingBytes(s));
  const fused = fusedTargets(slices, schemeOf, backend);
  let group = "";
  try {
    for (const s of slices) {
      if (groupOf(s) !== group) backend.placeGroup?.(groupBytes.get((group = groupOf(s)))!);
      const target = fused.partFor(s);
      if (s.quantized) {
        weights.set(s.weight, await loadQuantized(s, s.quantized, backend, progress, target));
        continue;
      }
      const rowBytes = s.shape[1] * FILE_DTYPE[s.entry.dtype as keyof typeof FILE_DTYPE].bytes;
      const offset = s.entry.begin + s.rowStart * rowBytes;
      const checkFinite = options.allowNonFinite ? undefined : (bytes: Uint8Array, first: number) => assertFinite(s.entry, bytes, s.rowStart * s.shape[1] + first);
      const scheme = schemeOf(s);
      if (scheme) {
        const size = bytesOf(s);
        weights.set(s.weight, await loadAndQuantize(s.entry.file, offset, s.shape, s.entry.dtype, scheme, backend, checkFinite, target));
        progress(size);
      } else {
        weights.set(s.weight, await loadTensor(s.entry.file, offset, s.shape, s.entry.dtype, storageOf(s.entry.dtype), backend, progress, checkFinite));
      }
    }
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    fused.dispose();
    throw e;
  } finally {
    backend.placeGroup?.(0);
  }
  return {
    config, weights, tokenizerJson, layout, weightDType: requested === "f32" ? "f32" : "bf16", quantization: anyQuantized ? (quantizeTo ?? inFolder ?? "int8") : null,
  };
}

/**
 * Where the weights of a fused group (FUSED_PROJECTIONS: a layer's q, k, v; its gate, up) go: the row
 * ranges of one weight (emptyFusedRows), made when the group's first member loads, where the group is
 * quantized alike (one scheme, one input size) and the backend can view a buffer at an offset; nowhere
 * (each loads into a weight of its own) otherwise.
 */
function fusedTargets(slices: readonly Slice[], schemeOf: (s: Slice) => QuantScheme | null, backend: AnyBackend) {
  const sliceOf = new Map<WeightName, Slice>(slices.map((s) => [s.weight, s]));
  const groups = new Map<WeightName, { members: Slice[]; parts?: QuantizedWeight[] | null }>();
  const made: QuantizedWeight[] = [];
  for (const s of slices) {
    const layer = /^layers\.(\d+)\.(\w+)$/.exec(s.weight);
    const names = layer && FUSED_PROJECTIONS.find((g) => (g as readonly string[]).includes(layer[2]!));
    if (!names || groups.has(s.weight)) continue;
    const members = names.map((n) => sliceOf.get(`layers.${Number(layer![1])}.${n}`));
    const scheme = schemeOf(s);
    if (!scheme || members.some((m) => !m || schemeOf(m) !== scheme || m.shape[1] !== s.shape[1])) continue;
    const group = { members: members as Slice[] };
    for (const m of group.members) groups.set(m.weight, group);
  }
  return {
    /** The part weight `s` is to be written into, or undefined (a weight of its own). */
    partFor(s: Slice): QuantizedWeight | undefined {
      const group = groups.get(s.weight);
      if (!group) return undefined;
      if (group.parts === undefined) {
        group.parts = emptyFusedRows(schemeOf(s)!, group.members.map((m) => m.shape[0]), s.shape[1], backend);
        made.push(...(group.parts ?? []));
      }
      return group.parts?.[group.members.indexOf(s)];
    },
    /** Free every part made (after a failed load; each is also in the weight map once loaded). */
    dispose(): void {
      for (const part of made) part.dispose();
    },
  };
}

/**
 * Whether the file holds weight `name` quantized (its scales tensor beside it): the scheme and the
 * scales' entry; null for a float weight; "bad" (with the problems reported) when the pair is malformed.
 */
function quantizedInFile(
  name: string, shape: [number, number], entry: TensorEntry, entries: Map<string, TensorEntry>, problems: string[],
): QuantizedEntry | null | "bad" {
  const scheme: QuantScheme | null = entries.has(scalesTensorName(name, "int8")) ? "int8" : entries.has(scalesTensorName(name, "int4")) ? "int4" : null;
  if (!scheme || !name.endsWith(".weight")) return null;
  if (entries.has(scalesTensorName(name, "int8")) && entries.has(scalesTensorName(name, "int4"))) {
    problems.push(`${entry.file.name}: tensor "${name}" has both int8 scales "${scalesTensorName(name, "int8")}" and int4 scales "${scalesTensorName(name, "int4")}"; a quantized weight has one`);
    return "bad";
  }
  const scales = entries.get(scalesTensorName(name, scheme))!;
  const problem = quantizeProblem(scheme, shape[0], shape[1]);
  if (problem) {
    problems.push(`tensor "${name}": ${problem}`);
    return "bad"; // its shapes would be fractions
  }
  const expected = quantizedShapes(scheme, shape[0], shape[1]);
  const before = problems.length;
  const valuesDType = scheme === "int8" ? ["I8"] : ["U8", "I8"];
  if (!valuesDType.includes(entry.dtype) || entry.shape.join() !== expected.values.join()) {
    problems.push(`${entry.file.name}: tensor "${name}" is ${scheme} (it has "${scales.name}") and must be ${valuesDType.join(" or ")} [${expected.values}], got ${entry.dtype} [${entry.shape}]`);
  }
  const scalesDType = expected.scalesDType === "f32" ? "F32" : "F16";
  if (scales.dtype !== scalesDType || scales.shape.join() !== expected.scales.join()) {
    problems.push(`${scales.file.name}: tensor "${scales.name}" (the scales of ${scheme} "${name}") must be ${scalesDType} [${expected.scales}], got ${scales.dtype} [${scales.shape}]`);
  }
  return problems.length > before ? "bad" : { scheme, scales };
}

/** bitsandbytes' name for the layout of int8 weight `name` ("X.weight" -> "X.weight_format"). */
function weightFormatName(name: string): string {
  return `${name}_format`;
}

/**
 * Refuse an int8 weight whose weight_format (one U8, checked before loading) is not row-major
 * (bitsandbytes: 0 row, 1 col32, 2 col_turing, 3 col_ampere; the tiled ones are GPU layouts olmo-js
 * does not read, which read as rows would be garbage).
 */
async function checkRowMajor(entry: TensorEntry): Promise<void> {
  const format = (await entry.file.read(entry.begin, 1))[0]!;
  if (format === 0) return;
  const names = ["row", "col32", "col_turing", "col_ampere"];
  throw new Error(`${entry.file.name}: tensor "${entry.name}" is ${format}${names[format] ? ` (${names[format]})` : ""}; olmo-js reads only row-major int8 weights (0)`);
}

/** A weight the file holds quantized: its values and scales, read as they are. */
async function loadQuantized(
  s: Slice, q: QuantizedEntry, backend: AnyBackend, progress: (bytes: number) => void, into?: QuantizedWeight,
): Promise<QuantizedWeight> {
  if (q.format) await checkRowMajor(q.format);
  const shapes = quantizedShapes(q.scheme, s.shape[0], s.shape[1]);
  const values = await loadRaw(s.entry, shapes.values, "i8", backend, progress, into?.values);
  try {
    const scales = await loadRaw(q.scales, shapes.scales, shapes.scalesDType, backend, progress, into?.scales);
    // A scale that is NaN, infinite (or, for int8's absmax, negative) is a corrupt file, not a weight.
    const values32 = (await scales.data()) as Float32Array;
    const bad = values32.findIndex((v) => !Number.isFinite(v) || (q.scheme === "int8" && v < 0));
    if (bad >= 0) {
      scales.dispose();
      throw new Error(`${q.scales.file.name}: tensor "${q.scales.name}" element ${bad} is ${values32[bad]}; ${q.scheme === "int8" ? "an int8 row scale (absmax) must be finite and >= 0" : "an int4 scale must be finite"}`);
    }
    return into ?? new QuantizedWeight(q.scheme, s.shape, values, scales);
  } catch (e) {
    values.dispose();
    throw e;
  }
}

/**
 * A file tensor's bytes as they are, into a new tensor of `dtype` (or `into`, one of that shape and
 * dtype); into backend memory through the source's readInto where it can.
 */
async function loadRaw(
  entry: TensorEntry, shape: readonly number[], dtype: DType, backend: AnyBackend, progress: (bytes: number) => void, into?: Tensor,
): Promise<Tensor> {
  const tensor = into ?? Tensor.empty(shape, dtype, backend);
  const length = tensor.size * BYTES_PER_ELEMENT[dtype];
  try {
    const view = backend.rawBytes?.(tensor.bufferFor("load"), dtype, tensor.size);
    if (view) {
      if (entry.file.prefault) prefault(backend, tensor);
      await readInto(entry.file, entry.begin, view.subarray(0, length));
    }
    else {
      const bytes = (await entry.file.read(entry.begin, length)).slice();
      const host = dtype === "i8" ? new Int8Array(bytes.buffer) : dtype === "f32" ? new Float32Array(bytes.buffer) : new Uint16Array(bytes.buffer);
      backend.upload(tensor.bufferFor("load"), dtype, host);
    }
  } catch (e) {
    tensor.dispose();
    throw e;
  }
  progress(length);
  return tensor;
}

/**
 * A float weight quantized as it streams in. Where the backend's memory is host memory, the file's
 * bytes are read into a staging tensor and the backend's quantize kernel (on every thread)
 * writes values and scales; the staging tensor (one weight, never the model) is freed after. Elsewhere
 * (WebGPU) the host quantizes with the definition itself (quantizeHost) and uploads the result, so
 * every backend holds bit-identical quantized weights.
 */
async function loadAndQuantize(
  file: ByteSource, offset: number, shape: [number, number], fileDType: string, scheme: QuantScheme, backend: AnyBackend,
  checkFinite?: (fileBytes: Uint8Array, firstElement: number) => void, into?: QuantizedWeight,
): Promise<QuantizedWeight> {
  const from = FILE_DTYPE[fileDType as keyof typeof FILE_DTYPE].dtype;
  if (backend.rawBytes) {
    const staging = await loadTensor(file, offset, shape, fileDType, from, backend, () => {}, checkFinite);
    try {
      return quantizeOp(staging, scheme, into);
    } finally {
      staging.dispose();
    }
  }
  const bytes = await file.read(offset, shape[0] * shape[1] * BYTES_PER_ELEMENT[from]);
  checkFinite?.(bytes, 0);
  const q = quantizeHost(scheme, convert(bytes, fileDType, "f32") as Float32Array, shape[0], shape[1]);
  const out = into ?? QuantizedWeight.empty(scheme, shape, backend);
  backend.upload(out.values.bufferFor("load"), "i8", q.values);
  backend.upload(out.scales.bufferFor("load"), out.scales.dtype, q.scales);
  return out;
}

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
