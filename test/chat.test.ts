// Chat: prompts rendered from a model folder's tokenizer_config.json chat_template (as transformers'
// apply_chat_template renders them), OlmoGenerator.chat / chatStream against generate() on that
// prompt, the error for a folder without a template, and `olmo chat` with piped stdin.
//
// The model is the bundled tiny Shakespeare OLMo (a base model: no template of its own), copied into a
// temporary folder beside a tokenizer_config.json carrying OLMo-7B-Instruct's chat template.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { ChatTemplate, generate, Tokenizer, type ChatMessage } from "../src/index.js";
import { NodeOlmoGenerator } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const BASE = `${repoRoot}models/olmo-tiny-shakespeare`;

// OLMo-7B-Instruct's chat_template (its tokenizer_config.json).
const OLMO_INSTRUCT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] }}{% elif message['role'] == 'assistant' %}" +
  "{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}";

/** A model folder: the bundled model's files and this tokenizer_config.json (none when null). */
function modelFolder(tokenizerConfig: object | null): string {
  const dir = mkdtempSync(join(tmpdir(), "olmo-chat-"));
  for (const file of ["config.json", "model.safetensors", "tokenizer.json"]) copyFileSync(join(BASE, file), join(dir, file));
  if (tokenizerConfig) writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));
  return dir;
}

// bos_token as a plain string and eos_token as an AddedToken object: the two forms the files use.
const INSTRUCT_CONFIG = {
  bos_token: "<|endoftext|>",
  eos_token: { content: "<|endoftext|>", lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
  pad_token: "<|padding|>",
  chat_template: OLMO_INSTRUCT_TEMPLATE,
};
const INSTRUCT = modelFolder(INSTRUCT_CONFIG);
const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You are a poet." },
  { role: "user", content: "Speak, Romeo." },
];

test("the chat template renders as transformers' apply_chat_template: special tokens from tokenizer_config.json, the generation prompt", () => {
  const template = ChatTemplate.fromTokenizerConfig(JSON.stringify(INSTRUCT_CONFIG), "folder");
  const prompt = template.render(MESSAGES);
  const want = "<|endoftext|><|system|>\nYou are a poet.<|user|>\nSpeak, Romeo.<|assistant|>";
  if (prompt !== want) throw new Error(`rendered ${JSON.stringify(prompt)}, want ${JSON.stringify(want)}`);
  const turns: ChatMessage[] = [...MESSAGES, { role: "assistant", content: "Ay." }, { role: "user", content: "Again." }];
  const twoTurns = "<|endoftext|><|system|>\nYou are a poet.<|user|>\nSpeak, Romeo.<|assistant|>\nAy.<|endoftext|><|user|>\nAgain.";
  if (template.render(turns) !== `${twoTurns}<|assistant|>`) throw new Error(`rendered ${JSON.stringify(template.render(turns))}`);
  if (template.render(turns, { addGenerationPrompt: false }) !== twoTurns) throw new Error("addGenerationPrompt: false still opened the assistant's turn");
  if (template.eosToken !== "<|endoftext|>") throw new Error(`eos_token object read as ${JSON.stringify(template.eosToken)}`);
  // The rendered special tokens are the tokenizer's special ids, not their characters spelled out.
  const tokenizer = new Tokenizer(readFileSync(join(BASE, "tokenizer.json"), "utf8"));
  const eosCount = (text: string) => tokenizer.encode(text).filter((id) => id === 50279).length;
  if (tokenizer.encode(prompt)[0] !== 50279 || eosCount(prompt) !== 1 || eosCount(twoTurns) !== 2) throw new Error("<|endoftext|> in the rendered prompt is not encoded as its special id 50279");
});

test("a template that fails to render, or renders nothing, is named with its file", () => {
  const config = (template: string) => JSON.stringify({ ...INSTRUCT_CONFIG, chat_template: template });
  const failure = (template: string) => {
    try {
      ChatTemplate.fromTokenizerConfig(config(template), "folder").render(MESSAGES);
    } catch (e) {
      return (e as Error).message;
    }
    return "rendered";
  };
  const raised = failure("{{ raise_exception('Conversation roles must alternate') }}");
  if (raised !== "folder/tokenizer_config.json: chat_template failed to render: Conversation roles must alternate") throw new Error(raised);
  const empty = failure("{% if false %}x{% endif %}");
  if (empty !== "folder/tokenizer_config.json: chat_template rendered an empty prompt for these 2 message(s)") throw new Error(empty);
});

test("chat() is generate() on the rendered prompt; chatStream() yields the same text", async () => {
  const olmo = await NodeOlmoGenerator.fromPretrained(INSTRUCT, { backend: "wasm", threads: 1 });
  try {
    const prompt = (await olmo.chatTemplate()).render(MESSAGES);
    const want = await olmo.generate(prompt, { maxNewTokens: 24 });
    const reply = await olmo.chat(MESSAGES, { maxNewTokens: 24 });
    if (reply !== want) throw new Error(`chat ${JSON.stringify(reply)} != generate on the rendered prompt ${JSON.stringify(want)}`);
    if (reply.length === 0) throw new Error("the reply is empty: the comparison proves nothing");
    let streamed = "";
    for await (const piece of olmo.chatStream(MESSAGES, { maxNewTokens: 24 })) streamed += piece;
    if (streamed !== want) throw new Error(`chatStream ${JSON.stringify(streamed)} != ${JSON.stringify(want)}`);
  } finally {
    olmo.dispose();
  }
});

test("chat stops at the template's end-of-turn token when it is not the model's EOS, and leaves it out of the reply", async () => {
  // Any token the greedy reply contains will do as the end of a turn: the reply must end just before it.
  const probe = await NodeOlmoGenerator.fromPretrained(INSTRUCT, { backend: "wasm", threads: 1 });
  let endOfTurn: string, want: string;
  try {
    const prompt = (await probe.chatTemplate()).render(MESSAGES);
    const ids = probe.tokenizer.encode(prompt);
    const { newIds } = await generate(probe.model, ids, { maxNewTokens: 24 });
    const at = newIds.findIndex((id, i) => i >= 3 && !probe.tokenizer.isSpecial(id) && newIds.indexOf(id) === i);
    if (at === -1) throw new Error(`no token to use as the end of a turn in ${newIds}`);
    endOfTurn = probe.tokenizer.idToToken(newIds[at]!)!;
    want = probe.tokenizer.decode(newIds.slice(0, at), { skipSpecialTokens: true });
  } finally {
    probe.dispose();
  }
  const folder = modelFolder({ ...INSTRUCT_CONFIG, eos_token: endOfTurn });
  const olmo = await NodeOlmoGenerator.fromPretrained(folder, { backend: "wasm", threads: 1 });
  try {
    const reply = await olmo.chat(MESSAGES, { maxNewTokens: 24 });
    if (reply !== want) throw new Error(`with eos_token ${JSON.stringify(endOfTurn)}: reply ${JSON.stringify(reply)}, want ${JSON.stringify(want)}`);
  } finally {
    olmo.dispose();
    rmSync(folder, { recursive: true });
  }
});

test("a folder without a chat template: chat says which folder and that it has no chat_template", async () => {
  const noTemplate = modelFolder({ bos_token: null, eos_token: "<|endoftext|>" });
  try {
    for (const folder of [BASE, noTemplate]) {
      const olmo = await NodeOlmoGenerator.fromPretrained(folder, { backend: "js" });
      let message = "";
      try {
        await olmo.chat(MESSAGES, { maxNewTokens: 4 });
      } catch (e) {
        message = (e as Error).message;
      } finally {
        olmo.dispose();
      }
      if (!message.includes(folder) || !message.includes("no chat_template")) throw new Error(`${folder}: the error does not name the folder and say "no chat_template": ${message}`);
    }
    // A broken tokenizer_config.json is named as the file.
    writeFileSync(join(noTemplate, "tokenizer_config.json"), "{ not json");
    const olmo = await NodeOlmoGenerator.fromPretrained(noTemplate, { backend: "js" });
    const message = await olmo.chat(MESSAGES).then(() => "", (e: Error) => e.message);
    olmo.dispose();
    if (!message.includes(`${noTemplate}/tokenizer_config.json`) || !message.includes("not valid JSON")) throw new Error(`a broken tokenizer_config.json: ${message}`);
  } finally {
    rmSync(noTemplate, { recursive: true });
  }
});

test("olmo chat with piped stdin: one reply per line, the history kept in the next prompt", async () => {
  const args = [`${repoRoot}dist/cli.js`, "chat", "--model", INSTRUCT, "--system", "You are a poet.", "--max-new-tokens", "12", "--threads", "1", "--print-prompt"];
  const r = spawnSync(process.execPath, args, { input: "Speak, Romeo.\nAgain.\n", encoding: "utf8" });
  if (r.status !== 0) throw new Error(`olmo chat exited ${r.status}:\n${r.stderr}`);
  // The same conversation through the library: the first reply goes into the second prompt as the template writes a turn.
  const olmo = await NodeOlmoGenerator.fromPretrained(INSTRUCT, { backend: "wasm", threads: 1 });
  try {
    const template = await olmo.chatTemplate();
    const first = await olmo.chat(MESSAGES, { maxNewTokens: 12 });
    const history: ChatMessage[] = [...MESSAGES, { role: "assistant", content: first.trim() }, { role: "user", content: "Again." }];
    const second = await olmo.chat(history, { maxNewTokens: 12 });
    const wantOut = `${first.trimStart()}\n${second.trimStart()}\n`;
    if (r.stdout !== wantOut) throw new Error(`stdout ${JSON.stringify(r.stdout)}, want ${JSON.stringify(wantOut)}`);
    const prompts = r.stderr.split("\n").filter((l) => l.startsWith('"')).map((l) => JSON.parse(l) as string);
    const wantPrompts = [template.render(MESSAGES), template.render(history)];
    if (JSON.stringify(prompts) !== JSON.stringify(wantPrompts)) throw new Error(`prompts ${JSON.stringify(prompts)}, want ${JSON.stringify(wantPrompts)}`);
    if (!prompts[1]!.includes(`<|user|>\nSpeak, Romeo.<|assistant|>\n${first.trim()}<|endoftext|><|user|>\nAgain.`)) throw new Error("the second prompt lacks the first exchange");
  } finally {
    olmo.dispose();
  }
  // /reset forgets the exchange (the system message stays); /exit ends before the next line.
  const reset = spawnSync(process.execPath, args, { input: "Speak, Romeo.\n/reset\nAgain.\n/exit\nNever read.\n", encoding: "utf8" });
  const prompts = reset.stderr.split("\n").filter((l) => l.startsWith('"')).map((l) => JSON.parse(l) as string);
  const template = ChatTemplate.fromTokenizerConfig(JSON.stringify(INSTRUCT_CONFIG), INSTRUCT);
  const want = [template.render(MESSAGES), template.render([MESSAGES[0]!, { role: "user", content: "Again." }])];
  if (reset.status !== 0 || JSON.stringify(prompts) !== JSON.stringify(want)) throw new Error(`after /reset: status ${reset.status}, prompts ${JSON.stringify(prompts)}:\n${reset.stderr}`);
  // The bundled base model has no template: refused before any line is read, exit status 1.
  const base = spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, "chat", "--model", BASE, "--threads", "1"], { input: "Hi\n", encoding: "utf8" });
  if (base.status !== 1 || !base.stderr.includes("olmo chat:") || !base.stderr.includes("no chat_template")) throw new Error(`base model: status ${base.status}: ${base.stderr}`);
});

test.after(() => rmSync(INSTRUCT, { recursive: true }));

test.run();
