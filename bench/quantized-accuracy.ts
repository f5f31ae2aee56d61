// How much quantization costs the default model (models/olmo-tiny-shakespeare): perplexity of bf16,
// int8 and int4 weights on text unlike its training data (the repository's LICENSE and CONTRIBUTING.md)
// and on the held-out end of its own corpus (the last 64 KB of tinyshakespeare, from ../shared/data
// when present: the model trained on the first 90%, RECIPE.md), with the relative change against bf16.
// Goals (the quantization issue): int8 within 0.5%, int4 within 5%.
// A last row measures the default's alternative: int4 with the tied embedding / LM head in int8
// (quantizeEmbedding: "int8"), as ggml keeps its output layer above Q4_0.

import { existsSync, readFileSync } from "node:fs";
import { loadOlmo, perplexity, type Olmo, type QuantScheme, type Tokenizer } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";

const MODEL = new URL("../../models/olmo-tiny-shakespeare", import.meta.url).pathname;
const root = new URL("../../", import.meta.url).pathname;

/** Up to `limit` tokens of each text that exists. */
function texts(tokenizer: Tokenizer, limit = 16384): { name: string; ids: number[] }[] {
  const out: { name: string; ids: number[] }[] = [];
  const heldOut = ["LICENSE", "CONTRIBUTING.md"].map((f) => readFileSync(`${root}${f}`, "utf8")).join("\n\n");
  out.push({ name: "out of domain (LICENSE + CONTRIBUTING.md)", ids: tokenizer.encode(heldOut).slice(0, limit) });
  const shakespeare = `${root}../shared/data/tinyshakespeare.txt`;
  if (existsSync(shakespeare)) {
    const text = readFileSync(shakespeare, "utf8");
    out.push({ name: "tinyshakespeare, last 64 KB (held out)", ids: tokenizer.encode(text.slice(-65536)).slice(0, limit) });
  }
  return out;
}

export async function benchQuantizedAccuracy(): Promise<void> {
  const backend = await createNodeWasmBackend({ threads: 2 });
  try {
    const variants: { name: string; load: () => Promise<Olmo> }[] = [
      { name: "bf16", load: async () => (await loadOlmo(folderSource(MODEL), backend, { weightDType: "bf16", quantize: "none" })).model },
      ...(["int8", "int4"] as QuantScheme[]).map((scheme) => ({
        name: scheme,
        load: async () => (await loadOlmo(folderSource(MODEL), backend, { quantize: scheme })).model,
      })),
      {
        name: "int4, embedding int8",
        load: async () => (await loadOlmo(folderSource(MODEL), backend, { quantize: "int4", quantizeEmbedding: "int8" })).model,
      },
    ];
    const { tokenizer } = await loadOlmo(folderSource(MODEL), backend, { quantize: "none" });
    const corpora = texts(tokenizer!);
    console.log(`\nquantization accuracy, default model (${MODEL.split("/").at(-1)}), wasm 2 threads, windows of 256 tokens`);
    const baseline = new Map<string, number>();
    for (const v of variants) {
      const model = await v.load();
      const cells: string[] = [];
      for (const c of corpora) {
        const { perplexity: ppl } = await perplexity(model, c.ids, { seqLen: 256 });
        if (v.name === "bf16") baseline.set(c.name, ppl);
        const change = (100 * (ppl - baseline.get(c.name)!)) / baseline.get(c.name)!;
        cells.push(`${c.name}: ${ppl.toFixed(3)}${v.name === "bf16" ? "" : ` (${change >= 0 ? "+" : ""}${change.toFixed(2)}%)`} over ${c.ids.length} tokens`);
      }
      console.log(`  ${v.name.padEnd(24)} ${cells.join("; ")}`);
      model.dispose();
    }
  } finally {
    backend.dispose();
  }
}
