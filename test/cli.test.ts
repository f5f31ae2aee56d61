// The `olmo` command line, run as a user would (the built dist/cli.js).

import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { Tokenizer } from "../src/index.js";
import { repoRoot } from "./helpers.js";

// OLMo's allenai_gpt-neox-olmo-dolma-v1_5.json, as the default model carries it.
const TOKENIZER = `${repoRoot}models/olmo-tiny-shakespeare/tokenizer.json`;

function olmo(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

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

test("bad arguments and files get clear errors and a non-zero status", () => {
  const cases: [string[], string][] = [
    [["tokenize", "--tokenizer", TOKENIZER], "exactly one of --text TEXT or --file PATH"],
    [["tokenize", "--text", "x"], "--tokenizer FILE.json is required"],
    [["tokenize", "--tokenizer", "/no/such/file.json", "--text", "x"], "cannot read tokenizer file /no/such/file.json"],
    [["tokenize", "--tokenizer", `${repoRoot}package.json`, "--text", "x"], "model must be an object"],
    [["detokenize", "--tokenizer", TOKENIZER, "--ids", "1,x"], '--ids item 1 ("x") is not a token id'],
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

test("olmo --help lists the commands", () => {
  const r = olmo("--help");
  for (const c of ["demo", "tokenize", "detokenize"]) if (!r.stdout.includes(c)) throw new Error(r.stdout);
});

test.run();
