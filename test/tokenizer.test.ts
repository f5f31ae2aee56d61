// The GPT-NeoX byte-level BPE tokenizer against Hugging Face `tokenizers`, on both OLMo tokenizer files.
// Fixtures: test/fixtures/tokenizer.json (scripts/golden/make_tokenizer_fixtures.py) and, in
// test/fixtures/data/ (see its SOURCES.md), the shared test vectors and a Shakespeare excerpt.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { test } from "uvu";
import { Tokenizer } from "../src/index.js";
import { readJson, repoRoot } from "./helpers.js";

const DATA = `${repoRoot}test/fixtures/data/`;
interface FileResult { ids: number[]; decoded: string; decodedSkippingSpecial: string; roundTrips: boolean }
interface CorpusPart { count: number; lengths: number[]; hashes: number[]; secondFileDiffers: number[] }
const fixture = readJson<{
  version: number;
  files: string[];
  corpus: Record<"lines" | "chunks50", CorpusPart>;
  cases: { text: string; files: FileResult[] }[];
  decodeCases: { ids: number[]; decoded: string[] }[];
  extraAddedTokens: object[];
  flagCases: { text: string; ids: number[] }[];
}>("test/fixtures/tokenizer.json");
interface Vector { text: string; ids?: number[]; ids_pii_special?: number[]; ids_dolma_v1_5?: number[]; tokens?: string[] }
const vectors = JSON.parse(readFileSync(`${DATA}olmo_tokenizer_test_vectors.json`, "utf8")) as Record<"upstream" | "local", Vector[]>;

/**
 * The two OLMo tokenizer files, byte for byte. The dolma one is the default model's tokenizer.json; the
 * pii-special one (2 MB too) is rebuilt from it: the files differ only in the surface forms and flags
 * of ids 0 and 50279, which swap, and in the added tokens 50254-50279, which pii-special leaves out of
 * model.vocab. The sha256 of each is the upstream file's (test/fixtures/data/SOURCES.md).
 */
function tokenizerFile(name: string): string {
  const dolma = readFileSync(`${repoRoot}models/olmo-tiny-shakespeare/tokenizer.json`, "utf8");
  const sha256 = { "allenai_gpt-neox-olmo-dolma-v1_5.json": "9ad33b4b39a9f83973c3f8c42a01948dd5b877a28ac9a5356956c4ff4ed0b714", "allenai_eleuther-ai-gpt-neox-20b-pii-special.json": "ca35d8727a533bb6639bf4781ae72b9fda00e6969a76260cf99644479abf1177" }[name];
  if (!sha256) throw new Error(`no known tokenizer file ${name}`);
  let text = dolma;
  if (name.includes("pii-special")) {
    const edit = (from: string | RegExp, to: string) => {
      const next = text.replace(from, to);
      if (next === text) throw new Error(`rebuilding ${name}: ${from} not found`);
      text = next;
    };
    const addedToken = (id: number, content: string, special: boolean) =>
      `      "id": ${id},\n      "content": "${content}",\n      "single_word": false,\n      "lstrip": false,\n      "rstrip": false,\n      "normalized": ${!special},\n      "special": ${special}\n`;
    edit(addedToken(0, "|||IP_ADDRESS|||", false), addedToken(0, "<|endoftext|>", true));
    edit(addedToken(50279, "<|endoftext|>", true), addedToken(50279, "|||IP_ADDRESS|||", false));
    edit(`"|||IP_ADDRESS|||": 0,`, `"<|endoftext|>": 0,`);
    edit(/("\u0120Outcomes": 50253),\n(      ".*": 502[5-7]\d,?\n){26}/, "$1\n");
  }
  const got = createHash("sha256").update(text).digest("hex");
  if (got !== sha256) throw new Error(`${name}: sha256 ${got}, the upstream file's is ${sha256}`);
  return text;
}
const tokenizers = fixture.files.map((f) => new Tokenizer(tokenizerFile(f)));
/** The first 4000 lines of tinyshakespeare.txt; the fixture holds tokenizers' ids for all of it. */
const shakespeare = readFileSync(`${DATA}tinyshakespeare-4000-lines.txt`, "utf8");

/** Lone surrogates -> U+FFFD, through a UTF-8 round trip (keeping a leading BOM). */
function wellFormed(s: string): string {
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(new TextEncoder().encode(s));
}

function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** FNV-1a 32-bit over each id's 4 little-endian bytes (as the generator computes it). */
function fnv1a(ids: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const id of ids) {
    for (let shift = 0; shift < 32; shift += 8) {
      h ^= (id >>> shift) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h;
}

fixture.files.forEach((file, f) => {
  const tok = tokenizers[f]!;

  test(`${file}: every shared test vector`, () => {
    let checked = 0;
    for (const group of ["upstream", "local"] as const) {
      for (const v of vectors[group]) {
        // "upstream" vectors hold one list (the files agree on them); "local" ones one list per file.
        const want = v.ids ?? (f === 0 ? v.ids_pii_special : v.ids_dolma_v1_5);
        if (!want) throw new Error(`vector ${JSON.stringify(v.text)} has no ids for ${file}`);
        const ids = tok.encode(v.text);
        if (!same(ids, want)) throw new Error(`${group} vector ${JSON.stringify(v.text.slice(0, 60))}: got [${ids}], expected [${want}]`);
        if (v.tokens && v.tokens.join("\u0000") !== ids.map((id) => tok.idToToken(id)).join("\u0000")) {
          throw new Error(`tokens of ${JSON.stringify(v.text)} differ: ${ids.map((id) => tok.idToToken(id))}`);
        }
        checked++;
      }
    }
    if (checked < 10) throw new Error(`only ${checked} vectors found`);
  });

  test(`${file}: hard cases (ids, decode, skipSpecialTokens, round trip)`, () => {
    for (const c of fixture.cases) {
      const want = c.files[f]!;
      const ids = tok.encode(c.text);
      if (!same(ids, want.ids)) throw new Error(`${JSON.stringify(c.text)}: got [${ids}], tokenizers gives [${want.ids}]`);
      const decoded = tok.decode(ids);
      if (decoded !== want.decoded) throw new Error(`decode of ${JSON.stringify(c.text)}: ${JSON.stringify(decoded)} != ${JSON.stringify(want.decoded)}`);
      const skipped = tok.decode(ids, { skipSpecialTokens: true });
      if (skipped !== want.decodedSkippingSpecial) throw new Error(`decode skipping special of ${JSON.stringify(c.text)}: ${JSON.stringify(skipped)}`);
      if (want.roundTrips && decoded !== wellFormed(c.text).normalize("NFC")) throw new Error(`${JSON.stringify(c.text)} does not round-trip`);
    }
  });

  for (const part of ["lines", "chunks50"] as const) {
    test(`${file}: tinyshakespeare ${part} (first 4000 lines) match tokenizers exactly`, () => {
      const lines = shakespeare.split("\n").slice(0, -1); // the excerpt ends with a newline
      const texts = part === "lines" ? lines : Array.from({ length: lines.length / 50 }, (_, i) => lines.slice(i * 50, i * 50 + 50).map((l) => l + "\n").join(""));
      const expected = fixture.corpus[part];
      // The fixture covers the whole file (40000 lines and the empty text after its last newline).
      if (lines.length !== 4000 || expected.count !== (part === "lines" ? 40001 : 801)) throw new Error(`${lines.length} lines; fixture has ${expected.count} ${part}`);
      if (f === 1 && expected.secondFileDiffers.length) throw new Error("fixture says the second file differs on Shakespeare; store its ids");
      texts.forEach((text, i) => {
        const ids = tok.encode(text);
        if (ids.length !== expected.lengths[i] || fnv1a(ids) !== expected.hashes[i]) {
          throw new Error(`${part}[${i}] ${JSON.stringify(text.slice(0, 80))}: ${ids.length} ids [${ids.slice(0, 20)}...] differ from tokenizers (${expected.lengths[i]} ids)`);
        }
        if (part === "chunks50" && tok.decode(ids) !== text) throw new Error(`chunk ${i} does not round-trip`);
      });
    });
  }

  test(`${file}: invalid UTF-8 decodes to replacement characters as tokenizers does`, () => {
    for (const c of fixture.decodeCases) {
      const got = tok.decode(c.ids);
      if (got !== c.decoded[f]) throw new Error(`decode [${c.ids}]: ${JSON.stringify(got)} != ${JSON.stringify(c.decoded[f])}`);
    }
  });
});

test("the two files differ exactly in ids 0 and 50279", () => {
  const [pii, dolma] = tokenizers as [Tokenizer, Tokenizer];
  if (pii.idToToken(0) !== "<|endoftext|>" || pii.idToToken(50279) !== "|||IP_ADDRESS|||") throw new Error("pii-special ids 0 / 50279");
  if (dolma.idToToken(0) !== "|||IP_ADDRESS|||" || dolma.idToToken(50279) !== "<|endoftext|>") throw new Error("dolma ids 0 / 50279");
  if (pii.vocabSize !== 50280 || dolma.vocabSize !== 50280) throw new Error(`vocab sizes ${pii.vocabSize}, ${dolma.vocabSize}`);
  if (dolma.tokenToId("Ġthe") !== 253 || pii.tokenToId("<|padding|>") !== 1) throw new Error("tokenToId");
});

test("addEos appends OLMo's EOS 50279 and nothing else is added", () => {
  const tok = tokenizers[1]!;
  const ids = tok.encode("Hello world", { addEos: true });
  if (!same(ids, [...tok.encode("Hello world"), 50279])) throw new Error(`got [${ids}]`);
  if (tok.encode("").length !== 0) throw new Error("empty text must give no ids");
  const custom = new Tokenizer(tokenizerFile(fixture.files[0]!), { eosTokenId: 0 });
  if (custom.encode("x", { addEos: true }).at(-1) !== 0) throw new Error("eosTokenId option ignored");
});

test("the stream decoder emits only complete characters and adds up to decode()", () => {
  const tok = tokenizers[1]!;
  for (const text of ["👋🏽 hello 👩‍👩‍👧‍👦 family", "生活的真谛是", "plain ascii", "mixed é 😊 <|endoftext|> end"]) {
    const ids = tok.encode(text);
    const stream = tok.streamDecoder();
    let out = "";
    for (const id of ids) {
      const piece = stream.push(id);
      if (piece.includes("\ufffd")) throw new Error(`stream emitted a partial character for ${JSON.stringify(text)}`);
      out += piece;
    }
    out += stream.flush();
    if (out !== tok.decode(ids)) throw new Error(`stream gave ${JSON.stringify(out)}, decode ${JSON.stringify(tok.decode(ids))}`);
  }
});

test("encode never throws on any JS string", () => {
  const tok = tokenizers[0]!;
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let n = 0; n < 300; n++) {
    let s = "";
    for (let i = next() % 40; i > 0; i--) s += String.fromCharCode(next() % 0x10000);
    const ids = tok.encode(s);
    if (ids.some((id) => !Number.isInteger(id) || id < 0 || id >= tok.vocabSize)) throw new Error("bad id");
  }
});

test("text methods take strings and decode takes an array of integer ids; anything else is a TypeError, not its String() form", () => {
  const tok = tokenizers[0]!;
  const message = (run: () => unknown) => {
    try {
      run();
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
    return "no error";
  };
  const cases: [() => unknown, string][] = [
    [() => tok.encode(undefined as never), "TypeError: Tokenizer.encode: text must be a string, got undefined"],
    [() => tok.encode(12345 as never), "TypeError: Tokenizer.encode: text must be a string, got number"],
    [() => tok.mergeSteps(null as never), "TypeError: Tokenizer.mergeSteps: text must be a string, got null"],
    [() => tok.decode(5 as never), "TypeError: decode: ids must be an array of token ids, got number"],
    [() => tok.decode("13,14" as never), 'TypeError: decode: ids must be an array of token ids, got the string "13,14"'],
    [() => tok.decode(["12"] as never), 'RangeError: decode: token id "12" is not a non-negative integer'],
  ];
  for (const [run, want] of cases) if (message(run) !== want) throw new Error(message(run));
  if (tok.idToToken("length" as never) !== undefined) throw new Error("idToToken read an array's own property");
});

test("malformed tokenizer.json gets an error naming the field", () => {
  const good = JSON.parse(tokenizerFile(fixture.files[1]!)) as Record<string, any>;
  const expectError = (json: unknown, fragment: string) => {
    try {
      new Tokenizer(json as object);
    } catch (e) {
      if (!(e as Error).message.includes(fragment)) throw new Error(`error "${(e as Error).message}" lacks "${fragment}"`);
      return;
    }
    throw new Error(`no error for a file that should mention ${fragment}`);
  };
  expectError("{not json", "not valid JSON");
  expectError({ ...good, model: undefined }, "model must be an object");
  expectError({ ...good, model: { ...good.model, type: "WordPiece" } }, 'model.type must be "BPE"');
  expectError({ ...good, model: { ...good.model, vocab: undefined } }, "model.vocab must be an object");
  expectError({ ...good, model: { ...good.model, merges: [1, 2] } }, "model.merges[0]");
  expectError({ ...good, model: { ...good.model, merges: ["Ġ zzzunknown"] } }, "not in model.vocab");
  expectError({ ...good, pre_tokenizer: { type: "Whitespace" } }, 'pre_tokenizer.type must be "ByteLevel"');
  expectError({ ...good, normalizer: { type: "Lowercase" } }, "normalizer must be null");
  expectError({ ...good, added_tokens: [{ id: -1, content: "x" }] }, "added_tokens[0].id");
  expectError({ ...good, model: { ...good.model, vocab: { a: "zero" } } }, 'model.vocab["a"]');
  // Ids past what a double or an Int32Array holds exactly would silently change.
  expectError({ ...good, model: { ...good.model, vocab: { ...good.model.vocab, zzz: 2 ** 53 + 2 } } }, 'model.vocab["zzz"] must be an integer id from 0 to 2147483647');
  expectError({ ...good, model: { ...good.model, vocab: { ...good.model.vocab, zzz: 2 ** 31 } } }, 'model.vocab["zzz"]');
  expectError({ ...good, model: { ...good.model, vocab: { ...good.model.vocab, zzz: 253 } } }, 'model.vocab["zzz"] has id 253, which model.vocab["Ġthe"] already has');
  const withoutA = { ...good.model.vocab };
  delete withoutA.A;
  expectError({ ...good, model: { ...good.model, vocab: withoutA, merges: [] } }, "model.vocab has no token for byte 0x41");
  expectError({ ...good, model: { ...good.model, merges: [["Ġ", ""]] } }, "model.merges[0] must be");
  expectError({ ...good, model: { ...good.model, merges: ["Ġ t h"] } }, "model.merges[0] must be");
  expectError({ ...good, model: { ...good.model, byte_fallback: true } }, "model.byte_fallback must be false");
  expectError({ ...good, model: { ...good.model, ignore_merges: true } }, "model.ignore_merges must be false");
  expectError({ ...good, post_processor: { type: "TemplateProcessing", single: [] } }, "post_processor must be null");
  expectError({ ...good, truncation: { max_length: 8 } }, "truncation must be null");
  expectError({ ...good, decoder: { type: "WordPiece" } }, "decoder must be");
  expectError({ ...good, added_tokens: [{ id: 2 ** 53 + 2, content: "x" }] }, "added_tokens[0].id must be an integer id");
  expectError({ ...good, added_tokens: [{ id: 5, content: "" }] }, "added_tokens[0].content");
});

test("a vocabulary of 200,000 entries loads (no spread of its ids into a call) and encodes", () => {
  const good = JSON.parse(tokenizerFile(fixture.files[1]!)) as Record<string, any>;
  const vocab = { ...good.model.vocab };
  for (let i = 0; i < 200_000; i++) vocab[`zz${i}`] = 60_000 + i;
  const tok = new Tokenizer({ ...good, model: { ...good.model, vocab } });
  if (tok.vocabSize !== 260_000) throw new Error(`vocabSize ${tok.vocabSize}`);
  if (!same(tok.encode("Hello world"), tokenizers[1]!.encode("Hello world"))) throw new Error("ids changed");
});

test("decode rejects ids that are not non-negative integers and skips unknown ones", () => {
  const tok = tokenizers[1]!;
  if (tok.decode([50300]) !== "") throw new Error("an id past the vocabulary should be skipped, as tokenizers does");
  for (const bad of [-1, 1.5]) {
    let threw = false;
    try { tok.decode([bad]); } catch { threw = true; }
    if (!threw) throw new Error(`decode accepted ${bad}`);
  }
});

test("fixture version", () => {
  if (fixture.version !== 1) throw new Error("regenerate test/fixtures/tokenizer.json");
});


test("added-token flags lstrip, rstrip, single_word and normalized content behave as in tokenizers", () => {
  const extended = JSON.parse(tokenizerFile(fixture.files[0]!)) as { added_tokens: unknown[] };
  extended.added_tokens.push(...fixture.extraAddedTokens);
  const tok = new Tokenizer(extended);
  for (const c of fixture.flagCases) {
    const ids = tok.encode(c.text);
    if (!same(ids, c.ids)) throw new Error(`${JSON.stringify(c.text)}: got [${ids}], tokenizers gives [${c.ids}]`);
  }
  if (!tok.isSpecial(50280) || tok.decode(tok.encode("a <mask> b"), { skipSpecialTokens: true }) !== "a b") {
    throw new Error("the special <mask> should be skipped when decoding");
  }
});


// Long words: BPE merges the lowest-ranked pair, leftmost first, in O(n log n) with a heap. Long runs
// of glued pieces are where an implementation's order of merges shows (overlapping candidates such as
// "aaa"), so they are compared with @huggingface/tokenizers (pure JS, its own heap) on both files.
test("long glued words give exactly @huggingface/tokenizers' ids", () => {
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const randomLetters = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[next() % alphabet.length]).join("");
  const texts = [
    "a".repeat(5001),
    "the".repeat(3000),
    "ab".repeat(4000) + "a",
    "abracadabra".repeat(700),
    "1234567890".repeat(800),
    "!?.,;:".repeat(900),
    "生活的真谛是".repeat(600),
    "naïve😊".repeat(500),
    " " + "Ġ".repeat(3000),
    randomLetters("abcdefghijklmnopqrstuvwxyz", 20000),
    randomLetters("aeiou", 20000),
    randomLetters("eteaoinshr", 10000) + " " + randomLetters("xyz", 3000),
  ];
  fixture.files.forEach((file, f) => {
    const oracle = new HfTokenizer(JSON.parse(tokenizerFile(file)) as object, {});
    for (const text of texts) {
      const ids = tokenizers[f]!.encode(text);
      const want = oracle.encode(text).ids;
      if (!same(ids, want)) {
        const at = ids.findIndex((id, i) => id !== want[i]);
        throw new Error(`${file}: ${JSON.stringify(text.slice(0, 30))}... (${text.length} chars) differs from tokenizers at id ${at}: [${ids.slice(at, at + 5)}] vs [${want.slice(at, at + 5)}]`);
      }
    }
  });
});

test("explain splits a text into encode's words, and each word's merge steps end in its tokens", () => {
  const tok = tokenizers[0]!;
  // Shakespeare, the test vectors, and added tokens (the EOS, OLMo's runs of spaces) between words.
  const texts = [shakespeare.slice(0, 20000), ...vectors.upstream.concat(vectors.local).map((v) => v.text), "ROMEO:<|endoftext|>  But soft,     what light"];
  let words = 0;
  for (const text of texts) {
    const explained = tok.explain(text);
    const ids = explained.flatMap((w) => w.ids);
    if (!same(ids, tok.encode(text))) throw new Error(`explain(${JSON.stringify(text.slice(0, 40))}) gives [${ids.slice(0, 10)}...], encode [${tok.encode(text).slice(0, 10)}...]`);
    for (const word of explained) {
      if (word.tokens.join("\u0000") !== word.ids.map((id) => tok.idToToken(id)).join("\u0000")) throw new Error(`tokens of ${JSON.stringify(word.text)}`);
      if (word.added) continue;
      const steps = tok.mergeSteps(word.text);
      const bytes = new TextEncoder().encode(word.text);
      if (steps[0]!.ids.length !== bytes.length || steps[0]!.merge !== null) throw new Error(`${JSON.stringify(word.text)}: step 0 is not its ${bytes.length} bytes`);
      // Every step joins two neighbours by the merge it names, so the pieces always spell the word.
      for (let s = 1; s < steps.length; s++) {
        const { tokens, at, merge } = steps[s]!;
        const before = steps[s - 1]!.tokens;
        if (tokens.length !== before.length - 1 || tokens[at] !== merge!.left + merge!.right || before[at] !== merge!.left || before[at + 1] !== merge!.right) {
          throw new Error(`${JSON.stringify(word.text)} step ${s}: [${before}] -> [${tokens}] at ${at} by ${JSON.stringify(merge)}`);
        }
      }
      if (!same(steps.at(-1)!.ids, word.ids)) throw new Error(`${JSON.stringify(word.text)}: the merges end in [${steps.at(-1)!.ids}], encode gives [${word.ids}]`);
      words++;
    }
  }
  if (words < 3000) throw new Error(`only ${words} words checked`);
  // A word of the demo: " light" is built from its 6 bytes by merges in the order of their ranks.
  const light = tok.mergeSteps(" light");
  if (light[0]!.tokens.join(" ") !== "Ġ l i g h t" || light.at(-1)!.tokens.join() !== "Ġlight") throw new Error(`" light": ${light.map((s) => s.tokens.join(" ")).join(" | ")}`);
});

test("a word gives the same ids from the word cache as afresh", () => {
  const tok = tokenizers[1]!;
  const fresh = new Tokenizer(tokenizerFile(fixture.files[1]!));
  const words = Array.from({ length: 300 }, (_, i) => ` word${i.toString(36)}x${"yz".repeat(i % 200)}`);
  const text = words.join("");
  const first = tok.encode(text), second = tok.encode(text);
  if (!same(first, second) || !same(first, fresh.encode(text))) throw new Error("cached and fresh encodings differ");
});

test.run();
