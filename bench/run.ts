// `npm run bench`: throughput of the backends, side by side in one run (the machine is shared and
// noisy, so compare ratios within a run, not figures across runs).
//
// Compute: the reference and WASM SIMD backends per op, then matmul against TensorFlow.js's WASM
// backend, then the WebGPU backend on whatever adapter the machine has. The tokenizer is compared with @huggingface/tokenizers.

import { spawnSync } from "node:child_process";
import Benchmark from "benchmark";
import { benchEval } from "./eval.js";
import { benchLora } from "./lora.js";
import { benchMatmul } from "./matmul.js";
import { benchOlmo1b } from "./olmo.js";
import { benchQuantized } from "./quantized.js";
import { benchQuantizedAccuracy } from "./quantized-accuracy.js";
import { benchTraining } from "./train.js";
import { benchTokenizer } from "./tokenizer.js";
import { benchWebGpu } from "./webgpu.js";
import { attention, createJsBackend, layerNorm, matmul, noGrad, randn, scope, type AnyBackend } from "../src/index.js";
import { createNodeWasmBackend } from "../src/node/index.js";

interface Row {
  name: string;
  flops: number;
  run: (backend: AnyBackend) => () => void;
}

const rows: Row[] = [
  {
    name: "matmul 128x128x128",
    flops: 2 * 128 ** 3,
    run: (backend) => {
      const a = randn([128, 128], { seed: 1, backend }), b = randn([128, 128], { seed: 2, backend });
      return () => scope(() => void matmul(a, b));
    },
  },
  {
    name: "matmul 1x512x512 (decode GEMV, bf16 weight)",
    flops: 2 * 512 * 512,
    run: (backend) => {
      const x = randn([1, 512], { seed: 1, backend }), w = randn([512, 512], { seed: 2, backend, dtype: "bf16" });
      return () => scope(() => void matmul(x, w, { transB: true }));
    },
  },
  {
    name: "attention B1 H4 T64 D32 causal",
    flops: 4 * 4 * 64 * 64 * 32, // q k^T and p v, full (not halved for the mask)
    run: (backend) => {
      const q = randn([1, 4, 64, 32], { seed: 1, backend });
      return () => scope(() => void attention(q, q, q));
    },
  },
  {
    name: "layerNorm 64x2048",
    flops: 64 * 2048 * 5,
    run: (backend) => {
      const x = randn([64, 2048], { seed: 1, backend });
      return () => scope(() => void layerNorm(x));
    },
  },
];

const backends: AnyBackend[] = [createJsBackend(), await createNodeWasmBackend({ threads: 1 })];

console.log(`olmo-js benchmark, node ${process.version}, 1 thread`);
console.log(`${"case".padEnd(46)} ${"backend".padEnd(8)} ${"ms/op".padStart(9)} ${"GFLOP/s".padStart(8)}`);
for (const row of rows) {
  for (const backend of backends) {
    const fn = noGrad(() => row.run(backend));
    const bench = new Benchmark(row.name, () => noGrad(fn), { minSamples: 5, maxTime: 1.5 });
    bench.run();
    const seconds = bench.stats.mean;
    const gflops = row.flops / seconds / 1e9;
    console.log(`${row.name.padEnd(46)} ${backend.name.padEnd(8)} ${(seconds * 1e3).toFixed(3).padStart(9)} ${gflops.toFixed(3).padStart(8)}`);
  }
}

await benchMatmul();
await benchQuantized();
await benchQuantizedAccuracy();
await benchOlmo1b(2);
console.log("");
await benchEval();
await benchTraining();
await benchLora();
await benchWebGpu();

// OLMo-7B across WebAssembly memories (bench/olmo-multimemory.ts), with `npm run bench -- --7b`: it
// writes a 13.8 GB checkpoint once and needs some 16 GB of memory for the bf16 run, so it is asked for.
// Each run in a process of its own, so that its peak RSS is its own.
if (process.argv.includes("--7b")) {
  const script = new URL("./olmo-multimemory.js", import.meta.url).pathname;
  const sevenB = new URL("../../.cache/olmo-7b-random", import.meta.url).pathname;
  const runs = [
    ["--preset", "OLMo-7B", "--dir", sevenB],
    ["--preset", "OLMo-7B", "--dir", sevenB, "--quantize", "int8"],
    ["--preset", "OLMo-7B", "--dir", sevenB, "--quantize", "int4"],
    ["--preset", "OLMo-7B-0424", "--weights-from", sevenB],
  ];
  console.log("");
  for (const args of runs) spawnSync(process.execPath, [script, ...args], { stdio: "inherit" });
} else {
  console.log("\nOLMo-7B across WebAssembly memories: `npm run bench -- --7b` (writes a 13.8 GB checkpoint once; about 16 GB of memory)");
}

// The tokenizer, on the shared data folder beside the repository (skipped, and said, when absent).
const dataDir = new URL("../../../shared/data", import.meta.url).pathname;
try {
  const [ours, theirs] = benchTokenizer(dataDir);
  console.log(`\ntokenizer encode, tinyshakespeare.txt (1.1 MB), 1 thread`);
  for (const r of [ours!, theirs!]) {
    console.log(`${r.name.padEnd(26)} cold ${r.coldMBps.toFixed(2).padStart(6)} MB/s   warm ${r.warmMBps.toFixed(2).padStart(6)} MB/s   ${r.ids} ids`);
  }
  console.log(`olmo-js / @huggingface/tokenizers: cold ${(ours!.coldMBps / theirs!.coldMBps).toFixed(2)}x, warm ${(ours!.warmMBps / theirs!.warmMBps).toFixed(2)}x`);
} catch (e) {
  console.log(`\ntokenizer benchmark skipped: ${(e as Error).message}`);
}

// Size of the core bundle as a browser would ship it (minified, gzip), WebAssembly kernels included.
{
  const { build } = await import("esbuild");
  const { gzipSync } = await import("node:zlib");
  const entry = new URL("../../src/index.ts", import.meta.url).pathname;
  const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", platform: "neutral", write: false, loader: { ".wasm": "binary", ".wgsl": "text" } });
  const bytes = result.outputFiles[0]!.contents;
  console.log(`\ncore bundle (dist/index.js equivalent): ${(bytes.length / 1024).toFixed(0)} KiB minified, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(1)} KiB gzip`);
}
