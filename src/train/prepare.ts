// Text into OLMo's training data format (see data.ts for the format itself): token ids and a label
// mask, one byte per token, 1 where the token is a label. Host-neutral: the caller reads the input and
// writes the two arrays (the CLI's `olmo prepare-data` writes input_ids.npy and label_mask.npy).
//
// Inputs:
//   - plain text: one document, every token (and the EOS appended) a label;
//   - JSONL: per line {"text": ...} (a document, as plain text) or {"messages": [{role, content}, ...]}
//     (a chat example, see chatExample: only the last message and its EOS are labels).

import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { DataError, type IdDType } from "./data.js";

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * A chat example as OLMo's scripts/prepare_tulu_data.py builds it: every message becomes "<|role|>"
 * and its content; all but the last message's content, joined with newlines and ending in one, are
 * the prompt (not labels); the last message (the assistant's answer) followed by EOS is the
 * completion (labels). Padded with the pad id 1, or cut, to seq_len.
 */
export function chatExample(tokenizer: Tokenizer, messages: ChatMessage[], seqLen: number): { ids: number[]; mask: number[] } {
  if (messages.length === 0) throw new DataError("a chat example needs at least one message");
  const parts = messages.flatMap((m) => [`<|${m.role}|>`, m.content]);
  const prompt = tokenizer.encode(parts.slice(0, -1).join("\n") + "\n");
  const completion = tokenizer.encode(parts[parts.length - 1]!, { addEos: true });
  const ids = [...prompt, ...completion].slice(0, seqLen);
  const mask = [...prompt.map(() => 0), ...completion.map(() => 1)].slice(0, seqLen);
  while (ids.length < seqLen) {
    ids.push(1);
    mask.push(0);
  }
  return { ids, mask };
}

/**
 * The ids (as `dtype`) and label mask of `text`, read as JSONL when `jsonl` is set, else as one plain
 * document. `source` names the input in errors (with the line number for JSONL). `unlabelled` lists the
 * chat examples (as source:line) left with no label token, their prompt filling seqLen: they teach nothing.
 */
export function prepareTrainingData(
  tokenizer: Tokenizer, text: string, options: { jsonl: boolean; seqLen: number; dtype: IdDType; source: string },
): { ids: Uint16Array | Uint32Array; mask: Uint8Array; unlabelled: string[] } {
  const { jsonl, seqLen, dtype, source } = options;
  const ids: number[] = [], mask: number[] = [], unlabelled: string[] = [];
  // (A loop, not push(...doc): spreading a whole book's ids overflows the call stack.)
  const append = (docIds: readonly number[], docMask: readonly number[]) => {
    for (let i = 0; i < docIds.length; i++) {
      ids.push(docIds[i]!);
      mask.push(docMask[i]!);
    }
  };
  if (jsonl) {
    text.split("\n").forEach((line, n) => {
      if (!line.trim()) return;
      let record: { text?: string; messages?: ChatMessage[] };
      try {
        record = JSON.parse(line);
      } catch (e) {
        throw new DataError(`${source}:${n + 1}: not valid JSON (${(e as Error).message})`);
      }
      const where = `${source}:${n + 1}`;
      if (record === null || typeof record !== "object" || Array.isArray(record)) throw new DataError(`${where}: expected a JSON object per line`);
      if (Array.isArray(record.messages)) {
        if (record.messages.length === 0) throw new DataError(`${where}: "messages" is empty; a chat example needs at least one message`);
        record.messages.forEach((m: unknown, i: number) => {
          const message = m as Partial<ChatMessage> | null;
          if (message === null || typeof message !== "object") throw new DataError(`${where}: message ${i} is not an object {"role", "content"}`);
          if (typeof message.role !== "string" || message.role === "") throw new DataError(`${where}: message ${i} has no "role" string (e.g. "user", "assistant")`);
          if (typeof message.content !== "string") throw new DataError(`${where}: message ${i} has no "content" string`);
        });
        const example = chatExample(tokenizer, record.messages, seqLen);
        if (!example.mask.some((m) => m === 1)) unlabelled.push(where);
        append(example.ids, example.mask);
      } else if (typeof record.text === "string") {
        const doc = tokenizer.encode(record.text, { addEos: true });
        append(doc, doc.map(() => 1));
      } else throw new DataError(`${source}:${n + 1}: expected a "text" string or a "messages" array`);
    });
  } else {
    const doc = tokenizer.encode(text, { addEos: true });
    append(doc, doc.map(() => 1));
  }
  const limit = dtype === "uint16" ? 65535 : 2 ** 32 - 1;
  const tooBig = ids.find((id) => id > limit);
  if (tooBig !== undefined) throw new DataError(`token id ${tooBig} does not fit ${dtype}; use uint32 ids (--ids-dtype uint32)`);
  return { ids: dtype === "uint16" ? Uint16Array.from(ids) : Uint32Array.from(ids), mask: Uint8Array.from(mask), unlabelled };
}
