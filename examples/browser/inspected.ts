// What the worker's look at one forward pass sends the page (worker.ts `inspect`), and how the views
// write a token for people.

import type { MergeStep, TokenizedWord } from "../../src/index.js";
import { escapeHtml } from "./charts.js";

export interface Inspected {
  prompt: string;
  /** The worker's key of the model (backend and folder): a new model makes the views stale. */
  model: string;
  words: TokenizedWord[];
  /** Per word, its BPE merges (none for an added token). */
  merges: MergeStep[][];
  ids: number[];
  /** Byte-level token strings ("Ġsoft") and their text (" soft"), per position. */
  tokens: string[];
  texts: string[];
  /** [T, V] row-major: the logits at every position. */
  logits: Float32Array;
  vocabSize: number;
  /** Text and byte-level piece of the prompt's tokens and of each position's likeliest next tokens. */
  vocabulary: Record<number, { text: string; piece: string }>;
  /** Per layer, every head's probabilities [1, H, T, T] row-major. */
  attention: { layer: number; heads: number[]; data: Float32Array }[];
  config: { numLayers: number; numHeads: number; numKvHeads: number; headDim: number; clipQkv: number | null; hiddenSize: number; vocabSize: number };
  seconds: number;
}

/**
 * A byte-level piece as HTML, its stand-in characters (Ġ for a space, Ċ for a newline: code points
 * 256-323 stand for the bytes that are not printable) marked so they read as what they are.
 */
export function pieceHtml(piece: string): string {
  let html = "";
  for (const c of piece) {
    const code = c.codePointAt(0)!;
    html += code >= 256 && code <= 323 ? `<span class="mark">${escapeHtml(c)}</span>` : escapeHtml(c);
  }
  return html;
}

/** A token's text for a label: spaces shown as a faint "␣" would clutter axes, so trimmed; whitespace-only tokens show as their piece. */
export function label(text: string, piece: string): string {
  const trimmed = text.trim();
  return trimmed === "" ? piece : trimmed;
}

/** A token's text in a chip: a leading space as "␣", newlines as "⏎", so every token is visible. */
export function visibleText(text: string): string {
  return text.replace(/^ /, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}
