// Run by Bun (see test/hosts.test.ts): greedy generation on the default model with the core bundle
// and the WASM backend, reading byte ranges of the model files through Bun.file. Prints the new ids.
import { createWasmBackend, generate, loadOlmo, spawnWebWorker } from "../../dist/index.js";

const [dir, prompt, threads = "1"] = process.argv.slice(2);
const source = {
  name: dir,
  open: async (file) => {
    const handle = Bun.file(`${dir}/${file}`);
    if (!(await handle.exists())) return null;
    return {
      name: `${dir}/${file}`,
      size: handle.size,
      read: async (offset, length) => new Uint8Array(await handle.slice(offset, offset + length).arrayBuffer()),
    };
  },
};
// With threads > 1, Web Workers share the memory (parallelMinWork 0: every kernel is split).
const backend = await createWasmBackend({ threads: Number(threads), spawnWorker: spawnWebWorker, parallelMinWork: 0 });
const { model, tokenizer } = await loadOlmo(source, backend);
const result = await generate(model, tokenizer.encode(prompt), { maxNewTokens: 24 });
console.log(JSON.stringify({ ids: result.newIds, features: backend.features }));
backend.dispose();
