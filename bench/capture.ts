// Decode speed with Olmo.forward's capture off, on with nothing asked, and on with every layer's
// attention, residual norms and MLP sparsity asked (src/model/capture.ts), in one run: the first two must
// agree within the noise (capture off costs three null checks per layer), the third says what
// capturing costs. Not part of `npm run bench`.
//
//   node build/bench/capture.js [--model DIR] [--threads N] [--steps N] [--rounds N] [--backend wasm|js]
//
// Default: the bundled model (models/olmo-tiny-shakespeare), wasm on 1 thread, 32-token prompt, 64
// decode steps per round, 5 rounds; the variants take turns step by step, and each reports its median
// over the rounds.

import { parseArgs } from "node:util";
import { Capture, createJsBackend, loadOlmo, noGrad, scope, tensor, type AnyBackend, type CaptureRequest, type Olmo } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";

const DEFAULT_MODEL = new URL("../../models/olmo-tiny-shakespeare", import.meta.url).pathname;

/**
 * Decode tokens/s of each variant (a capture request, or undefined for none): each gets its own KV
 * cache and prompt, then the variants take one decode step each in turn, `steps` times, each step timed
 * on its own. Taking turns step by step, a change in the machine's load hits every variant alike.
 */
async function decodeTokensPerS(model: Olmo, prompt: number[], steps: number, requests: (CaptureRequest | undefined)[]): Promise<number[]> {
  const backend = model.backend;
  const runs = requests.map((request) => ({ cache: model.createCache(1, prompt.length + steps), capture: request && new Capture(request), seconds: 0 }));
  const step = async (run: (typeof runs)[number], ids: number[]) => {
    const t0 = performance.now();
    const { cache, capture } = run;
    const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend }), { cache, lastOnly: true, capture })));
    await logits.data(); // the step is done when its logits are on the host, as in generate()
    logits.dispose();
    await capture?.read();
    run.seconds += (performance.now() - t0) / 1000;
  };
  try {
    for (const run of runs) await step(run, prompt);
    for (const run of runs) run.seconds = 0;
    // Speed does not depend on which tokens are fed: a fixed sequence stands in for sampled ones.
    for (let i = 0; i < steps; i++) for (const run of runs) await step(run, [(i * 7919) % model.config.vocabSize]);
    return runs.map((run) => steps / run.seconds);
  } finally {
    for (const run of runs) run.cache.dispose();
  }
}

export async function benchCapture(options: { model?: string; backend?: AnyBackend; steps?: number; rounds?: number } = {}): Promise<void> {
  const { model: dir = DEFAULT_MODEL, steps = 64, rounds = 5 } = options;
  const backend = options.backend ?? (await createNodeWasmBackend({ threads: 1 }));
  const { model } = await loadOlmo(folderSource(dir), backend);
  const prompt = Array.from({ length: 32 }, (_, i) => (i * 104729) % model.config.vocabSize);
  const variants: [string, CaptureRequest | undefined][] = [
    ["capture off (undefined)", undefined],
    ["capture on, nothing asked ({})", {}],
    ["capture on: attention of every layer and head, residual norms, MLP sparsity", { attention: true, residualNorm: true, mlpSparsity: true }],
  ];
  const runs = variants.map(() => [] as number[]);
  await decodeTokensPerS(model, prompt, 8, variants.map(([, request]) => request)); // warm-up: first touches of memory, kernel compilation
  for (let r = 0; r < rounds; r++) {
    (await decodeTokensPerS(model, prompt, steps, variants.map(([, request]) => request))).forEach((v, k) => runs[k]!.push(v));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(runs[0]!);
  console.log(`\ncapture, decode tokens/s (median of ${rounds} rounds of ${steps} steps after a ${prompt.length}-token prompt), ${dir.split("/").pop()}, ${backend.name}`);
  for (const [k, [name]] of variants.entries()) {
    const m = median(runs[k]!);
    console.log(`  ${name.padEnd(78)} ${m.toFixed(1).padStart(8)}  (${(m / base).toFixed(3)}x; runs ${runs[k]!.map((v) => v.toFixed(0)).join(", ")})`);
  }
  model.dispose();
  if (!options.backend) backend.dispose();
}

if (process.argv[1]?.endsWith("/capture.js")) {
  const { values } = parseArgs({
    options: { model: { type: "string" }, threads: { type: "string" }, steps: { type: "string" }, rounds: { type: "string" }, backend: { type: "string" } },
  });
  const threads = Number(values.threads ?? 1);
  const backend = values.backend === "js" ? createJsBackend() : await createNodeWasmBackend({ threads });
  await benchCapture({
    model: values.model, backend, steps: values.steps ? Number(values.steps) : undefined, rounds: values.rounds ? Number(values.rounds) : undefined,
  });
  backend.dispose();
}
