// BPE on one long word (no spaces): olmo-js vs @huggingface/tokenizers. `npm run build` first, then
// node build/bench/tokenizer-glued.js [bytes...]   (default: 100000 1000000; the peer runs up to 100 KB)

import { benchGluedWord } from "./tokenizer.js";

const dataDir = new URL("../../../shared/data", import.meta.url).pathname;
const sizes = process.argv.slice(2).map(Number);
console.log("BPE on one glued word, fresh tokenizer, 1 thread");
for (const r of benchGluedWord(dataDir, sizes.length ? sizes : undefined)) {
  console.log(`${r.input.padEnd(24)} ${(r.bytes / 1e6).toFixed(1).padStart(4)} MB  ${r.name.padEnd(24)} ${r.seconds.toFixed(2).padStart(7)} s (cpu ${r.cpuSeconds.toFixed(2).padStart(6)} s)  ${r.ids} ids`);
}
