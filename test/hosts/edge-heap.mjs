// Run by test/edge.test.ts under a capped V8 heap (--max-old-space-size): what the edge examples do in
// their isolate, in Node: the model files in memory (the Worker's data modules), the model loaded onto
// a WASM backend on precompiled kernels, then a request of the full context through
// createGenerateHandler. Prints the new tokens' count; a heap too small ends the process instead.
import { readFileSync } from "node:fs";
import { bytesSource, createGenerateHandler, createWasmBackend, loadOlmo, OlmoGenerator } from "../../dist/index.js";

const [dir, dist] = process.argv.slice(2);
const files = Object.fromEntries(["config.json", "tokenizer.json", "model.safetensors"].map((f) => [f, new Uint8Array(readFileSync(`${dir}/${f}`))]));
const simd = new WebAssembly.Module(readFileSync(`${dist}/olmo-simd.wasm`));
const handler = createGenerateHandler({
  load: async () => {
    const backend = await createWasmBackend({ modules: { simd } });
    const { model, tokenizer } = await loadOlmo(bytesSource("model", files), backend, { weightDType: "bf16" });
    return new OlmoGenerator(model, tokenizer, backend, true);
  },
});
const response = await handler(new Request("http://localhost/generate", { method: "POST", body: JSON.stringify({ prompt: "ROMEO:", max_new_tokens: 252 }) }));
const text = await response.text();
console.log(JSON.stringify({ status: response.status, tokens: text.split("event: token").length - 1 }));
