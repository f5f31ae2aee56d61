// A module Web Worker for sources.html: the model loaded through cachedUrlSource from the Origin Private
// File System (downloaded there by the page already, or now), read with synchronous access handles (only
// a worker has them), on 2 threads. Answers with the greedy ids after "ROMEO:" and FNV-1a of every
// weight's stored bits by name, as sources.html computes them on the page.
import { cachedUrlSource, createWasmBackend, generate, loadOlmo, spawnWebWorker } from "../../dist/index.js";
import { weightsDigest } from "./weights-digest.mjs";

// Reads through synchronous access handles, counted: the test asserts the weights came that way.
let syncReads = 0;
const open = FileSystemFileHandle.prototype.createSyncAccessHandle;
FileSystemFileHandle.prototype.createSyncAccessHandle = async function (...args) {
  const handle = await open.apply(this, args);
  const read = handle.read.bind(handle);
  handle.read = (...a) => (syncReads++, read(...a));
  return handle;
};

self.onmessage = async ({ data: { modelUrl, weightDType } }) => {
  try {
    const backend = await createWasmBackend({ threads: 2, spawnWorker: spawnWebWorker });
    const { model, tokenizer } = await loadOlmo(cachedUrlSource(modelUrl, { storage: "opfs" }), backend, { weightDType });
    const digest = await weightsDigest(model, backend);
    const { newIds } = await generate(model, tokenizer.encode("ROMEO:"), { maxNewTokens: 24 });
    model.dispose();
    backend.dispose();
    postMessage({ ids: newIds, digest, syncReads });
  } catch (e) {
    postMessage({ error: String((e && e.stack) || e) });
  }
};
