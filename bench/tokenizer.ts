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

export interface GluedWordBenchResult {
  input: string;
  bytes: number;
  name: string;
  seconds: number;
  /** CPU time of this process: the wall time counts other processes too on a shared machine. */
  cpuSeconds: number;
  ids: number;
}

/**
 * One long word: BPE's cost in a word's length (O(n log n) with a heap of merges; a rescan per merge
 * is O(n^2) and took minutes on a megabyte). Inputs: tinyshakespeare's letters with everything else
 * removed (text glued into one word of real vocabulary pieces), and one piece repeated. Each
 * tokenizer encodes each input once with a fresh tokenizer; @huggingface/tokenizers only on the
 * sizes up to `peerMaxBytes` (it takes seconds per 100 KB).
 */
export function benchGluedWord(dataDir: string, sizes = [100_000, 1_000_000], peerMaxBytes = 100_000): GluedWordBenchResult[] {
  const json = readFileSync(`${dataDir}/allenai_gpt-neox-olmo-dolma-v1_5.json`, "utf8");
  const letters = readFileSync(`${dataDir}/tinyshakespeare.txt`, "utf8").replace(/[^A-Za-z]/g, "");
  const results: GluedWordBenchResult[] = [];
  for (const bytes of sizes) {
    const inputs: [string, string][] = [
      ["shakespeare letters", letters.repeat(Math.ceil(bytes / letters.length)).slice(0, bytes)],
      ['"abracadabra" repeated', "abracadabra".repeat(Math.ceil(bytes / 11)).slice(0, bytes)],
    ];
    for (const [input, text] of inputs) {
      const run = (name: string, encode: (s: string) => number[]) => {
        const start = performance.now(), cpuStart = process.cpuUsage();
        const ids = encode(text).length;
        const cpu = process.cpuUsage(cpuStart);
        results.push({ input, bytes, name, seconds: (performance.now() - start) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, ids });
      };
      const ours = new Tokenizer(json);
      run("olmo-js", (s) => ours.encode(s));
      if (bytes <= peerMaxBytes) {
        const theirs = new HfTokenizer(JSON.parse(json), {});
        run("@huggingface/tokenizers", (s) => theirs.encode(s).ids);
      }
    }
  }
  return results;
}
