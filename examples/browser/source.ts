// The demo's source viewer: one file of the repository (the server serves its root), its lines
// numbered, the lines a view links to highlighted (source.html?file=src/model/olmo.ts&from=169&to=196).

const params = new URLSearchParams(location.search);
const file = params.get("file") ?? "";
const from = Number(params.get("from") ?? 0), to = Number(params.get("to") ?? from);
const $ = (id: string) => document.getElementById(id)!;
const escapeHtml = (s: string) => s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);

async function show(): Promise<void> {
  // Only repository paths: no scheme, no way up from the root.
  if (!/^[\w./-]+$/.test(file) || file.split("/").includes("..")) throw new Error(`not a file of the repository: ${file}`);
  document.title = `${file} - olmo-js`;
  $("file").textContent = file;
  $("where").innerHTML = `${from ? `lines ${from}&ndash;${to}, highlighted &middot; ` : ""}<a href="../../${file}">the raw file</a> &middot; <a href="./index.html">back to the demo</a>`;
  const response = await fetch(`../../${file}`);
  if (!response.ok) throw new Error(`${file}: ${response.status} ${await response.text()}`);
  const lines = (await response.text()).split("\n");
  $("code").innerHTML = lines
    .map((line, i) => {
      const n = i + 1;
      const body = /^\s*(\/\/|\*|\/\*\*)/.test(line) ? `<span class="comment">${escapeHtml(line)}</span>` : escapeHtml(line);
      return `<div class="line${n >= from && n <= to ? " hit" : ""}" id="L${n}"><span class="n"><a href="#L${n}">${n}</a></span><span>${body || " "}</span></div>`;
    })
    .join("");
  // A few lines of context above the highlight (its doc comment).
  document.getElementById(`L${Math.max(1, from - 4)}`)?.scrollIntoView();
}

show().catch((e) => ($("code").textContent = String((e as Error).message ?? e)));
