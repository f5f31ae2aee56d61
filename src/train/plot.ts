// A loss curve as a small, dependency-free SVG line chart (used by olmo train and the demo page).

/** The loss curve of (step, loss) points as an SVG document. */
export function lossCurveSvg(points: { step: number; loss: number }[]): string {
  const width = 640, height = 320, pad = 44;
  if (points.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"/>`;
  const steps = points.map((p) => p.step), losses = points.map((p) => p.loss);
  const [s0, s1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
  const [l0, l1] = [Math.min(...losses), Math.max(...losses, Math.min(...losses) + 1e-6)];
  const x = (s: number) => pad + ((s - s0) / (s1 - s0)) * (width - 2 * pad);
  const y = (l: number) => height - pad - ((l - l0) / (l1 - l0)) * (height - 2 * pad);
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" stroke="black"/>`,
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${height - pad}" stroke="black"/>`,
    `<text x="${width / 2}" y="${height - 10}" text-anchor="middle">step</text>`,
    `<text x="12" y="${height / 2}" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">training loss</text>`,
    `<text x="${pad - 4}" y="${y(l1) + 4}" text-anchor="end">${l1.toFixed(2)}</text>`,
    `<text x="${pad - 4}" y="${y(l0) + 4}" text-anchor="end">${l0.toFixed(2)}</text>`,
    `<text x="${x(s0)}" y="${height - pad + 16}" text-anchor="middle">${s0}</text>`,
    `<text x="${x(s1)}" y="${height - pad + 16}" text-anchor="middle">${s1}</text>`,
    `<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`,
    `</svg>`,
  ].join("\n");
}

