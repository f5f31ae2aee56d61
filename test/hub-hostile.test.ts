// The Node Hub cache against hostile names and broken servers. Every case must end either loaded with
// the exact bytes, or with a clear error naming the URL and the cause, and in both cases with nothing
// half-written in the cache under a real name (checked by hashing every blob against its name) and
// nothing created outside the cache folder (checked by listing the whole temporary tree).

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { createJsBackend, hubSource, loadOlmo } from "../src/index.js";
import { cachedHubSource, type CachedHubOptions } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";
import { folderFiles, sha256, startHubServer, treeOf } from "./hub-server.js";

const FIXTURE = `${repoRoot}test/fixtures/olmo/gqa-sharded`;
const SHARD = "model-00003-of-00005.safetensors";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const ESCAPING_SHARD = "../../../../escaped-shard/model.safetensors";

const files = folderFiles(FIXTURE);
const shard = files.get(SHARD)!;
// A repo whose index sends one shard's tensors to a file outside the folder.
const escapeFiles = new Map(files);
const index = JSON.parse(new TextDecoder().decode(files.get("model.safetensors.index.json")!)) as { weight_map: Record<string, string> };
for (const [name, file] of Object.entries(index.weight_map)) if (file === SHARD) index.weight_map[name] = ESCAPING_SHARD;
escapeFiles.set("model.safetensors.index.json", new TextEncoder().encode(JSON.stringify(index)));
const changing = new Map(files);

const hub = await startHubServer({
  "acme/tiny-olmo": { files, revisions: { main: COMMIT } },
  "acme/escape": { files: escapeFiles, revisions: { main: COMMIT } },
  "acme/changing": { files: changing, revisions: { main: COMMIT } },
});
const { endpoint, log } = hub;
/** Responses a hostile mode left hanging, closed after each test. */
const hanging: ServerResponse[] = [];
const timers: ReturnType<typeof setInterval>[] = [];

// Small limits, so that the timeouts are reached in a fraction of a second.
const fast: Partial<CachedHubOptions> = { retries: 1, retryDelayMs: 10, connectTimeoutMs: 2000, idleTimeoutMs: 2000 };

/** A temporary folder with the cache four levels down, so that "../../../../x" would still land inside it. */
function sandbox() {
  const base = mkdtempSync(join(tmpdir(), "olmo-hub-hostile-"));
  return { base, cacheDir: join(base, "a", "b", "c", "d", "cache") };
}

async function load(options: CachedHubOptions): Promise<string | null> {
  try {
    const { model } = await loadOlmo(cachedHubSource(options), createJsBackend());
    model.dispose();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function expectError(message: string | null, ...parts: string[]): void {
  if (message === null) throw new Error(`expected an error mentioning ${parts.join(", ")}; it loaded`);
  for (const part of parts) if (!message.includes(part)) throw new Error(`"${part}" missing from the error: ${message}`);
}

/**
 * The cache holds nothing under a real name that is not what its name says: each blob hashes to its
 * name (sha256, or git's blob sha1), each snapshot entry leads to a blob. `.incomplete` files may stay.
 */
function checkCacheHonest(cacheDir: string): void {
  if (!existsSync(cacheDir)) return;
  for (const path of treeOf(cacheDir)) {
    const full = join(cacheDir, path);
    const blob = /\/blobs\/([0-9a-f]+)$/.exec(path);
    if (blob) {
      const bytes = readFileSync(full);
      const name = blob[1]!;
      const hash = name.length === 64 ? sha256(bytes) : createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
      if (hash !== name) throw new Error(`${path} holds bytes that hash to ${hash}`);
    } else if (/\/snapshots\/[0-9a-f]{40}\/.+/.test(path) && !existsSync(full)) throw new Error(`${path} leads nowhere`);
    else if (!/(\/blobs\/[0-9a-f]+\.incomplete|\/(blobs|snapshots|refs)(\/.*)?|^models--[^/]+)$/.test(path)) throw new Error(`unexpected file in the cache: ${path}`);
  }
}

function shardInSnapshot(cacheDir: string, repo = "models--acme--tiny-olmo"): Buffer | null {
  const path = join(cacheDir, repo, "snapshots", COMMIT, SHARD);
  return existsSync(path) ? readFileSync(path) : null;
}

const isShardGet = (r: { kind: string; method: string; body: Uint8Array }) => r.kind === "cdn" && r.method === "GET" && r.body === shard;

test.after.each(() => {
  hub.intercept = null;
  for (const res of hanging.splice(0)) res.destroy();
  for (const t of timers.splice(0)) clearInterval(t);
});

test("names that climb out of the cache are refused, and nothing is created anywhere", async () => {
  const { base, cacheDir } = sandbox();
  for (const [options, wanted] of [
    [{ repo: "../evil" }, 'repo "../evil" is not a valid Hugging Face repo id'],
    [{ repo: "acme/tiny-olmo", revision: "../../../../x" }, 'revision "../../../../x" is not a valid'],
    [{ repo: "acme/tiny-olmo", revision: "/etc" }, 'revision "/etc" is not a valid'],
    [{ repo: "acme--x/y" }, '"--" and ".." are not allowed'],
  ] as const) {
    let message = "";
    try {
      cachedHubSource({ ...options, endpoint, cacheDir });
    } catch (e) {
      message = (e as Error).message;
    }
    expectError(message, wanted);
  }
  for (const file of ["../x", "/etc/passwd", "a\\..\\b", "a//b"]) {
    let message = "";
    try {
      await cachedHubSource({ repo: "acme/tiny-olmo", endpoint, cacheDir }).open(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expectError(message, `file name "${file}" is not a valid path inside a repo`);
  }
  if (treeOf(base).length) throw new Error(`created: ${treeOf(base).join(", ")}`);

  // A shard name from model.safetensors.index.json, on disk and straight from the server.
  log.length = 0;
  // The loader refuses it while reading the index, before the cache is asked for the file (the cache's
  // own check, above, guards every other caller).
  expectError(await load({ repo: "acme/escape", endpoint, cacheDir, ...fast }), `must be the file name of a shard in the folder (no "/", "\\" or ".."), got "${ESCAPING_SHARD}"`);
  let remote = "";
  try {
    await loadOlmo(hubSource({ repo: "acme/escape", endpoint }), createJsBackend());
  } catch (e) {
    remote = (e as Error).message;
  }
  expectError(remote, `got "${ESCAPING_SHARD}"`);
  if (log.some((l) => l.includes("escaped-shard"))) throw new Error(`the escaping shard was requested:\n${log.join("\n")}`);
  const outside = treeOf(base).filter((p) => !"a/b/c/d/cache".startsWith(p) && !p.startsWith("a/b/c/d/cache/"));
  if (outside.length || treeOf(base).some((p) => p.includes("escaped-shard"))) throw new Error(`written outside the cache: ${outside.join(", ")}`);
  checkCacheHonest(cacheDir);

  // An ETag that would name a blob outside blobs/.
  hub.intercept = (r, res) => {
    if (r.kind !== "resolve" || r.file !== "config.json") return false;
    res.writeHead(200, { "x-repo-commit": COMMIT, etag: '"../../../../etag-escape"', "content-length": String(r.body.length) }).end(r.method === "HEAD" ? undefined : r.body);
    return true;
  };
  const other = sandbox();
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir: other.cacheDir, ...fast }), "cannot name a blob", `${endpoint}/acme/tiny-olmo/resolve/main/config.json`);
  if (treeOf(other.base).length) throw new Error(`created: ${treeOf(other.base).join(", ")}`);
  rmSync(base, { recursive: true });
  rmSync(other.base, { recursive: true });
});

test("a connection dropped mid-file is resumed with Range and If-Range, and the bytes are exact", async () => {
  const { base, cacheDir } = sandbox();
  let drops = 0;
  hub.intercept = (r, res) => {
    if (!isShardGet(r) || drops++ > 0) return false;
    res.writeHead(200, { "content-length": String(r.body.length), etag: `"cdn-${sha256(r.body).slice(0, 16)}"` });
    res.write(r.body.subarray(0, 1000), () => setTimeout(() => res.destroy(), 20));
    return true;
  };
  log.length = 0;
  const error = await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast });
  if (error) throw new Error(error);
  const resume = log.find((l) => l.startsWith(`GET /cdn/${sha256(shard)} bytes=`));
  if (!resume || !/bytes=[1-9]\d*- "cdn-/.test(resume)) throw new Error(`no resume with If-Range:\n${log.join("\n")}`);
  if (Buffer.compare(shardInSnapshot(cacheDir)!, shard) !== 0) throw new Error("the resumed shard differs from the server's");
  checkCacheHonest(cacheDir);
  rmSync(base, { recursive: true });
});

test("a file that changes between tries is started over, never stitched; the next load gets the new file whole", async () => {
  const { base, cacheDir } = sandbox();
  const before = changing.get(SHARD)!;
  const after = before.slice();
  for (let i = after.length - 64; i < after.length; i++) after[i] ^= 0xff; // other weights, same size
  let tries = 0;
  const unguarded: string[] = [];
  hub.intercept = (r, res) => {
    if (r.kind !== "cdn" || r.method !== "GET" || r.body !== before) return false;
    if (tries++ === 0) {
      // The first try gets the old file's start, then the connection drops...
      res.writeHead(200, { "content-length": String(before.length), etag: '"old"' });
      res.write(before.subarray(0, 1000), () => setTimeout(() => res.destroy(), 20));
      return true;
    }
    // ...and from then on the CDN holds the new file: an If-Range for the old one gets all of the new.
    if (r.range && r.ifRange !== '"old"') {
      // Without If-Range a server hands out the rest of the new file: a stitched file, as old servers did.
      unguarded.push(`${r.range} ${r.ifRange}`);
      const start = Number(/bytes=(\d+)-/.exec(r.range)![1]);
      res.writeHead(206, { "content-length": String(after.length - start), "content-range": `bytes ${start}-${after.length - 1}/${after.length}`, etag: '"new"' }).end(after.subarray(start));
      return true;
    }
    res.writeHead(200, { "content-length": String(after.length), etag: '"new"' }).end(after);
    return true;
  };
  const error = await load({ repo: "acme/changing", endpoint, cacheDir, ...fast });
  if (unguarded.length) throw new Error(`resumed without If-Range: ${unguarded.join(", ")}`);
  expectError(error, `${endpoint}/cdn/${sha256(before)}`, "does not match what the Hub announced", `sha256 is ${sha256(after)}`);
  if (shardInSnapshot(cacheDir, "models--acme--changing")) throw new Error("a shard was linked into the snapshot");
  checkCacheHonest(cacheDir);
  // The repo now announces the new file: no cleaning by hand, the next load downloads it whole.
  hub.intercept = null;
  changing.set(SHARD, after);
  const again = await load({ repo: "acme/changing", endpoint, cacheDir, ...fast });
  if (again) throw new Error(again);
  if (Buffer.compare(shardInSnapshot(cacheDir, "models--acme--changing")!, after) !== 0) throw new Error("the new shard is not exact");
  checkCacheHonest(cacheDir);
  changing.set(SHARD, before);
  rmSync(base, { recursive: true });
});

/** A cache where an earlier run got the first 100 bytes of the shard. */
function withPartialShard(cacheDir: string): void {
  const blobs = join(cacheDir, "models--acme--tiny-olmo", "blobs");
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(blobs, `${sha256(shard)}.incomplete`), shard.subarray(0, 100));
}

test("a 206 carrying the whole file is taken as the whole file; one that lies about its range is refused", async () => {
  const { base, cacheDir } = sandbox();
  withPartialShard(cacheDir);
  hub.intercept = (r, res) => {
    if (!isShardGet(r) || !r.range) return false;
    res.writeHead(206, { "content-length": String(r.body.length), "content-range": `bytes 0-${r.body.length - 1}/${r.body.length}` }).end(r.body);
    return true;
  };
  const error = await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast });
  if (error) throw new Error(error);
  if (Buffer.compare(shardInSnapshot(cacheDir)!, shard) !== 0) throw new Error("the shard is not exact");
  checkCacheHonest(cacheDir);

  const lying = sandbox();
  withPartialShard(lying.cacheDir);
  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    // Claims to start where we asked, but sends the file from its first byte.
    res.writeHead(206, { "content-length": String(r.body.length), "content-range": `bytes 100-${r.body.length - 1}/${r.body.length}` }).end(r.body);
    return true;
  };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir: lying.cacheDir, ...fast }), `GET ${endpoint}/cdn/${sha256(shard)}`, "Content-Length");
  if (shardInSnapshot(lying.cacheDir)) throw new Error("the lying answer was cached");
  checkCacheHonest(lying.cacheDir);
  rmSync(base, { recursive: true });
  rmSync(lying.base, { recursive: true });
});

test("a 416 to a resume drops the partial file and starts over", async () => {
  const { base, cacheDir } = sandbox();
  withPartialShard(cacheDir);
  hub.intercept = (r, res) => {
    if (!isShardGet(r) || !r.range) return false;
    res.writeHead(416, { "content-range": `bytes */${r.body.length}` }).end();
    return true;
  };
  log.length = 0;
  const error = await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast });
  if (error) throw new Error(error);
  const gets = log.filter((l) => l.startsWith(`GET /cdn/${sha256(shard)}`));
  if (gets.length !== 2 || !gets[0]!.includes("bytes=100-") || gets[1]!.includes("bytes=")) throw new Error(`expected a resume, then a full GET:\n${gets.join("\n")}`);
  if (Buffer.compare(shardInSnapshot(cacheDir)!, shard) !== 0) throw new Error("the shard is not exact");
  checkCacheHonest(cacheDir);
  rmSync(base, { recursive: true });
});

test("a short Content-Length, an HTML page with 200, and a wrong Content-Range to a ranged read are errors, never cached", async () => {
  const { base, cacheDir } = sandbox();
  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    res.writeHead(200, { "content-length": String(r.body.length - 100) }).end(r.body.subarray(0, r.body.length - 100));
    return true;
  };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast }), `GET ${endpoint}/cdn/${sha256(shard)}`, `Content-Length ${shard.length - 100}`, `${shard.length} bytes`);
  if (shardInSnapshot(cacheDir)) throw new Error("the short file was cached");
  checkCacheHonest(cacheDir);

  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<html><body>503 Service Unavailable</body></html>");
    return true;
  };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast }), `GET ${endpoint}/cdn/${sha256(shard)}`, "web page (text/html)");
  if (shardInSnapshot(cacheDir)) throw new Error("the error page was cached");
  checkCacheHonest(cacheDir);

  // Reading straight from the server (no cache): a 206 for another range than the one asked for.
  hub.intercept = (r, res) => {
    if (!isShardGet(r) || !r.range) return false;
    res.writeHead(206, { "content-range": `bytes 0-9/${r.body.length}`, "content-length": "10" }).end(r.body.subarray(0, 10));
    return true;
  };
  let remote = "";
  try {
    await loadOlmo(hubSource({ repo: "acme/tiny-olmo", endpoint }), createJsBackend());
  } catch (e) {
    remote = (e as Error).message;
  }
  expectError(remote, `${endpoint}/acme/tiny-olmo/resolve/main/${SHARD}`, "answered 206 with Content-Range");
  rmSync(base, { recursive: true });
});

test("a server that never answers, or stalls mid-file, fails within its timeout with a clear error", async () => {
  const { base, cacheDir } = sandbox();
  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    hanging.push(res); // no headers, ever
    return true;
  };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast, connectTimeoutMs: 200 }), `GET ${endpoint}/cdn/${sha256(shard)} failed: no answer within 200 ms`, "after 2 tries");
  checkCacheHonest(cacheDir);

  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    res.writeHead(200, { "content-length": String(r.body.length) });
    res.write(r.body.subarray(0, 100)); // and then nothing
    hanging.push(res);
    return true;
  };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast, idleTimeoutMs: 200 }), `GET ${endpoint}/cdn/${sha256(shard)} stopped after 100 of ${shard.length} bytes: no data for 200 ms`);
  if (shardInSnapshot(cacheDir)) throw new Error("a stalled download was cached");
  checkCacheHonest(cacheDir);
  rmSync(base, { recursive: true });
});

test("a trickling server is stopped by the low-speed limit, or by the total timeout", async () => {
  const { base, cacheDir } = sandbox();
  hub.intercept = (r, res) => {
    if (!isShardGet(r)) return false;
    res.writeHead(200, { "content-length": String(r.body.length) });
    let sent = 0;
    timers.push(setInterval(() => void (sent < r.body.length && res.write(r.body.subarray(sent, ++sent))), 10)); // ~100 bytes/s
    hanging.push(res);
    return true;
  };
  const slow = { bytesPerSecond: 1000, windowMs: 300 };
  expectError(await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast, idleTimeoutMs: 200, lowSpeedLimit: slow }), `GET ${endpoint}/cdn/${sha256(shard)} stopped after`, "slower than 1000 bytes/s over 300 ms");
  expectError(
    await load({ repo: "acme/tiny-olmo", endpoint, cacheDir, ...fast, idleTimeoutMs: 200, lowSpeedLimit: { bytesPerSecond: 1, windowMs: 60_000 }, totalTimeoutMs: 400 }),
    `GET ${endpoint}/cdn/${sha256(shard)}`,
    "not done within 400 ms",
  );
  if (shardInSnapshot(cacheDir)) throw new Error("a trickled download was cached");
  checkCacheHonest(cacheDir);
  if (!readdirSync(join(cacheDir, "models--acme--tiny-olmo", "blobs")).some((f) => f.endsWith(".incomplete"))) throw new Error("the bytes received were not kept to resume");
  rmSync(base, { recursive: true });
});

test.after(() => hub.close());
test.run();
