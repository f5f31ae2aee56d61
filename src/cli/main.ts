// The `olmo` command-line tool (Node only). Each command is one entry of the table below.
//
// Every error is printed the same way: `olmo <command>: <message>` on stderr, exit status 2 for a
// mistake in the command line (UsageError) and 1 for anything that went wrong while running.

import { readFileSync } from "node:fs";
import { closest } from "../core/format.js";
import { UsageError } from "./args.js";
import { runBench } from "./bench.js";
import { runChat } from "./chat.js";
import { runDemo } from "./demo.js";
import { runEval } from "./eval.js";
import { runGenerate } from "./generate.js";
import { runLogits } from "./logits.js";
import { runMergeLora } from "./merge-lora.js";
import { runQuantize } from "./quantize.js";
import { runDetokenize, runTokenize } from "./tokenize.js";
import { runPrepareData, runTrain } from "./train.js";

interface Command {
  summary: string;
  run: (args: string[]) => Promise<void>;
}

const commands: Record<string, Command> = {
  demo: { summary: "train a one-block OLMo over characters on a paragraph with the reference backend and sample from it", run: runDemo },
  generate: { summary: "generate text: olmo generate [--model DIR_OR_RUN_OR_REPO] \"PROMPT\" (or --prompt TEXT | --ids 1,2,3) [--json]", run: runGenerate },
  chat: { summary: "chat with an instruct model on stdin/stdout (its folder's chat template): olmo chat [--model DIR_OR_REPO] [--system TEXT]", run: runChat },
  logits: { summary: "write the logits of token ids as a .npy file: --model DIR --ids 1,2,3 --out FILE.npy [--capture attention,residual,mlp --out DIR]", run: runLogits },
  "prepare-data": { summary: "tokenize text or JSONL into OLMo's input_ids.npy / label_mask.npy", run: runPrepareData },
  train: { summary: "train or fine-tune an OLMo model (AdamW, OLMo schedules, checkpoints): see olmo train --help", run: runTrain },
  tokenize: { summary: "print the token ids of a text or file as a JSON array", run: runTokenize },
  detokenize: { summary: "print the text of comma-separated token ids", run: runDetokenize },
  eval: { summary: "perplexity (--text FILE | --data DIR --seq-len L) or a multiple-choice task scored as OLMo does (--task NAME --data FILE)", run: runEval },
  quantize: { summary: "write a quantized copy of a model folder: olmo quantize --model DIR --to int8|int4 --out DIR", run: runQuantize },
  "merge-lora": { summary: "fold a LoRA adapter into its base model: olmo merge-lora --model DIR --adapter DIR --out DIR", run: runMergeLora },
  bench: { summary: "measure a kernel: olmo bench matmul --m M --k K --n N [--threads T] [--dtype f32|bf16] --json", run: runBench },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ["usage: olmo <command> [options]", "", "commands:", ...lines, "", "olmo <command> --help shows a command's options; olmo --version the version."].join("\n");
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** Print an error as every command does, and set the exit status (2: the command line, 1: the run). */
export function reportError(command: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  // Messages already prefixed (from a layer that names the command itself) are printed as they are.
  console.error(message.startsWith("olmo ") ? message : `olmo ${command}: ${message}`);
  if (error instanceof UsageError) {
    console.error(command === "" ? "olmo --help lists the commands" : `olmo ${command} --help lists its options`);
    process.exitCode = 2;
  } else process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") return void console.log(usage());
  if (name === "--version" || name === "-v") return void console.log(version());
  const command = commands[name];
  if (!command) {
    const guess = closest(name, Object.keys(commands));
    console.error(`olmo: unknown command "${name}"${guess ? ` (did you mean ${guess}?)` : ""}\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  try {
    await command.run(rest);
  } catch (error) {
    reportError(name, error);
  }
}

await main(process.argv.slice(2));
