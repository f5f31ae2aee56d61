// Run by Deno (see test/hosts.test.ts): greedy generation on the default model with the core bundle
// and the WASM backend, reading the model folder through Deno's own file API. Prints the new ids.
import { createWasmBackend, generate, loadOlmo, spawnWebWorker } from "../../dist/index.js";
import { denoFolderSource } from "./deno-source.mjs";

const [dir, prompt, threads = "1"] = Deno.args;
const source = denoFolderSource(dir);
// With threads > 1, Web Workers share the memory (parallelMinWork 0: every kernel is split).
const backend = await createWasmBackend({ threads: Number(threads), spawnWorker: spawnWebWorker, parallelMinWork: 0 });
const { model, tokenizer } = await loadOlmo(source, backend);
const result = await generate(model, tokenizer.encode(prompt), { maxNewTokens: 24 });
console.log(JSON.stringify({ ids: result.newIds, features: backend.features }));
backend.dispose();
