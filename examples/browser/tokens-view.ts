// The Tokens view: the text as GPT-NeoX BPE tokens (coloured chips with text, byte-level piece and id),
// and for a chosen word the merges that built it, one step a row (Tokenizer.mergeSteps).

import { escapeHtml, TOKEN_COLORS } from "./charts.js";
import { pieceHtml, visibleText, type Inspected } from "./inspected.js";

/** What the view shows, for the test and the console (window.demo.tokens). */
export interface TokensShown {
  ids: number[];
  word: number;
  steps: string[][];
}

/** The chips of every word, each word a clickable group (data-word), each token with data-id and data-position. */
export function tokenStrip(x: Inspected, options: { pieces: boolean; selectedWord?: number; selectedPosition?: number }): string {
  let position = 0;
  return x.words
    .map((word, w) => {
      const chips = word.ids
        .map((id) => {
          const p = position++;
          const color = TOKEN_COLORS[p % TOKEN_COLORS.length];
          const selected = p === options.selectedPosition ? " selected" : "";
          return (
            `<span class="token position${selected}" data-id="${id}" data-position="${p}" style="background:${color}" title="position ${p}, id ${id}">` +
            `<span class="text">${escapeHtml(visibleText(x.texts[p]!))}</span>` +
            (options.pieces ? `<span class="piece">${pieceHtml(x.tokens[p]!)}</span>` : "") +
            `<span class="id">${id}</span></span>`
          );
        })
        .join("");
      const selected = w === options.selectedWord ? " selected" : "";
      return `<span class="word${selected}" data-word="${w}" title="${word.added ? "an added token: cut out before BPE" : "click: the merges that built this word"}">${chips}</span>`;
    })
    .join("");
}

/** The word with the most merges: a good first example. */
export function richestWord(x: Inspected): number {
  let best = 0;
  x.merges.forEach((steps, w) => {
    if (steps.length > x.merges[best]!.length) best = w;
  });
  return best;
}

export function renderTokens(x: Inspected, word: number, root: { summary: HTMLElement; strip: HTMLElement; merges: HTMLElement }): TokensShown {
  const characters = [...x.prompt].length;
  const bytes = new TextEncoder().encode(x.prompt).length;
  root.summary.innerHTML =
    `<b>${characters}</b> characters (${bytes} UTF-8 bytes) &rarr; <b>${x.words.length}</b> words &rarr; <b>${x.ids.length}</b> tokens ` +
    `(${(bytes / x.ids.length).toFixed(1)} bytes a token).`;
  root.strip.innerHTML = tokenStrip(x, { pieces: true, selectedWord: word });
  const w = x.words[word]!;
  const steps = x.merges[word]!;
  if (w.added) {
    root.merges.innerHTML = `<h3>${escapeHtml(JSON.stringify(w.text))}</h3><p class="hint">An added token (id ${w.ids[0]}): the tokenizer cuts it out of the text before BPE, so no merges build it.</p>`;
    return { ids: x.ids, word, steps: [] };
  }
  const rows = steps.map((step, s) => {
    const pieces = step.tokens.map((t, i) => `<span class="merge-token${i === step.at ? " made" : ""}">${pieceHtml(t)}</span>`).join("");
    const why = step.merge
      ? `merge #${step.merge.rank.toLocaleString("en")}: <span class="merge-token">${pieceHtml(step.merge.left)}</span> + <span class="merge-token">${pieceHtml(step.merge.right)}</span>`
      : `${step.tokens.length} bytes, one token each`;
    return `<span class="n">${s}</span><span class="row">${pieces}</span><span class="why">${why}</span>`;
  });
  root.merges.innerHTML =
    `<h3>How BPE builds ${escapeHtml(JSON.stringify(w.text))}</h3>` +
    `<p class="hint">Each step merges the neighbouring pair whose merge was learned earliest (the lowest number in tokenizer.json's merges list), until no pair has a merge. ` +
    `${steps.length - 1} merge${steps.length === 2 ? "" : "s"} give ${w.ids.length} token${w.ids.length === 1 ? "" : "s"}: ${w.ids.join(", ")}.</p>` +
    `<div class="merge-steps">${rows.join("")}</div>`;
  return { ids: x.ids, word, steps: steps.map((s) => s.tokens) };
}
