// Runs the edge function (dist/function.js, from build.mjs) on this machine the way Vercel's edge runs
// it, in the sandbox of Vercel's `edge-runtime` package: Web APIs only, no code generation from strings
// and no compiling WebAssembly (the kernels are compiled here, by the host, and handed over as the
// `.wasm?module` imports), one thread (SharedArrayBuffer and Atomics are removed, so a run shows the
// engine needs neither). The model folder is served beside it as a deployment's static files are,
// under /models/, and the function reads it from there ($OLMO_MODEL_URL).
//
// usage: node serve.mjs [--port PORT]   (default 3000; 0: any free port. It prints the URL it serves.)
// $OLMO_MEMORY_LIMIT_MB: the memory limit the function keeps to, in MiB (default 128, Vercel's).
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHandler, EdgeRuntime } from "edge-runtime";

const here = dirname(fileURLToPath(import.meta.url));
const portArg = process.argv.indexOf("--port");
const port = portArg === -1 ? 3000 : Number(process.argv[portArg + 1]);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error("usage: node serve.mjs [--port PORT]");
  process.exit(2);
}

// The model folder of the olmo-js package: its three files, and nothing else, are served.
const modelDir = dirname(fileURLToPath(import.meta.resolve("olmo-js/models/olmo-tiny-shakespeare/config.json")));
const MODEL_PATH = "/models/olmo-tiny-shakespeare/";
const modelFiles = new Map(["config.json", "tokenizer.json", "model.safetensors"].map((f) => [MODEL_PATH + f, join(modelDir, f)]));

/** A static file, whole or the one byte range asked for (the function reads tensors with Range requests). */
function serveStatic(request, response, path) {
  const size = statSync(path).size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? "");
  const start = range ? Number(range[1]) : 0;
  const end = range && range[2] !== "" ? Math.min(Number(range[2]), size - 1) : size - 1;
  if (range && start > end) {
    response.writeHead(416, { "content-range": `bytes */${size}` }).end();
    return;
  }
  response.writeHead(range ? 206 : 200, {
    "content-length": end - start + 1,
    "accept-ranges": "bytes",
    "content-type": path.endsWith(".json") ? "application/json" : "application/octet-stream",
    ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
  });
  if (request.method === "HEAD") response.end();
  else createReadStream(path, { start, end }).pipe(response);
}

// The kernels, compiled here (the sandbox may not compile WebAssembly itself), those this host can: Node
// 20 has relaxed SIMD only behind a flag, so there the function gets the plain-SIMD build alone, and the
// backend takes it.
const dist = join(here, "dist");
const wasmModules = {};
for (const file of readdirSync(dist).filter((f) => f.endsWith(".wasm"))) {
  const bytes = readFileSync(join(dist, file));
  if (WebAssembly.validate(bytes)) wasmModules[file] = new WebAssembly.Module(bytes);
  else console.log(`${file}: this host cannot compile it (no relaxed SIMD?); the function goes without`);
}
const env = { OLMO_MEMORY_LIMIT_MB: process.env.OLMO_MEMORY_LIMIT_MB };
const runtime = new EdgeRuntime({
  codeGeneration: { strings: false, wasm: false },
  extend: (context) => Object.assign(context, { __wasmModules: wasmModules, process: { env } }),
});
runtime.evaluate("delete globalThis.SharedArrayBuffer; delete globalThis.Atomics;");
runtime.evaluate(readFileSync(join(dist, "function.js"), "utf8"));

// Vercel counts against a function's memory what its isolate holds: V8's heap and the memory outside
// it (ArrayBuffers, the WebAssembly memory). The sandbox shares this process's isolate, so these
// figures, printed after each request to the function, are an upper bound of the function's.
function reportMemory(request) {
  const { heapTotal, external } = process.memoryUsage();
  const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  console.log(`memory after ${request.method} ${request.url}: V8 heap ${mb(heapTotal)} + outside it ${mb(external)} = ${mb(heapTotal + external)}`);
}

const { handler } = createHandler({ runtime });
const server = createServer((request, response) => {
  if (request.url?.startsWith("/models/")) {
    const file = modelFiles.get(request.url);
    if (file && (request.method === "GET" || request.method === "HEAD")) serveStatic(request, response, file);
    else response.writeHead(404).end();
    return;
  }
  response.on("close", () => reportMemory(request));
  handler(request, response);
});
server.listen(port, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  env.OLMO_MODEL_URL ??= process.env.OLMO_MODEL_URL ?? url + MODEL_PATH;
  console.log(`edge function at ${url}/generate (model: ${env.OLMO_MODEL_URL})`);
});
