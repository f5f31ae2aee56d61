// The byte-level part of GPT-2 style tokenizers.
//
// BPE works on bytes, but its vocabulary is stored as printable strings: every byte 0..255 is mapped
// to one visible Unicode character (printable Latin-1 bytes map to themselves, the others, such as
// space and control bytes, to U+0100 onwards; the space becomes "Ġ"). Text is split into words with
// GPT-2's pattern first, so merges never cross a word boundary.

/** byteToChar[b] is the printable character that stands for byte b. */
export const byteToChar: string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
})();

/** The inverse map: character code -> byte (-1 where a character stands for no byte). */
export const charToByte: Int16Array = (() => {
  const table = new Int16Array(324).fill(-1);
  byteToChar.forEach((c, b) => (table[c.charCodeAt(0)] = b));
  return table;
})();

/**
 * GPT-2's pre-tokenization pattern (the one HF's ByteLevel pre-tokenizer uses): contractions, an
 * optional space followed by letters / digits / other symbols, and whitespace runs (a run followed by a
 * non-space leaves its last space to the next word). Whitespace is Unicode White_Space, as in the
 * Rust regex engine tokenizers uses (JS's \s differs: it includes U+FEFF and lacks U+0085).
 */
export const GPT2_SPLIT =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

const utf8 = new TextEncoder();

/**
 * The bytes a token stands for: its characters mapped back through the byte table, or, when some
 * character stands for no byte (added tokens such as "  " or "<|endoftext|>"), the token's own UTF-8
 * (as the ByteLevel decoder of `tokenizers` does).
 */
export function tokenBytes(token: string): Uint8Array {
  const bytes = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    const b = code < charToByte.length ? charToByte[code]! : -1;
    if (b < 0) return utf8.encode(token);
    bytes[i] = b;
  }
  return bytes;
}
