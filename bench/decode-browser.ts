// Decoding in headless Chromium, a model of any size: a checkpoint folder read over HTTP a tensor at a
// time (Range requests; or with --from opfs / cache, through the Origin Private File System or the Cache API: downloaded into it once, then the
// timed load from there) into a module Web Worker's WASM backend (2 threads), bf16 or quantized as it
// loads, spanning as many WebAssembly memories as it needs (src/backends/wasm/memories.ts). It reports
// load seconds, the memories and bytes used, decode tokens/s after a 32-token prompt beside the bound
// from the streaming-read bandwidth measured in the same worker, and the peak resident memory of
// Chromium's largest process. The headline: OLMo-7B in int4 in one tab.
//
//   node build/bench/olmo-multimemory.js --preset OLMo-7B --write-only     # the checkpoint, once
//   node build/bench/decode-browser.js --model .cache/olmo-7b-random --quantize int4
//   node build/bench/decode-browser.js --model .cache/olmo-1b-random --from opfs      # load time vs Node's (--from cache: the Cache API)
//   node build/bench/decode-browser.js --model .cache/olmo-1b-random --from picked    # the same from picked files
//
// Without Chromium (Debian's `chromium`, or $CHROMIUM_PATH) it says so and exits 0.

import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatBytes } from "../src/core/format.js";
import { CHROMIUM_INSTALL, findChromium, launchChromium, launchChromiumWithProfile } from "../test/system.js";
import { peakRssOfChildren, runBenchPage, serveRepositoryAndModel } from "./lora-browser.js";

interface Usage {
  inUse: number;
  peak: number;
  limit: number;
  memories: number;
}
type Message =
  | ({ kind: "progress"; read: number; total: number; seconds: number } & Usage)
  | { kind: "cached"; seconds: number }
  | ({ kind: "loaded"; seconds: number; bytes: number; layers: number; relaxedSimd: boolean; threads: number; crossOriginIsolated: boolean } & Usage)
  | ({ kind: "done"; prefillSeconds: number; decodeTokensPerS: number; ids: number[]; bandwidth: number } & Usage)
  | { kind: "error"; message: string };

export async function benchDecodeBrowser(
  options: { model: string; quantize?: "int8" | "int4"; threads?: number; newTokens?: number; from?: "url" | "cache" | "opfs" | "picked" },
): Promise<void> {
  const { quantize, threads = 2, newTokens = 16, from = "url" } = options;
  const chromiumPath = findChromium();
  if (chromiumPath === null) {
    console.log(`\ndecoding in headless Chromium: skipped, no Chromium on this machine. Install it: ${CHROMIUM_INSTALL}`);
    return;
  }
  const modelDir = resolve(options.model);
  // No total cap but the browser's own: the backend opens memories as the model needs them.
  const setup = { modelUrl: "/model/", quantize: quantize ?? null, threads, promptLength: 32, newTokens, memoryBytes: Infinity, from };
  const server = await serveRepositoryAndModel(modelDir);
  // The Cache API needs a profile of its own: a plain launch's incognito context holds too little.
  const profile = from === "cache" || from === "opfs" ? mkdtempSync(join(tmpdir(), "olmo-bench-profile-")) : null;
  const browser = profile ? await launchChromiumWithProfile(chromiumPath, profile) : await launchChromium(chromiumPath);
  try {
    const url = `${server.origin}/bench/browser/decode.html`;
    if (from === "cache" || from === "opfs") {
      // The first visit on a page of its own (downloads into the store, loads, closes); the timed load
      // is the next page's, as a user's later visit is a new page (a new renderer, none of the first
      // page's memory in it).
      const firstVisit = await browser.newPage();
      await runBenchPage<Message>(firstVisit, url, { ...setup, visit: "first" }, (m, finish) => {
        if (m.kind !== "cached") return;
        console.log(`  first visit: downloaded into ${from === "opfs" ? "OPFS" : "the Cache API"} and loaded in ${m.seconds.toFixed(1)} s (then the page closed)`);
        finish();
      });
      await firstVisit.close();
    }
    const page = await browser.newPage();
    let loaded: Extract<Message, { kind: "loaded" }> | null = null;
    if (from === "picked") {
      // The page waits for its file input; give it the folder's files as a user picking them would.
      const files = readdirSync(modelDir).filter((f) => statSync(join(modelDir, f)).isFile()).map((f) => join(modelDir, f));
      page.waitForSelector("#files").then(() => page.setInputFiles("#files", files)).catch((e) => console.error(`  could not pick the files: ${(e as Error).message}`));
    }
    const finished = runBenchPage<Message>(page, url, setup, (m, finish) => {
      if (m.kind === "progress") {
        console.log(`  ${m.seconds.toFixed(0)} s: ${(m.read / 1e9).toFixed(2)} of ${(m.total / 1e9).toFixed(2)} GB read, ${formatBytes(m.inUse)} in ${m.memories} memories`);
      } else if (m.kind === "loaded") {
        loaded = m;
        console.log(
          `  loaded ${from === "cache" ? "from the Cache API on a new page," : from === "opfs" ? "from OPFS on a new page," : from === "picked" ? "from picked files" : "over HTTP"} in ${m.seconds.toFixed(1)} s: ${(m.bytes / 1e9).toFixed(2)} GB of ${quantize ?? "bf16"} weights, ${formatBytes(m.inUse)} in use ` +
            `across ${m.memories} WebAssembly memories; wasm ${m.threads} threads${m.relaxedSimd ? " (relaxed SIMD)" : ""}`,
        );
      } else if (m.kind === "done") {
        const bound = m.bandwidth / (loaded!.bytes / 1e9);
        console.log(
          `  decode: ${m.decodeTokensPerS.toFixed(2)} tokens/s (prefill of 32 tokens ${m.prefillSeconds.toFixed(1)} s); streaming-read bandwidth ` +
            `${m.bandwidth.toFixed(1)} GB/s -> bound ${bound.toFixed(2)} tokens/s: ${((100 * m.decodeTokensPerS) / bound).toFixed(0)}% of it; ` +
            `peak ${formatBytes(m.peak)} across ${m.memories} memories`,
        );
        finish();
      }
    });
    const version = "version" in browser ? browser.version() : (browser.browser()?.version() ?? "");
    console.log(`\ndecoding ${modelDir} in headless Chromium ${version} (a module Web Worker), ${quantize ?? "bf16"} weights...`);
    await finished;
    const rss = peakRssOfChildren();
    if (rss) console.log(`  peak resident memory of Chromium's largest process (its renderer: /proc VmHWM): ${formatBytes(rss)}`);
  } finally {
    await browser.close();
    server.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("/decode-browser.js")) {
  const { values } = parseArgs({
    options: { model: { type: "string" }, quantize: { type: "string" }, threads: { type: "string" }, tokens: { type: "string" }, from: { type: "string" } },
  });
  if (!values.model) throw new Error("--model DIR is required (a checkpoint folder; bench/olmo-multimemory.ts writes OLMo-7B's)");
  if (values.quantize !== undefined && values.quantize !== "int8" && values.quantize !== "int4") throw new Error(`--quantize must be int8 or int4, got ${values.quantize}`);
  const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const froms = ["url", "cache", "opfs", "picked"] as const;
  const from = froms.find((f) => f === (values.from ?? "url"));
  if (!from) throw new Error(`--from must be url, cache, opfs or picked, got ${values.from}`);
  await benchDecodeBrowser({ model: values.model, quantize: values.quantize, threads: number(values.threads), newTokens: number(values.tokens), from });
}
