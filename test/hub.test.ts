// Hub-style loading against a local server with the Hub's layout and headers (test/hub-server.ts):
// range-reading straight from the server, the Node disk cache in huggingface_hub's layout (downloads
// once, resumes, serves from disk), a cache laid out as Python lays it out loading with no server at
// all, a missing shard, and `olmo generate --model owner/name --revision REV`.
// Hostile servers and names are in hub-hostile.test.ts.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { createJsBackend, hubSource, loadOlmo, noGrad, scope, tensor } from "../src/index.js";
import { cachedHubSource, defaultHubCacheDir, folderSource } from "../src/node/index.js";
import { assertClose, readJson, repoRoot } from "./helpers.js";
import { folderFiles, gitBlobSha1, sha256, startHubServer, treeOf } from "./hub-server.js";

const FIXTURE = `${repoRoot}test/fixtures/olmo/gqa-sharded`;
const expected = readJson<{ prompt: number[]; models: Record<string, { logits: number[]; greedy: number[] }> }>("test/fixtures/olmo/expected.json");
const SHARD = "model-00003-of-00005.safetensors";
const COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

const files = folderFiles(FIXTURE);
const broken = new Map(files);
broken.delete(SHARD);
const hub = await startHubServer({
  "acme/tiny-olmo": { files, revisions: { step7: COMMIT, main: COMMIT } },
  "acme/broken": { files: broken, revisions: { step7: COMMIT } },
});
const { endpoint, log } = hub;

async function logits(source: Parameters<typeof loadOlmo>[0]): Promise<Float32Array> {
  const backend = createJsBackend();
  const { model } = await loadOlmo(source, backend);
  const out = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(expected.prompt), [1, expected.prompt.length], { backend }))));
  const data = (await out.data()) as Float32Array;
  model.dispose();
  return data;
}
const folderLogits = await logits(folderSource(FIXTURE));

test("a sharded model loads straight from the server with Range reads", async () => {
  log.length = 0;
  const got = await logits(hubSource({ repo: "acme/tiny-olmo", revision: "step7", endpoint }));
  assertClose(got, folderLogits, { atol: 0, rtol: 0 }, "logits via the hub");
  if (!log.some((l) => l.startsWith("GET") && l.includes("/cdn/") && l.includes("bytes="))) throw new Error(`no ranged reads: ${log.join("\n")}`);
});

test("the cache root follows huggingface_hub: OLMO_JS_CACHE, then HF_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME/huggingface/hub", () => {
  const cases: [Record<string, string>, string][] = [
    [{ OLMO_JS_CACHE: "/a", HF_HUB_CACHE: "/b", HF_HOME: "/c" }, "/a"],
    [{ HF_HUB_CACHE: "/b", HF_HOME: "/c" }, "/b"],
    [{ HUGGINGFACE_HUB_CACHE: "/old" }, "/old"],
    [{ HF_HOME: "/c", XDG_CACHE_HOME: "/x" }, "/c/hub"],
    [{ XDG_CACHE_HOME: "/x" }, "/x/huggingface/hub"],
  ];
  for (const [env, want] of cases) if (defaultHubCacheDir(env) !== want) throw new Error(`${JSON.stringify(env)}: ${defaultHubCacheDir(env)}, expected ${want}`);
  if (!defaultHubCacheDir({}).endsWith("/.cache/huggingface/hub")) throw new Error(defaultHubCacheDir({}));
});

test("the Node cache downloads in huggingface_hub's layout, resumes a partial blob, and then serves from disk", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "olmo-hub-"));
  const repoDir = join(cacheDir, "models--acme--tiny-olmo");
  const shard = files.get(SHARD)!;
  // An interrupted earlier download (by us or by Python): the first 100 bytes of one shard's blob.
  mkdirSync(join(repoDir, "blobs"), { recursive: true });
  writeFileSync(join(repoDir, "blobs", `${sha256(shard)}.incomplete`), shard.subarray(0, 100));
  log.length = 0;
  const progress: string[] = [];
  const source = () => cachedHubSource({ repo: "acme/tiny-olmo", revision: "step7", endpoint, cacheDir, onProgress: (file) => progress.push(file) });
  assertClose(await logits(source()), folderLogits, { atol: 0, rtol: 0 }, "downloaded logits");
  // Resumed where it stopped, and only if the CDN's copy is still the one whose start we have.
  if (!log.some((l) => l.startsWith(`GET /cdn/${sha256(shard)} bytes=100- "cdn-`))) throw new Error(`the partial shard was not resumed with If-Range:\n${log.join("\n")}`);
  // Every file after the first is asked for at the commit the first answer named, never at the branch.
  if (log.filter((l) => l.startsWith("HEAD") && l.includes("/resolve/step7/")).length !== 1) throw new Error(`the revision was resolved more than once:\n${log.join("\n")}`);

  // The layout huggingface_hub reads: refs/{revision}, blobs/{etag}, snapshots/{commit}/{file} -> ../../blobs/{etag}.
  if (readFileSync(join(repoDir, "refs", "step7"), "utf8") !== COMMIT) throw new Error("refs/step7 does not hold the commit");
  for (const [name, body] of files) {
    if (name === "generation_config.json") continue; // the loader never asks for it
    const link = join(repoDir, "snapshots", COMMIT, name);
    const etag = name.endsWith(".safetensors") ? sha256(body) : gitBlobSha1(body);
    if (!lstatSync(link).isSymbolicLink() || readlinkSync(link) !== `../../blobs/${etag}`) throw new Error(`${name}: not a link to ../../blobs/${etag}`);
    if (Buffer.compare(readFileSync(link), body) !== 0) throw new Error(`${name}: cached bytes differ`);
  }
  if (treeOf(repoDir).some((p) => p.endsWith(".incomplete")) || !progress.includes(SHARD)) throw new Error("partial files left, or no progress reported");

  log.length = 0;
  assertClose(await logits(source()), folderLogits, { atol: 0, rtol: 0 }, "cached logits");
  // A branch costs one HEAD (has it moved?), a file the repo lacks (tokenizer.json) one more; nothing is downloaded again.
  if (log.some((l) => l.startsWith("GET")) || log.length !== 2) throw new Error(`the second load was not served from disk:\n${log.join("\n")}`);
  log.length = 0;
  assertClose(await logits(cachedHubSource({ repo: "acme/tiny-olmo", revision: COMMIT, endpoint, cacheDir })), folderLogits, { atol: 0, rtol: 0 }, "by commit");
  // At a commit hash, the cached files need no request at all; only the absent tokenizer.json is asked about.
  if (log.length !== 1 || !log[0]!.startsWith("HEAD") || !log[0]!.endsWith("/tokenizer.json")) throw new Error(`a commit hash in the cache needs no request:\n${log.join("\n")}`);
  rmSync(cacheDir, { recursive: true });
});

test("a cache laid out by Python's huggingface_hub loads with no server running", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "olmo-hub-py-"));
  // As hf_hub_download leaves it: blobs named by ETag, relative links from snapshots/, refs/main.
  const repoDir = join(cacheDir, "models--acme--tiny-olmo");
  mkdirSync(join(repoDir, "blobs"), { recursive: true });
  mkdirSync(join(repoDir, "snapshots", COMMIT), { recursive: true });
  mkdirSync(join(repoDir, "refs"), { recursive: true });
  for (const [name, body] of files) {
    const etag = name.endsWith(".safetensors") ? sha256(body) : gitBlobSha1(body);
    writeFileSync(join(repoDir, "blobs", etag), body);
    symlinkSync(`../../blobs/${etag}`, join(repoDir, "snapshots", COMMIT, name));
  }
  writeFileSync(join(repoDir, "refs", "main"), COMMIT);
  // An endpoint where nothing listens: a closed server's port.
  const dead = await startHubServer({});
  await dead.close();
  const before = treeOf(cacheDir).join("\n");
  const source = cachedHubSource({ repo: "acme/tiny-olmo", endpoint: dead.endpoint, cacheDir, retries: 0 });
  assertClose(await logits(source), folderLogits, { atol: 0, rtol: 0 }, "offline logits");
  if (!source.name.includes("offline")) throw new Error(`the source does not say it is offline: ${source.name}`);
  if (treeOf(cacheDir).join("\n") !== before) throw new Error("the offline load changed the cache");
  // And a repo the cache never saw: the error names the URL, says offline, and where it looked.
  let message = "";
  try {
    await cachedHubSource({ repo: "acme/never-seen", endpoint: dead.endpoint, cacheDir, retries: 0 }).open("config.json");
  } catch (e) {
    message = (e as Error).message;
  }
  for (const part of [`${dead.endpoint}/acme/never-seen/resolve/main/config.json`, "ECONNREFUSED", "offline", "no copy of acme/never-seen@main"]) {
    if (!message.includes(part)) throw new Error(`"${part}" missing from: ${message}`);
  }
  if (existsSync(join(cacheDir, "models--acme--never-seen"))) throw new Error("a folder was created for a repo that was never downloaded");
  rmSync(cacheDir, { recursive: true });
});

test("a shard missing on the server is reported by name; a bad repo id before any request", async () => {
  let message = "";
  try {
    await loadOlmo(hubSource({ repo: "acme/broken", revision: "step7", endpoint }), createJsBackend());
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes(`${SHARD}: shard named in model.safetensors.index.json is missing`)) throw new Error(message);
  // Said once: not again for each tensor the shard should hold.
  if (/in the index but not in the shard|missing tensor/.test(message)) throw new Error(`the missing shard's tensors are listed too: ${message}`);
  let bad = "";
  try {
    hubSource({ repo: "not a repo", endpoint });
  } catch (e) {
    bad = (e as Error).message;
  }
  if (!bad.includes('repo "not a repo" is not a valid Hugging Face repo id')) throw new Error(bad);
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
  if (!existsSync(join(cacheDir, "models--acme--tiny-olmo", "snapshots", COMMIT, "config.json"))) throw new Error("nothing cached");
  rmSync(cacheDir, { recursive: true });
});

test.after(() => hub.close());
test.run();
