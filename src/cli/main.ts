// The `olmo` command-line tool (Node only). Each command is one entry of the table below.

import { UsageError } from "./args.js";
import { runBench } from "./bench.js";
import { runDemo } from "./demo.js";
import { runEval } from "./eval.js";
import { runGenerate, runLogits } from "./generate.js";
import { runDetokenize, runTokenize } from "./tokenize.js";
import { runPrepareData, runTrain } from "./train.js";

interface Command {
  summary: string;
  run: (args: string[]) => Promise<void>;
}

const commands: Record<string, Command> = {
  demo: { summary: "train a one-block OLMo over characters on a paragraph with the reference backend and sample from it", run: runDemo },
  generate: { summary: "generate text with an OLMo model folder: --model DIR (--prompt TEXT | --ids 1,2,3) [--json]", run: runGenerate },
  logits: { summary: "write the logits of token ids as a .npy file: --model DIR --ids 1,2,3 --out FILE.npy", run: runLogits },
  "prepare-data": { summary: "tokenize text or JSONL into OLMo's input_ids.npy / label_mask.npy", run: runPrepareData },
  train: { summary: "train or fine-tune an OLMo model (AdamW, OLMo schedules, checkpoints): see olmo train --help", run: runTrain },
  tokenize: { summary: "print the token ids of a text or file as a JSON array", run: runTokenize },
  detokenize: { summary: "print the text of comma-separated token ids", run: runDetokenize },
  eval: { summary: "perplexity (--text FILE | --data DIR --seq-len L) or a multiple-choice task scored as OLMo does (--task NAME --data FILE)", run: runEval },
  bench: { summary: "measure a kernel: olmo bench matmul --m M --k K --n N [--threads T] [--dtype f32|bf16] --json", run: runBench },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ["usage: olmo <command> [options]", "", "commands:", ...lines, "", "olmo <command> --help shows a command's options."].join("\n");
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return;
  }
  const command = commands[name];
  if (!command) {
    console.error(`olmo: unknown command "${name}"\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  await command.run(rest);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(error.message);
    process.exitCode = 2;
    return;
  }
  console.error(`olmo: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
