// The one-line API (OlmoGenerator / NodeOlmoGenerator), its Web Worker client, repetition_penalty and
// the loss chart's axes. The generator is checked against the layers it composes (loadOlmo + generate +
// the tokenizer on the bundled model), which test/olmo.test.ts checks against transformers.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "uvu";
import {
  createWorkerClient, generate, loadOlmo, lossCurveSvg, memory, niceTicks, OlmoGenerator, penalizeRepetitions, serveGenerator, type MessageEndpoint,
} from "../src/index.js";
import { createNodeWasmBackend, folderSource, NodeOlmoGenerator } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
// A prompt whose greedy continuation is not one line repeated ("ROMEO:" loops on the default model), so
// that a stop string can straddle two tokens of two characters or more.
const PROMPT = "KING RICHARD III:";
const NEW = 40;

/** The reference: the same model loaded and run through the lower layers, decoded per token. */
async function reference(options: { repetitionPenalty?: number } = {}): Promise<{ text: string; pieces: string[]; ids: number[] }> {
  const backend = await createNodeWasmBackend({ threads: 1 });
  try {
    const { model, tokenizer } = await loadOlmo(folderSource(MODEL), backend);
    const { newIds } = await generate(model, tokenizer!.encode(PROMPT), { maxNewTokens: NEW, ...options });
    model.dispose();
    const stream = tokenizer!.streamDecoder({ skipSpecialTokens: true });
    const pieces = newIds.map((id) => stream.push(id));
    pieces.push(stream.flush());
    return { text: tokenizer!.decode(newIds, { skipSpecialTokens: true }), pieces, ids: newIds };
  } finally {
    backend.dispose();
  }
}

const collect = async (pieces: AsyncIterable<string>) => {
  const out: string[] = [];
  for await (const piece of pieces) out.push(piece);
  return out;
};

/** A stop string that starts inside one token's text and ends inside the next one's, seen first there. */
function stopAcrossTokens(pieces: string[]): { stop: string; cut: number } {
  const text = pieces.join("");
  let at = 0;
  for (let k = 0; k + 1 < pieces.length; k++) {
    at += pieces[k]!.length;
    if (k < 4 || pieces[k]!.length < 2 || pieces[k + 1]!.length < 2) continue;
    const stop = text.slice(at - 2, at + 2);
    if (text.indexOf(stop) === at - 2) return { stop, cut: at - 2 };
  }
  throw new Error(`no token boundary to test in ${JSON.stringify(pieces)}`);
}

test("repetition penalty: positive logits of seen tokens divided, negative multiplied, each token once (transformers' rule)", () => {
  const logits = Float32Array.from([2, -2, 1, 0.5, -1]);
  penalizeRepetitions(logits, [0, 1, 1, 4, 0], 2);
  const want = [1, -4, 1, 0.5, -2];
  if (logits.join() !== want.join()) throw new Error(`got ${logits.join()}, want ${want.join()}`);
  const same = Float32Array.from([3, -3]);
  penalizeRepetitions(same, [0, 1], 1);
  if (same.join() !== "3,-3") throw new Error("penalty 1 must change nothing");
});

test("olmo generate --repetition-penalty: same ids as generate({ repetitionPenalty }); out-of-range values refused", async () => {
  const want = await reference({ repetitionPenalty: 1.3 });
  const plain = await reference();
  if (want.ids.join() === plain.ids.join()) throw new Error("a penalty of 1.3 should change this greedy continuation (the test would prove nothing)");
  const run = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "generate", "--model", MODEL, "--threads", "1", "--max-new-tokens", String(NEW), "--repetition-penalty", "1.3", "--json", PROMPT], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`olmo generate failed: ${run.stderr}`);
  const ids = (JSON.parse(run.stdout) as { ids: number[] }).ids.slice(-want.ids.length);
  if (ids.join() !== want.ids.join()) throw new Error(`CLI ids ${ids.join()} differ from generate's ${want.ids.join()}`);
  const bad = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "generate", "--repetition-penalty", "0", PROMPT], { encoding: "utf8" });
  if (bad.status !== 2 || !bad.stderr.includes("--repetition-penalty")) throw new Error(`--repetition-penalty 0: exit ${bad.status}, ${bad.stderr}`);
});

test("NodeOlmoGenerator: generate and stream give the lower layers' text; stop strings cut exactly, across token boundaries", async () => {
  const want = await reference();
  const olmo = await NodeOlmoGenerator.fromPretrained(MODEL, { backend: "wasm", threads: 1 });
  try {
    const text = await olmo.generate(PROMPT, { maxNewTokens: NEW });
    if (text !== want.text) throw new Error(`generate: ${JSON.stringify(text)}\nwant ${JSON.stringify(want.text)}`);
    const pieces = await collect(olmo.stream(PROMPT, { maxNewTokens: NEW }));
    if (pieces.join("") !== want.text) throw new Error(`stream: ${JSON.stringify(pieces.join(""))}`);
    if (pieces.length < NEW / 2) throw new Error(`stream gave ${pieces.length} pieces for ${NEW} tokens: not streaming`);

    const { stop, cut } = stopAcrossTokens(want.pieces);
    const stopped = await collect(olmo.stream(PROMPT, { maxNewTokens: NEW, stop: ["no such text in the output at all", stop] }));
    if (stopped.join("") !== want.text.slice(0, cut)) throw new Error(`stop ${JSON.stringify(stop)}: ${JSON.stringify(stopped.join(""))}, want ${JSON.stringify(want.text.slice(0, cut))}`);
    const firstToken = await olmo.generate(PROMPT, { maxNewTokens: NEW, stop: [want.text.slice(0, 1)] });
    if (firstToken !== "") throw new Error(`a stop string at the very start leaves no text, got ${JSON.stringify(firstToken)}`);
  } finally {
    olmo.dispose();
  }
});

test("NodeOlmoGenerator: a misspelled option, a prompt that is no string and a disposed generator are errors that say so", async () => {
  const olmo = await NodeOlmoGenerator.fromPretrained(MODEL, { backend: "js" });
  const failure = (run: () => Promise<unknown>) => Promise.resolve().then(run).then(() => "no error", (e: Error) => e.message);
  const cases: [string, () => Promise<unknown>, string][] = [
    ["generate, a typo", () => olmo.generate(PROMPT, { maxNewToken: 3 } as never), 'OlmoGenerator.generate: unknown option "maxNewToken" (did you mean maxNewTokens?)'],
    ["stream, a typo", () => collect(olmo.stream(PROMPT, { topk: 3 } as never)), 'OlmoGenerator.stream: unknown option "topk" (did you mean topK?)'],
    ["chat, no such option", () => olmo.chat([{ role: "user", content: "hi" }], { beams: 4 } as never), 'OlmoGenerator.chat: unknown option "beams"'],
    ["a number as the prompt", () => olmo.generate(42 as never), "OlmoGenerator.generate: the prompt must be a string, got number"],
    ["options not an object", () => olmo.generate(PROMPT, 5 as never), "OlmoGenerator.generate: options must be an object, got number"],
    ["options an array", () => olmo.generate(PROMPT, [] as never), "OlmoGenerator.generate: options must be an object, got an array"],
    ["a name every object inherits", () => olmo.generate(PROMPT, { constructor: 5 } as never), 'OlmoGenerator.generate: unknown option "constructor"'],
    // stop: a string instead of a list, an entry that is no string (which held back all text before).
    ["stop, a string", () => olmo.generate(PROMPT, { stop: "\n" } as never), 'OlmoGenerator: stop must be an array of strings, got the string "\\n" (write ["\\n"])'],
    ["stop, a number in the list", () => olmo.generate(PROMPT, { stop: [5] } as never), "OlmoGenerator: stop[0] must be a string, got number"],
    ["signal, a string", () => olmo.generate(PROMPT, { signal: "abort" } as never), "OlmoGenerator: signal must be an AbortSignal, got string"],
    ["doSample, a string", () => olmo.generate(PROMPT, { doSample: "no" } as never), 'generate: doSample must be true or false, got "no"'],
    ["eosTokenId, a string", () => olmo.generate(PROMPT, { eosTokenId: "13" } as never), 'generate: eosTokenId must be a token id or null, got "13"'],
    ["temperature, a string", () => olmo.generate(PROMPT, { temperature: "0.5" } as never), 'generate: temperature must be a positive number, got "0.5"'],
    ["maxNewTokens, a string", () => olmo.generate(PROMPT, { maxNewTokens: "3" } as never), 'generate: maxNewTokens must be a non-negative integer, got "3"'],
  ];
  // stream() returns its generator; like every other error of a stream, a bad call surfaces on the first next().
  const pending = olmo.stream(42 as never);
  if (typeof pending.next !== "function") throw new Error("stream() did not return a generator");
  await pending.next().then(() => { throw new Error("a number as the prompt streamed"); }, () => {});
  try {
    for (const [what, run, want] of cases) {
      const message = await failure(run);
      if (!message.startsWith(want)) throw new Error(`${what}: ${message}`);
    }
  } finally {
    olmo.dispose();
  }
  const afterDispose = await failure(() => olmo.generate(PROMPT, { maxNewTokens: 1 }));
  if (!afterDispose.startsWith("OlmoGenerator.generate: this generator was disposed")) throw new Error(`after dispose: ${afterDispose}`);
});

test("NodeOlmoGenerator: an AbortSignal ends generation with its reason; breaking out of the loop frees the KV cache", async () => {
  const olmo = await NodeOlmoGenerator.fromPretrained(MODEL, { backend: "js" });
  try {
    const before = memory();
    const controller = new AbortController();
    let pieces = 0, error: unknown = null;
    try {
      for await (const _ of olmo.stream(PROMPT, { maxNewTokens: NEW, signal: controller.signal })) {
        if (++pieces === 3) controller.abort();
      }
    } catch (e) {
      error = e;
    }
    if (!(error instanceof Error) || error.name !== "AbortError") throw new Error(`expected an AbortError, got ${String(error)}`);
    if (pieces > 4) throw new Error(`${pieces} pieces after aborting at the third`);
    for await (const _ of olmo.stream(PROMPT, { maxNewTokens: NEW })) break;
    const after = memory();
    if (after.tensors !== before.tensors || after.bytes !== before.bytes) throw new Error(`live tensors ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    await olmo.generate(PROMPT, { maxNewTokens: 2 }).then(undefined, (e) => Promise.reject(new Error(`the generator is unusable after a break: ${e}`)));
    const aborted = new AbortController();
    aborted.abort(new Error("already gone"));
    const early = await olmo.generate(PROMPT, { signal: aborted.signal }).then(() => null, (e: Error) => e.message);
    if (early !== "already gone") throw new Error(`an aborted signal should throw its reason at once, got ${early}`);
  } finally {
    olmo.dispose();
  }
});

test("OlmoGenerator (core): a string that is neither a URL nor a Hub id says where folders are opened; NodeOlmoGenerator: a mistyped path is no Hub id", async () => {
  const core = await OlmoGenerator.fromPretrained("models", { backend: "js" }).then(() => "loaded", (e: Error) => e.message);
  if (!core.includes("NodeOlmoGenerator")) throw new Error(core);
  const node = await NodeOlmoGenerator.fromPretrained("./nope/x", { backend: "js" }).then(() => "loaded", (e: Error) => e.message);
  if (!node.includes("no such folder")) throw new Error(node);
  // No model at all (or something that is not one) is named as such, not a crash inside the loader.
  for (const bad of [undefined, null, 42, {}]) {
    const message = await NodeOlmoGenerator.fromPretrained(bad as unknown as string).then(() => "loaded", (e: Error) => e.message);
    if (!message.startsWith("NodeOlmoGenerator.fromPretrained: the first argument names the model")) throw new Error(`${JSON.stringify(bad)}: ${message}`);
  }
});

test("createWorkerClient over a MessageChannel: same text, stop strings, aborts and progress as the generator in the worker", async () => {
  const want = await reference();
  const channel = new MessageChannel();
  serveGenerator(channel.port1 as unknown as MessageEndpoint, (model, options) => NodeOlmoGenerator.fromPretrained(model, options));
  const stages = new Set<string>();
  const olmo = await createWorkerClient(channel.port2 as unknown as MessageEndpoint, MODEL, { backend: "wasm", threads: 1, onProgress: (p) => stages.add(p.stage) });
  try {
    if (!stages.has("load")) throw new Error(`no load progress came back: ${[...stages].join()}`);
    const text = await olmo.generate(PROMPT, { maxNewTokens: NEW });
    if (text !== want.text) throw new Error(`worker generate: ${JSON.stringify(text)}`);
    const { stop, cut } = stopAcrossTokens(want.pieces);
    const stopped = (await collect(olmo.stream(PROMPT, { maxNewTokens: NEW, stop: [stop] }))).join("");
    if (stopped !== want.text.slice(0, cut)) throw new Error(`worker stop: ${JSON.stringify(stopped)}`);
    const controller = new AbortController();
    let pieces = 0, error: unknown = null;
    try {
      for await (const _ of olmo.stream(PROMPT, { maxNewTokens: NEW, signal: controller.signal })) if (++pieces === 2) controller.abort();
    } catch (e) {
      error = e;
    }
    if (!(error instanceof Error) || error.name !== "AbortError") throw new Error(`worker abort: expected an AbortError, got ${String(error)}`);
    const failure = await createWorkerClient(channel.port2 as unknown as MessageEndpoint, "./nope/x").then(() => "loaded", (e: Error) => e.message);
    if (!failure.includes("no such folder")) throw new Error(`a failed load in the worker: ${failure}`);
    // Messages not of the protocol: null and strings are ignored (the worker lives on); an unknown op is answered.
    const replies: unknown[] = [];
    const probe = new MessageChannel();
    serveGenerator(probe.port1 as unknown as MessageEndpoint, () => Promise.reject(new Error("no load here")));
    probe.port2.on("message", (data: unknown) => replies.push(data));
    for (const message of [null, "hello", 42, { id: 7, op: "bogus" }]) probe.port2.postMessage(message);
    await new Promise((resolve) => setTimeout(resolve, 100));
    probe.port1.close();
    probe.port2.close();
    const answer = JSON.stringify(replies);
    if (replies.length !== 1 || !answer.includes('olmo-js/worker: unknown op \\"bogus\\"; expected load, stream, abort or dispose')) throw new Error(answer);
  } finally {
    await olmo.dispose();
    channel.port1.close();
    channel.port2.close();
  }
});

test("createWorkerClient: a worker that fails (an error event) fails the calls waiting on it instead of leaving them pending", async () => {
  const listeners = new Map<string, (event: unknown) => void>();
  const silent = { postMessage() {}, addEventListener: (type: string, listener: (event: unknown) => void) => void listeners.set(type, listener) };
  const pending = createWorkerClient(silent as unknown as MessageEndpoint, MODEL).then(() => "loaded", (e: Error) => e.message);
  listeners.get("error")!({ message: "Failed to fetch the worker script" });
  const message = await pending;
  if (message !== "olmo-js/worker: the worker failed: Failed to fetch the worker script") throw new Error(message);
});

test("createWorkerClient on an adapter that hands every listener its messages (whatever the event type) still works", async () => {
  const channel = new MessageChannel();
  serveGenerator(channel.port1 as unknown as MessageEndpoint, (model, options) => NodeOlmoGenerator.fromPretrained(model, { ...options, backend: "js" }));
  // A common Node adapter: every addEventListener becomes a message listener.
  const loose = {
    postMessage: (m: unknown) => channel.port2.postMessage(m),
    addEventListener: (_type: string, listener: (event: { data: unknown }) => void) => void channel.port2.on("message", (data: unknown) => listener({ data })),
  };
  try {
    const olmo = await createWorkerClient(loose as unknown as MessageEndpoint, MODEL);
    const text = await olmo.generate(PROMPT, { maxNewTokens: 2 });
    if (typeof text !== "string" || text === "") throw new Error(`generated ${JSON.stringify(text)}`);
    await olmo.dispose();
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
});

test("dist/worker.js (olmo-js/worker) is the worker's few lines on the core bundle beside it, not a second core", () => {
  const worker = readFileSync(`${repoRoot}dist/worker.js`, "utf8");
  const imports = [...worker.matchAll(/^import\b[^;]*?\bfrom "([^"]+)";/gm)].map((m) => m[1]);
  if (imports.join() !== "./index.js") throw new Error(`dist/worker.js imports ${imports.join(", ") || "nothing"}; expected only ./index.js`);
  if (/\bclass Tensor\b|var Tensor\d* = class/.test(worker) || worker.length > 2000) throw new Error(`dist/worker.js holds core code (${worker.length} bytes)`);
});

test("loss.svg: round ticks covering the data, a gridline and a label per tick on both axes", () => {
  const { ticks, step } = niceTicks(0.37, 2.9, 5);
  if (step !== 0.5 || ticks.join() !== "0,0.5,1,1.5,2,2.5,3") throw new Error(`niceTicks(0.37, 2.9): ${ticks.join()} step ${step}`);
  const steps = niceTicks(1, 1000, 6);
  if (steps.step !== 200 || steps.ticks[0] !== 0 || steps.ticks.at(-1) !== 1000) throw new Error(`niceTicks(1, 1000): ${steps.ticks.join()}`);
  const points = Array.from({ length: 100 }, (_, i) => ({ step: i + 1, loss: 10.8 * Math.exp(-i / 30) + 2 }));
  const svg = lossCurveSvg(points);
  const labels = (axis: string) => [...svg.matchAll(new RegExp(`class="tick ${axis}"[^>]*>([^<]*)<`, "g"))].map((m) => m[1]);
  const x = labels("x"), y = labels("y");
  if (x.join() !== "0,20,40,60,80,100") throw new Error(`step labels ${x.join()}`);
  if (y.join() !== "2,4,6,8,10,12,14") throw new Error(`loss labels ${y.join()}`);
  const grid = (svg.match(/class="grid"/g) ?? []).length;
  if (grid !== x.length + y.length) throw new Error(`${grid} gridlines for ${x.length + y.length} ticks`);
  const short = lossCurveSvg([{ step: 1, loss: 3 }, { step: 2, loss: 2.5 }, { step: 3, loss: 2.25 }]);
  const shortX = [...short.matchAll(/class="tick x"[^>]*>([^<]*)</g)].map((m) => m[1]);
  if (shortX.join() !== "1,2,3") throw new Error(`a 3-step run's step labels: ${shortX.join()}`);
});

test.run();
