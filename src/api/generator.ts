// The one-line API: a model and its tokenizer behind text in, text out, in the style of transformers.js'
// pipelines (`await OlmoGenerator.fromPretrained(id)`, then `generate` / `stream`).
//
// `Olmo` is the model (tensors in, logits out); this is the layer above it that people reach for first:
// it picks a backend by name, finds the files (a URL, or a Hub repo id), loads the weights, and turns
// `generate` of src/model into strings, with stop strings and an AbortSignal. Everything here is a thin
// composition of the layers below, which stay the API for anything else.
//
// Hosts differ in what they can open: the core opens URLs and Hub repos with fetch (and the Cache API,
// where there is one) and starts WASM threads as Web Workers; NodeOlmoGenerator (olmo-js/node) adds
// folders on disk, the Hugging Face cache and worker_threads by overriding resolveSource and
// createBackend.

import type { AnyBackend } from "../core/tensor.js";
import { createJsBackend } from "../backends/js/index.js";
import { createWasmBackend, spawnWebWorker } from "../backends/wasm/index.js";
import { createWebGpuBackend } from "../backends/webgpu/index.js";
import { generate, type GenerateOptions } from "../model/generate.js";
import { KVCache, type Olmo } from "../model/olmo.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { closest } from "../core/format.js";
import { loadOlmo, readTextFile, type ModelSource } from "../io/checkpoint.js";
import { cachedUrlSource } from "../io/browser.js";
import { ChatTemplate, type ChatMessage } from "./chat.js";
import { checkRepoId, checkRevision, hubFileUrl, hubSource, urlSource } from "../io/hub.js";

/** A backend by name, or one the caller made (then the caller disposes it). */
export type BackendChoice = "wasm" | "webgpu" | "js" | AnyBackend;

/** What is happening while a model loads: files downloading, then weights read onto the backend. */
export interface LoadProgress {
  stage: "download" | "load";
  /** The file being downloaded (download stage only). */
  file?: string;
  /** Bytes so far and in all (`total` is NaN when a server does not say). */
  loaded: number;
  total: number;
}

export interface PretrainedOptions {
  /** Default "wasm". */
  backend?: BackendChoice;
  /** Weight storage: "auto" (default: f32 below 200M parameters, else bf16), "f32" or "bf16". */
  dtype?: "auto" | "f32" | "bf16";
  /** Quantize the float weights as they load: "int8" or "int4" (src/core/quantize.ts); default "none": every weight as the folder stores it. */
  quantize?: "int8" | "int4" | "none";
  /** With quantize: the embedding and LM head's scheme (default: quantize's; false keeps them float), as loadOlmo's quantizeEmbedding. */
  quantizeEmbedding?: boolean | "int8" | "int4";
  /** Threads of a "wasm" backend made here. Default 1 in the core (more need a worker and cross-origin isolation); see NodeOlmoGenerator for Node. */
  threads?: number;
  /** Hub revision: branch, tag or commit (default "main"). */
  revision?: string;
  /** Hub server (default https://huggingface.co). */
  endpoint?: string;
  onProgress?: (progress: LoadProgress) => void;
}

/** The part of an AbortSignal this API reads (a real AbortSignal fits). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
}

/** generate()'s options on text: token callbacks are replaced by stop strings and a signal. */
export interface TextGenerateOptions extends Omit<GenerateOptions, "onToken" | "shouldStop"> {
  /** End the text just before the first occurrence of any of these (also across token boundaries). */
  stop?: readonly string[];
  /** Aborting ends generation at the next token; generate() and stream() then throw the signal's reason. */
  signal?: AbortSignalLike;
}

/** Every option of generate / stream / chat: a key missing here, or one here the type lacks, fails to compile. */
const TEXT_GENERATE_OPTIONS: Record<keyof TextGenerateOptions, true> = {
  maxNewTokens: true, maxLength: true, seed: true, eosTokenId: true, doSample: true, temperature: true, topK: true, topP: true,
  noRepeatNgramSize: true, repetitionPenalty: true, stop: true, signal: true,
};

/** Throws on an option this API does not know (a typo would otherwise be ignored, as transformers warns of). */
function checkTextGenerateOptions(method: string, options: unknown): void {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`OlmoGenerator.${method}: options must be an object, got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(TEXT_GENERATE_OPTIONS, key)) continue;
    const guess = closest(key, Object.keys(TEXT_GENERATE_OPTIONS));
    throw new TypeError(`OlmoGenerator.${method}: unknown option "${key}"${guess ? ` (did you mean ${guess}?)` : ""}; the options are ${Object.keys(TEXT_GENERATE_OPTIONS).join(", ")}`);
  }
}

/** A URL: a scheme (https://, blob:, file:) or a path starting with "/" or "." (relative to the page). */
function isUrl(model: string): boolean {
  return /^[a-z][a-z\d+.-]*:/i.test(model) || model.startsWith("/") || model.startsWith(".");
}

function abortError(signal: AbortSignalLike): unknown {
  if (signal.reason !== undefined) return signal.reason;
  const error = new Error("generation aborted");
  error.name = "AbortError";
  return error;
}

export class OlmoGenerator {
  /** The folder's chat template, read on the first chat (see chatTemplate()). */
  private chatTemplatePromise: Promise<ChatTemplate> | null = null;

  /**
   * @param ownsBackend whether dispose() also disposes the backend (true when fromPretrained made it).
   * @param source the model folder, read for tokenizer_config.json (its chat template) on the first
   *   chat; without it, chat() throws. fromPretrained passes the folder it loaded.
   */
  constructor(
    readonly model: Olmo,
    readonly tokenizer: Tokenizer,
    readonly backend: AnyBackend,
    private readonly ownsBackend = false,
    readonly source: ModelSource | null = null,
  ) {}

  /**
   * Load a model: a URL of a model folder (config.json, model.safetensors, tokenizer.json), a Hub
   * repo id "owner/name", or any ModelSource. The weights land on `options.backend` (default "wasm").
   */
  static async fromPretrained(model: string | ModelSource, options: PretrainedOptions = {}): Promise<OlmoGenerator> {
    if (typeof model !== "string" && typeof (model as Partial<ModelSource> | null)?.open !== "function") {
      throw new TypeError(
        `${this.name}.fromPretrained: the first argument names the model: a URL of a model folder, a Hub repo id "owner/name", ` +
          `a folder in Node (NodeOlmoGenerator), or a ModelSource; got ${model === null ? "null" : typeof model}`,
      );
    }
    const source = typeof model === "string" ? await this.resolveSource(model, options) : model;
    const choice = options.backend ?? "wasm";
    const backend = typeof choice === "string" ? await this.createBackend(choice, options.threads) : choice;
    try {
      const { model: olmo, tokenizer } = await loadOlmo(source, backend, {
        weightDType: options.dtype ?? "auto",
        quantize: options.quantize,
        quantizeEmbedding: options.quantizeEmbedding,
        onProgress: options.onProgress && ((loaded, total) => options.onProgress!({ stage: "load", loaded, total })),
        // Room for a KV cache of the whole context, plus activations (as `olmo generate` asks).
        extraBytes: (config) => KVCache.bytes(config, 1, config.maxPositionEmbeddings) + 256 * 2 ** 20,
      });
      if (!tokenizer) {
        olmo.dispose();
        throw new Error(`${source.name} has no tokenizer.json: OlmoGenerator needs one (loadOlmo and generate work on token ids)`);
      }
      return new this(olmo, tokenizer, backend, typeof choice === "string", source);
    } catch (e) {
      if (typeof choice === "string") backend.dispose();
      throw e;
    }
  }

  /** Where a model string points. Overridden in Node (folders, the Hugging Face cache). */
  protected static async resolveSource(model: string, options: PretrainedOptions): Promise<ModelSource> {
    const onDownload = options.onProgress && ((file: string, loaded: number, total: number) => options.onProgress!({ stage: "download", file, loaded, total }));
    // Browsers keep what they download (cachedUrlSource: in OPFS, or the Cache API; both need a secure
    // context, so a host with OPFS has the Cache API too) and read it from there on the next visit;
    // other hosts read with Range requests each time.
    const hasCache = (globalThis as { caches?: unknown }).caches !== undefined;
    if (isUrl(model)) return hasCache ? cachedUrlSource(model, { onProgress: onDownload }) : urlSource(model);
    if (model.split("/").length === 2) {
      const hub = { repo: model, revision: options.revision, endpoint: options.endpoint };
      checkRepoId(model);
      if (options.revision !== undefined) checkRevision(options.revision);
      if (!hasCache) return hubSource(hub);
      return cachedUrlSource(hubFileUrl(hub, "config.json").replace(/\/config\.json$/, ""), { onProgress: onDownload });
    }
    throw new Error(
      `OlmoGenerator.fromPretrained: "${model}" is neither a URL (https://..., /path, ./path) nor a Hub repo id owner/name; ` +
        `in Node, NodeOlmoGenerator from olmo-js/node also opens folders`,
    );
  }

  /** A backend by name. Overridden in Node (worker_threads, Dawn). */
  protected static async createBackend(name: "wasm" | "webgpu" | "js", threads: number | undefined): Promise<AnyBackend> {
    if (name === "js") return createJsBackend();
    if (name === "webgpu") return createWebGpuBackend();
    if (name === "wasm") return createWasmBackend({ threads: threads ?? 1, spawnWorker: (threads ?? 1) > 1 ? spawnWebWorker : undefined });
    throw new Error(`OlmoGenerator: unknown backend "${name as string}" (expected wasm, webgpu or js)`);
  }

  private disposed = false;

  /** Throws, naming the method, on a call after dispose() or with options this API does not know. */
  private checkCall(method: string, options: unknown): void {
    if (this.disposed) throw new Error(`OlmoGenerator.${method}: this generator was disposed (its weights are freed); load the model again with fromPretrained`);
    checkTextGenerateOptions(method, options);
  }

  /** The continuation of `prompt` as text (without the prompt). */
  async generate(prompt: string, options: TextGenerateOptions = {}): Promise<string> {
    let text = "";
    for await (const piece of this.textStream("generate", prompt, options)) text += piece;
    return text;
  }

  /**
   * The continuation of `prompt`, piece by piece as tokens complete characters. Breaking out of the
   * loop ends generation. With stop strings, text that might begin one is held back until it is
   * known not to, so the pieces never contain any part of a stop string.
   */
  stream(prompt: string, options: TextGenerateOptions = {}): AsyncGenerator<string, void, undefined> {
    return this.textStream("stream", prompt, options);
  }

  /** stream() for `method`: the call is checked on the first next(), as every other error of a stream surfaces. */
  private async *textStream(method: string, prompt: string, options: TextGenerateOptions): AsyncGenerator<string, void, undefined> {
    if (typeof prompt !== "string") throw new TypeError(`OlmoGenerator.${method}: the prompt must be a string, got ${prompt === null ? "null" : typeof prompt} (token ids go to generate() of olmo-js's core)`);
    this.checkCall(method, options);
    yield* this.streamFrom(() => this.tokenizer.encode(prompt), options, new Set());
  }

  /**
   * The chat template of the model folder (tokenizer_config.json's chat_template), read once. Throws,
   * naming the folder, when it has none (OLMo's base models have none; the instruct ones do).
   */
  chatTemplate(): Promise<ChatTemplate> {
    const source = this.source;
    if (!source) return Promise.reject(new Error("OlmoGenerator: chat needs the model folder's tokenizer_config.json, and this generator was made without its source (pass the ModelSource to the constructor, or use fromPretrained)"));
    if (!this.chatTemplatePromise) {
      const read = readTextFile(source, "tokenizer_config.json").then((text) => ChatTemplate.fromTokenizerConfig(text, source.name));
      // A failure (a network error, say) is tried again on the next chat rather than remembered.
      read.catch(() => {
        if (this.chatTemplatePromise === read) this.chatTemplatePromise = null;
      });
      this.chatTemplatePromise = read;
    }
    return this.chatTemplatePromise;
  }

  /** The assistant's reply to `messages` (the prompt rendered with the folder's chat template), as text. */
  async chat(messages: readonly ChatMessage[], options: TextGenerateOptions = {}): Promise<string> {
    let text = "";
    for await (const piece of this.chatStream(messages, options)) text += piece;
    return text;
  }

  /**
   * The assistant's reply to `messages`, piece by piece (as stream). Generation ends at the model's
   * EOS and at the template's end-of-turn token (tokenizer_config.json's eos_token) where that differs.
   */
  async *chatStream(messages: readonly ChatMessage[], options: TextGenerateOptions = {}): AsyncGenerator<string, void, undefined> {
    this.checkCall("chat", options);
    const template = await this.chatTemplate();
    const prompt = template.render(messages);
    const stopIds = new Set<number>();
    const stop = [...(options.stop ?? [])];
    const endOfTurn = template.eosToken;
    if (endOfTurn !== undefined && endOfTurn !== "") {
      const id = this.tokenizer.tokenToId(endOfTurn);
      // One token: stop on its id; text that is several tokens: stop where the text appears.
      if (id !== undefined) stopIds.add(id);
      else stop.push(endOfTurn);
    }
    yield* this.streamFrom(() => this.tokenizer.encode(prompt), { ...options, stop }, stopIds);
  }

  /** stream() on the ids `encode` gives, also ending after any id of `stopIds` (which is not shown). */
  private async *streamFrom(encode: () => number[], options: TextGenerateOptions, stopIds: ReadonlySet<number>): AsyncGenerator<string, void, undefined> {
    const { stop = [], signal, ...generateOptions } = options;
    if (!Array.isArray(stop)) throw new Error(`OlmoGenerator: stop must be an array of strings, got ${typeof stop === "string" ? `the string ${JSON.stringify(stop)} (write [${JSON.stringify(stop)}])` : stop === null ? "null" : typeof stop}`);
    const notString = stop.findIndex((s) => typeof s !== "string");
    if (notString >= 0) throw new Error(`OlmoGenerator: stop[${notString}] must be a string, got ${stop[notString] === null ? "null" : typeof stop[notString]}`);
    if (stop.some((s) => s === "")) throw new Error("OlmoGenerator: a stop string must not be empty");
    if (signal !== undefined && !(typeof signal === "object" && signal !== null && typeof (signal as { aborted?: unknown }).aborted === "boolean")) {
      throw new Error(`OlmoGenerator: signal must be an AbortSignal, got ${typeof signal}`);
    }
    if (signal?.aborted) throw abortError(signal);
    const ids = encode();
    const decoder = this.tokenizer.streamDecoder({ skipSpecialTokens: true });
    const holdBack = Math.max(0, ...stop.map((s) => s.length - 1));
    // Shared with the callbacks below, which run while this generator waits.
    const state = { text: "", emitted: 0, stopped: false, finished: false, failure: null as { error: unknown } | null, wake: null as (() => void) | null };
    const pieces: string[] = [];
    const notify = () => {
      state.wake?.();
      state.wake = null;
    };
    /** Add decoded text; queue what is now known to precede every stop string. */
    const add = (piece: string, final: boolean) => {
      if (state.stopped) return;
      state.text += piece;
      // The earliest match; matches starting before `emitted` were ruled out when that text was let go.
      let match = -1;
      for (const s of stop) {
        const at = state.text.indexOf(s, state.emitted);
        if (at !== -1 && (match === -1 || at < match)) match = at;
      }
      state.stopped = match !== -1;
      // Without a match, the last holdBack characters might still begin one.
      const end = match !== -1 ? match : final ? state.text.length : Math.max(state.emitted, state.text.length - holdBack);
      if (end > state.emitted) pieces.push(state.text.slice(state.emitted, end));
      state.emitted = end;
      notify();
    };
    const run = generate(this.model, ids, {
      ...generateOptions,
      onToken: (id) => add(stopIds.has(id) ? "" : decoder.push(id), false),
      shouldStop: (all) => state.stopped || signal?.aborted === true || stopIds.has(all[all.length - 1]!),
    })
      .then(
        () => add(decoder.flush(), true),
        (error: unknown) => void (state.failure = { error }),
      )
      .finally(() => {
        state.finished = true;
        notify();
      });
    try {
      for (;;) {
        // An abort wins over pieces already decoded: nothing more comes out after it.
        if (signal?.aborted && !state.stopped) throw abortError(signal);
        if (pieces.length > 0) yield pieces.shift()!;
        else if (state.finished) break;
        else await new Promise<void>((resolve) => (state.wake = resolve));
      }
      if (state.failure) throw state.failure.error;
      if (signal?.aborted && !state.stopped) throw abortError(signal);
    } finally {
      // The consumer broke out of the loop (or it threw): stop at the next token and let the KV cache go.
      state.stopped = true;
      await run;
    }
  }

  /** Free the weights, and the backend when fromPretrained made it. */
  dispose(): void {
    this.disposed = true;
    this.model.dispose();
    if (this.ownsBackend) this.backend.dispose();
  }
}
