// The GPT-NeoX byte-level BPE tokenizer that OLMo uses, loaded from a Hugging Face tokenizer.json.
//
// encode(text):
//   1. lone surrogates become U+FFFD (a JS string may hold them; UTF-8 cannot)
//   2. added tokens with normalized = false (e.g. <|endoftext|>) are cut out of the raw text
//   3. the rest is NFC-normalised, and added tokens with normalized = true (e.g. OLMo's runs of
//      spaces) are cut out of it
//   4. the remaining text is split into words by GPT-2's pattern, and BPE turns each word's UTF-8
//      bytes into ids
// decode(ids): each token's bytes (see tokenBytes), concatenated and read as UTF-8, with U+FFFD for
// invalid sequences, as `tokenizers` does.

import { AddedTokenMatcher, type Segment } from "./added-tokens.js";
import { BytePairEncoder } from "./bpe.js";
import { GPT2_SPLIT, tokenBytes } from "./byte-level.js";
import { parseTokenizerJson, type AddedToken, type TokenizerSpec } from "./config.js";

// Rust's String::from_utf8_lossy (what tokenizers' decoder uses) replaces each invalid sequence with
// U+FFFD, as TextDecoder does, but keeps a leading byte-order mark, which TextDecoder drops unless told.
const UTF8_LIKE_RUST = { ignoreBOM: true };
const UTF8 = new TextEncoder();

/** OLMo's end-of-text id (eos_token_id in the OLMo-1B / 7B / 0424 configs). */
export const OLMO_EOS_TOKEN_ID = 50279;

export interface TokenizerOptions {
  /** Id appended by encode(text, { addEos: true }); OLMo's configs use 50279. */
  eosTokenId?: number;
}

export interface EncodeOptions {
  /** Append the EOS id, as OLMo's trainer does between documents. No BOS is ever added. */
  addEos?: boolean;
}

/** One pre-tokenized word of a text and its tokens (Tokenizer.explain). */
export interface TokenizedWord {
  /** The word's text after normalization (an added token's content for an added token). */
  text: string;
  ids: number[];
  /** Each id's token string, byte-level for vocabulary entries ("Ġthe" for " the"). */
  tokens: string[];
  /** An added token (<|endoftext|>, a run of spaces), cut out before BPE: it has no merges. */
  added: boolean;
}

/** One step of building a word by BPE (Tokenizer.mergeSteps). */
export interface MergeStep {
  /** The word's tokens after this step: its bytes (byte-level characters) at step 0. */
  tokens: string[];
  ids: number[];
  /** The position in `tokens` of the token this step's merge made (-1 at step 0). */
  at: number;
  /** The merge: its rank in tokenizer.json's merges (lower merges first) and its two parts; null at step 0. */
  merge: { rank: number; left: string; right: string } | null;
}

export interface DecodeOptions {
  /** Leave out special tokens (<|endoftext|>, <|padding|>). */
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  readonly eosTokenId: number;
  /** Number of ids: one more than the largest id of the vocabulary or the added tokens. */
  readonly vocabSize: number;
  private readonly spec: TokenizerSpec;
  private readonly bpe: BytePairEncoder;
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly tokenById: (string | undefined)[] = [];
  private readonly bytesById: (Uint8Array | undefined)[] = [];
  /**
   * Ids of recent words, keyed by the word's text (words repeat a lot in text). Bounded in count and
   * in word length, as `tokenizers`' BPE cache is: a long word (a megabyte of text with no spaces)
   * is rarely seen twice and would hold its memory.
   */
  private readonly wordCache = new Map<string, number[]>();
  private static readonly WORD_CACHE_LIMIT = 100_000;
  private static readonly CACHED_WORD_MAX_LENGTH = 256;

  /** From tokenizer.json: its text or the parsed object. */
  constructor(json: string | object, options: TokenizerOptions = {}) {
    this.spec = parseTokenizerJson(json);
    this.bpe = new BytePairEncoder(this.spec.vocab, this.spec.merges);
    for (const [token, id] of this.spec.vocab) this.tokenById[id] = token;
    for (const t of this.spec.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      this.tokenById[t.id] = t.content;
    }
    const normalize = (s: string) => (this.spec.normalizer === "NFC" ? s.normalize("NFC") : s);
    this.rawMatcher = new AddedTokenMatcher(this.spec.addedTokens.filter((t) => !t.normalized).map((t) => [t.content, t]));
    this.normalizedMatcher = new AddedTokenMatcher(this.spec.addedTokens.filter((t) => t.normalized).map((t) => [normalize(t.content), t]));
    this.vocabSize = this.tokenById.length;
    this.eosTokenId = options.eosTokenId ?? OLMO_EOS_TOKEN_ID;
    if (!Number.isInteger(this.eosTokenId) || this.eosTokenId < 0) {
      throw new Error(`Tokenizer: eosTokenId must be a non-negative integer, got ${this.eosTokenId}`);
    }
  }

  /** Token ids of `text`. Never throws on a string. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    expectText("encode", text);
    const ids: number[] = [];
    for (const raw of this.rawMatcher.split(wellFormed(String(text)))) {
      if (raw.token) {
        ids.push(raw.token.id);
        continue;
      }
      const normalized = this.spec.normalizer === "NFC" ? raw.text.normalize("NFC") : raw.text;
      for (const segment of this.normalizedMatcher.split(normalized)) this.encodeSegment(segment, ids);
    }
    if (options.addEos) ids.push(this.eosTokenId);
    return ids;
  }

  /**
   * What encode does to `text`, word by word: the words GPT-2's pattern splits it into (and the added
   * tokens cut out before), each with its ids. The ids of all words, in order, are encode(text)'s.
   * For a reader (the demo's Tokens view), so it walks the text as encode does rather than sharing
   * encode's loop, which stays as lean as it is.
   */
  explain(text: string): TokenizedWord[] {
    expectText("explain", text);
    const words: TokenizedWord[] = [];
    const add = (word: string, ids: number[], added: boolean) => words.push({ text: word, ids, tokens: ids.map((id) => this.tokenById[id]!), added });
    for (const raw of this.rawMatcher.split(wellFormed(String(text)))) {
      if (raw.token) {
        add(raw.token.content, [raw.token.id], true);
        continue;
      }
      const normalized = this.spec.normalizer === "NFC" ? raw.text.normalize("NFC") : raw.text;
      for (const segment of this.normalizedMatcher.split(normalized)) {
        if (segment.token) {
          add(segment.token.content, [segment.token.id], true);
          continue;
        }
        const full = this.spec.addPrefixSpace && !segment.text.startsWith(" ") ? " " + segment.text : segment.text;
        for (const word of this.spec.useRegex ? full.match(GPT2_SPLIT) ?? [] : [full]) add(word, [...this.wordIds(word)], false);
      }
    }
    return words;
  }

  /**
   * The byte-pair merges that turn one word (as explain or GPT-2's pattern gives it) into its tokens,
   * step by step from its UTF-8 bytes; the last step's ids are the word's ids in encode.
   */
  mergeSteps(word: string): MergeStep[] {
    expectText("mergeSteps", word);
    return this.bpe.mergeSteps(UTF8.encode(word)).map(({ ids, at, rank }) => {
      const tokens = ids.map((id) => this.tokenById[id]!);
      return { tokens, ids, at, merge: rank < 0 ? null : { rank, left: this.spec.merges[rank]![0], right: this.spec.merges[rank]![1] } };
    });
  }

  /** encode for many texts. */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, options));
  }

  private encodeSegment(segment: Segment, ids: number[]): void {
    if (segment.token) {
      ids.push(segment.token.id);
      return;
    }
    const text = this.spec.addPrefixSpace && !segment.text.startsWith(" ") ? " " + segment.text : segment.text;
    if (!this.spec.useRegex) {
      for (const id of this.wordIds(text)) ids.push(id);
      return;
    }
    GPT2_SPLIT.lastIndex = 0;
    for (let m = GPT2_SPLIT.exec(text); m; m = GPT2_SPLIT.exec(text)) {
      const word = this.wordIds(m[0]);
      for (let i = 0; i < word.length; i++) ids.push(word[i]!);
    }
  }

  private wordIds(word: string): number[] {
    let ids = this.wordCache.get(word);
    if (ids === undefined) {
      ids = this.bpe.encodeWord(UTF8.encode(word));
      if (word.length <= Tokenizer.CACHED_WORD_MAX_LENGTH) {
        // A Map iterates in insertion order: its first key is the oldest word, evicted first.
        if (this.wordCache.size >= Tokenizer.WORD_CACHE_LIMIT) this.wordCache.delete(this.wordCache.keys().next().value!);
        this.wordCache.set(word, ids);
      }
    }
    return ids;
  }

  /** Text of `ids`. Ids that are in no vocabulary are skipped, as `tokenizers` does. */
  decode(ids: readonly number[] | Int32Array, options: DecodeOptions = {}): string {
    return new TextDecoder("utf-8", UTF8_LIKE_RUST).decode(this.bytesOf(ids, options));
  }

  /** The UTF-8 bytes that ids stand for. */
  bytesOf(ids: readonly number[] | Int32Array, options: DecodeOptions = {}): Uint8Array {
    if (typeof ids !== "object" || ids === null || typeof ids.length !== "number") {
      throw new TypeError(`decode: ids must be an array of token ids, got ${typeof ids === "string" ? `the string ${JSON.stringify((ids as unknown as string).slice(0, 40))}` : ids === null ? "null" : typeof ids}`);
    }
    const chunks: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.tokenBytesOf(ids[i]!, options);
      if (bytes) {
        chunks.push(bytes);
        length += bytes.length;
      }
    }
    const out = new Uint8Array(length);
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }

  /** The bytes of one id, or null if it is skipped (unknown id, or special when skipping). */
  private tokenBytesOf(id: number, options: DecodeOptions): Uint8Array | null {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`decode: token id ${typeof id === "string" ? JSON.stringify(id) : String(id)} is not a non-negative integer`);
    if (options.skipSpecialTokens && this.addedById.get(id)?.special) return null;
    const cached = this.bytesById[id];
    if (cached) return cached;
    const token = this.tokenById[id];
    if (token === undefined) return null;
    return (this.bytesById[id] = this.addedById.has(id) ? UTF8.encode(token) : tokenBytes(token));
  }

  /** The id of a token string (an added token's content or a byte-level vocabulary entry). */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.spec.vocab.get(token);
  }

  /** The token string of an id (byte-level form for vocabulary entries, e.g. "Ġthe"). */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) ? this.tokenById[id] : undefined; // (never an array's own properties, such as "length")
  }

  /** True for special added tokens (<|endoftext|>, <|padding|>). */
  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  /** A decoder for streaming generation: push ids, get text as complete characters become available. */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, options);
  }
}

/**
 * Incremental decoding: a token may end in the middle of a multi-byte character (emoji are often split
 * over several tokens), so text is emitted only up to the last complete character. The concatenation
 * of everything push() and flush() return equals decode() of all the ids.
 */
export class StreamDecoder {
  private readonly utf8 = new TextDecoder("utf-8", UTF8_LIKE_RUST);

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly options: DecodeOptions,
  ) {}

  /** Text completed by these ids (possibly ""). */
  push(...ids: number[]): string {
    return this.utf8.decode(this.tokenizer.bytesOf(ids, this.options), { stream: true });
  }

  /** Whatever is left (an incomplete character becomes U+FFFD). */
  flush(): string {
    return this.utf8.decode();
  }
}

/** Lone surrogates -> U+FFFD (String.prototype.toWellFormed, where the host lacks it). */
function wellFormed(text: string): string {
  const native = (text as { toWellFormed?: () => string }).toWellFormed;
  if (native) return native.call(text);
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** Text methods take strings: anything else (undefined, a number) would be encoded as its String() form. */
function expectText(method: string, text: unknown): void {
  if (typeof text !== "string") throw new TypeError(`Tokenizer.${method}: text must be a string, got ${text === null ? "null" : typeof text}`);
}
