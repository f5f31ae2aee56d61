// The demo's Web Worker: loads a model (a folder URL, or files the user picked) onto the chosen backend
// (wasm or webgpu), generates with streaming, fine-tunes (every weight, or LoRA adapters that the page
// can download in PEFT's format), scores pasted multiple-choice rows as `olmo eval` does, and looks
// inside one forward pass for the learner's views (tokens and their merges, logits, attention).

import {
  ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfig, adapterTensors, cachedUrlSource, Capture, createWasmBackend, createWebGpuBackend, encodeSafetensors,
  fileListSource, generate, loadOlmo, LoraAdapters, MULTIPLE_CHOICE_TASKS, noGrad, parameterCount, parseJsonRows, scoreMultipleChoice,
  scope as tensorScope, spawnWebWorker, tensor, TokenDataset, Trainer,
  type AnyBackend, type LoraOptions, type Olmo, type StepMetrics, type Tokenizer,
} from "../../src/index.js";
import { zipStored } from "./zip.js";

// The worker's global scope (typed here: the DOM library describes a window, not a worker).
const scope = self as unknown as {
  crossOriginIsolated?: boolean;
  navigator: { gpu?: GPU };
  postMessage(message: unknown, transfer?: ArrayBufferLike[]): void;
  onmessage: ((event: { data: any }) => void) | null;
};
const postMessage = (message: unknown, transfer: ArrayBufferLike[] = []) => scope.postMessage(message, transfer);
const threads = scope.crossOriginIsolated ? 2 : 1;
postMessage({ type: "env", threads, webgpu: scope.navigator.gpu !== undefined, tasks: MULTIPLE_CHOICE_TASKS });

const backends = new Map<string, Promise<AnyBackend>>();

/** The loaded model, and how it differs from the files it came from. */
interface Loaded {
  key: string;
  /** The model folder's URL, or the picked folder's name: the adapter's base_model_name_or_path. */
  base: string;
  model: Olmo;
  tokenizer: Tokenizer;
  /** Full fine-tuning steps applied to the weights themselves. */
  fineTunedSteps: number;
  /** Training steps of the attached LoRA adapter (model.lora), when there is one. */
  adapterSteps: number;
}
let loaded: Loaded | null = null;

function backendNamed(name: string): Promise<AnyBackend> {
  let backend = backends.get(name);
  if (!backend) {
    backend = name === "webgpu" ? createWebGpuBackend({ gpu: scope.navigator.gpu }) : createWasmBackend({ threads, spawnWorker: spawnWebWorker });
    backends.set(name, backend);
    backend.then(
      (b) => postMessage({ type: "backend", name, adapter: (b as { adapter?: string }).adapter }),
      () => backends.delete(name), // let a later request try again
    );
  }
  return backend;
}

/** Tell the page what the model is now: as loaded, fully fine-tuned, or with an adapter. */
function postModelState(): void {
  let text = "not loaded (the next request loads it)";
  if (loaded) {
    const { model, base, fineTunedSteps, adapterSteps } = loaded;
    text = base;
    if (fineTunedSteps > 0) text += `, fully fine-tuned for ${fineTunedSteps} steps`;
    if (model.lora) {
      const { r, alpha } = model.lora.options;
      text += ` + LoRA adapter (r ${r}, alpha ${alpha}, on ${model.lora.targets.join(", ")}), trained ${adapterSteps} steps`;
    }
    if (fineTunedSteps === 0 && !model.lora) text += ", as loaded";
  }
  postMessage({ type: "model", text, changed: loaded !== null && (loaded.fineTunedSteps > 0 || loaded.model.lora !== null), adapterSteps: loaded?.model.lora ? loaded.adapterSteps : 0 });
}

function unload(): void {
  loaded?.model.dispose(); // and its adapter
  loaded = null;
}

/**
 * The model of this request: a folder URL (cached in the Cache API) or the files the user picked.
 * `original`: the weights as in the files, so a model fine-tuned on this page is loaded again.
 */
async function modelFor(data: { backend: string; model: string; files?: File[]; base: string }, target: string, original = false): Promise<Loaded> {
  const backend = await backendNamed(data.backend);
  const key = `${data.backend} ${data.files ? `picked:${data.files.map((f) => f.name).join(",")}` : data.model}`;
  if (loaded?.key !== key || (original && loaded.fineTunedSteps > 0)) {
    postMessage({ type: "status", target, text: `loading ${data.files ? "the picked folder" : data.model} onto ${data.backend} ...` });
    unload();
    // A URL is downloaded once with progress, then read from the Cache API (also on the next visit).
    const onProgress = (file: string, received: number, total: number) => {
      postMessage({ type: "status", target, text: `downloading ${file}: ${(received / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB` });
      postMessage({ type: "progress", what: `downloading ${file}`, done: received, total });
    };
    const source = data.files ? fileListSource(data.files, "the picked folder") : cachedUrlSource(data.model, { onProgress });
    const { model, tokenizer } = await loadOlmo(source, backend, {
      weightDType: "f32",
      onProgress: (done, total) => postMessage({ type: "progress", what: `loading the weights onto ${data.backend}`, done, total }),
    });
    if (!tokenizer) throw new Error(`${source.name} has no tokenizer.json`);
    loaded = { key, base: data.base, model, tokenizer, fineTunedSteps: 0, adapterSteps: 0 };
    postModelState();
  }
  return loaded!;
}

/**
 * Fine-tune on the text: every weight, or (with `lora`) fresh adapters on the model as loaded (a model
 * fully fine-tuned here is loaded again, so the adapter fits the files others have).
 */
async function train(data: { text: string; steps: number; lr: number; warmup?: number; lora?: LoraOptions; sample?: { prompt: string; tokens: number } }, current: Loaded): Promise<void> {
  const { model, tokenizer } = current;
  const seqLen = 32;
  const ids = tokenizer.encode(data.text, { addEos: true });
  if (ids.length < seqLen) throw new Error(`the text has ${ids.length} tokens; paste at least ${seqLen}`);
  // A new run replaces the adapter; full fine-tuning trains the model's own weights, so it goes then too
  // (with an adapter attached, the Trainer would train the adapter only).
  const adapters = data.lora ? LoraAdapters.create(model.config, data.lora, model.backend, 0) : null; // first: it may refuse the options
  model.lora?.dispose();
  model.lora = adapters;
  current.adapterSteps = 0;
  postModelState();
  const dataset = new TokenDataset(Uint16Array.from(ids), null, seqLen, model.config.vocabSize);
  const warmup = data.warmup ?? 2;
  const trainer = new Trainer(model, dataset, { steps: data.steps, batchSize: Math.min(4, dataset.instances), lr: data.lr, warmup, seed: 0 });
  const trainable = trainer.params.reduce((n, p) => n + p.tensor.size, 0);
  postMessage({ type: "trainable", trainable, total: parameterCount(model.config) });
  // The learning rate of every step to come (OLMo's warmup, then a cosine to 0.1 lr), drawn under the measured one.
  const schedule = Array.from({ length: data.steps }, (_, i) => ({ step: i + 1, lr: trainer.lrAt(i + 1) }));
  postMessage({ type: "schedule", schedule, warmup });
  // The same prompt before and after: what the run changed, greedy so it is the model's own choice.
  if (data.sample) await sample(current, data.sample, "before");
  const metrics: StepMetrics[] = [];
  try {
    for (let step = 1; step <= data.steps; step++) {
      const m = await trainer.trainStep();
      if (model.lora) current.adapterSteps = m.step;
      else current.fineTunedSteps++;
      metrics.push(m);
      postMessage({ type: "loss", ...m });
      postModelState();
      // A turn of the event loop, so a download of the adapter asked for mid-run is answered now: on
      // wasm the step's awaits resolve as microtasks, and a message would wait for the run's end.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } finally {
    trainer.optimizer.dispose();
  }
  if (data.sample) await sample(current, data.sample, "after");
  postMessage({ type: "trained", losses: metrics.map((m) => m.loss), metrics, lora: model.lora?.options ?? null });
}

/** Greedy tokens after `prompt` on the model as it is now, posted as the training view's sample `when`. */
async function sample(current: Loaded, o: { prompt: string; tokens: number }, when: "before" | "after"): Promise<void> {
  postMessage({ type: "status", target: "train", text: `generating the sample ${when} training ...` });
  const { newIds } = await generate(current.model, current.tokenizer.encode(o.prompt), { maxNewTokens: o.tokens });
  postMessage({ type: "sample", when, prompt: o.prompt, ids: newIds, text: current.tokenizer.decode(newIds) });
}

/** Candidates per position whose text the page gets (it draws the 16 likeliest). */
const CANDIDATES = 32;

/** Indices of the k largest values, largest first (k small: an insertion into a sorted list of k). */
function largest(values: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (top.length === k && values[i]! <= values[top[k - 1]!]!) continue;
    let at = top.length === k ? k - 1 : top.length;
    while (at > 0 && values[top[at - 1]!]! < values[i]!) at--;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}

/** Tokens the look views draw at most: an attention map of 64 x 64 cells is still readable. */
const LOOK_TOKENS = 64;

/**
 * One forward pass over the text for the learner's views: its words and their BPE merges, every
 * position's logits (the page runs generate's own sampler on them as the sliders move), and the
 * attention probabilities of every layer and head (src/model/capture.ts).
 */
async function inspect(data: { prompt: string }, current: Loaded): Promise<void> {
  const { model, tokenizer } = current;
  const started = performance.now();
  const words = tokenizer.explain(data.prompt);
  const ids = words.flatMap((w) => w.ids);
  if (ids.length === 0) throw new Error("the text has no tokens: type a few words");
  if (ids.length > LOOK_TOKENS) throw new Error(`the text has ${ids.length} tokens; these views draw at most ${LOOK_TOKENS}`);
  const merges = words.map((w) => (w.added ? [] : tokenizer.mergeSteps(w.text)));
  const capture = new Capture({ attention: true });
  const logits = noGrad(() =>
    tensorScope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend: model.backend }), { capture })),
  );
  // A plain buffer of its own, so it moves to the page rather than being copied (T x V floats: 200 KB a token).
  const values = new Float32Array((await logits.data()) as Float32Array);
  logits.dispose();
  const { attention } = await capture.read();
  const { numLayers, numHeads, numKvHeads, headDim, clipQkv, vocabSize, hiddenSize } = model.config;
  // The page has no vocabulary: the text and piece of each position's likeliest tokens come along.
  const vocabulary: Record<number, { text: string; piece: string }> = {};
  for (let t = 0; t < ids.length; t++) {
    for (const id of [ids[t]!, ...largest(values.subarray(t * vocabSize, (t + 1) * vocabSize), CANDIDATES)]) {
      vocabulary[id] ??= { text: tokenizer.decode([id]), piece: tokenizer.idToToken(id) ?? "?" };
    }
  }
  postMessage(
    {
      type: "inspected", prompt: data.prompt, model: current.key, words, merges, ids,
      tokens: ids.map((id) => tokenizer.idToToken(id) ?? "?"),
      texts: ids.map((id) => tokenizer.decode([id])),
      logits: values, vocabSize, vocabulary,
      attention: attention.map((a) => ({ layer: a.layer, heads: a.heads, data: a.probabilities.data })),
      config: { numLayers, numHeads, numKvHeads, headDim, clipQkv, hiddenSize, vocabSize },
      seconds: (performance.now() - started) / 1000,
    },
    [values.buffer],
  );
}

/** The base model's short name for file names: the last part of its URL (of a Hub URL, the repository's name) or folder name. */
function shortName(base: string): string {
  const last = base.replace(/\/resolve\/[^/]+\/?$/, "").split("/").filter(Boolean).pop() ?? "model";
  return last.replace(/[^\w.-]+/g, "_");
}

/** The attached adapter as a ZIP of one folder in PEFT's format (what PeftModel.from_pretrained reads). */
async function adapterZip(current: Loaded | null): Promise<{ name: string; blob: Blob }> {
  const lora = current?.model.lora;
  if (!current || !lora || current.adapterSteps === 0) throw new Error("no trained adapter: train with LoRA first");
  // Named for the step too, so the downloads of two steps do not unpack into one folder.
  const folder = `${shortName(current.base)}-lora-step${current.adapterSteps}`;
  const config = JSON.stringify(adapterConfig(lora, current.base), null, 2) + "\n";
  const zip = zipStored([
    { name: `${folder}/${ADAPTER_CONFIG}`, data: [new TextEncoder().encode(config)] },
    { name: `${folder}/${ADAPTER_WEIGHTS}`, data: encodeSafetensors(await adapterTensors(lora)) },
  ]);
  // Every piece is a plain ArrayBuffer's (adapterTensors copies the values out), none shared memory,
  // which a Blob refuses; the types cannot tell.
  return { name: `${folder}.zip`, blob: new Blob(zip as Uint8Array<ArrayBuffer>[], { type: "application/zip" }) };
}

/** Score the pasted rows (JSON lines in the task's dataset fields) on the model as it is now. */
async function evaluate(data: { task: string; rows: string }, current: Loaded): Promise<void> {
  const { rows, where } = parseJsonRows(data.rows, "the pasted rows");
  const started = performance.now();
  const scores = await scoreMultipleChoice(current.model, current.tokenizer, data.task, rows, {
    describeRow: where,
    onProgress: (done, total) => postMessage({ type: "status", target: "evaluate", text: `${done} / ${total} items` }),
  });
  postMessage({ type: "evaluated", ...scores, itemsPerSecond: scores.items / ((performance.now() - started) / 1000) });
}

scope.onmessage = async ({ data }) => {
  const target = data.type === "train" || data.type === "evaluate" || data.type === "inspect" ? data.type : "generate";
  try {
    // These two act on the model as it is, without loading one.
    if (data.type === "adapter") {
      postMessage({ type: "adapter", ...(await adapterZip(loaded)) });
      return;
    }
    if (data.type === "reset") {
      unload();
      postModelState();
      return;
    }
    const current = await modelFor(data, target, data.type === "train" && data.lora !== undefined);
    if (data.type === "generate") {
      const { model, tokenizer } = current;
      postMessage({ type: "status", target, text: `generating with ${model.lora ? "the LoRA adapter" : "the model"} ...` });
      const stream = tokenizer.streamDecoder();
      const result = await generate(model, tokenizer.encode(data.prompt), {
        maxNewTokens: data.maxNewTokens,
        onToken: (id) => postMessage({ type: "text", text: stream.push(id) }),
      });
      postMessage({ type: "text", text: stream.flush() });
      postMessage({
        type: "generated", ids: result.newIds, tokens: result.newIds.length, withAdapter: model.lora !== null,
        tokensPerSecond: result.newIds.length / (result.prefillSeconds + result.decodeSeconds),
      });
    } else if (data.type === "evaluate") {
      await evaluate(data, current);
    } else if (data.type === "inspect") {
      await inspect(data, current);
    } else {
      await train(data, current);
    }
  } catch (e) {
    postMessage({ type: "error", target, message: String((e as Error).message ?? e) });
  }
};
