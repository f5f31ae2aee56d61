// A loss curve as a small, dependency-free SVG line chart (used by olmo train and the demo page): axes
// with round ticks (1, 2 or 5 times a power of ten, as d3 and matplotlib pick them), light
// gridlines at every tick and labels on both axes, so the file reads the same on screen and on paper.

/**
 * About `count` round ticks (multiples of 1, 2 or 5 x 10^k) from the last one at or below `lo` to the
 * first one at or above `hi`, and the step between them.
 */
export function niceTicks(lo: number, hi: number, count = 5): { ticks: number[]; step: number } {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / Math.max(1, count);
  // The multiple nearest the raw step on a log scale: d3-array's tickIncrement rule.
  const power = 10 ** Math.floor(Math.log10(raw));
  const error = raw / power;
  const step = power * (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.SQRT2 ? 2 : 1);
  const ticks: number[] = [];
  // A tiny slack, so that a value on a tick (0.3 with steps of 0.1) does not add a tick beyond it.
  for (let i = Math.floor(lo / step + 1e-9); i <= Math.ceil(hi / step - 1e-9); i++) ticks.push(Number((i * step).toPrecision(12)));
  return { ticks, step };
}

/** A tick's label with the decimals its step needs (0.25 steps: 2 decimals; 500 steps: none). */
function tickLabel(value: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return value.toFixed(decimals);
}

/** The loss curve of (step, loss) points as an SVG document. */
export function lossCurveSvg(points: { step: number; loss: number }[]): string {
  const width = 640, height = 360;
  const left = 60, right = 20, top = 20, bottom = 50;
  if (points.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"/>`;
  const steps = points.map((p) => p.step), losses = points.map((p) => p.loss).filter(Number.isFinite);
  // Folds rather than Math.min(...array): a long run's hundred thousand points would overflow the call stack.
  const min = (v: number[]) => v.reduce((a, b) => Math.min(a, b), Infinity), max = (v: number[]) => v.reduce((a, b) => Math.max(a, b), -Infinity);
  const [sMin, sMax] = [min(steps), max(steps)];
  let stepTicks = niceTicks(sMin, sMax, 6);
  // Steps are whole numbers: a short run gets a tick per step rather than fractions.
  if (stepTicks.step < 1) stepTicks = { ticks: Array.from({ length: Math.max(sMax, sMin + 1) - sMin + 1 }, (_, i) => sMin + i), step: 1 };
  const lossTicks = losses.length ? niceTicks(min(losses), max(losses), 5) : niceTicks(0, 1);
  // The axes span whole ticks, so the curve starts and ends on gridlines.
  const [s0, s1] = [stepTicks.ticks[0]!, stepTicks.ticks.at(-1)!];
  const [l0, l1] = [lossTicks.ticks[0]!, lossTicks.ticks.at(-1)!];
  const x = (s: number) => left + ((s - s0) / (s1 - s0 || 1)) * (width - left - right);
  const y = (l: number) => height - bottom - ((l - l0) / (l1 - l0 || 1)) * (height - top - bottom);
  const path = points
    .filter((p) => Number.isFinite(p.loss))
    .map((p, i) => `${i ? "L" : "M"}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`)
    .join(" ");
  const grid = "#dddddd", axis = "#333333";
  const lines: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  for (const t of stepTicks.ticks) {
    const px = x(t).toFixed(1);
    lines.push(`<line class="grid" x1="${px}" y1="${top}" x2="${px}" y2="${height - bottom}" stroke="${grid}"/>`);
    lines.push(`<line x1="${px}" y1="${height - bottom}" x2="${px}" y2="${height - bottom + 5}" stroke="${axis}"/>`);
    lines.push(`<text class="tick x" x="${px}" y="${height - bottom + 18}" text-anchor="middle">${tickLabel(t, stepTicks.step)}</text>`);
  }
  for (const t of lossTicks.ticks) {
    const py = y(t).toFixed(1);
    lines.push(`<line class="grid" x1="${left}" y1="${py}" x2="${width - right}" y2="${py}" stroke="${grid}"/>`);
    lines.push(`<line x1="${left - 5}" y1="${py}" x2="${left}" y2="${py}" stroke="${axis}"/>`);
    lines.push(`<text class="tick y" x="${left - 8}" y="${py}" dy="0.32em" text-anchor="end">${tickLabel(t, lossTicks.step)}</text>`);
  }
  lines.push(
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="${axis}"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="${axis}"/>`,
    `<text x="${(left + width - right) / 2}" y="${height - 10}" text-anchor="middle">step</text>`,
    `<text x="14" y="${(top + height - bottom) / 2}" transform="rotate(-90 14 ${(top + height - bottom) / 2})" text-anchor="middle">training loss</text>`,
    `<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`,
    `</svg>`,
  );
  return lines.join("\n");
}
