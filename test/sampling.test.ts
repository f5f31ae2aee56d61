// The sampler (src/model/sampling.ts) against transformers' logits processors and warpers: the kept
// set that `keptTokens` reports (what the demo's "Next token" view highlights) is the set transformers
// keeps, and `chooseToken` (what `generate` calls) only ever picks from it.
// Fixture: test/fixtures/olmo/expected.json "processors" (scripts/golden/make_olmo_fixtures.py).

import { test } from "uvu";
import { chooseToken, hostSoftmax, keptTokens, Random } from "../src/index.js";
import { readJson } from "./helpers.js";

interface ProcessorCase { scores: number[]; ids: number[]; topK: number; topP: number; temperature: number; noRepeatNgramSize: number; kept: number[] }
const { processors } = readJson<{ processors: ProcessorCase[] }>("test/fixtures/olmo/expected.json");
const optionsOf = (c: ProcessorCase) => ({ doSample: true, topK: c.topK, topP: c.topP, temperature: c.temperature, noRepeatNgramSize: c.noRepeatNgramSize });

test("keptTokens keeps the tokens transformers keeps (no_repeat_ngram_size, temperature, top-k, top-p), leaving the logits as they were", () => {
  if (processors.length < 6) throw new Error(`only ${processors.length} processor cases`);
  for (const c of processors) {
    const logits = Float32Array.from(c.scores);
    const { kept, probabilities } = keptTokens(logits, c.ids, optionsOf(c));
    const where = `k ${c.topK} p ${c.topP} T ${c.temperature} n ${c.noRepeatNgramSize}`;
    if (kept.join() !== c.kept.join()) throw new Error(`${where}: kept [${kept}], transformers [${c.kept}]`);
    if (logits.join() !== Float32Array.from(c.scores).join()) throw new Error(`${where}: keptTokens modified its input`);
    const sum = probabilities.reduce((a, b) => a + b, 0);
    const outside = probabilities.filter((p, i) => p !== 0 && !kept.includes(i)).length;
    if (Math.abs(sum - 1) > 1e-12 || outside > 0) throw new Error(`${where}: probabilities sum to ${sum}, ${outside} nonzero outside the kept set`);
  }
});

test("chooseToken samples only kept tokens and, greedy, picks keptTokens' one (the first largest)", () => {
  for (const c of processors) {
    const kept = new Set(keptTokens(Float32Array.from(c.scores), c.ids, optionsOf(c)).kept);
    const random = new Random(7);
    for (let draw = 0; draw < 200; draw++) {
      const id = chooseToken(Float32Array.from(c.scores), c.ids, optionsOf(c), random);
      if (!kept.has(id)) throw new Error(`k ${c.topK} p ${c.topP}: drew ${id}, outside the kept set [${[...kept]}]`);
    }
    const greedy = { noRepeatNgramSize: c.noRepeatNgramSize, repetitionPenalty: 1.3 };
    const [one, ...more] = keptTokens(Float32Array.from(c.scores), c.ids, greedy).kept;
    const chosen = chooseToken(Float32Array.from(c.scores), c.ids, greedy, new Random(0));
    if (more.length > 0 || one !== chosen) throw new Error(`greedy: keptTokens [${[one, ...more]}], chooseToken ${chosen}`);
  }
  // The fixture's tie (ids 7 and 8 equal): greedy keeps the first, as torch.argmax.
  const tie = Float32Array.from({ length: 10 }, (_, i) => (i === 7 || i === 8 ? 5 : 0));
  if (keptTokens(tie, [], {}).kept.join() !== "7") throw new Error("greedy must keep the first of tied largest logits");
});

test("the repetition penalty reshapes the kept probabilities as transformers' processor does", () => {
  const logits = Float32Array.from([2, -1, 0.5, 3]);
  const { logits: processed } = keptTokens(logits, [0, 1, 1], { doSample: true, repetitionPenalty: 2, topK: 0 });
  if (processed.join() !== [1, -2, 0.5, 3].join()) throw new Error(`penalised logits ${processed}`);
});

test("a temperature so small that logits overflow f32 samples among the largest, never NaN or token 0", () => {
  // Logits over 1e-40 would all be +Infinity (the positive ones) or NaN in the softmax; the largest win,
  // as the softmax's limit says. And a softmax over infinite logits shares the mass among them.
  const logits = Float32Array.from([-1, 3, 2, 3, 0.5]);
  const probs = hostSoftmax(Float32Array.from([-Infinity, Infinity, 1, Infinity, 0]));
  if (probs.join() !== "0,0.5,0,0.5,0") throw new Error(`softmax at +Infinity: ${probs.join()}`);
  const picked = new Set<number>();
  const random = new Random(3);
  for (let i = 0; i < 40; i++) picked.add(chooseToken(Float32Array.from(logits), [], { doSample: true, temperature: 1e-40 }, random));
  if ([...picked].sort().join() !== "1,3") throw new Error(`sampled ${[...picked]}`);
});

test.run();
