// `olmo eval` against OLMo's downstream evaluator and transformers. Fixtures: test/fixtures/eval/, rows
// written by hand in each dataset's own schema, and expected.json from scripts/golden/make_eval_fixtures.py
// (an independent Python transcription of allenai/OLMo olmo/eval/downstream.py, run with transformers'
// OlmoForCausalLM on the default model and its real tokenizer; see the script's header).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import {
  loadOlmo, multipleChoiceTask, parseJsonRows, perplexity, perplexityWindows, prepareItem, scoreMultipleChoice, taskMetrics,
  type ItemScore, type Olmo, type Tokenizer,
} from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { packedCacheBudget } from "../src/eval/score.js";
import { assertClose, readJson, repoRoot } from "./helpers.js";

interface ExpectedChoice {
  query: number[]; ctx_len: number; continuation: number[]; dc_query: number[]; dc_len: number; truncated: boolean;
  ll: number; ll_dc: number; chars: number; tokens: number;
}
interface ExpectedTask {
  file: string;
  primary_metric: string;
  items: { label: number; choices: ExpectedChoice[] }[];
  metrics: { acc: number; len_norm: number; pmi_dc: number };
}
interface ExpectedPerplexity { seq_len: number; stride: number; masked: boolean; tokens: number; nll: number; loss: number }
const expected = readJson<{ version: number; context_length: number; tasks: Record<string, ExpectedTask>; perplexity: ExpectedPerplexity[]; text_tokens: number }>(
  "test/fixtures/eval/expected.json",
);
const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
// transformers and olmo-js both compute in f32; the sums here are of a few tokens' log-probabilities,
// whose rounding differences are around 1e-6 relative: 1e-4 is the acceptance bound of the fixtures.
const LL_TOLERANCE = { atol: 0, rtol: 1e-4 };

const backend = await createNodeWasmBackend({ threads: 1 });
const { model, tokenizer: maybeTokenizer } = await loadOlmo(folderSource(MODEL), backend, { weightDType: "f32" });
const tokenizer = maybeTokenizer as Tokenizer;

function rowsOf(task: string) {
  const file = expected.tasks[task]!.file;
  return parseJsonRows(readFileSync(repoRoot + file, "utf8"), file);
}

const fromPython = (t: ExpectedTask): ItemScore[] =>
  t.items.map((item, index) => ({ index, label: item.label, choices: item.choices.map((c) => ({ ll: c.ll, llDc: c.ll_dc, chars: c.chars, tokens: c.tokens })) }));

test("the fixtures cover every task and truncate at least one context on the left", () => {
  const tasks = Object.keys(expected.tasks).sort();
  const want = ["arc_challenge", "arc_easy", "boolq", "copa", "hellaswag", "mmlu", "openbookqa", "piqa", "sciq", "truthful_qa", "winogrande"];
  if (JSON.stringify(tasks) !== JSON.stringify(want)) throw new Error(`fixture tasks ${tasks}`);
  if (expected.context_length !== model.config.maxPositionEmbeddings) throw new Error("the fixture was made with another context length");
  if (!Object.values(expected.tasks).some((t) => t.items.some((i) => i.choices.some((c) => c.truncated)))) throw new Error("no truncated item");
});

for (const [name, want] of Object.entries(expected.tasks)) {
  test(`${name}: prompts, continuations and domain prompts tokenize to downstream.py's requests`, () => {
    const { rows, where } = rowsOf(name);
    rows.forEach((row, i) => {
      const item = prepareItem(multipleChoiceTask(name), tokenizer, row, i, expected.context_length, where(i));
      const w = want.items[i]!;
      if (item.label !== w.label) throw new Error(`${where(i)}: label ${item.label}, expected ${w.label}`);
      if (item.requests.length !== w.choices.length) throw new Error(`${where(i)}: ${item.requests.length} choices, expected ${w.choices.length}`);
      w.choices.forEach((c, k) => {
        const got = {
          query: item.requests[k]!.query, ctx_len: item.requests[k]!.ctxLen, continuation: item.requests[k]!.continuation,
          dc_query: item.dcRequests[k]!.query, dc_len: item.dcRequests[k]!.ctxLen, chars: item.chars[k],
        };
        const wanted = { query: c.query, ctx_len: c.ctx_len, continuation: c.continuation, dc_query: c.dc_query, dc_len: c.dc_len, chars: c.chars };
        if (JSON.stringify(got) !== JSON.stringify(wanted)) throw new Error(`${where(i)} choice ${k}:\n got ${JSON.stringify(got)}\nwant ${JSON.stringify(wanted)}`);
      });
    });
  });

  test(`${name}: metrics from Python's scores follow downstream.py's rules`, () => {
    const m = taskMetrics(fromPython(want));
    for (const k of ["acc", "len_norm", "pmi_dc"] as const) {
      if (Math.abs(m[k] - want.metrics[k]) > 1e-12) throw new Error(`${k} ${m[k]}, expected ${want.metrics[k]}`);
    }
    if (multipleChoiceTask(name).primaryMetric !== want.primary_metric) throw new Error(`primary metric ${multipleChoiceTask(name).primaryMetric}, expected ${want.primary_metric}`);
  });

  test(`${name}: per-choice log-likelihoods equal transformers', and so do the metrics`, async () => {
    const { rows, where } = rowsOf(name);
    const result = await scoreMultipleChoice(model, tokenizer, name, rows, { describeRow: where });
    const flat = (f: (c: ExpectedChoice) => number) => want.items.flatMap((i) => i.choices.map(f));
    const got = result.itemScores.flatMap((i) => i.choices);
    assertClose(got.map((c) => c.ll), flat((c) => c.ll), LL_TOLERANCE, `${name} ll`);
    assertClose(got.map((c) => c.llDc), flat((c) => c.ll_dc), LL_TOLERANCE, `${name} ll_dc`);
    if (JSON.stringify(got.map((c) => [c.chars, c.tokens])) !== JSON.stringify(flat((c) => c.chars).map((ch, i) => [ch, flat((c) => c.tokens)[i]]))) {
      throw new Error(`${name}: chars / tokens differ`);
    }
    const metrics = { acc: result.acc, len_norm: result.lenNorm, pmi_dc: result.pmiDc };
    for (const k of ["acc", "len_norm", "pmi_dc"] as const) {
      if (Math.abs(metrics[k] - want.metrics[k]) > 1e-12) throw new Error(`${name} ${k} ${metrics[k]}, expected ${want.metrics[k]}`);
    }
  });
}

/** Counts the tokens the model runs through (to prove the shared context is run once), and the packed forwards. */
function countingTokens(m: Olmo): { tokens: number; packedForwards: number; restore(): void } {
  const original = m.forward.bind(m);
  const counter = {
    tokens: 0,
    packedForwards: 0,
    restore: () => void (m.forward = original),
  };
  m.forward = (ids, options) => {
    counter.tokens += ids.shape[1]!;
    if (options?.segments) counter.packedForwards++;
    return original(ids, options);
  };
  return counter;
}

for (const name of ["hellaswag", "winogrande", "boolq", "arc_easy"]) {
  test(`${name}: scoring from the cached context (tails packed, or one by one) equals scoring each choice from scratch, with fewer tokens run`, async () => {
    const { rows } = rowsOf(name);
    const reused = countingTokens(model);
    const withCache = await scoreMultipleChoice(model, tokenizer, name, rows, { reusePrefix: true });
    reused.restore();
    const scratch = countingTokens(model);
    const fromScratch = await scoreMultipleChoice(model, tokenizer, name, rows, { reusePrefix: false });
    scratch.restore();
    const single = countingTokens(model);
    const oneByOne = await scoreMultipleChoice(model, tokenizer, name, rows, { packTails: false });
    single.restore();
    // One packed forward per item by default, none with packTails false or from scratch.
    if (reused.packedForwards !== rows.length || single.packedForwards !== 0 || scratch.packedForwards !== 0) {
      throw new Error(`${name}: packed forwards ${reused.packedForwards} / ${single.packedForwards} / ${scratch.packedForwards} for ${rows.length} items`);
    }
    const ll = (r: typeof withCache) => r.itemScores.flatMap((i) => i.choices.flatMap((c) => [c.ll, c.llDc]));
    // Same arithmetic on the same values but attention over cached keys in other blocks, and matmuls
    // of other row counts: f32 rounding only.
    assertClose(ll(withCache), ll(fromScratch), { atol: 1e-5, rtol: 1e-5 }, `${name} cached and packed vs scratch`);
    assertClose(ll(oneByOne), ll(fromScratch), { atol: 1e-5, rtol: 1e-5 }, `${name} cached, tails one by one, vs scratch`);
    if (!(reused.tokens < scratch.tokens)) throw new Error(`${name}: ran ${reused.tokens} tokens with the cache, ${scratch.tokens} without`);
  });
}

test("a context cut on the left differently per choice (nothing shared, whole queries as tails) scores the same packed, one by one and from scratch", async () => {
  // Continuations of different lengths under a short context length: each query is cut by a different
  // amount, so the queries share no prefix and each packed segment is a whole query of 80 tokens, 320
  // packed in all: more than the model's context (256), which each segment stays within.
  const sentence = "when the old king rode north at dawn with seven knights and a silver horn, which of the castles on the river did he reach first before the storm? ";
  const question = sentence.repeat(3);
  const rows = [{ question, choices: { text: ["yes", "a long answer of many words indeed", "no, never", "perhaps"], label: ["A", "B", "C", "D"] }, answerKey: "B" }];
  const contextLength = 80;
  const item = prepareItem(multipleChoiceTask("arc_easy"), tokenizer, rows[0], 0, contextLength);
  if (!item.requests.every((r) => r.query.length === contextLength) || new Set(item.requests.map((r) => r.query[0])).size < 2) {
    throw new Error("the queries are not cut to different starts: the case tests nothing");
  }
  const score = async (options: object) => (await scoreMultipleChoice(model, tokenizer, "arc_easy", rows, { contextLength, ...options })).itemScores[0]!.choices.flatMap((c) => [c.ll, c.llDc]);
  const scratch = await score({ reusePrefix: false });
  assertClose(await score({}), scratch, { atol: 1e-5, rtol: 1e-5 }, "packed vs scratch");
  assertClose(await score({ packTails: false }), scratch, { atol: 1e-5, rtol: 1e-5 }, "one by one vs scratch");
});

test("packed scoring's caches may take a quarter of the free memory, or 1 GiB where the backend knows no limit (WebGPU)", () => {
  const GiB = 2 ** 30;
  const usage = (inUse: number, limit: number) => ({ inUse, reserved: inUse, peak: inUse, limit });
  const cases: [number, number, number][] = [[GiB, 5 * GiB, GiB], [3 * GiB, 4 * GiB, GiB / 4], [14 * GiB, Infinity, GiB], [0, Infinity, GiB]];
  for (const [inUse, limit, expected] of cases) {
    const got = packedCacheBudget(usage(inUse, limit));
    if (got !== expected) throw new Error(`in use ${inUse / GiB} GiB of ${limit / GiB}: budget ${got / GiB} GiB, expected ${expected / GiB}`);
  }
});

test("perplexity windows: every token but the first is scored once, with up to seqLen tokens of window", () => {
  for (const [n, seqLen, stride] of [[10, 4, 4], [10, 4, 2], [11, 4, 3], [5, 8, 8], [9, 3, 1]] as const) {
    const seen = new Array<number>(n).fill(0);
    const windows = perplexityWindows(n, seqLen, stride);
    for (const w of windows) {
      if (w.end - w.start > seqLen || w.firstTarget <= w.start) throw new Error(`bad window ${JSON.stringify(w)}`);
      for (let t = w.firstTarget; t < w.end; t++) seen[t]!++;
    }
    const want = stride === seqLen ? seen.map((_, t) => (t % seqLen === 0 ? 0 : 1)) : seen.map((_, t) => (t === 0 ? 0 : 1));
    if (JSON.stringify(seen) !== JSON.stringify(want)) throw new Error(`n ${n} seqLen ${seqLen} stride ${stride}: scored ${seen}`);
  }
});

test("perplexity equals transformers' loss on the same windows (plain, strided, masked)", async () => {
  const text = readFileSync(`${repoRoot}test/fixtures/eval/text.txt`, "utf8");
  const ids = tokenizer.encode(text);
  if (ids.length !== expected.text_tokens) throw new Error(`text.txt has ${ids.length} tokens, the fixture ${expected.text_tokens}`);
  for (const c of expected.perplexity) {
    const mask = c.masked ? ids.map((_, t) => (t % 5 === 0 ? 0 : 1)) : undefined;
    // Whole windows in one pass, and in chunks of 16 tokens through the KV cache.
    for (const chunkTokens of [256, 16]) {
      const r = await perplexity(model, ids, { seqLen: c.seq_len, stride: c.stride, mask, tokenizer, chunkTokens });
      const label = `seq_len ${c.seq_len} stride ${c.stride}${c.masked ? " masked" : ""} chunks of ${chunkTokens}`;
      if (r.tokens !== c.tokens) throw new Error(`${label}: ${r.tokens} tokens scored, transformers ${c.tokens}`);
      assertClose([r.nll, r.loss], [c.nll, c.loss], { atol: 0, rtol: 1e-5 }, label);
      if (Math.abs(r.perplexity - Math.exp(c.loss)) > 1e-4 * Math.exp(c.loss)) throw new Error(`${label}: perplexity ${r.perplexity}`);
    }
  }
  // Bits per byte: with a stride every token after the first is scored, so the bytes are the text's
  // UTF-8 bytes less the first token's.
  const r = await perplexity(model, ids, { seqLen: 64, stride: 24, tokenizer });
  const bytes = new TextEncoder().encode(text).length - tokenizer.bytesOf([ids[0]!]).length;
  assertClose([r.bitsPerByte!], [r.nll / (Math.LN2 * bytes)], { atol: 0, rtol: 1e-12 }, "bits per byte");
});

// ---- Bad input ----------------------------------------------------------------------------------------

async function rejects(run: () => unknown, ...fragments: string[]): Promise<void> {
  let message: string | null = null;
  try {
    await run();
  } catch (e) {
    message = (e as Error).message;
  }
  if (message === null) throw new Error(`expected an error mentioning ${fragments.join(", ")}`);
  for (const f of fragments) if (!message.includes(f)) throw new Error(`error "${message}" does not mention "${f}"`);
}

test("bad input: unknown task, missing or mistyped fields (row and field named), empty or broken files", async () => {
  await rejects(() => multipleChoiceTask("arc_medium"), 'unknown task "arc_medium"', "arc_easy", "winogrande");
  const piqa = parseJsonRows('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n\n{"goal": "g", "sol2": "b", "label": 1}\n', "piqa.jsonl");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "piqa", piqa.rows, { describeRow: piqa.where }), "piqa.jsonl line 3", 'field "sol1"', "missing");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "arc_easy", [{ question: "q", choices: { text: "abc" }, answerKey: "A" }]), "row 0", 'field "choices.text"', "list of strings");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "arc_easy", [{ question: "q", choices: { text: ["a", "b"] }, answerKey: "D" }]), "row 0", 'field "answerKey"', "only 2 choices");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "winogrande", [{ sentence: "no blank", option1: "a", option2: "b", answer: "1" }]), 'field "sentence"', '"_"');
  await rejects(() => scoreMultipleChoice(model, tokenizer, "hellaswag", [{ activity_label: "a", ctx_a: "b", ctx_b: "c", endings: ["d", "e"], label: "" }]), 'field "label"', "integer");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "boolq", ["a string"]), "row 0", "must be an object");
  const truthful = (labels: unknown) => [{ question: "q", mc1_targets: { choices: ["a", "b", "c"], labels } }];
  await rejects(() => scoreMultipleChoice(model, tokenizer, "truthfulqa", truthful([1, 1, 0])), 'field "mc1_targets.labels"', "exactly one choice 1", "[1, 1, 0]");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "truthful_qa", truthful([1, 0])), 'field "mc1_targets.labels"', "2 labels for 3 choices");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "truthful_qa", truthful(["1", 0, 0])), 'field "mc1_targets.labels"', "list of integers");
  await rejects(() => scoreMultipleChoice(model, tokenizer, "boolq", []), "no rows");
  await rejects(() => parseJsonRows("", "empty.jsonl"), "empty.jsonl is empty");
  await rejects(() => parseJsonRows('{"a": 1}\n{"a": \n', "broken.jsonl"), "broken.jsonl line 2", "not valid JSON");
  await rejects(() => perplexity(model, [1], { seqLen: 8 }), "at least 2 tokens");
  await rejects(() => perplexity(model, [1, 2, 3], { seqLen: 512 }), "context length 256");
  await rejects(() => perplexity(model, [1, 2, 3], { seqLen: 4, stride: 5 }), "stride");
});

// ---- The command line ---------------------------------------------------------------------------------

function olmo(...args: string[]) {
  const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("olmo eval --task --json --out: the summary object and one line per item", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-eval-"));
  const out = join(dir, "items.jsonl");
  const r = olmo("eval", "--model", MODEL, "--dtype", "f32", "--threads", "1", "--task", "copa", "--data", `${repoRoot}test/fixtures/eval/copa.jsonl`, "--json", "--out", out);
  if (r.status !== 0) throw new Error(`status ${r.status}: ${r.stderr}`);
  const summary = JSON.parse(r.stdout) as Record<string, unknown>;
  const want = expected.tasks.copa!;
  const keys = Object.keys(summary).sort().join(",");
  if (keys !== "acc,items,len_norm,pmi_dc,primary_metric,task") throw new Error(`summary keys ${keys}`);
  if (summary.task !== "copa" || summary.items !== 3 || summary.primary_metric !== "acc" || summary.acc !== want.metrics.acc) throw new Error(r.stdout);
  const lines = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { index: number; label: number; choices: Record<string, number>[] });
  if (lines.length !== 3 || lines[1]!.index !== 1 || lines[1]!.label !== want.items[1]!.label) throw new Error(readFileSync(out, "utf8"));
  if (Object.keys(lines[0]!.choices[0]!).join(",") !== "ll,ll_dc,chars,tokens") throw new Error(JSON.stringify(lines[0]));
  assertClose(lines.flatMap((l) => l.choices.map((c) => c.ll!)), want.items.flatMap((i) => i.choices.map((c) => c.ll)), LL_TOLERANCE, "--out ll");
});

test("olmo eval perplexity --json, and clear errors for an unknown task, a missing field, an empty or foreign file", () => {
  const r = olmo("eval", "--model", MODEL, "--dtype", "f32", "--threads", "1", "--text", `${repoRoot}test/fixtures/eval/text.txt`, "--seq-len", "64", "--stride", "24", "--json");
  if (r.status !== 0) throw new Error(`status ${r.status}: ${r.stderr}`);
  const p = JSON.parse(r.stdout) as Record<string, number>;
  const want = expected.perplexity.find((c) => c.seq_len === 64 && c.stride === 24)!;
  if (Object.keys(p).join(",") !== "tokens,loss,perplexity,bits_per_byte" || p.tokens !== want.tokens) throw new Error(r.stdout);
  assertClose([p.loss!], [want.loss], { atol: 0, rtol: 1e-5 }, "cli loss");

  const dir = mkdtempSync(join(tmpdir(), "olmo-eval-"));
  const unknown = olmo("eval", "--task", "arc_medium", "--data", `${repoRoot}test/fixtures/eval/copa.jsonl`);
  if (unknown.status !== 2 || !unknown.stderr.includes('unknown task "arc_medium"')) throw new Error(`status ${unknown.status}: ${unknown.stderr}`);
  const typo = olmo("eval", "--task", "hellaswg", "--data", `${repoRoot}test/fixtures/eval/copa.jsonl`);
  if (typo.status !== 2 || !typo.stderr.includes("(did you mean hellaswag?)")) throw new Error(`status ${typo.status}: ${typo.stderr}`);
  const window = olmo("eval", "--task", "copa", "--data", `${repoRoot}test/fixtures/eval/copa.jsonl`, "--seq-len", "64");
  if (window.status !== 2 || !window.stderr.includes("--seq-len and --stride are for perplexity")) throw new Error(`status ${window.status}: ${window.stderr}`);
  writeFileSync(join(dir, "sciq.jsonl"), '{"question": "q", "distractor1": "a", "distractor2": "b", "distractor3": "c", "support": ""}\n');
  const missing = olmo("eval", "--threads", "1", "--task", "sciq", "--data", join(dir, "sciq.jsonl"));
  if (missing.status === 0 || !missing.stderr.includes(`${join(dir, "sciq.jsonl")} line 1: field "correct_answer" is missing`)) throw new Error(missing.stderr);
  writeFileSync(join(dir, "empty.jsonl"), "");
  const empty = olmo("eval", "--task", "piqa", "--data", join(dir, "empty.jsonl"));
  if (empty.status === 0 || !empty.stderr.includes("empty.jsonl is empty")) throw new Error(empty.stderr);
  // Not Parquet at all: hyparquet (a dependency) says so, and the message names the file.
  writeFileSync(join(dir, "validation-00000.parquet"), "not parquet");
  const foreign = olmo("eval", "--task", "piqa", "--data", dir, "--split", "validation");
  if (foreign.status === 0 || !foreign.stderr.includes("validation-00000.parquet") || !foreign.stderr.includes("not a readable Parquet file")) throw new Error(foreign.stderr);
  // Perplexity's flags and text, named by flag (the window and the file before the model loads).
  const text = `${repoRoot}test/fixtures/eval/text.txt`;
  for (const [args, status, message] of [
    [["--text", join(dir, "absent.txt"), "--seq-len", "64"], 1, `cannot read --text ${join(dir, "absent.txt")}: ENOENT`],
    [["--text", text, "--seq-len", "64", "--stride", "0"], 2, "--stride must be an integer from 1 to --seq-len (64), got 0"],
    [["--text", text, "--seq-len", "1"], 2, "--seq-len must be an integer >= 2 (tokens per window), got 1"],
    [["--text", text, "--seq-len", "1000", "--threads", "1"], 2, "--seq-len 1000 is longer than the model's context (256 tokens)"],
    // The loading flags, checked by the shared parser before anything is read or said.
    [["--text", text, "--seq-len", "64", "--threads", "0"], 2, "olmo eval: --threads must be an integer in [1, 256], got 0"],
    [["--text", text, "--seq-len", "64", "--backend", "cuda"], 2, "olmo eval: --backend must be js, wasm or webgpu, got cuda"],
    [["--text", text, "--seq-len", "64", "--dtype", "f16"], 2, "olmo eval: --dtype must be auto, f32 or bf16, got f16"],
  ] as const) {
    const r = olmo("eval", "--model", MODEL, ...args);
    if (r.status !== status || !r.stderr.includes(message)) throw new Error(`olmo eval ${args.join(" ")}: status ${r.status}, stderr ${r.stderr}`);
  }
});

test.after(() => {
  model.dispose();
  backend.dispose();
});

test.run();
