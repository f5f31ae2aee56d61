// Small SVG charts for the demo page, generated as strings (no chart library): a line chart with round
// ticks, a heatmap with token labels on both axes, and the colours every view shares. They are the
// page's, not the library's: nothing here goes into the core bundle.

import { niceTicks } from "../../src/train/plot.js";

/** The page's colours: one per quantity, the same in every view and chart. */
export const COLORS = {
  ink: "#1f2430",
  muted: "#6b7280",
  grid: "#e5e7eb",
  axis: "#9ca3af",
  loss: "#3b5bdb",
  gradNorm: "#e8590c",
  lr: "#2b8a3e",
  kept: "#3b5bdb",
  removed: "#cfd4dc",
  accent: "#c2255c",
};

/** Soft token colours: neighbouring tokens differ, and a colour stays with its token across views. */
export const TOKEN_COLORS = ["#dbe4ff", "#d3f9d8", "#ffe8cc", "#f3d9fa", "#c5f6fa", "#fff3bf", "#ffdeeb", "#e9ecef"];

/** Text for SVG and HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A number with `digits` significant digits, without exponent noise for the values the charts show. */
export function formatNumber(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

export interface Series {
  name: string;
  color: string;
  /** Points drawn with markers; each marker carries its value (data-x, data-value) for a reader or a test. */
  points: { x: number; y: number }[];
  /** Dashed, without markers: a planned curve (the learning-rate schedule) under the measured one. */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** The x range to show even before points reach it (a run's planned steps). */
  xDomain?: [number, number];
  /** Vertical marks with a label (the end of the warmup). */
  marks?: { x: number; label: string }[];
  width?: number;
  height?: number;
  /** An id for the chart's <svg> (tests find the chart by it). */
  id?: string;
}

/** A line chart: round ticks on both axes, light gridlines, a legend, markers on the measured points. */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 320, height = o.height ?? 220;
  const left = 62, right = 12, top = 44, bottom = 40;
  const all = o.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const [x0, x1] = o.xDomain ?? [Math.min(...xs, 0), Math.max(...xs, 1)];
  let xTicks = niceTicks(x0, x1, 5);
  if (xTicks.step < 1) xTicks = niceTicks(x0, Math.max(x1, x0 + 5), 5); // steps are whole numbers
  const yTicks = ys.length ? niceTicks(Math.min(...ys), Math.max(...ys), 4) : niceTicks(0, 1, 4);
  const [tx0, tx1] = [xTicks.ticks[0]!, xTicks.ticks.at(-1)!];
  const [ty0, ty1] = [yTicks.ticks[0]!, yTicks.ticks.at(-1)!];
  const px = (x: number) => left + ((x - tx0) / (tx1 - tx0 || 1)) * (width - left - right);
  const py = (y: number) => height - bottom - ((y - ty0) / (ty1 - ty0 || 1)) * (height - top - bottom);
  const decimals = (step: number) => Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const yTickLabel = (v: number) => (v === 0 ? "0" : Math.abs(ty1) < 1e-2 ? v.toExponential(1) : v.toFixed(decimals(yTicks.step)));
  const parts = [
    `<svg ${o.id ? `id="${o.id}" ` : ""}class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" font-size="11" role="img" aria-label="${escapeHtml(o.title)}">`,
    `<text x="${left}" y="16" font-size="13" font-weight="600" fill="${COLORS.ink}">${escapeHtml(o.title)}</text>`,
  ];
  for (const t of yTicks.ticks) {
    const y = py(t).toFixed(1);
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="${COLORS.grid}"/>`);
    parts.push(`<text x="${left - 6}" y="${y}" dy="0.32em" text-anchor="end" fill="${COLORS.muted}">${yTickLabel(t)}</text>`);
  }
  for (const t of xTicks.ticks) {
    const x = px(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${height - bottom}" stroke="${COLORS.grid}"/>`);
    parts.push(`<text x="${x}" y="${height - bottom + 15}" text-anchor="middle" fill="${COLORS.muted}">${t.toFixed(decimals(xTicks.step))}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" stroke="${COLORS.axis}"/>`);
  parts.push(`<text x="${(left + width - right) / 2}" y="${height - 6}" text-anchor="middle" fill="${COLORS.ink}">${escapeHtml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(13 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle" fill="${COLORS.ink}">${escapeHtml(o.yLabel)}</text>`);
  for (const m of o.marks ?? []) {
    const x = px(m.x).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${height - bottom}" stroke="${COLORS.muted}" stroke-dasharray="2 3"/>`);
    parts.push(`<text x="${x}" y="${height - bottom - 6}" dx="4" fill="${COLORS.muted}">${escapeHtml(m.label)}</text>`);
  }
  for (const s of o.series) {
    const points = s.points.filter((p) => Number.isFinite(p.y));
    if (points.length === 0) continue;
    const d = points.map((p, i) => `${i ? "L" : "M"}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.dashed ? 1.5 : 2}"${s.dashed ? ' stroke-dasharray="4 3" opacity="0.6"' : ""}/>`);
    if (s.dashed) continue;
    for (const p of points) {
      parts.push(
        `<circle class="point" data-series="${escapeHtml(s.name)}" data-x="${p.x}" data-value="${p.y}" cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="${points.length > 60 ? 1.5 : 3}" fill="${s.color}"><title>${escapeHtml(s.name)} at ${p.x}: ${formatNumber(p.y, 4)}</title></circle>`,
      );
    }
  }
  // Legend under the title: one entry per series.
  let lx = left;
  for (const s of o.series) {
    parts.push(`<line x1="${lx}" x2="${lx + 14}" y1="30" y2="30" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ""}/>`);
    parts.push(`<text x="${lx + 18}" y="30" dy="0.32em" fill="${COLORS.muted}">${escapeHtml(s.name)}</text>`);
    lx += 30 + s.name.length * 6;
  }
  parts.push("</svg>");
  return parts.join("");
}

/** A colour for a probability in [0, 1]: white to deep blue (ColorBrewer's Blues), perceptually even steps. */
export function blues(v: number): string {
  const stops = [
    [247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225], [107, 174, 214], [66, 146, 198], [33, 113, 181], [8, 81, 156], [8, 48, 107],
  ];
  const t = Math.min(1, Math.max(0, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
  const [a, b] = [stops[i]!, stops[i + 1]!];
  return `rgb(${a.map((c, k) => Math.round(c + (b[k]! - c) * f)).join(",")})`;
}

export interface HeatmapOptions {
  /** Row-major [rows, cols] values in [0, 1]. */
  values: ArrayLike<number>;
  rows: number;
  cols: number;
  /** Labels of the rows (queries) and columns (keys); none on a thumbnail. */
  rowLabels?: string[];
  colLabels?: string[];
  /** Cells above the diagonal (key after query) are masked: drawn hatched, not coloured. */
  causal: boolean;
  /** Side of the square in px. */
  size: number;
  id?: string;
  title?: string;
}

/** An attention heatmap: queries down, keys across, each cell a rect carrying its value (data-q, data-k, data-value). */
export function heatmap(o: HeatmapOptions): string {
  const labelled = o.rowLabels !== undefined;
  const margin = labelled ? { left: 92, top: 86 } : { left: 0, top: 0 };
  const cell = o.size / Math.max(o.rows, o.cols);
  const width = margin.left + cell * o.cols, height = margin.top + cell * o.rows;
  const parts = [
    `<svg ${o.id ? `id="${o.id}" ` : ""}class="heatmap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width.toFixed(1)} ${height.toFixed(1)}" font-size="11">`,
    `<defs><pattern id="mask-hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="5" height="5" fill="#f8f9fa"/><line x1="0" y1="0" x2="0" y2="5" stroke="#dee2e6" stroke-width="2"/></pattern></defs>`,
  ];
  if (o.title) parts.push(`<title>${escapeHtml(o.title)}</title>`);
  for (let q = 0; q < o.rows; q++) {
    for (let k = 0; k < o.cols; k++) {
      const x = (margin.left + k * cell).toFixed(2), y = (margin.top + q * cell).toFixed(2);
      const value = o.values[q * o.cols + k]!;
      const masked = o.causal && k > q;
      parts.push(
        `<rect class="cell${masked ? " masked" : ""}" data-q="${q}" data-k="${k}" data-value="${value}" x="${x}" y="${y}" width="${cell.toFixed(2)}" height="${cell.toFixed(2)}" fill="${masked ? "url(#mask-hatch)" : blues(value)}"${labelled ? ` stroke="white" stroke-width="${cell > 14 ? 1 : 0.5}"` : ""}/>`,
      );
    }
  }
  if (labelled) {
    const fit = (s: string) => (s.length > 12 ? s.slice(0, 11) + "…" : s);
    for (let q = 0; q < o.rows; q++) {
      parts.push(`<text x="${margin.left - 6}" y="${(margin.top + (q + 0.5) * cell).toFixed(1)}" dy="0.32em" text-anchor="end" fill="${COLORS.ink}" font-family="ui-monospace, monospace">${escapeHtml(fit(o.rowLabels![q]!))}</text>`);
    }
    for (let k = 0; k < o.cols; k++) {
      const x = (margin.left + (k + 0.5) * cell).toFixed(1);
      parts.push(`<text transform="translate(${x} ${margin.top - 6}) rotate(-55)" dy="0.32em" fill="${COLORS.ink}" font-family="ui-monospace, monospace">${escapeHtml(fit(o.colLabels![k]!))}</text>`);
    }
  }
  parts.push("</svg>");
  return parts.join("");
}

/** The colour scale of `heatmap`, as a small horizontal legend from 0 to 1, with the masked cell's swatch beside it. */
export function heatmapLegend(): string {
  const stops = Array.from({ length: 11 }, (_, i) => `<stop offset="${i * 10}%" stop-color="${blues(i / 10)}"/>`).join("");
  const tick = (x: number, label: string, anchor: string) => `<text x="${x}" y="40" text-anchor="${anchor}" fill="${COLORS.muted}">${label}</text>`;
  return (
    `<svg class="legend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 520 44" font-size="11">` +
    `<defs><linearGradient id="blues-gradient">${stops}</linearGradient>` +
    `<pattern id="legend-hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="5" height="5" fill="#f8f9fa"/><line x1="0" y1="0" x2="0" y2="5" stroke="#dee2e6" stroke-width="2"/></pattern></defs>` +
    `<text x="0" y="10" fill="${COLORS.ink}">attention probability</text>` +
    `<rect x="0" y="16" width="220" height="12" fill="url(#blues-gradient)" stroke="${COLORS.grid}"/>` +
    tick(0, "0", "start") + tick(110, "0.5", "middle") + tick(220, "1", "end") +
    `<rect x="270" y="16" width="12" height="12" fill="url(#legend-hatch)" stroke="${COLORS.grid}"/><text x="288" y="26" fill="${COLORS.muted}">masked: a key after its query (never read)</text>` +
    `</svg>`
  );
}
