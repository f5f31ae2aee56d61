// The learner's views of the demo page (examples/browser) in headless Chromium, on wasm and on WebGPU
// (SwiftShader, as browser.test): every view is walked as a learner would (click a word, a position, a
// head, move the sliders, train), and what it shows is checked against the library in Node:
//   Tokens      the chips' ids are Tokenizer.encode's; a word's merge steps are Tokenizer.mergeSteps'
//   Next token  the kept set is keptTokens' (generate's own sampler) on the page's logits, for sampling
//               and greedy; those logits are Node's forward pass's
//   Attention   the big map and a hovered cell are Capture's probabilities in Node; the causal mask hatched
//   Train       the plotted points are the posted StepMetrics; the learning rates are learningRate's
//               (OLMo's warmup and cosine); the sample before training is Node's greedy generation
// and every link to the code opens the lines of the symbol it names. A screenshot of each view goes to
// out/learner-<view>-<backend>.png.

import { mkdirSync, readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import {
  Capture, createWasmBackend, generate, keptTokens, learningRate, loadOlmo, noGrad, scope, tensor, type Olmo, type SamplingOptions, type Tokenizer,
} from "../src/index.js";
import { folderSource } from "../src/node/index.js";
import { formatNumber } from "../examples/browser/charts.js";
import { assertClose, chromiumUnderTest, repoRoot, testIf } from "./helpers.js";
import { launchChromium } from "./system.js";
// @ts-expect-error: a plain .mjs script without type declarations
import { startServer } from "../scripts/serve.mjs";

// Every case here needs Chromium: without it `test` registers them as skipped (said once on stderr;
// an error under CI).
const CHROMIUM = await chromiumUnderTest("the learner's views of learner.test");
const test = testIf(CHROMIUM !== null);
const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
const OUT = `${repoRoot}out`;

/** Serve the repository (with COOP/COEP) and run `fn` with a headless Chromium page on the demo. */
async function withDemo(fn: (page: Page, origin: string) => Promise<void>): Promise<void> {
  const server = (await startServer(0, repoRoot)) as import("node:http").Server;
  const browser = await launchChromium(CHROMIUM!);
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    await page.goto(`${origin}/dist/demo/index.html`);
    try {
      await fn(page, origin);
    } catch (e) {
      throw problems.length ? new Error(`${(e as Error).message}; page errors: ${problems.join("; ")}`) : e;
    }
  } finally {
    await browser.close();
    server.close();
  }
}

/** Wait for window.demo[key] (or the page's error) and return it. */
async function waitFor<T>(page: Page, key: string, timeout: number): Promise<T> {
  await page.waitForFunction(`window.demo.${key} !== undefined || window.demo.error !== undefined`, undefined, { timeout });
  const { value, error } = (await page.evaluate(`({ value: window.demo.${key}, error: window.demo.error })`)) as { value: T; error?: string };
  if (error !== undefined) throw new Error(`the page: ${error}`);
  return value;
}

/** Set a slider or checkbox as a user would, so the page's input listener runs. */
async function setInput(page: Page, id: string, value: number | boolean): Promise<void> {
  await page.$eval(`#${id}`, (element, value) => {
    // (Runs in the page; the tests' types have no DOM library.)
    const input = element as unknown as { value: string; checked: boolean; dispatchEvent(event: Event): boolean };
    if (typeof value === "boolean") input.checked = value;
    else input.value = String(value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

/** The default model in Node (wasm, 1 thread, f32 weights as the page loads them), once. */
let node: Promise<{ model: Olmo; tokenizer: Tokenizer }> | null = null;
const nodeModel = () =>
  (node ??= (async () => {
    const { model, tokenizer } = await loadOlmo(folderSource(MODEL), await createWasmBackend({ threads: 1 }), { weightDType: "f32" });
    return { model, tokenizer: tokenizer! };
  })());

/** Node's forward pass over `ids`: the logits [T, V] and every layer's attention [H, T, T]. */
async function nodeForward(ids: number[]): Promise<{ logits: Float32Array; attention: Float32Array[] }> {
  const { model } = await nodeModel();
  const capture = new Capture({ attention: true });
  const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend: model.backend }), { capture })));
  const values = (await logits.data()) as Float32Array;
  logits.dispose();
  const { attention } = await capture.read();
  return { logits: values, attention: attention.map((a) => a.probabilities.data) };
}

interface Shown {
  inspected: { ids: number[]; words: { text: string; ids: number[] }[]; vocabSize: number };
  tokens: { ids: number[]; word: number; steps: string[][] };
  nextToken: { position: number; options: SamplingOptions; kept: number[]; rows: { id: number; kept: boolean }[] };
  attention: { layer: number; head: number; kvHead: number; values: number[] };
  attentionHover: { layer: number; head: number; q: number; k: number; value: number };
  metrics: { step: number; loss: number; grad_norm: number; lr: number; tokens_per_s: number }[];
  samples: Record<"before" | "after", { ids: number[]; text: string }>;
}

// Logits and attention from the page's backend against Node's wasm on one thread: the same f32 math
// summed in other orders (2 threads; WebGPU's tiles), so close, not equal.
const TOLERANCE = { wasm: { atol: 1e-4, rtol: 1e-4 }, webgpu: { atol: 2e-3, rtol: 2e-3 } };
// Training steps: on wasm enough to see the warmup and the cosine; SwiftShader emulates the GPU on the CPU, slowly.
const TRAINING = { wasm: { steps: 12, warmup: 3 }, webgpu: { steps: 3, warmup: 1 } };

for (const backend of ["wasm", "webgpu"] as const) {
  test(`the learner's views on ${backend}: tokens, next token, attention and training show what the library computes; screenshots in out/`, async () => {
    const { tokenizer } = await nodeModel();
    mkdirSync(OUT, { recursive: true });
    await withDemo(async (page) => {
      const shot = (view: string) => page.screenshot({ path: `${OUT}/learner-${view}-${backend}.png`, fullPage: true });
      if (backend === "webgpu") {
        await page.waitForSelector('#backend option[value="webgpu"]:not([disabled])', { state: "attached", timeout: 30000 });
        await page.selectOption("#backend", "webgpu");
      }

      // Tokens: opening the view loads the model and looks at the bar's text.
      await page.click("#tab-tokenize");
      const inspected = await waitFor<Shown["inspected"]>(page, "inspected", 180000);
      const prompt = await page.inputValue("#look-text");
      const ids = tokenizer.encode(prompt);
      if (inspected.ids.join() !== ids.join()) throw new Error(`the page's tokens [${inspected.ids}], Tokenizer.encode [${ids}]`);
      const chips = await page.$$eval("#token-strip .token", (els) => els.map((e) => [Number(e.getAttribute("data-id")), e.querySelector(".piece")!.textContent]));
      const want = ids.map((id) => [id, tokenizer.idToToken(id)]);
      if (JSON.stringify(chips) !== JSON.stringify(want)) throw new Error(`chips ${JSON.stringify(chips)}, Node ${JSON.stringify(want)}`);
      // Click " light": its merges, step by step, are mergeSteps'.
      const light = inspected.words.findIndex((w) => w.text === " light");
      if (light < 0) throw new Error(`no word " light" in ${JSON.stringify(prompt)}`);
      await page.click(`#token-strip .word[data-word="${light}"]`);
      const tokens = (await page.evaluate("window.demo.tokens")) as Shown["tokens"];
      const steps = tokenizer.mergeSteps(" light").map((s) => s.tokens);
      if (tokens.word !== light || JSON.stringify(tokens.steps) !== JSON.stringify(steps)) throw new Error(`merges shown ${JSON.stringify(tokens)}, Node ${JSON.stringify(steps)}`);
      const rows = await page.$$eval("#merges .merge-steps .row", (els) => els.map((e) => e.textContent));
      if (rows.length !== steps.length || rows.at(-1) !== steps.at(-1)!.join("")) throw new Error(`merge rows drawn: ${JSON.stringify(rows)}`);
      await shot("tokens");

      // Next token: the page's logits are Node's; the kept set is keptTokens' on them, sampling and greedy.
      const reference = await nodeForward(ids);
      const V = inspected.vocabSize;
      await page.click("#tab-next");
      const position = 4;
      await page.click(`#next-strip .position[data-position="${position}"]`);
      for (const [id, value] of [["temperature", 0.8], ["top-k", 20], ["top-p", 0.9], ["no-repeat", 2], ["repetition-penalty", 1.2]] as const) await setInput(page, id, value);
      const pageRow = Float32Array.from((await page.evaluate(`Array.from(window.demo.inspected.logits.subarray(${position * V}, ${(position + 1) * V}))`)) as number[]);
      assertClose(pageRow, reference.logits.subarray(position * V, (position + 1) * V), TOLERANCE[backend], `logits at position ${position}`);
      const context = ids.slice(0, position + 1);
      for (const doSample of [true, false]) {
        await setInput(page, "do-sample", doSample);
        const shown = (await page.evaluate("window.demo.nextToken")) as Shown["nextToken"];
        const options = { doSample, temperature: 0.8, topK: 20, topP: 0.9, noRepeatNgramSize: 2, repetitionPenalty: 1.2 };
        const kept = keptTokens(pageRow, context, options).kept;
        if (shown.position !== position || JSON.stringify(shown.options) !== JSON.stringify(options)) throw new Error(`the view shows ${JSON.stringify(shown)}`);
        if (shown.kept.join() !== kept.join()) throw new Error(`${doSample ? "sampling" : "greedy"}: the page keeps [${shown.kept}], keptTokens [${kept}]`);
        if (doSample && !(kept.length > 1 && kept.length <= 20)) throw new Error(`top-k 20 and top-p 0.9 kept ${kept.length} tokens`);
        // The highlighted bars are exactly the drawn candidates that are kept.
        const bars = await page.$$eval("#next-chart .track", (els) => els.map((e) => [Number(e.getAttribute("data-id")), e.getAttribute("data-kept") === "true"]));
        const keptSet = new Set(kept);
        const wrong = bars.filter(([id, isKept]) => keptSet.has(id as number) !== isKept);
        if (bars.length < 16 || wrong.length) throw new Error(`bars ${JSON.stringify(bars)}: wrongly highlighted ${JSON.stringify(wrong)}`);
        if (doSample) await shot("next-token");
      }

      // Attention: layer 1, head 2, large; a hovered cell and the whole map are Capture's in Node.
      await page.click("#tab-attention");
      const [layer, head] = [1, 2];
      await page.click(`#attention-grid .thumb[data-layer="${layer}"][data-head="${head}"]`);
      const T = ids.length;
      const [q, k] = [T - 1, 2];
      await page.hover(`#attention-heatmap rect[data-q="${q}"][data-k="${k}"]`);
      const { attention, attentionHover } = (await page.evaluate("({ attention: window.demo.attention, attentionHover: window.demo.attentionHover })")) as Shown;
      const H = 4;
      const nodeMap = reference.attention[layer]!.subarray(head * T * T, (head + 1) * T * T);
      if (attention.layer !== layer || attention.head !== head || attention.kvHead !== head) throw new Error(`the view shows ${JSON.stringify({ ...attention, values: undefined })}`);
      assertClose(attention.values, nodeMap, TOLERANCE[backend], `attention of layer ${layer}, head ${head} of ${H}`);
      if (attentionHover.q !== q || attentionHover.k !== k || attentionHover.value !== attention.values[q * T + k]) throw new Error(`hovered ${JSON.stringify(attentionHover)}`);
      assertClose([attentionHover.value], [nodeMap[q * T + k]!], TOLERANCE[backend], "the hovered cell");
      const hover = (await page.textContent("#attention-hover")) ?? "";
      if (!hover.includes(formatNumber(attentionHover.value, 4))) throw new Error(`the hover line says ${JSON.stringify(hover)} for ${attentionHover.value}`);
      const masked = await page.$$eval("#attention-heatmap rect.masked", (els) => els.map((e) => [Number(e.getAttribute("data-q")), Number(e.getAttribute("data-k")), Number(e.getAttribute("data-value"))]));
      if (masked.length !== (T * (T - 1)) / 2 || masked.some(([mq, mk, v]) => !(mk! > mq!) || v !== 0)) throw new Error(`${masked.length} masked cells, expected the ${(T * (T - 1)) / 2} above the diagonal, all 0`);
      const labels = await page.$$eval("#attention-heatmap text", (els) => els.length);
      if (labels !== 2 * T) throw new Error(`${labels} axis labels, expected ${2 * T}`);
      const info = (await page.textContent("#attention-info")) ?? "";
      if (!info.includes("clip_qkv: not set") || !info.includes("plain multi-head attention")) throw new Error(`the config line: ${info}`);
      await shot("attention");

      // Training: the curves' points are the posted metrics, the learning rates OLMo's schedule.
      await page.click("#tab-train");
      const { steps: trainSteps, warmup } = TRAINING[backend];
      await page.fill("#steps", String(trainSteps));
      await page.fill("#warmup", String(warmup));
      await page.click("#train-run");
      await waitFor(page, "losses", backend === "webgpu" ? 400000 : 180000);
      const { metrics, samples } = (await page.evaluate("({ metrics: window.demo.metrics, samples: window.demo.samples })")) as Shown;
      if (metrics.length !== trainSteps || !metrics.every((m, i) => m.step === i + 1 && Number.isFinite(m.loss) && m.grad_norm > 0 && m.tokens_per_s > 0)) {
        throw new Error(`metrics ${JSON.stringify(metrics)}`);
      }
      metrics.forEach((m, i) => {
        const lr = learningRate(i + 1, { lr: 0.001, warmup, tMax: trainSteps });
        if (Math.abs(m.lr - lr) > 1e-15) throw new Error(`step ${i + 1}: lr ${m.lr}, learningRate gives ${lr}`);
      });
      if (!(metrics.at(-1)!.loss < metrics[0]!.loss)) throw new Error(`the loss did not fall: ${metrics.map((m) => m.loss)}`);
      for (const [chart, series, key] of [["loss-chart", "loss", "loss"], ["grad-chart-svg", "grad norm", "grad_norm"], ["lr-chart-svg", "lr", "lr"]] as const) {
        const points = await page.$$eval(`#${chart} circle.point[data-series="${series}"]`, (els) => els.map((e) => [Number(e.getAttribute("data-x")), Number(e.getAttribute("data-value"))]));
        const want = metrics.map((m) => [m.step, m[key]]);
        if (JSON.stringify(points) !== JSON.stringify(want)) throw new Error(`${chart}: points ${JSON.stringify(points)}, metrics ${JSON.stringify(want)}`);
      }
      const { model } = await nodeModel();
      const before = (await generate(model, tokenizer.encode("ROMEO:"), { maxNewTokens: 24 })).newIds;
      if (samples.before.ids.join() !== before.join()) throw new Error(`the sample before training [${samples.before.ids}], Node's greedy [${before}]`);
      if (samples.after.ids.length !== 24 || !(await page.textContent("#sample-after"))?.includes(samples.after.text)) throw new Error(`the sample after training: ${JSON.stringify(samples.after)}`);
      await shot("train");
    });
  });
}

test("every link of the demo to the code opens the lines of the symbol it names", async () => {
  await withDemo(async (page, origin) => {
    const links = await page.$$eval("a.source", (els) => els.map((e) => ({ source: e.getAttribute("data-source")!, href: e.getAttribute("href")!, from: Number(e.getAttribute("data-from")), to: Number(e.getAttribute("data-to")) })));
    if (links.length < 20) throw new Error(`only ${links.length} links to the code`);
    for (const link of links) {
      const [file, symbol] = link.source.split("#") as [string, string];
      const lines = readFileSync(`${repoRoot}${file}`, "utf8").split("\n");
      const first = lines[link.from - 1] ?? "";
      const last = lines[link.to - 1] ?? "";
      if (!new RegExp(`\\b${symbol}\\b`).test(first) || !(link.to >= link.from) || !(/^\s*}/.test(last) || last.trimEnd().endsWith(";"))) {
        throw new Error(`${link.source}: lines ${link.from}-${link.to} start ${JSON.stringify(first)} and end ${JSON.stringify(lines[link.to - 1])}`);
      }
      if (!link.href.startsWith(`source.html?file=${encodeURIComponent(file)}&from=${link.from}&to=${link.to}`)) throw new Error(`${link.source}: href ${link.href}`);
    }
    // One opened: the viewer shows the file with the linked lines highlighted.
    const attention = links.find((l) => l.source === "src/model/olmo.ts#attentionBlock")!;
    await page.goto(`${origin}/dist/demo/${attention.href}`);
    await page.waitForSelector(".line.hit");
    const hit = await page.$$eval(".line.hit", (els) => els.map((e) => e.textContent ?? ""));
    if (hit.length !== attention.to - attention.from + 1 || !hit[0]!.includes("attentionBlock(")) throw new Error(`highlighted ${hit.length} lines from ${JSON.stringify(hit[0])}`);
  });
});

test.run();
