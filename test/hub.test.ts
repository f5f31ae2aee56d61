// Hub-style loading against a local server with the Hub's layout ({endpoint}/{repo}/resolve/{revision}/{file},
// HEAD and Range requests): range-reading straight from the server, the Node disk cache with resumable
// downloads, a missing shard, and `olmo generate --model owner/name --revision REV`.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { createJsBackend, hubSource, loadOlmo, noGrad, scope, tensor } from "../src/index.js";
import { cachedHubSource, folderSource } from "../src/node/index.js";
import { assertClose, readJson, repoRoot } from "./helpers.js";

const FIXTURE = `${repoRoot}test/fixtures/olmo/gqa-sharded`;
const expected = readJson<{ prompt: number[]; models: Record<string, { logits: number[]; greedy: number[] }> }>("test/fixtures/olmo/expected.json");
const SHARD = "model-00003-of-00005.safetensors";

/** Requests the server saw: "METHOD path [range]". */
const log: string[] = [];
const repos: Record<string, { dir: string; missing?: string }> = {
  "acme/tiny-olmo": { dir: FIXTURE },
  "acme/broken": { dir: FIXTURE, missing: SHARD },
};

const server: Server = createServer((req, res) => {
  const match = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent(req.url ?? ""));
  const repo = match && repos[match[1]!];
  log.push(`${req.method} ${req.url} ${req.headers.range ?? ""}`.trim());
  if (!match || !repo || match[2] !== "step7" || match[3] === repo.missing || !existsSync(join(repo.dir, match[3]!))) {
    res.writeHead(404).end("not found");
    return;
  }
  const body = readFileSync(join(repo.dir, match[3]!));
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  if (range) {
    const start = Number(range[1]), end = range[2] ? Number(range[2]) : body.length - 1;
    if (start >= body.length) {
      res.writeHead(416).end();
      return;
    }
    res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${body.length}` });
    res.end(req.method === "HEAD" ? undefined : body.subarray(start, end + 1));
    return;
  }
  res.writeHead(200, { "content-length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

async function logits(source: Parameters<typeof loadOlmo>[0]): Promise<Float32Array> {
  const backend = createJsBackend();
  const { model } = await loadOlmo(source, backend);
  const out = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(expected.prompt), [1, expected.prompt.length], { backend }))));
  const data = (await out.data()) as Float32Array;
  model.dispose();
  return data;
}

test("a sharded model loads straight from the server with Range reads", async () => {
  log.length = 0;
  const got = await logits(hubSource({ repo: "acme/tiny-olmo", revision: "step7", endpoint }));
  assertClose(got, await logits(folderSource(FIXTURE)), { atol: 0, rtol: 0 }, "logits via the hub");
  if (!log.some((l) => l.startsWith("GET") && l.includes(SHARD) && l.includes("bytes="))) throw new Error(`no ranged reads: ${log.join("\n")}`);
});

test("the Node cache downloads once, resumes a partial download, and then serves from disk", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "olmo-hub-"));
  // An interrupted earlier download: the first 100 bytes of one shard.
  const folder = join(cacheDir, "acme/tiny-olmo", "step7");
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, `${SHARD}.part`), readFileSync(join(FIXTURE, SHARD)).subarray(0, 100));
  log.length = 0;
  const progress: string[] = [];
  const source = () => cachedHubSource({ repo: "acme/tiny-olmo", revision: "step7", endpoint, cacheDir, onProgress: (file) => progress.push(file) });
  const first = await logits(source());
  if (!log.some((l) => l.includes(SHARD) && l.endsWith("bytes=100-"))) throw new Error(`the partial shard was not resumed:\n${log.join("\n")}`);
  if (readFileSync(join(folder, SHARD)).compare(readFileSync(join(FIXTURE, SHARD))) !== 0) throw new Error("resumed shard differs");
  if (readdirSync(folder).some((f) => f.endsWith(".part")) || !progress.length) throw new Error("partial files left, or no progress reported");
  log.length = 0;
  const second = await logits(source());
  assertClose(second, first, { atol: 0, rtol: 0 }, "cached logits");
  if (log.some((l) => l.startsWith("GET") && l.includes(".safetensors"))) throw new Error(`weights fetched again:\n${log.join("\n")}`);
  rmSync(cacheDir, { recursive: true });
});

test("a shard missing on the server is reported by name", async () => {
  let message = "";
  try {
    await loadOlmo(hubSource({ repo: "acme/broken", revision: "step7", endpoint }), createJsBackend());
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes(`${SHARD}: shard named in model.safetensors.index.json is missing`)) throw new Error(message);
  let bad = "";
  try {
    hubSource({ repo: "not a repo", endpoint });
  } catch (e) {
    bad = (e as Error).message;
  }
  if (!bad.includes('repo must look like "owner/name"')) throw new Error(bad);
});

test("olmo generate --model owner/name --revision REV uses HF_ENDPOINT and the cache", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "olmo-hub-cli-"));
  // spawnSync would block this process, and with it the server: run the CLI asynchronously.
  const child = spawn(process.execPath, [`${repoRoot}dist/cli.js`, "generate", "--model", "acme/tiny-olmo", "--revision", "step7", "--ids", expected.prompt.join(","), "--max-new-tokens", "32", "--backend", "js", "--json"], {
    env: { ...process.env, HF_ENDPOINT: endpoint, OLMO_JS_CACHE: cacheDir },
  });
  let stdout = "", stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (status !== 0) throw new Error(`status ${status}: ${stderr}`);
  const ids = (JSON.parse(stdout) as { ids: number[] }).ids.slice(expected.prompt.length);
  if (ids.join() !== expected.models["gqa-sharded"]!.greedy.join()) throw new Error(`ids ${ids}`);
  if (!existsSync(join(cacheDir, "acme/tiny-olmo/step7/config.json"))) throw new Error("nothing cached");
  rmSync(cacheDir, { recursive: true });
});

test.after(() => void server.close());
test.run();
