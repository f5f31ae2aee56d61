// LoRA fine-tuning of an OLMo-1B-shaped model in headless Chromium: the steps of bench/lora.ts (the
// random bf16 checkpoint of bench/olmo.ts, frozen, adapters of rank 8 on all seven linear layers, one
// sequence of 512 tokens a step, the WASM backend on 2 threads in one 4 GiB WebAssembly memory, the
// first 8 of 16 blocks checkpointed) in a module Web Worker of a page served from here, the checkpoint
// read over HTTP a tensor at a time (Range requests). It prints what bench/lora.ts prints, from the
// worker's messages, then the browser's own view of its memory: the WebAssembly memory's buffer,
// performance.measureUserAgentSpecificMemory, and the peak resident memory of Chromium's processes.
//
//   node build/bench/lora-browser.js --steps N [--checkpoint-layers N] [--model DIR --seq N]
//
// --model: another checkpoint folder, to try the bench on a small model (models/olmo-tiny-shakespeare
// with --seq 128: its positions stop at 256). Without Chromium (Debian's `chromium`, or
// $CHROMIUM_PATH) it says so and exits 0.

import { readdirSync, readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import { OLMO_PRESETS } from "../src/index.js";
import { formatBytes } from "../src/core/format.js";
import type { Page } from "playwright-core";
import { CHROMIUM_INSTALL, findChromium, launchChromium } from "../test/system.js";
// @ts-expect-error: a plain .mjs script without type declarations
import { startServer } from "../scripts/serve.mjs";
import { ALL, ALPHA, benchTokens, CHECKPOINTED, LR, MEMORY_BYTES, RANK, SEQ, THREADS } from "./lora.js";
import { DIR, ensureCheckpoint } from "./olmo.js";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;

/** What the worker reports (bench/browser/lora-worker.mjs). */
interface Usage {
  inUse: number;
  peak: number;
  limit: number;
  memories: number;
  memoryBufferBytes: number;
}
type Message =
  | ({ kind: "loaded"; seconds: number; layers: number; trainable: number; relaxedSimd: boolean; threads: number; crossOriginIsolated: boolean } & Usage)
  | ({ kind: "step"; step: number; loss: number; tokensPerSecond: number } & Usage)
  | ({ kind: "done" } & Usage)
  | { kind: "uaMemory"; bytes?: number; parts?: { bytes: number; types: string[]; scopes: string[] }[]; seconds?: number; unavailable?: string }
  | { kind: "error"; message: string };

export async function benchLoraBrowser(options: { steps?: number; checkpointLayers?: number; model?: string; seq?: number } = {}): Promise<void> {
  const { steps = 2, checkpointLayers = CHECKPOINTED, seq = SEQ } = options;
  const chromiumPath = findChromium();
  if (chromiumPath === null) {
    console.log(`\nLoRA fine-tuning in headless Chromium: skipped, no Chromium on this machine. Install it: ${CHROMIUM_INSTALL}`);
    return;
  }
  let modelDir = DIR, modelName = "OLMo-1B shapes";
  if (options.model) [modelDir, modelName] = [resolve(options.model), basename(resolve(options.model))];
  else await ensureCheckpoint(OLMO_PRESETS["OLMo-1B"]!);
  const lora = { r: RANK, alpha: ALPHA, targets: ALL };
  // A warm-up step, then the `steps` counted ones, as bench/lora.ts.
  const setup = { modelUrl: "/model/", steps: steps + 1, seq, threads: THREADS, memoryBytes: MEMORY_BYTES, lora, checkpointLayers, lr: LR, ids: [...benchTokens(seq * (steps + 1))] };

  const server = await serveRepositoryAndModel(modelDir);
  // ForceEagerMeasureMemory: measureUserAgentSpecificMemory answers at once instead of with the next
  // garbage collection (18 s later on an idle page here).
  const browser = await launchChromium(chromiumPath, ["--enable-blink-features=ForceEagerMeasureMemory"]);
  const timed: number[] = [];
  let afterWarmUp: Usage | null = null;
  try {
    const page = await browser.newPage();
    const finished = runBenchPage<Message>(page, `${server.origin}/bench/browser/lora.html`, setup, (m, finish) => {
      if (m.kind === "loaded") {
        console.log(
          `\nLoRA fine-tuning in headless Chromium ${browser.version()} (a module Web Worker), ${modelName}, bf16 base frozen, r ${RANK} alpha ${ALPHA} ` +
            `on ${ALL.join(",")} (${(m.trainable / 1e6).toFixed(1)}M trainable), batch 1 x ${seq}, wasm ${m.threads} threads` +
            `${m.relaxedSimd ? " (relaxed SIMD)" : ""}, ${Math.min(checkpointLayers, m.layers)} of ${m.layers} blocks checkpointed`,
        );
        console.log(`  weights loaded over HTTP in ${m.seconds.toFixed(1)} s: ${formatBytes(m.inUse)} in use`);
      } else if (m.kind === "step") {
        const warmUp = m.step === 1;
        if (!warmUp) timed.push(m.tokensPerSecond);
        if (warmUp) afterWarmUp = m;
        console.log(
          `  step ${String(m.step).padStart(2)}${warmUp ? " (warm-up)" : ""}: loss ${m.loss.toFixed(4)}, ${m.tokensPerSecond.toFixed(1)} tokens/s, ` +
            `WebAssembly memory in use ${formatBytes(m.inUse)}, peak ${formatBytes(m.peak)} of ${formatBytes(m.limit)} (its buffer ${formatBytes(m.memoryBufferBytes)})`,
        );
      } else if (m.kind === "done") {
        const ours = timed.length / timed.reduce((s, v) => s + 1 / v, 0); // tokens over time: harmonic mean
        console.log(`  olmo-js wasm in Chromium: ${ours.toFixed(1)} tokens/s; peak WebAssembly memory ${formatBytes(m.peak)} (${m.memories} memory), its buffer ${formatBytes(m.memoryBufferBytes)}`);
        if (afterWarmUp) {
          const w = afterWarmUp;
          console.log(`  steady? in use ${formatBytes(w.inUse)} after the warm-up step, ${formatBytes(m.inUse)} after the last; peak ${formatBytes(w.peak)} after the warm-up, ${formatBytes(m.peak)} after the last`);
        }
      } else if (m.kind === "uaMemory") {
        if (m.unavailable) console.log(`  performance.measureUserAgentSpecificMemory: unavailable (${m.unavailable})`);
        else {
          const parts = m.parts!.map((p) => `${formatBytes(p.bytes)} ${p.types.join("+")}${p.scopes.length ? ` in ${p.scopes.join(",")}` : ""}`).join("; ");
          console.log(`  performance.measureUserAgentSpecificMemory, in ${m.seconds!.toFixed(1)} s: ${formatBytes(m.bytes!)} (${parts})`);
        }
        finish();
      }
    });
    console.log(`\nloading ${modelDir} into headless Chromium's WebAssembly memory over HTTP...`);
    await finished;
    const rss = peakRssOfChildren();
    if (rss) console.log(`  peak resident memory of Chromium's largest process (its renderer: /proc VmHWM): ${formatBytes(rss)}`);
  } finally {
    await browser.close();
    server.close();
  }
}

/**
 * Open a bench page (bench/browser/) whose script calls window.benchSetup() for its setting and sends every
 * message of its worker to window.report; `onMessage` sees each one and calls `finish` when the run is
 * over. The page crashing or throwing, an "error" message, or a "loaded" message from a worker that is
 * not cross-origin isolated (so has no threads) ends the run with an error.
 */
export function runBenchPage<M extends { kind: string }>(page: Page, url: string, setup: unknown, onMessage: (m: M, finish: () => void) => void): Promise<void> {
  return new Promise<void>((finish, reject) => {
    page.on("crash", () => reject(new Error("the page crashed (the renderer ran out of memory, or was killed)")));
    page.on("pageerror", reject);
    const report = (m: M & { message?: string; crossOriginIsolated?: boolean }) => {
      if (m.kind === "error") return reject(new Error(`in the browser: ${m.message}`));
      if (m.kind === "loaded" && !m.crossOriginIsolated) return reject(new Error("the worker is not cross-origin isolated (no shared memory, so no threads)"));
      onMessage(m, () => finish());
    };
    // Exposed before the page loads: its script calls both at once.
    Promise.all([page.exposeFunction("benchSetup", () => setup), page.exposeFunction("report", report)])
      .then(() => page.goto(url))
      .then((response) => response?.ok() || reject(new Error(`the page answered ${response?.status()}`)), reject);
  });
}

/**
 * One origin for the page and the checkpoint, as the worker's fetches need (a cross-origin isolated
 * page gets no other origin's answer without CORS headers): serve.mjs serves the repository, and the
 * checkpoint mounted at /model/ (it refuses dot folders such as .cache/ under its root, so the
 * checkpoint cannot simply be a path inside the repository's).
 */
export async function serveRepositoryAndModel(modelDir: string): Promise<{ origin: string; close(): void }> {
  const server = (await startServer(0, REPO_ROOT, null, { "/model/": modelDir })) as Server;
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

/** The largest peak resident memory (VmHWM) among this process's descendants (Chromium's processes), or null off Linux. */
export function peakRssOfChildren(): number | null {
  const parents = new Map<number, number>();
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8"); // "pid (name) state ppid ...": the name may hold spaces
        parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // The process ended while we read.
      }
    }
  } catch {
    return null;
  }
  const descends = (pid: number) => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) if (p === process.pid) return true;
    return false;
  };
  let peak = 0;
  for (const pid of parents.keys()) {
    if (!descends(pid)) continue;
    try {
      const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (kb) peak = Math.max(peak, Number(kb[1]) * 1024);
    } catch {
      // The process ended while we read.
    }
  }
  return peak || null;
}

if (process.argv[1]?.endsWith("/lora-browser.js")) {
  const { values } = parseArgs({ options: { steps: { type: "string" }, "checkpoint-layers": { type: "string" }, model: { type: "string" }, seq: { type: "string" } } });
  const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  await benchLoraBrowser({ steps: number(values.steps), checkpointLayers: number(values["checkpoint-layers"]), model: values.model, seq: number(values.seq) });
}
