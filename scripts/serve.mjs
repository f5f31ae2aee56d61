// A tiny static file server for the browser pages and tests: serves the repository root on 127.0.0.1,
// with Range requests (models are read a tensor at a time) and the cross-origin isolation headers
// that browsers require before they allow SharedArrayBuffer (the WASM backend's threads).
//
// usage: node scripts/serve.mjs [port]      (then open http://127.0.0.1:PORT/...)
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";

const REPO_ROOT = new URL("..", import.meta.url).pathname;
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml" };

/** Start serving `root` (default: the repository) on 127.0.0.1:port (0: any free port); `log` collects "METHOD path". */
export function startServer(port = 0, root = REPO_ROOT, log = null) {
  const server = createServer((req, res) => {
    log?.push(`${req.method} ${req.url}`);
    const path = normalize(join(root, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
    let size;
    try {
      const info = statSync(path);
      if (!path.startsWith(root) || !info.isFile()) throw new Error("not a file");
      size = info.size;
    } catch {
      res.writeHead(404).end("not found");
      return;
    }
    const headers = {
      "content-type": TYPES[extname(path)] ?? "application/octet-stream",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "accept-ranges": "bytes",
    };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      const start = Number(range[1]), end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size) return void res.writeHead(416).end();
      res.writeHead(206, { ...headers, "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${size}` });
      if (req.method === "HEAD") return void res.end();
      return void createReadStream(path, { start, end }).pipe(res);
    }
    res.writeHead(200, { ...headers, "content-length": size });
    if (req.method === "HEAD") return void res.end();
    createReadStream(path).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const server = await startServer(Number(process.argv[2] ?? 8080));
  console.log(`serving ${root} at http://127.0.0.1:${server.address().port}/`);
}
