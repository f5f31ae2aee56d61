// `olmo tokenize` and `olmo detokenize`: the tokenizer from the command line.

import { readFileSync } from "node:fs";
import { Tokenizer } from "../index.js";
import { parseArgs, parseIdList, UsageError, usage, type OptionSpec } from "./args.js";

function loadTokenizer(command: string, path: string | undefined): Tokenizer {
  if (!path) throw new UsageError(`olmo ${command}: --tokenizer FILE.json is required`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read tokenizer file ${path}: ${(e as Error).message}`);
  }
  try {
    return new Tokenizer(text);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

const tokenizeSpec: Record<string, OptionSpec> = {
  tokenizer: { kind: "value", help: "tokenizer.json of the model" },
  text: { kind: "value", help: "text to encode" },
  file: { kind: "value", help: "file whose UTF-8 contents to encode" },
  "add-eos": { kind: "flag", help: "append the EOS id (50279)" },
  help: { kind: "flag", help: "show this help" },
};

export async function runTokenize(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("tokenize", args, tokenizeSpec);
  if (flags.has("help")) return void console.log(usage("tokenize", tokenizeSpec));
  const tokenizer = loadTokenizer("tokenize", values.get("tokenizer"));
  const text = values.get("text"), file = values.get("file");
  if ((text === undefined) === (file === undefined)) throw new UsageError("olmo tokenize: give exactly one of --text TEXT or --file PATH");
  const input = text ?? readFileSync(file!, "utf8");
  console.log(JSON.stringify(tokenizer.encode(input, { addEos: flags.has("add-eos") })));
}

const detokenizeSpec: Record<string, OptionSpec> = {
  tokenizer: { kind: "value", help: "tokenizer.json of the model" },
  ids: { kind: "value", help: "comma-separated token ids, e.g. 1552,310,247" },
  "skip-special-tokens": { kind: "flag", help: "leave out <|endoftext|> and <|padding|>" },
  help: { kind: "flag", help: "show this help" },
};

export async function runDetokenize(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("detokenize", args, detokenizeSpec);
  if (flags.has("help")) return void console.log(usage("detokenize", detokenizeSpec));
  const tokenizer = loadTokenizer("detokenize", values.get("tokenizer"));
  const raw = values.get("ids");
  if (raw === undefined) throw new UsageError("olmo detokenize: --ids 1,2,3 is required");
  const ids = parseIdList("olmo detokenize: --ids", raw);
  process.stdout.write(tokenizer.decode(ids, { skipSpecialTokens: flags.has("skip-special-tokens") }) + "\n");
}
