// `olmo chat`: a conversation with an instruct model on stdin / stdout. Each line is a user message;
// the reply streams out, and the conversation so far is the next prompt (rendered with the model
// folder's chat template, as OlmoGenerator.chat does). On a terminal, /reset starts over and /exit
// (or Ctrl-D) ends; piped in, every line is one message and every reply one block of output.

import { createInterface, type Interface } from "node:readline";
import { OlmoGenerator, type ChatMessage, type TextGenerateOptions } from "../index.js";
import { parseArgs, usage, type CommandSpec } from "./args.js";
import { generateSpec, locate, modelOptions, openModel, samplingOptions } from "./generate.js";
import { modelSource } from "./model.js";

const sampling = ["max-new-tokens", "do-sample", "temperature", "top-k", "top-p", "seed", "no-repeat-ngram-size", "repetition-penalty"] as const;

const chatSpec: CommandSpec = {
  ...modelOptions,
  system: { kind: "value", placeholder: "TEXT", help: "a system message that starts the conversation (kept by /reset)" },
  ...Object.fromEntries(sampling.map((name) => [name, name === "max-new-tokens" ? { ...generateSpec[name]!, help: "new tokens per reply at most (default 256)" } : generateSpec[name]!])),
  "print-prompt": { kind: "flag", help: "print each rendered prompt on stderr (one JSON string per line) before its reply" },
};

export async function runChat(args: string[]): Promise<void> {
  const parsed = parseArgs("chat", args, chatSpec);
  if (parsed.help) return void console.log(usage("chat", chatSpec));
  const { values, flags, numbers } = parsed;
  const location = await locate(parsed);
  const { model, tokenizer, backend, name } = await openModel(parsed, location);
  if (!tokenizer) {
    model.dispose();
    backend.dispose();
    throw new Error(`${name} has no tokenizer.json: chat needs one`);
  }
  const olmo = new OlmoGenerator(model, tokenizer, backend, true, modelSource(location, values.get("revision")));
  const interactive = process.stdin.isTTY === true;
  let rl: Interface | undefined;
  try {
    // A model without a chat template is refused before the first message is read.
    const template = await olmo.chatTemplate();
    const options: TextGenerateOptions = {
      maxNewTokens: numbers.get("max-new-tokens") ?? 256,
      ...samplingOptions(parsed),
    };
    const system = values.get("system");
    const start: ChatMessage[] = system === undefined ? [] : [{ role: "system", content: system }];
    let history = [...start];
    // Made after the last await before the loop: lines read (and the end of piped input) before the
    // loop's iterator exists would be lost, and the loop would wait forever.
    rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive, prompt: "> " });
    const lines = rl;
    // Ctrl-C ends the reply being generated, or the chat when none is.
    let replying: AbortController | null = null;
    rl.on("SIGINT", () => (replying ? replying.abort() : lines.close()));
    if (interactive) {
      console.error(`olmo chat: ${name}; /reset starts over, /exit or Ctrl-D ends`);
      rl.prompt();
    }
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit") break;
      if (text === "/reset") {
        history = [...start];
        if (interactive) rl.prompt();
        continue;
      }
      if (text === "") {
        if (interactive) rl.prompt();
        continue;
      }
      const messages: ChatMessage[] = [...history, { role: "user", content: text }];
      if (flags.has("print-prompt")) console.error(JSON.stringify(template.render(messages)));
      replying = new AbortController();
      let reply = "";
      try {
        for await (const piece of olmo.chatStream(messages, { ...options, signal: replying.signal })) {
          // The template's generation prompt may leave the newline after the role to the model.
          const shown = reply.trim() === "" ? piece.trimStart() : piece;
          reply += piece;
          process.stdout.write(shown);
        }
        process.stdout.write("\n");
        // Stored as the template writes a turn: the text alone, without the whitespace around it.
        history = [...messages, { role: "assistant", content: reply.trim() }];
      } catch (e) {
        process.stdout.write("\n");
        // On a terminal a failed turn (aborted, or a conversation past the context) leaves the history
        // as it was; piped in, it ends the command.
        if (!interactive) throw e;
        if (!replying.signal.aborted) console.error(`olmo chat: ${(e as Error).message} (/reset starts over)`);
      } finally {
        replying = null;
      }
      if (interactive) rl.prompt();
    }
  } finally {
    rl?.close();
    olmo.dispose();
  }
}
