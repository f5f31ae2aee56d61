// The demo's Web Worker: loads a model folder by URL, generates with streaming, and fine-tunes.

import {
  cachedUrlSource, createWasmBackend, generate, loadOlmo, lossCurveSvg, spawnWebWorker, TokenDataset, Trainer, type Olmo, type Tokenizer,
  type WasmBackend,
} from "../../src/index.js";

// The worker's global scope (typed here: the DOM library describes a window, not a worker).
const scope = self as unknown as {
  crossOriginIsolated?: boolean;
  postMessage(message: unknown): void;
  onmessage: ((event: { data: any }) => void) | null;
};
const postMessage = (message: unknown) => scope.postMessage(message);
const threads = scope.crossOriginIsolated ? 2 : 1;
postMessage({ type: "env", threads });

let backend: WasmBackend | null = null;
let loaded: { url: string; model: Olmo; tokenizer: Tokenizer } | null = null;

async function modelAt(url: string, target: string): Promise<{ model: Olmo; tokenizer: Tokenizer }> {
  backend ??= await createWasmBackend({ threads, spawnWorker: spawnWebWorker });
  if (loaded?.url !== url) {
    postMessage({ type: "status", target, text: `loading ${url} ...` });
    loaded?.model.dispose();
    // Downloaded once with progress, then read from the Cache API (also on the next visit).
    const onProgress = (file: string, received: number, total: number) =>
      postMessage({ type: "status", target, text: `downloading ${file}: ${(received / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB` });
    const { model, tokenizer } = await loadOlmo(cachedUrlSource(url, { onProgress }), backend, { weightDType: "f32" });
    if (!tokenizer) throw new Error(`${url} has no tokenizer.json`);
    loaded = { url, model, tokenizer };
  }
  return loaded;
}

scope.onmessage = async ({ data }) => {
  const target = data.type;
  try {
    const { model, tokenizer } = await modelAt(data.model, target);
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
