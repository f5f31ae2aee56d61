// `olmo generate` and `olmo logits`: load a model folder, then generate text or write logits.

import { rename, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import {
  BYTES_PER_ELEMENT, generate, KVCache, loadOlmo, noGrad, scope, tensor, Tokenizer, type AnyBackend, type GenerateOptions,
} from "../index.js";
import { cachedHubSource, folderSource } from "../node/index.js";
import { numberOption, parseArgs, parseIdList, UsageError, usage, type OptionSpec } from "./args.js";
import { backendByName } from "./backends.js";

const modelOptions: Record<string, OptionSpec> = {
  model: { kind: "value", help: "model folder, or a Hub repo owner/name (HF_ENDPOINT overrides the server); default: the bundled tiny Shakespeare model" },
  revision: { kind: "value", help: "Hub revision: branch, tag or commit (default main)" },
  backend: { kind: "value", help: "js, wasm (default) or webgpu" },
  threads: { kind: "value", help: "threads of the wasm backend (default: cores, at most 8)" },
  dtype: { kind: "value", help: "weight storage: auto (default: f32 under 200M parameters), f32 or bf16" },
};

/** A progress bar on stderr while a checkpoint loads (only on a terminal). */
function progressBar(label: string): (read: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  let last = -1;
  return (read, total) => {
    const percent = Math.floor((100 * read) / Math.max(1, total));
    if (percent === last) return;
    last = percent;
    const filled = Math.round(percent / 4);
    process.stderr.write(`\r${label} [${"#".repeat(filled)}${" ".repeat(25 - filled)}] ${percent}% ${(read / 1e9).toFixed(2)}/${(total / 1e9).toFixed(2)} GB`);
    if (read >= total) process.stderr.write("\n");
  };
}

/** The default model shipped in the package (see models/olmo-tiny-shakespeare/RECIPE.md). */
export const DEFAULT_MODEL = new URL("../models/olmo-tiny-shakespeare", import.meta.url).pathname;

async function openModel(values: Map<string, string>) {
  const dir = values.get("model") ?? DEFAULT_MODEL;
  if (!values.has("model")) console.error(`olmo: no --model given, using the default model ${dir}`);
  const backendName = values.get("backend") ?? "wasm";
  const threadsRaw = values.get("threads");
  const threads = threadsRaw === undefined ? undefined : Number(threadsRaw);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) throw new UsageError(`--threads must be a positive integer, got ${threadsRaw}`);
  const backend: AnyBackend = await backendByName(backendName, threads ?? Math.min(8, (await import("node:os")).availableParallelism()));
  const dtype = values.get("dtype") ?? "auto";
  if (dtype !== "auto" && dtype !== "f32" && dtype !== "bf16") throw new UsageError(`--dtype must be auto, f32 or bf16, got ${dtype}`);
  const started = performance.now();
  // A path that exists is a folder; otherwise "owner/name" is a Hub repo, downloaded into the cache.
  const isHubRepo = !existsSync(dir) && /^[\w.-]+\/[\w.-]+$/.test(dir);
  if (values.has("revision") && !isHubRepo) throw new UsageError(`--revision needs --model to be a Hub repo (owner/name); ${dir} is a folder`);
  const bars = new Map<string, (read: number, total: number) => void>();
  const onProgress = (file: string, read: number, total: number) => {
    if (!bars.has(file)) bars.set(file, progressBar(`downloading ${file}`));
    bars.get(file)!(read, total);
  };
  const source = isHubRepo
    ? cachedHubSource({ repo: dir, revision: values.get("revision"), endpoint: process.env.HF_ENDPOINT, onProgress })
    : folderSource(dir);
  const loaded = await loadOlmo(source, backend, {
    weightDType: dtype,
    onProgress: progressBar(`loading ${dir}`),
    // Room for a KV cache of the whole context, plus activations.
    extraBytes: (config) => KVCache.bytes(config, 1, config.maxPositionEmbeddings) + 256 * 2 ** 20,
  });
  const loadBytes = [...loaded.model.weights.values()].reduce((sum, w) => sum + w.size * BYTES_PER_ELEMENT[w.dtype], 0);
  return { ...loaded, backend, loadStarted: started, loadSeconds: (performance.now() - started) / 1000, loadBytes };
}

const generateSpec: Record<string, OptionSpec> = {
  ...modelOptions,
  prompt: { kind: "value", help: "prompt text (needs tokenizer.json in the folder, or --tokenizer)" },
  ids: { kind: "value", help: "prompt as comma-separated token ids" },
  tokenizer: { kind: "value", help: "tokenizer.json to use instead of the folder's" },
  "max-new-tokens": { kind: "value", help: "new tokens at most (default 64)" },
  "max-length": { kind: "value", help: "prompt + new tokens at most" },
  "do-sample": { kind: "flag", help: "sample instead of greedy decoding" },
  temperature: { kind: "value", help: "sampling temperature (default 1)" },
  "top-k": { kind: "value", help: "keep the k most likely tokens when sampling (default 50)" },
  "top-p": { kind: "value", help: "nucleus sampling threshold (default 1)" },
  seed: { kind: "value", help: "sampling seed (default 0)" },
  "no-repeat-ngram-size": { kind: "value", help: "never repeat an n-gram of this size" },
  json: { kind: "flag", help: "print one JSON object instead of streaming text" },
  help: { kind: "flag", help: "show this help" },
};

export async function runGenerate(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("generate", args, generateSpec);
  if (flags.has("help")) return void console.log(usage("generate", generateSpec));
  const prompt = values.get("prompt"), idsRaw = values.get("ids");
  if ((prompt === undefined) === (idsRaw === undefined)) throw new UsageError("olmo generate: give exactly one of --prompt TEXT or --ids 1,2,3");
  const number = (name: string) => numberOption("generate", values, name);
  const { model, tokenizer: folderTokenizer, backend, loadStarted, loadSeconds, loadBytes } = await openModel(values);
  try {
    const tokenizerFile = values.get("tokenizer");
    const tokenizer = tokenizerFile ? new Tokenizer(readFileSync(tokenizerFile, "utf8"), { eosTokenId: model.config.eosTokenId }) : folderTokenizer;
    if (prompt !== undefined && !tokenizer) throw new UsageError(`${values.get("model")} has no tokenizer.json: pass --tokenizer FILE or use --ids`);
    const promptIds = prompt !== undefined ? tokenizer!.encode(prompt) : parseIdList("--ids", idsRaw!);
    const stream = tokenizer?.streamDecoder();
    const json = flags.has("json");
    let firstTokenAt: number | undefined;
    const options: GenerateOptions = {
      maxNewTokens: number("max-new-tokens"),
      maxLength: number("max-length"),
      doSample: flags.has("do-sample"),
      temperature: number("temperature"),
      topK: number("top-k"),
      topP: number("top-p"),
      seed: number("seed"),
      noRepeatNgramSize: number("no-repeat-ngram-size"),
      onToken: (id) => {
        firstTokenAt ??= performance.now();
        if (json) return;
        process.stdout.write(stream ? stream.push(id) : `${id} `);
      },
    };
    if (!json && prompt !== undefined) process.stdout.write(prompt);
    const result = await generate(model, promptIds, options);
    const decodeSteps = Math.max(0, result.newIds.length - 1);
    if (json) {
      console.log(
        JSON.stringify({
          text: tokenizer ? tokenizer.decode(result.newIds) : null,
          ids: result.ids,
          prompt_tokens: result.promptTokens,
          new_tokens: result.newIds.length,
          prefill_tokens_per_s: result.promptTokens / result.prefillSeconds,
          decode_tokens_per_s: decodeSteps > 0 ? decodeSteps / result.decodeSeconds : null,
          load_s: loadSeconds,
          load_bytes_per_s: loadBytes / loadSeconds,
          // From the start of loading to the first new token: what a user waits for.
          first_token_s: firstTokenAt === undefined ? null : (firstTokenAt - loadStarted) / 1000,
          backend: backend.name,
        }),
      );
    } else {
      process.stdout.write((stream?.flush() ?? "") + "\n");
    }
  } finally {
    model.dispose();
    backend.dispose();
  }
}

/** A .npy (format 1.0) file of float32 values with the given shape. */
export function encodeNpy(values: Float32Array, shape: readonly number[]): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  // Magic (6) + version (2) + length (2) + header + "\n" is padded to a multiple of 64 bytes.
  header += " ".repeat(64 - ((10 + header.length + 1) % 64)) + "\n";
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}

const logitsSpec: Record<string, OptionSpec> = {
  ...modelOptions,
  ids: { kind: "value", help: "token ids, comma-separated" },
  out: { kind: "value", help: "output .npy file: float32 logits [T, vocab_size]" },
  help: { kind: "flag", help: "show this help" },
};

export async function runLogits(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("logits", args, logitsSpec);
  if (flags.has("help")) return void console.log(usage("logits", logitsSpec));
  const idsRaw = values.get("ids"), out = values.get("out");
  if (idsRaw === undefined || out === undefined) throw new UsageError("olmo logits: --ids 1,2,3 and --out FILE.npy are required");
  const ids = parseIdList("--ids", idsRaw);
  const { model, backend } = await openModel(values);
  try {
    if (ids.length > model.config.maxPositionEmbeddings) throw new UsageError(`--ids has ${ids.length} tokens, more than the context length ${model.config.maxPositionEmbeddings}`);
    const bad = ids.find((id) => id >= model.config.vocabSize);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the model's vocabulary [0, ${model.config.vocabSize})`);
    const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend }))));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    // Written beside the target, then renamed: a crash never leaves a half-written file.
    await writeFile(`${out}.tmp`, encodeNpy(data, [ids.length, model.config.vocabSize]));
    await rename(`${out}.tmp`, out);
    console.error(`wrote ${out}: float32 [${ids.length}, ${model.config.vocabSize}]`);
  } finally {
    model.dispose();
    backend.dispose();
  }
}

