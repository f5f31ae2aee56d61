// Reading a Hugging Face `tokenizer.json` for a byte-level BPE tokenizer (GPT-2 / GPT-NeoX family),
// with every field checked so that a malformed or unsupported file fails with an error that names
// the field and what was expected.

import { byteToChar } from "./byte-level.js";

export interface AddedToken {
  id: number;
  content: string;
  /** Skipped by decode({ skipSpecialTokens: true }). */
  special: boolean;
  /** Matched against the NFC-normalised text (true) or the raw text (false). */
  normalized: boolean;
  /** Absorb whitespace to the left / right of the match. */
  lstrip: boolean;
  rstrip: boolean;
  /** Match only where neither neighbour is a word character. */
  singleWord: boolean;
}

export interface TokenizerSpec {
  /** Normaliser: OLMo's files use NFC; none is also accepted. */
  normalizer: "NFC" | null;
  /** ByteLevel pre-tokenizer options. */
  addPrefixSpace: boolean;
  useRegex: boolean;
  /** BPE vocabulary (token string -> id; ids distinct, in [0, MAX_TOKEN_ID]) and merges in rank order. */
  vocab: Map<string, number>;
  merges: [left: string, right: string][];
  addedTokens: AddedToken[];
}

export class TokenizerConfigError extends Error {
  constructor(message: string) {
    super(`tokenizer.json: ${message}`);
    this.name = "TokenizerConfigError";
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function field<T>(obj: Json, path: string, key: string, check: (v: unknown) => v is T, expected: string): T {
  const v = obj[key];
  if (!check(v)) throw new TokenizerConfigError(`${path}${key} must be ${expected}, got ${describe(v)}`);
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`.slice(0, 80);
}

const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isString = (v: unknown): v is string => typeof v === "string";
/**
 * The largest token id accepted. Ids become rows of the embedding and Int32Array entries, and
 * `tokenizers` stores them as u32; a larger number (2^53 + 2, say) would be silently changed by a JS
 * double or an Int32Array, so it is refused.
 */
export const MAX_TOKEN_ID = 2 ** 31 - 1;
const ID_RANGE = `an integer id from 0 to ${MAX_TOKEN_ID}`;
const isId = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_ID;

/** The bytes that UTF-8 text can contain (all but 0xC0, 0xC1, 0xF5..0xFF), which need a vocabulary token each. */
function isUtf8Byte(b: number): boolean {
  return b <= 0xbf || (b >= 0xc2 && b <= 0xf4);
}

/** The ByteLevel pre-tokenizer options, from the pre_tokenizer itself or a Sequence holding it. */
function byteLevelOptions(pre: unknown): { addPrefixSpace: boolean; useRegex: boolean } {
  if (!isObject(pre)) throw new TokenizerConfigError(`pre_tokenizer must be an object of type "ByteLevel", got ${describe(pre)}`);
  let byteLevel = pre;
  if (pre.type === "Sequence") {
    const steps = field(pre, "pre_tokenizer.", "pretokenizers", Array.isArray, "an array");
    const found = steps.filter((s) => isObject(s) && s.type === "ByteLevel");
    if (steps.length !== 1 || found.length !== 1) {
      throw new TokenizerConfigError(`pre_tokenizer.pretokenizers must be exactly one ByteLevel step, got ${JSON.stringify(steps).slice(0, 120)}`);
    }
    byteLevel = found[0] as Json;
  }
  if (byteLevel.type !== "ByteLevel") {
    throw new TokenizerConfigError(`pre_tokenizer.type must be "ByteLevel" (a byte-level BPE), got ${describe(byteLevel.type)}`);
  }
  return {
    addPrefixSpace: byteLevel.add_prefix_space === undefined ? false : field(byteLevel, "pre_tokenizer.", "add_prefix_space", isBool, "true or false"),
    useRegex: byteLevel.use_regex === undefined ? true : field(byteLevel, "pre_tokenizer.", "use_regex", isBool, "true or false"),
  };
}

/** Parse and validate tokenizer.json (its text or the parsed object). */
export function parseTokenizerJson(source: string | object): TokenizerSpec {
  let root: unknown = source;
  if (typeof source === "string") {
    try {
      root = JSON.parse(source);
    } catch (e) {
      throw new TokenizerConfigError(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObject(root)) throw new TokenizerConfigError(`the top level must be an object, got ${describe(root)}`);

  const model = field(root, "", "model", isObject, "an object");
  if (model.type !== undefined && model.type !== "BPE") {
    throw new TokenizerConfigError(`model.type must be "BPE", got ${describe(model.type)}; only byte-level BPE tokenizers are supported`);
  }
  for (const unsupported of ["continuing_subword_prefix", "end_of_word_suffix"] as const) {
    if (model[unsupported] !== undefined && model[unsupported] !== null && model[unsupported] !== "") {
      throw new TokenizerConfigError(`model.${unsupported} is not supported by a byte-level BPE, got ${describe(model[unsupported])}`);
    }
  }
  if (model.dropout !== undefined && model.dropout !== null) {
    throw new TokenizerConfigError(`model.dropout must be null (BPE dropout is for training), got ${describe(model.dropout)}`);
  }
  for (const [key, expected] of [["byte_fallback", false], ["ignore_merges", false]] as const) {
    if (model[key] !== undefined && model[key] !== null && model[key] !== expected) {
      throw new TokenizerConfigError(`model.${key} must be ${expected} (not implemented by this tokenizer), got ${describe(model[key])}`);
    }
  }
  const vocabObject = field(model, "model.", "vocab", isObject, "an object mapping tokens to ids");
  const vocab = new Map<string, number>();
  const tokenOfId = new Map<number, string>();
  for (const token in vocabObject) {
    const id = vocabObject[token];
    if (!isId(id)) throw new TokenizerConfigError(`model.vocab[${JSON.stringify(token)}] must be ${ID_RANGE}, got ${describe(id)}`);
    const other = tokenOfId.get(id);
    if (other !== undefined) {
      throw new TokenizerConfigError(`model.vocab[${JSON.stringify(token)}] has id ${id}, which model.vocab[${JSON.stringify(other)}] already has; ids must be distinct`);
    }
    tokenOfId.set(id, token);
    vocab.set(token, id);
  }
  for (let b = 0; b < 256; b++) {
    if (isUtf8Byte(b) && !vocab.has(byteToChar[b]!)) {
      throw new TokenizerConfigError(
        `model.vocab has no token for byte 0x${b.toString(16).padStart(2, "0")} (${JSON.stringify(byteToChar[b])}); a byte-level BPE needs one for every byte UTF-8 text can hold`,
      );
    }
  }
  const rawMerges = field(model, "model.", "merges", Array.isArray, "an array of merges");
  const merges = rawMerges.map((m, i): [string, string] => {
    // Older files store "left right"; newer ones [left, right].
    let pair: string[] | null = null;
    if (typeof m === "string") pair = m.split(" ");
    else if (Array.isArray(m) && m.every(isString)) pair = m;
    if (pair === null || pair.length !== 2 || pair[0] === "" || pair[1] === "") {
      throw new TokenizerConfigError(`model.merges[${i}] must be "left right" or [left, right] (two non-empty tokens), got ${describe(m)}`);
    }
    const [left, right] = pair as [string, string];
    for (const part of [left, right, left + right]) {
      if (!vocab.has(part)) throw new TokenizerConfigError(`model.merges[${i}] (${JSON.stringify(m)}) uses ${JSON.stringify(part)}, which is not in model.vocab`);
    }
    return [left, right];
  });

  const normalizerField = root.normalizer;
  let normalizer: "NFC" | null = null;
  if (normalizerField !== null && normalizerField !== undefined) {
    if (!isObject(normalizerField) || normalizerField.type !== "NFC") {
      throw new TokenizerConfigError(`normalizer must be null or {"type": "NFC"}, got ${JSON.stringify(normalizerField).slice(0, 80)}`);
    }
    normalizer = "NFC";
  }
  const decoder = root.decoder;
  if (decoder !== null && decoder !== undefined && (!isObject(decoder) || decoder.type !== "ByteLevel")) {
    throw new TokenizerConfigError(`decoder must be {"type": "ByteLevel", ...}, got ${JSON.stringify(decoder).slice(0, 80)}`);
  }

  // Steps that would change the ids of encode() and that this tokenizer does not implement.
  const postProcessor = root.post_processor;
  if (postProcessor !== null && postProcessor !== undefined && (!isObject(postProcessor) || postProcessor.type !== "ByteLevel")) {
    throw new TokenizerConfigError(`post_processor must be null or {"type": "ByteLevel", ...} (templates that add tokens are not implemented), got ${JSON.stringify(postProcessor).slice(0, 80)}`);
  }
  for (const key of ["truncation", "padding"] as const) {
    if (root[key] !== null && root[key] !== undefined) throw new TokenizerConfigError(`${key} must be null (not implemented by this tokenizer), got ${describe(root[key])}`);
  }

  const rawAdded = root.added_tokens === undefined ? [] : field(root, "", "added_tokens", Array.isArray, "an array");
  const addedTokens = rawAdded.map((t, i): AddedToken => {
    if (!isObject(t)) throw new TokenizerConfigError(`added_tokens[${i}] must be an object, got ${describe(t)}`);
    const path = `added_tokens[${i}].`;
    const flag = (key: string, fallback: boolean) => (t[key] === undefined ? fallback : field(t, path, key, isBool, "true or false"));
    const special = flag("special", false);
    return {
      id: field(t, path, "id", isId, ID_RANGE),
      content: field(t, path, "content", (v): v is string => isString(v) && v.length > 0, "a non-empty string"),
      special,
      normalized: flag("normalized", !special),
      lstrip: flag("lstrip", false),
      rstrip: flag("rstrip", false),
      singleWord: flag("single_word", false),
    };
  });
  return { normalizer, ...byteLevelOptions(root.pre_tokenizer), vocab, merges, addedTokens };
}
