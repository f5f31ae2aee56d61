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

import { BYTES_PER_ELEMENT, narrowFromF32, widenToF32, type DType, type HostArray } from "../core/dtype.js";
import { Tensor, type AnyBackend } from "../core/tensor.js";
import { configFromHf, parameterCount, type OlmoConfig } from "../model/config.js";
import { Olmo } from "../model/olmo.js";
import { weightShapes, type WeightName } from "../model/weights.js";
import { Tokenizer } from "../tokenizer/index.js";
import { assertFinite, readInto, readSafetensorsHeader, type ByteSource, type TensorEntry } from "./safetensors.js";

export interface ModelSource {
  /** Shown in errors: the folder path or URL. */
  readonly name: string;
  /** A file of the folder, or null when there is no such file. */
  open(file: string): Promise<ByteSource | null>;
}

export class CheckpointError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`cannot load the checkpoint in ${source}: ${problems.length} problem(s):\n  - ${problems.join("\n  - ")}`);
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
}

export interface LoadedCheckpoint {
  config: OlmoConfig;
  weights: Map<WeightName, Tensor>;
  /** tokenizer.json of the folder, when present. */
  tokenizerJson: string | null;
  layout: "hf" | "olmo";
  weightDType: DType;
}

export async function readTextFile(source: ModelSource, file: string): Promise<string | null> {
  const bytes = await source.open(file);
  if (!bytes) return null;
  return new TextDecoder().decode(await bytes.read(0, bytes.size));
}

/** One model weight and where its rows come from in the files. */
interface Slice {
  weight: WeightName;
  shape: [number, number];
  entry: TensorEntry;
  /** First row taken from the file tensor (fused OLMo tensors hold several weights). */
  rowStart: number;
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
async function openWeightFiles(source: ModelSource, problems: string[]): Promise<Map<string, TensorEntry>> {
  const entries = new Map<string, TensorEntry>();
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
      if (!entries.has(name) && files.includes(file)) problems.push(`${source.name}/${file}: tensor "${name}" is in the index but not in the shard`);
    }
  }
  return entries;
}

/**
 * Throw, with the numbers, when a model's weights (stored as `storage`) plus `extraBytes` (KV cache,
 * activations) cannot fit what the backend can still hold (its memoryUsage() limit less what is in
 * use); a backend whose limit is Infinity accepts everything.
 */
export function checkFits(config: OlmoConfig, storage: "f32" | "bf16", backend: AnyBackend, extraBytes: number, name: string): void {
  const usage = backend.memoryUsage();
  const weightBytes = parameterCount(config) * (storage === "f32" ? 4 : 2);
  if (usage.inUse + weightBytes + extraBytes > usage.limit) {
    const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
    throw new Error(
      `${name}: the model does not fit the ${backend.name} backend: its ${parameterCount(config).toLocaleString("en")} weights take ` +
        `${gb(weightBytes)} in ${storage} plus ${gb(extraBytes)} for the KV cache and activations, but the ${backend.name} backend holds ` +
        `at most ${gb(usage.limit)} (${gb(usage.inUse)} already in use). ` +
        (storage === "f32" ? "Store the weights in bf16 (--dtype bf16)." : "Use a backend with more memory (webgpu on a GPU) for models of this size."),
    );
  }
}

/** The safetensors dtypes the loader reads, as the engine's dtypes. */
const FILE_DTYPE = { F32: { dtype: "f32", bytes: 4 }, BF16: { dtype: "bf16", bytes: 2 }, F16: { dtype: "f16", bytes: 2 } } as const;

/** Bytes read per step, so progress moves while a large tensor (an embedding of 200 MB) streams in. */
const READ_CHUNK_BYTES = 32 * 2 ** 20;

/**
 * One weight from a file onto the backend, as `storage`. Where the backend's buffers are host memory
 * (wasm, js), the file's bytes are read straight into the tensor — or, when the dtype changes, into a
 * staging tensor of the file's dtype that the backend's `cast` kernel converts (on every thread) — so
 * the bytes are copied once, by the read itself. Elsewhere (WebGPU) they are read, converted on the
 * host and uploaded. Both paths give the same bits: cast rounds f32 to bf16 to nearest even, as
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
  const configText = await readTextFile(source, "config.json");
  if (configText === null) throw new CheckpointError(source.name, ["config.json is missing"]);
  const config = configFromHf(configText, `${source.name}/config.json`);
  const tokenizerJson = await readTextFile(source, "tokenizer.json");

  const problems: string[] = [];
  const entries = await openWeightFiles(source, problems);
  const names = [...entries.keys()];
  const prefix = names.some((n) => n.startsWith("model.transformer.")) ? "model." : "";
  const layout = names.some((n) => n.startsWith(`${prefix}transformer.`)) ? "olmo" : "hf";
  const expected = expectedTensors(config, layout, prefix);
  const slices: Slice[] = [];
  for (const [name, { shape, slices: parts }] of expected) {
    const entry = entries.get(name);
    if (!entry) {
      if (entries.size > 0 || problems.length === 0) problems.push(`missing tensor "${name}" (${layout === "hf" ? "Hugging Face" : "OLMo"} layout, shape [${shape}])`);
      continue;
    }
    if (entry.shape.join() !== shape.join()) {
      problems.push(`${entry.file.name}: tensor "${name}" has shape [${entry.shape}], config.json implies [${shape}]`);
      continue;
    }
    if (!["F32", "BF16", "F16"].includes(entry.dtype)) {
      problems.push(`${entry.file.name}: tensor "${name}" has dtype ${entry.dtype}; expected F32, BF16 or F16`);
      continue;
    }
    for (const [weight, rowStart, rows] of parts) slices.push({ weight, shape: [rows, shape[1]], entry, rowStart });
  }
  for (const name of names) {
    if (expected.has(name)) continue;
    // A tied checkpoint may still carry its LM head; non-persistent buffers sometimes get saved too.
    const tiedHead = config.tieWordEmbeddings && (name === `${prefix}lm_head.weight` || name === `${prefix}transformer.ff_out.weight`);
    if (!tiedHead && !name.endsWith("rotary_emb.inv_freq")) problems.push(`${entries.get(name)!.file.name}: unexpected tensor "${name}"`);
  }
  if (problems.length) throw new CheckpointError(source.name, problems);

  const auto = parameterCount(config) < 200e6 ? "f32" : "bf16";
  const requested = options.weightDType === undefined || options.weightDType === "auto" ? auto : options.weightDType;
  const storageOf = (fileDType: string): DType => (requested === "f32" ? "f32" : fileDType === "F16" ? "f16" : "bf16");
  const total = slices.reduce((sum, s) => sum + s.shape[0] * s.shape[1] * BYTES_PER_ELEMENT[storageOf(s.entry.dtype)], 0);
  const extra = typeof options.extraBytes === "function" ? options.extraBytes(config) : (options.extraBytes ?? 0);
  checkFits(config, requested, backend, extra, source.name);

  const weights = new Map<WeightName, Tensor>();
  let read = 0;
  const progress = (bytes: number) => options.onProgress?.((read += bytes), total);
  try {
    for (const s of slices) {
      const rowBytes = s.shape[1] * FILE_DTYPE[s.entry.dtype as keyof typeof FILE_DTYPE].bytes;
      const tensor = await loadTensor(s.entry.file, s.entry.begin + s.rowStart * rowBytes, s.shape, s.entry.dtype, storageOf(s.entry.dtype), backend, progress,
        options.allowNonFinite ? undefined : (bytes, first) => assertFinite(s.entry, bytes, s.rowStart * s.shape[1] + first));
      weights.set(s.weight, tensor);
    }
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    throw e;
  }
  return { config, weights, tokenizerJson, layout, weightDType: requested === "f32" ? "f32" : "bf16" };
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
