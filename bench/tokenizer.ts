// Tokenizer encode throughput on tinyshakespeare.txt (1.1 MB): olmo-js vs @huggingface/tokenizers
// (pure JS), in one run, one thread. "cold" is the first encode with a fresh tokenizer (empty caches),
// "warm" the median of the next runs.

import { readFileSync } from "node:fs";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { Tokenizer } from "../src/index.js";

export interface TokenizerBenchResult {
  name: string;
  coldMBps: number;
  warmMBps: number;
  ids: number;
}

function measure(name: string, make: () => (text: string) => number[], text: string, mb: number): TokenizerBenchResult {
  const encode = make();
  let start = performance.now();
  const ids = encode(text).length;
  const cold = mb / ((performance.now() - start) / 1000);
  const warm: number[] = [];
  for (let i = 0; i < 5; i++) {
    start = performance.now();
    encode(text);
    warm.push(mb / ((performance.now() - start) / 1000));
  }
  warm.sort((a, b) => a - b);
  return { name, coldMBps: cold, warmMBps: warm[2]!, ids };
}

export function benchTokenizer(dataDir: string): TokenizerBenchResult[] {
  const json = readFileSync(`${dataDir}/allenai_gpt-neox-olmo-dolma-v1_5.json`, "utf8");
  const text = readFileSync(`${dataDir}/tinyshakespeare.txt`, "utf8");
  const mb = new TextEncoder().encode(text).length / 1e6;
  const ours = measure("olmo-js", () => {
    const t = new Tokenizer(json);
    return (s) => t.encode(s);
  }, text, mb);
  const theirs = measure("@huggingface/tokenizers", () => {
    const t = new HfTokenizer(JSON.parse(json), {});
    return (s) => t.encode(s).ids;
  }, text, mb);
  return [ours, theirs];
}
