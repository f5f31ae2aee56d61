// Added tokens (special tokens such as <|endoftext|>, and extra ones such as OLMo's whitespace runs and
// PII placeholders) are found in the text before BPE and become one id each, as `tokenizers`'
// AddedVocabulary does: matches are leftmost-longest and do not overlap; `single_word` tokens match only
// between non-word characters; `lstrip` / `rstrip` tokens absorb the whitespace beside them.

import type { AddedToken } from "./config.js";

/** A piece of text that is either an added token or plain text for the BPE. */
export type Segment = { text: string; token?: AddedToken };

// Rust regex's Unicode \w and \s, which tokenizers uses for single_word and lstrip / rstrip.
const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const SPACE = /\p{White_Space}/u;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class AddedTokenMatcher {
  private readonly pattern: RegExp | null;
  private readonly byContent = new Map<string, AddedToken>();

  /** `patterns` maps the text to search for to its token (the content, NFC-normalised where needed). */
  constructor(patterns: readonly [string, AddedToken][]) {
    for (const [text, token] of patterns) if (!this.byContent.has(text)) this.byContent.set(text, token);
    // A JS alternation takes the first alternative that matches at the leftmost position; listing the
    // longest first makes it leftmost-longest.
    const alternatives = [...this.byContent.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.pattern = alternatives.length ? new RegExp(alternatives.join("|"), "gu") : null;
  }

  /** Split text into added-token segments and plain segments (never empty), in order. */
  split(text: string): Segment[] {
    if (!this.pattern || text.length === 0) return [{ text }];
    const segments: Segment[] = [];
    let plainStart = 0;
    this.pattern.lastIndex = 0;
    for (let match = this.pattern.exec(text); match; match = this.pattern.exec(text)) {
      const token = this.byContent.get(match[0])!;
      let start = match.index;
      let stop = start + match[0].length;
      if (token.singleWord) {
        const before = start > 0 && WORD_CHAR.test(charBefore(text, start));
        const after = stop < text.length && WORD_CHAR.test(charAt(text, stop));
        if (before || after) continue;
      }
      if (token.lstrip) while (start > plainStart && SPACE.test(charBefore(text, start))) start -= charBefore(text, start).length;
      if (token.rstrip) while (stop < text.length && SPACE.test(charAt(text, stop))) stop += charAt(text, stop).length;
      if (plainStart < start) segments.push({ text: text.slice(plainStart, start) });
      segments.push({ text: text.slice(start, stop), token });
      // Searching resumes at the end of the match itself, not of the whitespace an rstrip token took,
      // so a token may also match inside that whitespace; it is then emitted too, as tokenizers does.
      plainStart = stop;
    }
    if (plainStart < text.length) segments.push({ text: text.slice(plainStart) });
    return segments;
  }
}

/** The code point (as a string) that starts at index i. */
function charAt(text: string, i: number): string {
  return String.fromCodePoint(text.codePointAt(i)!);
}

/** The code point (as a string) that ends just before index i. */
function charBefore(text: string, i: number): string {
  const low = text.charCodeAt(i - 1);
  if (low >= 0xdc00 && low <= 0xdfff && i >= 2) {
    const high = text.charCodeAt(i - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.slice(i - 2, i);
  }
  return text[i - 1]!;
}
