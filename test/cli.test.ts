// The `olmo` command line, run as a user would (the built dist/cli.js).

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { Tokenizer } from "../src/index.js";
import { repoRoot } from "./helpers.js";

// OLMo's allenai_gpt-neox-olmo-dolma-v1_5.json, as the default model carries it.
const TOKENIZER = `${repoRoot}models/olmo-tiny-shakespeare/tokenizer.json`;

function olmo(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return olmoIn(repoRoot, {}, ...args);
}

function olmoIn(cwd: string, env: Record<string, string>, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8", cwd, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run olmo and require the exit status and a fragment of stderr. */
function expectFailure(args: string[], status: number, ...fragments: string[]): { stdout: string; stderr: string } {
  const r = olmo(...args);
  if (r.status !== status || !fragments.every((f) => r.stderr.includes(f))) {
    throw new Error(`olmo ${args.join(" ")}: status ${r.status} (expected ${status}), stderr lacks one of ${JSON.stringify(fragments)}:\n${r.stderr}`);
  }
  return r;
}

const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;

test("olmo tokenize --text prints the ids as a JSON array", () => {
  const text = "Hello world, 生活的真谛是 😊<|endoftext|>";
  const r = olmo("tokenize", "--tokenizer", TOKENIZER, "--text", text);
  const want = new Tokenizer(readFileSync(TOKENIZER, "utf8")).encode(text);
  if (r.status !== 0 || r.stdout.trim() !== JSON.stringify(want)) throw new Error(`status ${r.status}: ${r.stdout}${r.stderr}`);
});

test("olmo tokenize --file and --add-eos", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-cli-"));
  writeFileSync(join(dir, "in.txt"), "To be, or not to be\n");
  const r = olmo("tokenize", "--tokenizer", TOKENIZER, "--file", join(dir, "in.txt"), "--add-eos");
  const ids = JSON.parse(r.stdout) as number[];
  if (r.status !== 0 || ids.at(-1) !== 50279) throw new Error(`status ${r.status}: ${r.stdout}${r.stderr}`);
});

test("olmo detokenize --ids prints the text", () => {
  const r = olmo("detokenize", "--tokenizer", TOKENIZER, "--ids", "12092,1533,50279");
  if (r.status !== 0 || r.stdout !== "Hello world<|endoftext|>\n") throw new Error(`status ${r.status}: ${JSON.stringify(r.stdout)}${r.stderr}`);
  const skipped = olmo("detokenize", "--tokenizer", TOKENIZER, "--ids", "12092,1533,50279", "--skip-special-tokens");
  if (skipped.stdout !== "Hello world\n") throw new Error(JSON.stringify(skipped.stdout));
});

test("text files that are not UTF-8 are refused with the first bad byte, not read as U+FFFD (tokenize --file, prepare-data --input)", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-cli-utf8-"));
  try {
    const file = join(dir, "latin1.txt");
    writeFileSync(file, Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b])); // "café ok" in Latin-1
    const tokenized = olmo("tokenize", "--tokenizer", TOKENIZER, "--file", file);
    const says = `${file} is not UTF-8 text: byte 3 (0xe9) starts no valid UTF-8 character`;
    if (tokenized.status !== 1 || !tokenized.stderr.includes(says)) throw new Error(`status ${tokenized.status}: ${tokenized.stderr}`);
    const prepared = olmo("prepare-data", "--tokenizer", TOKENIZER, "--input", file, "--seq-len", "4", "--out", join(dir, "out"));
    if (prepared.status !== 1 || !prepared.stderr.includes(says)) throw new Error(`status ${prepared.status}: ${prepared.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad arguments and files get clear errors and a non-zero status", () => {
  const cases: [string[], string][] = [
    [["tokenize", "--tokenizer", TOKENIZER], "exactly one of --text TEXT or --file PATH"],
    [["tokenize", "--tokenizer", "/no/such/file.json", "--text", "x"], "cannot read tokenizer file /no/such/file.json"],
    [["tokenize", "--tokenizer", `${repoRoot}package.json`, "--text", "x"], "model must be an object"],
    [["detokenize", "--tokenizer", TOKENIZER, "--ids", "1,x"], '--ids item 1 ("x") is not a token id'],
    [["detokenize", "--tokenizer", TOKENIZER, "--ids", "1e3"], '--ids item 0 ("1e3") is not a token id (a decimal integer >= 0)'],
    [["detokenize", "--tokenizer", TOKENIZER, "--ids", "5,999999"], "--ids item 1 (999999) is not an id of this tokenizer's vocabulary"],
    [["tokenize", "--bogus"], 'unknown argument "--bogus"'],
    [["frobnicate"], 'unknown command "frobnicate"'],
  ];
  for (const [args, message] of cases) {
    const r = olmo(...args);
    if (r.status === 0 || !r.stderr.includes(message)) throw new Error(`olmo ${args.join(" ")}: status ${r.status}, stderr ${r.stderr}`);
  }
});

test("the olmo bin is executable and runs through npx (the README's main-job command)", () => {
  const r = spawnSync("npx", ["--no-install", "olmo", "--help"], { cwd: repoRoot, encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.includes("usage: olmo")) throw new Error(`npx olmo: status ${r.status}: ${r.stderr}`);
});

test("the README's main job prints what the README shows", () => {
  // The "Set up, run, test" block's line marked "# the main job", then the first ```text block after it.
  const readme = readFileSync(`${repoRoot}README.md`, "utf8");
  const line = readme.split("\n").find((l) => l.includes("# the main job"));
  if (!line) throw new Error('README.md has no line marked "# the main job"');
  const command = line.slice(0, line.indexOf("#")).trim();
  const shown = /```text\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf(line)))?.[1];
  if (shown === undefined) throw new Error("README.md shows no output (a ```text block) after the main job");
  // The command's words, double quotes grouping (all the README line uses).
  const words = [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  if (words[0] !== "npx" || words[1] !== "olmo") throw new Error(`the main job is not an npx olmo command: ${command}`);
  const r = spawnSync("npx", ["--no-install", ...words.slice(1)], { cwd: repoRoot, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${command}: status ${r.status}: ${r.stderr}`);
  if (r.stdout !== shown) throw new Error(`${command} printed\n${r.stdout}\nbut README.md shows\n${shown}`);
});

test("olmo --help lists the commands", () => {
  const r = olmo("--help");
  for (const c of ["demo", "tokenize", "detokenize"]) if (!r.stdout.includes(c)) throw new Error(r.stdout);
});

test("-h, --help (also per command and for bench) exit 0; --version prints package.json's", () => {
  for (const args of [["-h"], ["generate", "-h"], ["train", "--help"], ["bench", "--help"], ["bench", "matmul", "-h"], ["demo", "--help"], ["tokenize", "-h"]]) {
    const r = olmo(...args);
    if (r.status !== 0 || !r.stdout.includes("usage: olmo")) throw new Error(`olmo ${args.join(" ")}: status ${r.status}: ${r.stdout}${r.stderr}`);
  }
  const version = JSON.parse(readFileSync(`${repoRoot}package.json`, "utf8")).version;
  const r = olmo("--version");
  if (r.status !== 0 || r.stdout.trim() !== version) throw new Error(`--version: ${r.stdout}`);
  // Help states each numeric flag's range, from the same spec the checks use.
  if (!olmo("train", "--help").stdout.includes("--lr N") || !olmo("train", "--help").stdout.includes("a number > 0")) throw new Error("train --help lacks ranges");
});

test("--name=value works like --name value; a negative number is a value", () => {
  const a = olmo("tokenize", "--tokenizer", TOKENIZER, "--text=Hello world");
  const b = olmo("tokenize", `--tokenizer=${TOKENIZER}`, "--text", "Hello world");
  if (a.status !== 0 || a.stdout !== b.stdout || a.stdout.trim() !== "[12092,1533]") throw new Error(`${a.stdout} vs ${b.stdout}: ${a.stderr}`);
  expectFailure(["generate", "--ids", "1", "--temperature", "-1"], 2, "olmo generate: --temperature must be a number > 0, got -1");
});

test("unknown flags and commands get the closest known name; every problem is in one message", () => {
  expectFailure(["generate", "--max-new-token", "5", "--promt", "x"], 2, 'unknown argument "--max-new-token" (did you mean --max-new-tokens?)', 'unknown argument "--promt" (did you mean --prompt?)');
  const r = olmo("generat");
  if (r.status !== 2 || !r.stderr.includes('unknown command "generat" (did you mean generate?)')) throw new Error(r.stderr);
  const train = expectFailure(["train"], 2, "--data is required", "--seq-len is required", "--batch-size is required", "--steps is required", "--lr is required", "--save is required", "give one of --model DIR_OR_REPO, --config PRESET_OR_JSON or --load DIR");
  if (train.stdout !== "") throw new Error(`printed before the error: ${train.stdout}`);
  expectFailure(["logits"], 2, "--ids is required", "--out is required");
});

test("one error format: `olmo <command>: ...` on stderr, 2 for the command line, 1 for a run that fails", () => {
  const usage = expectFailure(["detokenize", "--tokenizer", TOKENIZER, "--ids", "1,x"], 2);
  if (!usage.stderr.startsWith("olmo detokenize: ")) throw new Error(usage.stderr);
  const runtime = expectFailure(["tokenize", "--tokenizer", "/no/such/file.json", "--text", "x"], 1);
  if (!runtime.stderr.startsWith("olmo tokenize: cannot read tokenizer file")) throw new Error(runtime.stderr);
  const missingFile = expectFailure(["tokenize", "--file", "/no/such/input.txt"], 1);
  if (!missingFile.stderr.startsWith("olmo tokenize: cannot read --file /no/such/input.txt")) throw new Error(missingFile.stderr);
});

test("tokenize and detokenize default to the model's tokenizer (--model, default the bundled model)", () => {
  const want = new Tokenizer(readFileSync(`${MODEL}/tokenizer.json`, "utf8")).encode("ROMEO: but soft");
  for (const args of [[], ["--model", MODEL]]) {
    const r = olmo("tokenize", ...args, "--text", "ROMEO: but soft");
    if (r.status !== 0 || r.stdout.trim() !== JSON.stringify(want)) throw new Error(`tokenize ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  }
  const back = olmo("detokenize", "--ids", want.join(","));
  if (back.stdout !== "ROMEO: but soft\n") throw new Error(JSON.stringify(back.stdout));
});

test("generate: a positional prompt, the context limit said up front, nothing printed before an error", () => {
  const r = olmo("generate", "ROMEO:", "--max-new-tokens", "3", "--json");
  const out = JSON.parse(r.stdout || "{}");
  if (r.status !== 0 || out.new_tokens !== 3 || out.prompt_tokens < 1) throw new Error(`status ${r.status}: ${r.stdout}${r.stderr}`);
  expectFailure(["generate", "ROMEO:", "--prompt", "JULIET:"], 2, "either as an argument or as --prompt, not both");
  const two = expectFailure(["generate", "ROMEO:", "JULIET:"], 2, "expected one prompt argument, got 2");
  if (two.stderr.includes("give exactly one of")) throw new Error(`two prompts are one problem, said once:\n${two.stderr}`);
  expectFailure(["generate"], 2, 'give exactly one of "PROMPT" (the argument), --prompt TEXT or --ids 1,2,3');
  expectFailure(["generate", "--prompt"], 2, "--prompt needs a value: --prompt TEXT");
  expectFailure(["generate", "--prompt", "--max-new-tokens", "3"], 2, '--prompt needs a value: --prompt TEXT (a value that starts with "-" is written --prompt=-TEXT)');
  expectFailure(["generate", "ROMEO:", "--ids", "1,2"], 2, '(got "PROMPT" and --ids)');
  // The bundled model's context is 256 tokens: asking for 400 says so before generating.
  const long = olmo("generate", "--ids", "1,2,3", "--max-new-tokens", "400", "--json");
  if (long.status !== 0 || !long.stderr.includes("exceed the model's context of 256 tokens; generation stops after 253 new tokens")) throw new Error(long.stderr);
  if (JSON.parse(long.stdout).new_tokens > 253) throw new Error(long.stdout);
  // Errors found once the model is loaded still come before the prompt is echoed.
  for (const [args, message] of [
    [["generate", "ROMEO ".repeat(300)], "more than the model's context of 256"],
    [["generate", "--ids", "1,999999"], "token id 999999 is outside the model's vocabulary"],
  ] as const) {
    const e = expectFailure([...args], 2, message);
    if (e.stdout !== "") throw new Error(`printed before the error: ${JSON.stringify(e.stdout.slice(0, 80))}`);
  }
  for (const [flag, value, range] of [["--max-new-tokens", "0", "an integer >= 1"], ["--top-p", "1.5", "a number in (0, 1]"], ["--threads", "0", "an integer in [1, 256]"], ["--seed", "1.5", "an integer in [0, 4294967295]"]]) {
    expectFailure(["generate", "--ids", "1", flag!, value!], 2, `${flag} must be ${range}, got ${value}`);
  }
  expectFailure(["generate", "--ids", "1", "--backend", "cuda"], 2, "--backend must be js, wasm or webgpu, got cuda");
});

test("--model: an existing path is a folder; a mistyped path says no such folder instead of trying the Hub", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-cli-model-"));
  mkdirSync(join(dir, "models"));
  writeFileSync(join(dir, "file.txt"), "x");
  // Never reaches a server: HF_ENDPOINT points nowhere, and these must not get that far.
  const env = { HF_ENDPOINT: "http://127.0.0.1:9" };
  for (const [model, message] of [
    ["./nope", "--model ./nope: no such folder"],
    ["/no/such/dir", "--model /no/such/dir: no such folder"],
    ["models/olmo-tiny", "--model models/olmo-tiny: no such folder"],
    ["a/b/c", "--model a/b/c: no such folder"],
    ["file.txt", "--model file.txt is a file"],
  ]) {
    const r = olmoIn(dir, env, "generate", "--model", model!, "--ids", "1");
    if (r.status !== 2 || !r.stderr.startsWith(`olmo generate: ${message}`)) throw new Error(`--model ${model}: status ${r.status}: ${r.stderr}`);
  }
  // owner/name that is not a path here is a Hub repo: the fetch fails (nothing listens) with an error, not a crash.
  const hub = olmoIn(dir, { ...env, OLMO_JS_CACHE: join(dir, "cache") }, "generate", "--model", "someone/some-model", "--ids", "1");
  if (hub.status !== 1 || !hub.stderr.startsWith("olmo generate: ")) throw new Error(`hub: status ${hub.status}: ${hub.stderr}`);
  expectFailure(["generate", "--model", MODEL, "--revision", "main", "--ids", "1"], 2, "--revision needs --model to be a Hub repo");
});

test("prepare-data: empty messages, a message without a role, and bad JSON name the file and line", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-cli-prep-"));
  const cases: [string, string][] = [
    [JSON.stringify({ messages: [] }), ':2: "messages" is empty'],
    [JSON.stringify({ messages: [{ content: "hi" }] }), ':2: message 0 has no "role" string'],
    [JSON.stringify({ messages: [{ role: "user" }] }), ':2: message 0 has no "content" string'],
    ["{not json", ":2: not valid JSON"],
  ];
  for (const [line, message] of cases) {
    const file = join(dir, "chat.jsonl");
    writeFileSync(file, JSON.stringify({ text: "fine" }) + "\n" + line + "\n");
    expectFailure(["prepare-data", "--tokenizer", TOKENIZER, "--input", file, "--seq-len", "16", "--out", join(dir, "out")], 1, `olmo prepare-data: ${file}${message}`);
  }
  expectFailure(["prepare-data", "--tokenizer", TOKENIZER, "--input", join(dir, "chat.jsonl"), "--seq-len", "1", "--out", join(dir, "out"), "--ids-dtype", "int8"], 2, "--seq-len must be an integer in [2, 1048576], got 1", "--ids-dtype must be uint16 or uint32, got int8");
});

test("olmo quantize writes int8 and int4 folders that olmo generate reads, and refuses to overwrite or to convert a quantized folder", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-cli-quantize-"));
  try {
    for (const scheme of ["int8", "int4"]) {
      const out = join(dir, scheme);
      const q = olmo("quantize", "--model", MODEL, "--to", scheme, "--out", out, "--threads", "1");
      if (q.status !== 0 || !q.stderr.includes(`wrote ${out}: ${scheme}`)) throw new Error(`status ${q.status}: ${q.stderr}`);
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
      if (!config.quantization_config) throw new Error("no quantization_config");
      // The folder loads as it is stored; --json says its scheme.
      const asStored = olmo("generate", "--model", out, "--ids", "1,2,3", "--max-new-tokens", "4", "--json", "--threads", "1");
      if (asStored.status !== 0 || JSON.parse(asStored.stdout).quantization !== scheme) throw new Error(asStored.stdout + asStored.stderr);
      // The same integers as quantizing on the fly (int8's folder keeps the embedding bf16, as
      // transformers' layout does; --quantize int8 quantizes it as the on-the-fly load does).
      const fromFolder = olmo("generate", "--model", out, "--quantize", scheme, "--ids", "1,2,3", "--max-new-tokens", "4", "--json", "--threads", "1");
      const onTheFly = olmo("generate", "--model", MODEL, "--quantize", scheme, "--ids", "1,2,3", "--max-new-tokens", "4", "--json", "--threads", "1");
      if (fromFolder.status !== 0 || onTheFly.status !== 0) throw new Error(fromFolder.stderr + onTheFly.stderr);
      const ids = (r: { stdout: string }) => JSON.stringify(JSON.parse(r.stdout).ids);
      if (ids(fromFolder) !== ids(onTheFly)) throw new Error(`${scheme}: ${fromFolder.stdout} vs ${onTheFly.stdout}`);
      if (scheme === "int4" && ids(asStored) !== ids(onTheFly)) throw new Error(`int4 as stored: ${asStored.stdout} vs ${onTheFly.stdout}`);
      expectFailure(["quantize", "--model", MODEL, "--to", scheme, "--out", out], 1, "exists and is not empty");
    }
    // Weights already quantized in another scheme cannot be quantized again: refused, saying what the folder holds.
    const again = ["quantized weights cannot be quantized again", "stored int4", "quantize its float checkpoint"];
    expectFailure(["quantize", "--model", join(dir, "int4"), "--to", "int8", "--out", join(dir, "int4-to-int8"), "--threads", "1"], 1, `quantize "int8" was asked for`, ...again);
    expectFailure(["generate", "--model", join(dir, "int4"), "--quantize", "int8", "--ids", "1", "--threads", "1"], 1, ...again);
    expectFailure(["generate", "--model", join(dir, "int4"), "--load-in-8bit", "--ids", "1", "--threads", "1"], 1, ...again);
    // --embedding int8 under --to int4: the layers int4, the embedding int8 (its integers and scales).
    const mixed = join(dir, "int4-int8-embedding");
    const m = olmo("quantize", "--model", MODEL, "--to", "int4", "--embedding", "int8", "--out", mixed, "--threads", "1");
    if (m.status !== 0 || !m.stderr.includes(`wrote ${mixed}: int4 (embedding and LM head int8)`)) throw new Error(`status ${m.status}: ${m.stderr}`);
    const file = readFileSync(join(mixed, "model.safetensors"));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString("utf8")) as Record<string, { dtype: string }>;
    const dtypes = ["model.embed_tokens.weight", "model.embed_tokens.SCB", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.scales"].map((n) => header[n]?.dtype);
    if (dtypes.join() !== "I8,F32,U8,F16") throw new Error(`${mixed}: dtypes ${dtypes.join()}`);
    expectFailure(["quantize", "--model", MODEL, "--to", "int8", "--embedding", "int4", "--out", join(dir, "x")], 2, "--embedding int4 goes with --to int4");
    // generate --quantize int4 --embedding int8 runs the model that folder holds: the same tokens.
    const asked = olmo("generate", "--model", MODEL, "--quantize", "int4", "--embedding", "int8", "--ids", "1,2,3", "--max-new-tokens", "6", "--json", "--threads", "1");
    const stored = olmo("generate", "--model", mixed, "--ids", "1,2,3", "--max-new-tokens", "6", "--json", "--threads", "1");
    const int4 = olmo("generate", "--model", MODEL, "--quantize", "int4", "--ids", "1,2,3", "--max-new-tokens", "6", "--json", "--threads", "1");
    if (asked.status !== 0 || stored.status !== 0 || int4.status !== 0) throw new Error(asked.stderr + stored.stderr + int4.stderr);
    const logitsOf = (extra: string[]) => {
      const out = join(dir, `logits-${extra.join("-")}.npy`);
      const r = olmo("logits", "--model", MODEL, "--ids", "5,6,7", "--out", out, "--threads", "1", ...extra);
      if (r.status !== 0) throw new Error(r.stderr);
      return readFileSync(out);
    };
    if (JSON.parse(asked.stdout).ids.join() !== JSON.parse(stored.stdout).ids.join()) throw new Error(`--embedding int8: ${asked.stdout} vs the folder's ${stored.stdout}`);
    // ... and an LM head other than int4's (the logits differ; greedy tokens on 6 steps may not).
    if (logitsOf(["--quantize", "int4", "--embedding", "int8"]).equals(logitsOf(["--quantize", "int4"]))) throw new Error("--embedding int8 changed nothing");
    expectFailure(["generate", "--model", MODEL, "--embedding", "int8", "--ids", "1"], 2, "--embedding int8 needs --quantize int8 or int4");
    expectFailure(["eval", "--model", MODEL, "--quantize", "int8", "--embedding", "int4", "--text", "README.md", "--seq-len", "16"], 2, "--embedding int4 goes with --quantize int4");
    // --out naming a file, not a folder.
    writeFileSync(join(dir, "a-file"), "x");
    expectFailure(["quantize", "--model", MODEL, "--to", "int8", "--out", join(dir, "a-file"), "--threads", "1"], 1, `olmo quantize: ${join(dir, "a-file")} is a file; give a new folder`);
    expectFailure(["quantize", "--model", MODEL, "--to", "int3", "--out", join(dir, "x")], 2, "--to must be int8 or int4, got int3");
    expectFailure(["generate", "--model", MODEL, "--load-in-8bit", "--quantize", "int4", "--ids", "1"], 2, "--load-in-8bit means --quantize int8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
