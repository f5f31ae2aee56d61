// The demo page's links to the code (examples/browser/index.html): each names a file and a symbol
// (`data-source="src/model/olmo.ts#forward"`), and the build turns it into a link to the source viewer
// with the symbol's lines, found in the file as it is then. Line numbers are never written by hand, so
// they cannot drift from the code; a symbol that is no longer there fails the build.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The lines [from, to] (1-based) of `symbol`'s definition in `text`: a function, class, const, WGSL
 * fn or a method, from its first line to the brace that closes it (or the statement's `;`).
 */
export function symbolLines(text, symbol) {
  const lines = text.split("\n");
  const s = escape(symbol);
  const declaration = new RegExp(`^(export\\s+)?(default\\s+)?(async\\s+)?(const|let|var|class|interface|type|function\\*?|fn)\\s+${s}\\b`);
  const method = new RegExp(`^((private|protected|public|static|async|readonly|override)\\s+)*${s}\\s*[(<]`);
  const start = lines.findIndex((line) => declaration.test(line.trim()) || method.test(line.trim()));
  if (start < 0) return null;
  // Braces count outside parentheses only: a parameter's type or default (`options: { ... } = {}`) is not the body.
  let depth = 0, parens = 0, opened = false;
  for (let i = start; i < lines.length; i++) {
    const code = lines[i].replace(/\/\/.*$/, "").replace(/"(\\.|[^"\\])*"|'(\\.|[^'\\])*'|`(\\.|[^`\\])*`/g, '""');
    for (const c of code) {
      if (c === "(") parens++;
      else if (c === ")") parens--;
      else if (c === "{" && parens === 0) (depth++, (opened = true));
      else if (c === "}" && parens === 0) depth--;
    }
    if ((opened && depth <= 0) || (!opened && parens === 0 && code.trimEnd().endsWith(";"))) return { from: start + 1, to: i + 1 };
  }
  return { from: start + 1, to: start + 1 };
}

/** Every `data-source="FILE#SYMBOL"` link of the page's HTML resolved to the viewer (source.html) at its lines. */
export function resolveSourceLinks(html, root) {
  const missing = [];
  const out = html.replace(/<a class="source" data-source="([^"#]+)#([^"]+)">/g, (_, file, symbol) => {
    let lines = null;
    try {
      lines = symbolLines(readFileSync(join(root, file), "utf8"), symbol);
    } catch {
      // the file is missing: reported below
    }
    if (!lines) {
      missing.push(`${file}#${symbol}`);
      return _;
    }
    const href = `source.html?file=${encodeURIComponent(file)}&from=${lines.from}&to=${lines.to}#L${lines.from}`;
    return `<a class="source" data-source="${file}#${symbol}" data-from="${lines.from}" data-to="${lines.to}" href="${href}" title="${file}, lines ${lines.from}-${lines.to}">`;
  });
  if (missing.length) throw new Error(`examples/browser/index.html links to code that is not there: ${missing.join(", ")}`);
  return out;
}
