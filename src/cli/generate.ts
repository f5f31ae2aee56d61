// `olmo generate`: load a model folder, then generate text. Also the model options and loading that
// `olmo logits` (logits.ts) and `olmo chat` share.

import { availableParallelism } from "node:os";
import { readFileSync } from "node:fs";
import {
  generate, KVCache, loadOlmo, Tokenizer, type AnyBackend, type GenerateOptions, QuantizedWeight, weightBytes, type WasmBackend,
} from "../index.js";
import { parseArgs, parseIdList, UsageError, usage, type CommandSpec, type ParsedArgs } from "./args.js";
import { backendByName } from "./backends.js";
import {
  attachAdapter, DEFAULT_MODEL, embeddingChoice, locateModel, maxMemoryPerInstanceOption, modelSource, quantizeChoice, quantizeOptions, type ModelLocation,
} from "./model.js";

export { DEFAULT_MODEL } from "./model.js";

export const modelOptions: CommandSpec = {
  model: {
    kind: "value", placeholder: "DIR_OR_REPO",
    help: "model folder, training run (--save folder: its latest step), or Hub repo owner/name (HF_ENDPOINT overrides the server); default: the bundled tiny Shakespeare model",
  },
  revision: { kind: "value", help: "Hub revision: branch, tag or commit (default main)" },
  backend: { kind: "value", choices: ["js", "wasm", "webgpu"], help: "backend (default wasm)" },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads of the wasm backend (default: cores, at most 8)" },
  dtype: { kind: "value", choices: ["auto", "f32", "bf16"], help: "weight storage (default auto: f32 under 200M parameters)" },
  "max-memory-per-instance": maxMemoryPerInstanceOption,
  ...quantizeOptions,
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

/** Check the model options (no output, nothing loaded): where the model is. */
export async function locate(parsed: ParsedArgs): Promise<ModelLocation> {
  return locateModel(parsed.values.get("model") ?? DEFAULT_MODEL, parsed.values.get("revision"));
}

export async function openModel(parsed: ParsedArgs, location: ModelLocation) {
  const { values, numbers } = parsed;
  const backend: AnyBackend = await backendByName(values.get("backend") ?? "wasm", numbers.get("threads") ?? Math.min(8, availableParallelism()), {
    maxMemoryPerInstance: numbers.get("max-memory-per-instance"),
  });
  const dtype = (values.get("dtype") ?? "auto") as "auto" | "f32" | "bf16";
  const started = performance.now();
  const bars = new Map<string, (read: number, total: number) => void>();
  const onProgress = (file: string, read: number, total: number) => {
    if (!bars.has(file)) bars.set(file, progressBar(`downloading ${file}`));
    bars.get(file)!(read, total);
  };
  const name = location.kind === "folder" ? location.folder : location.repo;
  try {
    const quantize = quantizeChoice(parsed);
    const loaded = await loadOlmo(modelSource(location, values.get("revision"), onProgress), backend, {
      weightDType: dtype,
      quantize,
      quantizeEmbedding: embeddingChoice(values, quantize),
      onProgress: progressBar(`loading ${name}`),
      // Room for a KV cache of the whole context, plus activations.
      extraBytes: (config) => KVCache.bytes(config, 1, config.maxPositionEmbeddings) + 256 * 2 ** 20,
    });
    await attachAdapter(loaded.model, values, location);
    const loadBytes = [...loaded.model.weights.values()].reduce((sum, w) => sum + weightBytes(w), 0);
    return { ...loaded, backend, name, loadStarted: started, loadSeconds: (performance.now() - started) / 1000, loadBytes };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

export const generateSpec: CommandSpec = {
  ...modelOptions,
  prompt: { kind: "value", placeholder: "TEXT", help: "prompt text, also accepted as the argument (needs the model's tokenizer.json, or --tokenizer)" },
  ids: { kind: "value", placeholder: "1,2,3", help: "prompt as comma-separated token ids" },
  tokenizer: { kind: "value", placeholder: "FILE", help: "tokenizer.json to use instead of the folder's" },
  "max-new-tokens": { kind: "value", number: { integer: true, min: 1 }, help: "new tokens at most (default 64)" },
  "max-length": { kind: "value", number: { integer: true, min: 1 }, help: "prompt + new tokens at most" },
  "do-sample": { kind: "flag", help: "sample instead of greedy decoding" },
  temperature: { kind: "value", number: { min: 0, minExclusive: true }, help: "sampling temperature (default 1)" },
  "top-k": { kind: "value", number: { integer: true, min: 0 }, help: "keep the k most likely tokens when sampling (default 50; 0 keeps all)" },
  "top-p": { kind: "value", number: { min: 0, max: 1, minExclusive: true }, help: "nucleus sampling threshold (default 1)" },
  seed: { kind: "value", number: { integer: true, min: 0, max: 2 ** 32 - 1 }, help: "sampling seed (default 0)" },
  "no-repeat-ngram-size": { kind: "value", number: { integer: true, min: 0 }, help: "never repeat an n-gram of this size (0: off)" },
  "repetition-penalty": {
    kind: "value", number: { min: 0, minExclusive: true, max: 100 },
    help: "divide seen tokens' positive logits by this, multiply negative ones (default 1: off; 1.1-1.3 is usual)",
  },
  json: { kind: "flag", help: "print one JSON object instead of streaming text" },
};

export async function runGenerate(args: string[]): Promise<void> {
  const parsed = parseArgs("generate", args, generateSpec, { positional: "prompt", exactlyOne: [["prompt", "ids"]] });
  if (parsed.help) return void console.log(usage("generate", generateSpec, "prompt"));
  const { values, flags, numbers } = parsed;
  const prompt = values.get("prompt"), idsRaw = values.get("ids");
  const idList = idsRaw === undefined ? null : parseIdList("--ids", idsRaw);
  const tokenizerFile = values.get("tokenizer");
  const fileTokenizer = tokenizerFile ? readTokenizerFile(tokenizerFile) : null;
  const location = await locate(parsed);
  // Everything the command line alone can get wrong is checked above; the model's limits are
  // checked below, still before any output.
  const { model, tokenizer: folderTokenizer, backend, name, loadStarted, loadSeconds, loadBytes } = await openModel(parsed, location);
  try {
    const tokenizer = fileTokenizer ? new Tokenizer(fileTokenizer.text, { eosTokenId: model.config.eosTokenId }) : folderTokenizer;
    if (prompt !== undefined && !tokenizer) throw new UsageError(`${name} has no tokenizer.json: pass --tokenizer FILE or use --ids`);
    const promptIds = prompt !== undefined ? tokenizer!.encode(prompt) : idList!;
    const { vocabSize, maxPositionEmbeddings: context } = model.config;
    if (promptIds.length === 0) throw new UsageError("the prompt is empty: give at least one token");
    const bad = promptIds.find((id) => id >= vocabSize);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the model's vocabulary [0, ${vocabSize})`);
    if (promptIds.length > context) throw new UsageError(`the prompt has ${promptIds.length} tokens, more than the model's context of ${context}`);
    const maxNew = numbers.get("max-new-tokens"), maxLength = numbers.get("max-length");
    const wanted = maxNew ?? (maxLength !== undefined ? maxLength - promptIds.length : 64);
    // A warning rather than an error: the tokens up to the context are still what was asked for, and
    // the user learns the limit before the text starts instead of guessing why it stopped.
    if (promptIds.length + wanted > context) {
      console.error(
        `olmo generate: warning: the prompt (${promptIds.length} tokens) + ${wanted} new tokens exceed the model's context of ${context} tokens; ` +
          `generation stops after ${context - promptIds.length} new tokens`,
      );
    }
    if (!values.has("model")) console.error(`olmo generate: no --model given, using the default model ${name}`);
    const stream = tokenizer?.streamDecoder();
    const json = flags.has("json");
    let firstTokenAt: number | undefined;
    const options: GenerateOptions = {
      maxNewTokens: maxNew,
      maxLength,
      ...samplingOptions(parsed),
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
          // The layers' scheme when the weights are quantized (the embedding may differ: float in an 8-bit
          // folder, int8 in an int4 folder written with --embedding int8).
          quantization: (() => {
            const w = model.weight("layers.0.q");
            return w instanceof QuantizedWeight ? w.scheme : null;
          })(),
          // WebAssembly memories the model and its activations used (wasm; a model past 4 GiB needs several).
          memories: "memoryUsageByMemory" in backend ? (backend as WasmBackend).memoryUsageByMemory().length : null,
          peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
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

/** The sampling flags shared by `generate` and `chat`, as GenerateOptions. */
export function samplingOptions({ flags, numbers }: ParsedArgs): Pick<
  GenerateOptions, "doSample" | "temperature" | "topK" | "topP" | "seed" | "noRepeatNgramSize" | "repetitionPenalty"
> {
  return {
    doSample: flags.has("do-sample"),
    temperature: numbers.get("temperature"),
    topK: numbers.get("top-k"),
    topP: numbers.get("top-p"),
    seed: numbers.get("seed"),
    noRepeatNgramSize: numbers.get("no-repeat-ngram-size"),
    repetitionPenalty: numbers.get("repetition-penalty"),
  };
}

/** A tokenizer.json named by a flag, read and parsed, or a runtime error naming the file. */
export function readTokenizerFile(path: string): { text: string; tokenizer: Tokenizer } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read tokenizer file ${path}: ${(e as Error).message}`);
  }
  try {
    return { text, tokenizer: new Tokenizer(text) };
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}
