// A small static file server for the browser pages and tests: serves a folder (the repository root by
// default) on 127.0.0.1, with Range requests (models are read a tensor at a time) and the
// cross-origin isolation headers that browsers require before they allow SharedArrayBuffer (the WASM
// backend's threads).
//
// usage: node scripts/serve.mjs [PORT [ROOT]]   (PORT 0: any free port; it prints the URL it serves)
//
// It is meant for a developer's machine, yet it refuses what a static server must refuse: paths that
// leave the root (`..`, encoded or not, and symbolic links that point outside it), dotfiles and dot
// folders (.git/), node_modules/, and malformed URLs (400) or ranges (416), without dying on any.
import { createReadStream } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { pipeline } from "node:stream";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(import.meta.url);
const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".svg": "image/svg+xml", ".png": "image/png", ".css": "text/css", ".txt": "text/plain; charset=utf-8",
  ".map": "application/json", ".md": "text/plain; charset=utf-8",
};

/** An answer other than the file: its status and a one-line reason (the body). */
class Refusal extends Error {
  constructor(status, reason, headers = {}) {
    super(reason);
    this.status = status;
    this.headers = headers;
  }
}

/** Path segments a request may not name, nor resolve into: dotfiles and dot folders, and node_modules. */
function forbiddenSegment(segments) {
  return segments.find((s) => s.startsWith(".") || s === "node_modules");
}

/** The URL's path as decoded segments ("/a/b%20c/" -> ["a", "b c", ""]), or a Refusal. */
function segmentsOf(url) {
  if (!url?.startsWith("/")) throw new Refusal(400, "bad request: the path must start with /");
  let path;
  try {
    path = decodeURIComponent(url.replace(/[?#].*$/s, ""));
  } catch {
    throw new Refusal(400, "bad request: malformed percent-encoding in the URL");
  }
  if (path.includes("\0") || path.includes("\\")) throw new Refusal(400, "bad request: NUL or backslash in the path");
  const segments = path.split("/").slice(1);
  // `..` (also as %2e%2e or behind an encoded %2f) would leave the root; `.` and dotfiles are refused too.
  const bad = forbiddenSegment(segments);
  if (bad !== undefined) throw new Refusal(403, `forbidden: ${bad === ".." ? "a path outside the served folder" : `${bad}/ is not served`}`);
  return segments;
}

/** The file a request names, after symbolic links, inside `root` (already a real path), or a Refusal. */
async function resolveFile(root, url) {
  const segments = segmentsOf(url);
  let real;
  try {
    real = await realpath(join(root, ...segments));
  } catch {
    throw new Refusal(404, "not found");
  }
  /** A real path inside the root that does not go through a dotfile or node_modules. */
  const check = (path) => {
    if (path !== root && !path.startsWith(root.endsWith(sep) ? root : root + sep)) throw new Refusal(403, "forbidden: a path outside the served folder");
    const bad = forbiddenSegment(relative(root, path).split(sep).filter((s) => s !== ""));
    if (bad !== undefined) throw new Refusal(403, `forbidden: ${bad}/ is not served`);
  };
  check(real);
  let info = await stat(real);
  if (info.isDirectory()) {
    // A folder URL serves its index.html; without the trailing slash, relative links in that page
    // would resolve against the parent, so redirect first.
    // The Location is rebuilt from the checked segments: the raw path could start with "//", which a
    // browser reads as another host (an open redirect).
    const pathname = url.replace(/[?#].*$/s, "");
    const location = `/${segments.filter((s) => s !== "").map(encodeURIComponent).join("/")}/`;
    if (!pathname.endsWith("/")) throw new Refusal(301, "moved", { location: `${location}${url.slice(pathname.length)}` });
    try {
      real = await realpath(join(real, "index.html"));
    } catch {
      throw new Refusal(404, "not found (a folder without index.html)");
    }
    check(real);
    info = await stat(real);
  }
  if (!info.isFile()) throw new Refusal(404, "not found");
  return { path: real, size: info.size };
}

/**
 * The byte range a Range header asks for: null to send the whole file (no header, another unit, or
 * several ranges, which a server may ignore), else [start, end] inclusive, or a 416 Refusal for a
 * range that is malformed (`bytes=5-2`) or starts past the end.
 */
function rangeOf(header, size) {
  if (header === undefined || !/^\s*bytes\s*=/i.test(header) || header.includes(",")) return null;
  const unsatisfiable = new Refusal(416, "range not satisfiable", { "content-range": `bytes */${size}` });
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) throw unsatisfiable;
  if (m[1] === "") {
    // bytes=-N: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw unsatisfiable;
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Number(m[2]);
  if (end < start || start >= size) throw unsatisfiable;
  return [start, Math.min(end, size - 1)];
}

/**
 * Start serving `root` (default: the repository) on 127.0.0.1:port (0: any free port); `log` collects
 * "METHOD path". `mounts` serves other folders under URL prefixes ({ "/model/": dir }), with the same checks.
 */
export async function startServer(port = 0, root = REPO_ROOT, log = null, mounts = {}) {
  const realRoot = await realpath(root);
  const realMounts = await Promise.all(Object.entries(mounts).map(async ([prefix, dir]) => [prefix, await realpath(dir)]));
  const server = createServer((req, res) => {
    log?.push(`${req.method} ${req.url}`);
    const headers = {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "x-content-type-options": "nosniff",
    };
    const answer = async () => {
      if (req.method !== "GET" && req.method !== "HEAD") throw new Refusal(405, "method not allowed", { allow: "GET, HEAD" });
      const mount = realMounts.find(([prefix]) => req.url.startsWith(prefix));
      const file = mount ? await resolveFile(mount[1], "/" + req.url.slice(mount[0].length)) : await resolveFile(realRoot, req.url);
      const range = rangeOf(req.headers.range, file.size);
      const [start, end] = range ?? [0, file.size - 1];
      res.writeHead(range ? 206 : 200, {
        ...headers,
        "content-type": TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream",
        "accept-ranges": "bytes",
        "content-length": end - start + 1,
        ...(range ? { "content-range": `bytes ${start}-${end}/${file.size}` } : {}),
      });
      if (req.method === "HEAD" || file.size === 0) return void res.end();
      // pipeline closes the file when the client goes away mid-download (pipe would leak the descriptor).
      pipeline(createReadStream(file.path, { start, end }), res, () => {});
    };
    answer().catch((e) => {
      const refusal = e instanceof Refusal ? e : new Refusal(500, "internal error");
      if (!(e instanceof Refusal)) console.error(`serve.mjs: ${req.method} ${req.url}: ${e?.stack ?? e}`);
      if (res.headersSent) return void res.destroy();
      res.writeHead(refusal.status, { ...headers, "content-type": "text/plain; charset=utf-8", ...refusal.headers });
      res.end(req.method === "HEAD" ? undefined : `${refusal.message}\n`);
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return server;
}

// Run as a program. (Bundled into a test, import.meta.url is the bundle's, so compare the file name too.)
if (process.argv[1] && SCRIPT.endsWith(`${sep}serve.mjs`) && (await realpath(process.argv[1]).catch(() => "")) === SCRIPT) {
  const [portArg = "8080", rootArg = REPO_ROOT] = process.argv.slice(2);
  const port = Number(portArg);
  if (!/^\d+$/.test(portArg) || port > 65535) {
    console.error(`serve.mjs: the port must be an integer from 0 to 65535, not ${JSON.stringify(portArg)}\nusage: node scripts/serve.mjs [PORT [ROOT]]`);
    process.exit(2);
  }
  let server;
  try {
    server = await startServer(port, rootArg);
  } catch (e) {
    console.error(`serve.mjs: cannot serve ${rootArg} on 127.0.0.1:${port}: ${e.message}`);
    process.exit(1);
  }
  const url = `http://127.0.0.1:${server.address().port}/`;
  console.log(`serving ${await realpath(rootArg)} at ${url}`);
  if (rootArg === REPO_ROOT) console.log(`the demo page: ${url}dist/demo/`);
}
