// The demo's Web Worker: loads a model (a folder URL, or files the user picked) onto the chosen backend
// (wasm or webgpu), generates with streaming, and fine-tunes.

import {
  cachedUrlSource, createWasmBackend, createWebGpuBackend, fileListSource, generate, loadOlmo, lossCurveSvg, spawnWebWorker, TokenDataset,
  Trainer, type AnyBackend, type Olmo, type Tokenizer,
} from "../../src/index.js";

// The worker's global scope (typed here: the DOM library describes a window, not a worker).
const scope = self as unknown as {
  crossOriginIsolated?: boolean;
  navigator: { gpu?: GPU };
  postMessage(message: unknown): void;
  onmessage: ((event: { data: any }) => void) | null;
};
const postMessage = (message: unknown) => scope.postMessage(message);
const threads = scope.crossOriginIsolated ? 2 : 1;
postMessage({ type: "env", threads, webgpu: scope.navigator.gpu !== undefined });

const backends = new Map<string, Promise<AnyBackend>>();
let loaded: { key: string; model: Olmo; tokenizer: Tokenizer } | null = null;

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

/** The model of this request: a folder URL (cached in the Cache API) or the files the user picked. */
async function modelFor(data: { backend: string; model: string; files?: File[] }, target: string): Promise<{ model: Olmo; tokenizer: Tokenizer }> {
  const backend = await backendNamed(data.backend);
  const key = `${data.backend} ${data.files ? `picked:${data.files.map((f) => f.name).join(",")}` : data.model}`;
  if (loaded?.key !== key) {
    postMessage({ type: "status", target, text: `loading ${data.files ? "the picked folder" : data.model} onto ${data.backend} ...` });
    loaded?.model.dispose();
    loaded = null;
    // A URL is downloaded once with progress, then read from the Cache API (also on the next visit).
    const onProgress = (file: string, received: number, total: number) =>
      postMessage({ type: "status", target, text: `downloading ${file}: ${(received / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB` });
    const source = data.files ? fileListSource(data.files, "the picked folder") : cachedUrlSource(data.model, { onProgress });
    const { model, tokenizer } = await loadOlmo(source, backend, { weightDType: "f32" });
    if (!tokenizer) throw new Error(`${source.name} has no tokenizer.json`);
    loaded = { key, model, tokenizer };
  }
  return loaded;
}

scope.onmessage = async ({ data }) => {
  const target = data.type;
  try {
    const { model, tokenizer } = await modelFor(data, target);
    if (data.type === "generate") {
      postMessage({ type: "status", target, text: "generating ..." });
      const stream = tokenizer.streamDecoder();
      const result = await generate(model, tokenizer.encode(data.prompt), {
        maxNewTokens: data.maxNewTokens,
        onToken: (id) => postMessage({ type: "text", text: stream.push(id) }),
      });
      postMessage({ type: "text", text: stream.flush() });
      postMessage({ type: "generated", ids: result.newIds, tokens: result.newIds.length, tokensPerSecond: result.newIds.length / (result.prefillSeconds + result.decodeSeconds) });
    } else {
      const seqLen = 32;
      const ids = tokenizer.encode(data.text, { addEos: true });
      if (ids.length < seqLen) throw new Error(`the text has ${ids.length} tokens; paste at least ${seqLen}`);
      const dataset = new TokenDataset(Uint16Array.from(ids), null, seqLen, model.config.vocabSize);
      const trainer = new Trainer(model, dataset, { steps: data.steps, batchSize: Math.min(4, dataset.instances), lr: 1e-3, warmup: 2, seed: 0 });
      const losses: { step: number; loss: number }[] = [];
      for (let step = 1; step <= data.steps; step++) {
        const m = await trainer.trainStep();
        losses.push({ step: m.step, loss: m.loss });
        postMessage({ type: "loss", step: m.step, loss: m.loss, svg: lossCurveSvg(losses) });
      }
      trainer.optimizer.dispose();
      postMessage({ type: "trained", losses: losses.map((l) => l.loss) });
    }
  } catch (e) {
    postMessage({ type: "error", target, message: String((e as Error).message ?? e) });
  }
};
