// The Attention view: every layer's and head's attention probabilities on the text (captured by
// src/model/capture.ts) as small multiples, the chosen head large with token labels on both axes, the
// causal mask hatched, and what the model's config says about grouped-query attention and clip_qkv.

import { escapeHtml, formatNumber, heatmap, heatmapLegend } from "./charts.js";
import { label, type Inspected } from "./inspected.js";

/** The probabilities of one head, [T, T] row-major (queries down, keys across). */
export function headValues(x: Inspected, layer: number, head: number): Float32Array {
  const T = x.ids.length;
  const entry = x.attention.find((a) => a.layer === layer)!;
  const h = entry.heads.indexOf(head);
  return entry.data.subarray(h * T * T, (h + 1) * T * T);
}

/** The key/value head query head `head` reads: h / (H / G), as the attention kernels and HF's repeat_kv. */
export function kvHeadOf(x: Inspected, head: number): number {
  return Math.floor(head / (x.config.numHeads / x.config.numKvHeads));
}

/** What the model's config says about grouped-query attention and clip_qkv, in words. */
function configText(x: Inspected): string {
  const { numLayers: L, numHeads: H, numKvHeads: G, headDim: D, clipQkv } = x.config;
  const gqa =
    G === H
      ? `Each of the ${H} query heads has its own key/value head (num_key_value_heads = ${G}): plain multi-head attention. ` +
        `A model with grouped-query attention has fewer key/value heads, each shared by H / G query heads (query head h reads key/value head &lfloor;h / (H/G)&rfloor;); this one has none.`
      : `<b>Grouped-query attention</b>: ${H} query heads share ${G} key/value heads, ${H / G} each (query head h reads key/value head &lfloor;h / ${H / G}&rfloor;, shown under each column).`;
  const clip =
    clipQkv === null
      ? `<b>clip_qkv</b>: not set in this model (OLMo-7B-0424 sets 8: q, k and v are clamped to [&minus;8, 8] before RoPE).`
      : `<b>clip_qkv = ${clipQkv}</b>: q, k and v are clamped to [&minus;${clipQkv}, ${clipQkv}] before RoPE, so no score can grow without bound.`;
  return `<b>${L}</b> layers &times; <b>${H}</b> heads of dimension ${D}, scores scaled by 1/&radic;${D}. ${gqa}<br />${clip}`;
}

/** The grid of thumbnails (rows: layers, columns: heads), each a button (data-layer, data-head). */
function grid(x: Inspected, layer: number, head: number): string {
  const { numLayers: L, numHeads: H, numKvHeads: G } = x.config;
  const T = x.ids.length;
  let html = `<table><tr><th></th>${Array.from({ length: H }, (_, h) => `<th>head ${h}</th>`).join("")}</tr>`;
  if (G !== H) html += `<tr><th></th>${Array.from({ length: H }, (_, h) => `<td class="kv">kv ${kvHeadOf(x, h)}</td>`).join("")}</tr>`;
  for (let l = 0; l < L; l++) {
    html += `<tr><th>layer ${l}</th>`;
    for (let h = 0; h < H; h++) {
      const selected = l === layer && h === head ? " selected" : "";
      html += `<td><span class="thumb${selected}" data-layer="${l}" data-head="${h}" title="layer ${l}, head ${h}">${heatmap({ values: headValues(x, l, h), rows: T, cols: T, causal: true, size: 60 })}</span></td>`;
    }
    html += "</tr>";
  }
  return html + "</table>";
}

export interface AttentionShown {
  layer: number;
  head: number;
  kvHead: number;
  /** The big map's values, [T, T]. */
  values: number[];
}

export function renderAttention(x: Inspected, layer: number, head: number, root: { info: HTMLElement; grid: HTMLElement; title: HTMLElement; map: HTMLElement; legend: HTMLElement }): AttentionShown {
  const T = x.ids.length;
  const labels = x.ids.map((_, i) => label(x.texts[i]!, x.tokens[i]!));
  root.info.innerHTML = configText(x);
  root.grid.innerHTML = grid(x, layer, head);
  const kvHead = kvHeadOf(x, head);
  const gqa = x.config.numKvHeads !== x.config.numHeads ? ` &middot; reads key/value head ${kvHead} of ${x.config.numKvHeads}` : "";
  root.title.innerHTML = `Layer ${layer}, head ${head}${gqa} <span class="hint">&middot; rows: queries (the position reading), columns: keys (what it reads); each row sums to 1</span>`;
  const values = headValues(x, layer, head);
  root.map.innerHTML = heatmap({ values, rows: T, cols: T, rowLabels: labels, colLabels: labels, causal: true, size: Math.min(540, Math.max(240, 30 * T)), id: "attention-heatmap" });
  root.legend.innerHTML = heatmapLegend();
  return { layer, head, kvHead, values: Array.from(values) };
}

/** The hover line for a cell of the big map. */
export function hoverText(x: Inspected, q: number, k: number, value: number): string {
  const name = (i: number) => `${i} &ldquo;${escapeHtml(x.texts[i]!)}&rdquo;`;
  if (k > q) return `query ${name(q)}, key ${name(k)}: masked (a key after the query), probability 0`;
  return `query ${name(q)} &rarr; key ${name(k)}: <b>${formatNumber(value, 4)}</b>`;
}
