// Dataset rows from JSON lines (what `datasets`' to_json writes and most task files on the Hub are):
// one JSON object per line, blank lines skipped. A whole-file JSON array of objects is read too.
// Each row keeps its line number so errors can name "FILE line N".

import { EvalDataError } from "./tasks.js";

export interface ParsedRows {
  rows: unknown[];
  /** "FILE line N" (or "FILE item N" for an array) of row i. */
  where: (index: number) => string;
}

export function parseJsonRows(text: string, source: string): ParsedRows {
  if (text.trim() === "") throw new EvalDataError(`${source} is empty: no rows to score`);
  if (text.trimStart().startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new EvalDataError(`${source}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(parsed)) throw new EvalDataError(`${source}: expected a JSON array of rows`);
    if (parsed.length === 0) throw new EvalDataError(`${source} is an empty array: no rows to score`);
    return { rows: parsed, where: (i) => `${source} item ${i}` };
  }
  const rows: unknown[] = [], lines: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line));
    } catch (e) {
      throw new EvalDataError(`${source} line ${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    lines.push(i + 1);
  });
  return { rows, where: (i) => `${source} line ${lines[i]}` };
}
