// Multiple-choice scoring speed: items/s of a 4-choice task with 100-token contexts on an OLMo-1B-shaped
// checkpoint (bench/olmo.ts's random bf16 weights) on the WASM backend, scoring each item's choices from
// its cached context with the tails packed into one forward (the default), the same with the tails one
// by one, and every choice from scratch, in the same run.
//
//   npm run build && node build/bench/eval.js [--threads 2] [--items 8] [--model DIR]
//
// --model runs another folder instead (e.g. models/olmo-tiny-shakespeare for a quick check). Items are
// synthetic ARC-style rows: a question of 100 tokens and four answers of 5 to 12 tokens, tokenized with
// the default model's tokenizer (OLMo's GPT-NeoX vocabulary); speed does not depend on the words.

import { readFileSync } from "node:fs";
import { loadOlmo, OLMO_PRESETS, Random, scoreMultipleChoice, Tokenizer, type Olmo, type ScoreOptions } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { DIR, ensureCheckpoint } from "./olmo.js";

const TOKENIZER = new URL("../../models/olmo-tiny-shakespeare/tokenizer.json", import.meta.url).pathname;

/** ARC-style rows whose question is exactly `contextTokens` tokens once prompted. */
function syntheticRows(tokenizer: Tokenizer, items: number, contextTokens: number): unknown[] {
  const random = new Random(7);
  const words = ["king", "crown", "river", "stone", "light", "sword", "night", "field", "sea", "tower", "voice", "winter", "garden", "letter"];
  const phrase = (n: number) => Array.from({ length: n }, () => words[Math.floor(random.uniform() * words.length)]).join(" ");
  const rows: unknown[] = [];
  for (let i = 0; i < items; i++) {
    let question = phrase(contextTokens);
    // Trim to the token budget: "Question: " + q + "\nAnswer:" adds 4 tokens.
    while (tokenizer.encode("Question: " + question + "\nAnswer:").length > contextTokens) question = question.split(" ").slice(0, -1).join(" ");
    const answers = [5, 8, 10, 12].map((n) => phrase(n));
    rows.push({ question, choices: { text: answers, label: ["A", "B", "C", "D"] }, answerKey: "A" });
  }
  return rows;
}

async function itemsPerSecond(model: Olmo, tokenizer: Tokenizer, rows: unknown[], options: ScoreOptions): Promise<number> {
  await scoreMultipleChoice(model, tokenizer, "arc_easy", rows.slice(0, 1), options); // warm-up
  const started = performance.now();
  await scoreMultipleChoice(model, tokenizer, "arc_easy", rows, options);
  return rows.length / ((performance.now() - started) / 1000);
}

export async function benchEval(options: { threads?: number; items?: number; model?: string } = {}): Promise<{ reuse: number; oneByOne: number; scratch: number }> {
  const { threads = 2, items = 8 } = options;
  const dir = options.model ?? DIR;
  if (!options.model) await ensureCheckpoint(OLMO_PRESETS["OLMo-1B"]!);
  const backend = await createNodeWasmBackend({ threads });
  try {
    const { model } = await loadOlmo(folderSource(dir), backend, { weightDType: "bf16" });
    const tokenizer = new Tokenizer(readFileSync(TOKENIZER, "utf8"));
    const rows = syntheticRows(tokenizer, items, 100);
    const reuse = await itemsPerSecond(model, tokenizer, rows, {});
    const oneByOne = await itemsPerSecond(model, tokenizer, rows, { packTails: false });
    const scratch = await itemsPerSecond(model, tokenizer, rows, { reusePrefix: false });
    console.log(`multiple choice, 4 choices, 100-token contexts, ${items} items, ${dir.includes("olmo-1b-random") ? "OLMo-1B shape" : dir}, wasm ${threads} threads`);
    console.log(`  context cached once per item, tails packed   ${reuse.toFixed(3)} items/s`);
    console.log(`  the same, tails one by one                   ${oneByOne.toFixed(3)} items/s`);
    console.log(`  every choice from scratch                    ${scratch.toFixed(3)} items/s`);
    console.log(`  speed-up (packed vs scratch)                 ${(reuse / scratch).toFixed(2)}x`);
    model.dispose();
    return { reuse, oneByOne, scratch };
  } finally {
    backend.dispose();
  }
}

if (process.argv[1]?.endsWith("/eval.js")) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  await benchEval({ threads: Number(arg("threads") ?? 2), items: Number(arg("items") ?? 8), model: arg("model") });
}
