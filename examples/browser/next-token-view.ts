// The Next token view: the model's distribution over the next token at a chosen position, and the
// tokens `generate` could pick from it under the sliders' options. The kept set is `keptTokens`
// (src/model/sampling.ts), which runs `processLogits`, the code `chooseToken` runs in `generate`.

import { hostSoftmax, keptTokens, type SamplingOptions } from "../../src/model/sampling.js";
import { escapeHtml } from "./charts.js";
import { pieceHtml, visibleText, type Inspected } from "./inspected.js";

/** Candidates drawn: the most likely under the model, plus the token the text continues with. */
const SHOWN = 16;

/** What the view shows, for the test and the console (window.demo.nextToken). */
export interface NextTokenShown {
  position: number;
  options: SamplingOptions;
  /** Every id generate could pick (keptTokens' kept), ascending. */
  kept: number[];
  /** The rows drawn: id, the model's probability, the probability after reshaping, kept or not. */
  rows: { id: number; raw: number; now: number; kept: boolean; removedBy: string | null }[];
}

/** Decode one id for a label, from the tokens the page knows or the worker's vocabulary pieces. */
export type TokenText = (id: number) => { text: string; piece: string };

export function renderNextToken(x: Inspected, position: number, options: SamplingOptions, tokenText: TokenText, root: { summary: HTMLElement; chart: HTMLElement }): NextTokenShown {
  const V = x.vocabSize;
  const row = x.logits.subarray(position * V, (position + 1) * V);
  const context = x.ids.slice(0, position + 1);
  const raw = hostSoftmax(row);
  const now = keptTokens(row, context, options);
  const keptSet = new Set(now.kept);
  // Which rule removed a token: the first stage of generate's order whose kept set lacks it (each stage is keptTokens with the options so far).
  const stages: [string, SamplingOptions][] = options.doSample
    ? [
        ["no-repeat", { doSample: true, repetitionPenalty: options.repetitionPenalty, noRepeatNgramSize: options.noRepeatNgramSize, topK: 0, topP: 1 }],
        ["top-k", { ...options, topP: 1 }],
        ["top-p", options],
      ]
    : [["no-repeat", { doSample: true, repetitionPenalty: options.repetitionPenalty, noRepeatNgramSize: options.noRepeatNgramSize, topK: 0, topP: 1 }]];
  const stageKept = stages.map(([name, o]) => [name, new Set(keptTokens(row, context, o).kept)] as const);
  const removedBy = (id: number) => (keptSet.has(id) ? null : (stageKept.find(([, kept]) => !kept.has(id))?.[0] ?? "greedy"));

  const order = Array.from(raw.keys()).sort((a, b) => raw[b]! - raw[a]! || a - b);
  const rankOf = (id: number) => order.indexOf(id);
  const shownIds = order.slice(0, SHOWN);
  const actual = position + 1 < x.ids.length ? x.ids[position + 1]! : null;
  if (actual !== null && !shownIds.includes(actual)) shownIds.push(actual);
  const rows = shownIds.map((id) => ({ id, raw: raw[id]!, now: now.probabilities[id]!, kept: keptSet.has(id), removedBy: removedBy(id) }));

  const scale = Math.max(...rows.map((r) => Math.max(r.raw, r.now)), 1e-9);
  const percent = (p: number) => (p >= 0.0995 ? (100 * p).toFixed(0) : p >= 0.000995 ? (100 * p).toFixed(1) : (100 * p).toPrecision(1)) + "%";
  const cells = rows.map((r) => {
    const t = tokenText(r.id);
    const removed = r.kept ? "" : " removed";
    const isActual = r.id === actual ? " actual" : "";
    const nowText = r.kept ? (options.doSample ? `<b>${percent(r.now)}</b>` : `<b>picked</b>`) : `removed by ${r.removedBy}`;
    return (
      `<span class="rank">${rankOf(r.id) + 1}</span>` +
      `<span class="tok${removed}${isActual}" title="${escapeHtml(t.piece)}${isActual ? ": the text's next token" : ""}">${escapeHtml(visibleText(t.text))}</span>` +
      `<span class="tid${removed}">${r.id}</span>` +
      `<span class="track${removed}" data-id="${r.id}" data-kept="${r.kept}"><span class="raw" style="width:${((100 * r.raw) / scale).toFixed(2)}%"></span>` +
      `<span class="now" style="width:${((100 * (options.doSample ? r.now : r.kept ? 1 : 0)) / (options.doSample ? scale : 1)).toFixed(2)}%"></span></span>` +
      `<span class="num">${percent(r.raw)} &rarr; ${nowText}</span>`
    );
  });
  root.chart.innerHTML =
    `<div class="legend-row"><span><span class="sw" style="border:1.5px solid #adb5bd"></span>the model's probability</span>` +
    `<span><span class="sw" style="background:#3b5bdb"></span>${options.doSample ? "after the rules: sampled from" : "greedy's pick"}</span>` +
    `<span><span class="sw" style="background:#f1f3f5"></span>removed: never picked</span>` +
    `<span><span class="sw" style="background:#ffdeeb"></span>the text's next token</span></div>` +
    `<div class="bars"><span class="head">rank</span><span class="head">token</span><span class="head">id</span><span class="head">probability</span><span class="head">model &rarr; generate</span>${cells.join("")}</div>`;

  const keptMass = now.kept.reduce((sum, id) => sum + raw[id]!, 0);
  const top = tokenText(order[0]!);
  const before = x.texts.slice(Math.max(0, position - 5), position + 1).join("");
  root.summary.innerHTML =
    `After &ldquo;${position > 5 ? "&hellip;" : ""}${escapeHtml(before)}&rdquo; (position ${position} of ${x.ids.length}), the model's favourite is ` +
    `<b>${escapeHtml(visibleText(top.text))}</b> (${percent(raw[order[0]!]!)}). ` +
    (options.doSample
      ? `Sampling keeps <b>${now.kept.length.toLocaleString("en")}</b> of ${V.toLocaleString("en")} tokens, which held ${percent(keptMass)} of the model's probability.`
      : `Greedy picks <b>${escapeHtml(visibleText(tokenText(now.kept[0]!).text))}</b>, the first largest logit after the rules.`) +
    (actual !== null ? ` The text goes on with <b>${escapeHtml(visibleText(tokenText(actual).text))}</b> (rank ${rankOf(actual) + 1}, ${keptSet.has(actual) ? "kept" : "removed"}).` : "");
  return { position, options, kept: now.kept, rows };
}

/** Piece HTML of a token for a tooltip (re-exported for the page). */
export { pieceHtml };
