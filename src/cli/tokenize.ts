// `olmo tokenize` and `olmo detokenize`: the tokenizer from the command line. The tokenizer is the
// model's (--model, default the bundled model), or a tokenizer.json given with --tokenizer.

import { readFileSync } from "node:fs";
import { decodeUtf8File } from "../node/fs.js";
import { configFromHf, readTextFile, Tokenizer } from "../index.js";
import { parseArgs, parseIdList, UsageError, usage, type CommandSpec, type ParsedArgs } from "./args.js";
import { readTokenizerFile } from "./generate.js";
import { DEFAULT_MODEL, locateModel, modelSource } from "./model.js";

const tokenizerOptions: CommandSpec = {
  model: { kind: "value", placeholder: "DIR_OR_REPO", help: "use this model's tokenizer.json (a folder, training run or Hub repo; default: the bundled model)" },
  revision: { kind: "value", help: "Hub revision of --model (default main)" },
  tokenizer: { kind: "value", placeholder: "FILE.json", help: "a tokenizer.json file instead of the model's" },
};

async function loadTokenizer(parsed: ParsedArgs): Promise<Tokenizer> {
  const file = parsed.values.get("tokenizer");
  if (file !== undefined) {
    if (parsed.values.has("model")) throw new UsageError("give --model or --tokenizer, not both");
    return readTokenizerFile(file).tokenizer;
  }
  const revision = parsed.values.get("revision");
  const location = await locateModel(parsed.values.get("model") ?? DEFAULT_MODEL, revision);
  const source = modelSource(location, revision);
  const text = await readTextFile(source, "tokenizer.json");
  if (text === null) throw new Error(`${source.name} has no tokenizer.json: pass --tokenizer FILE.json`);
  // The model's own EOS id (config.json), for --add-eos.
  const configText = await readTextFile(source, "config.json");
  const eosTokenId = configText === null ? undefined : configFromHf(configText, `${source.name}/config.json`).eosTokenId;
  try {
    return new Tokenizer(text, eosTokenId === undefined ? {} : { eosTokenId });
  } catch (e) {
    throw new Error(`${source.name}/tokenizer.json: ${(e as Error).message}`);
  }
}

const tokenizeSpec: CommandSpec = {
  ...tokenizerOptions,
  text: { kind: "value", placeholder: "TEXT", help: "text to encode" },
  file: { kind: "value", placeholder: "PATH", help: "file whose UTF-8 contents to encode" },
  "add-eos": { kind: "flag", help: "append the EOS id (the model's eos_token_id; 50279 for OLMo)" },
};

export async function runTokenize(args: string[]): Promise<void> {
  const parsed = parseArgs("tokenize", args, tokenizeSpec, { exactlyOne: [["text", "file"]] });
  if (parsed.help) return void console.log(usage("tokenize", tokenizeSpec));
  const { values, flags } = parsed;
  const tokenizer = await loadTokenizer(parsed);
  const text = values.get("text"), file = values.get("file");
  let bytes: Uint8Array | null = null;
  try {
    if (text === undefined) bytes = readFileSync(file!);
  } catch (e) {
    throw new Error(`cannot read --file ${file}: ${(e as Error).message}`);
  }
  const input = text ?? decodeUtf8File(bytes!, file!);
  console.log(JSON.stringify(tokenizer.encode(input, { addEos: flags.has("add-eos") })));
}

const detokenizeSpec: CommandSpec = {
  ...tokenizerOptions,
  ids: { kind: "value", required: true, placeholder: "1,2,3", help: "comma-separated token ids, e.g. 1552,310,247" },
  "skip-special-tokens": { kind: "flag", help: "leave out <|endoftext|> and <|padding|>" },
};

export async function runDetokenize(args: string[]): Promise<void> {
  const parsed = parseArgs("detokenize", args, detokenizeSpec);
  if (parsed.help) return void console.log(usage("detokenize", detokenizeSpec));
  const ids = parseIdList("--ids", parsed.values.get("ids")!);
  const tokenizer = await loadTokenizer(parsed);
  // decode skips ids past the vocabulary, as tokenizers does; a command line naming one is a mistake.
  const unknown = ids.findIndex((id) => tokenizer.idToToken(id) === undefined);
  if (unknown >= 0) throw new UsageError(`--ids item ${unknown} (${ids[unknown]}) is not an id of this tokenizer's vocabulary`);
  process.stdout.write(tokenizer.decode(ids, { skipSpecialTokens: parsed.flags.has("skip-special-tokens") }) + "\n");
}
