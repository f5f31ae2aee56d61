// scripts/serve.mjs, the static server of `npm run demo` and the browser tests, run as a user runs it
// (`node scripts/serve.mjs PORT [ROOT]`, here on port 0: any free port, read back from the URL it
// prints): folder URLs, paths that try to leave the root, dotfiles, malformed URLs and ranges.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { repoRoot } from "./helpers.js";
// @ts-expect-error: a plain .mjs script without type declarations
import { startServer } from "../scripts/serve.mjs";

const SCRIPT = `${repoRoot}scripts/serve.mjs`;

/** Starts the script and resolves with the process and the origin it prints ("http://127.0.0.1:PORT"). */
function serve(...args: string[]): Promise<{ child: ChildProcess; origin: string }> {
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no URL printed within 20 s: ${out}`)), 20000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill();
      reject(e);
    };
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, origin: m[1]! });
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("exit", (code) => fail(new Error(`serve.mjs exited with ${code}: ${out}`)));
  });
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** One request with the path sent exactly as written (fetch would normalise `..` and such). */
function get(origin: string, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}/`, { path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

function expectStatus(a: Answer, status: number, what: string): void {
  if (a.status !== status) throw new Error(`${what}: status ${a.status} (expected ${status}): ${a.body.toString().slice(0, 200)}`);
  // Every answer keeps the page cross-origin isolated (threads need SharedArrayBuffer).
  if (a.headers["cross-origin-opener-policy"] !== "same-origin" || a.headers["cross-origin-embedder-policy"] !== "require-corp") {
    throw new Error(`${what}: COOP / COEP headers missing: ${JSON.stringify(a.headers)}`);
  }
}

// A folder to serve, and beside it what must stay out of reach: a sibling whose name starts with the
// root's (the root is given without a trailing slash) and a file; symbolic links inside the root point at both.
const tmp = mkdtempSync(join(tmpdir(), "olmo-serve-"));
const root = join(tmp, "site");
const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);
mkdirSync(join(root, "folder"), { recursive: true });
mkdirSync(join(root, "empty-folder"));
mkdirSync(join(root, ".git"));
mkdirSync(join(root, "node_modules", "pkg"), { recursive: true });
mkdirSync(join(tmp, "site-secret"));
writeFileSync(join(root, "index.html"), "home page");
writeFileSync(join(root, "folder", "index.html"), "folder page");
writeFileSync(join(root, "data.bin"), bytes);
writeFileSync(join(root, ".env"), "DOTFILE");
writeFileSync(join(root, ".git", "HEAD"), "DOTFILE");
writeFileSync(join(root, "node_modules", "pkg", "index.js"), "MODULE");
writeFileSync(join(tmp, "site-secret", "secret.txt"), "SECRET");
writeFileSync(join(tmp, "outside.txt"), "SECRET");
symlinkSync("../site-secret", join(root, "link-out"));
symlinkSync(join(tmp, "outside.txt"), join(root, "file-out"));
symlinkSync(".git", join(root, "link-to-dot"));
symlinkSync("folder", join(root, "link-in"));

let site: { child: ChildProcess; origin: string };
test.before(async () => {
  site = await serve("0", root);
});
test.after(() => {
  site?.child.kill();
  rmSync(tmp, { recursive: true, force: true });
});

test("a folder URL serves its index.html; without the slash it redirects to it", async () => {
  const home = await get(site.origin, "/");
  expectStatus(home, 200, "/");
  if (home.body.toString() !== "home page" || !String(home.headers["content-type"]).startsWith("text/html")) throw new Error(`/: ${home.body}`);
  const folder = await get(site.origin, "/folder/");
  expectStatus(folder, 200, "/folder/");
  if (folder.body.toString() !== "folder page") throw new Error(`/folder/: ${folder.body}`);
  const bare = await get(site.origin, "/folder?x=1");
  if (bare.status !== 301 || bare.headers.location !== "/folder/?x=1") throw new Error(`/folder: ${bare.status} ${bare.headers.location}`);
  // "//folder" would be a redirect to the host "folder" if the Location echoed the raw path.
  const doubled = await get(site.origin, "//folder");
  if (doubled.status !== 301 || doubled.headers.location !== "/folder/") throw new Error(`//folder: ${doubled.status} ${doubled.headers.location}`);
  expectStatus(await get(site.origin, "/empty-folder/"), 404, "a folder without index.html");
  expectStatus(await get(site.origin, "/missing.txt"), 404, "a missing file");
  const inside = await get(site.origin, "/link-in/");
  if (inside.status !== 200 || inside.body.toString() !== "folder page") throw new Error(`a link inside the root: ${inside.status}`);
});

test("paths that leave the root are refused: .., encoded .., links out, a sibling sharing the root's name", async () => {
  for (const path of [
    "/../outside.txt", "/..%2foutside.txt", "/%2e%2e/outside.txt", "/%2E%2E%2Foutside.txt", "/folder/..%2f..%2foutside.txt",
    "/folder/%2e%2e/%2e%2e/site-secret/secret.txt", "/..%2fsite-secret/secret.txt", "/link-out/secret.txt", "/link-out/", "/file-out",
  ]) {
    const a = await get(site.origin, path);
    expectStatus(a, 403, path);
    if (a.body.includes("SECRET")) throw new Error(`${path} leaked the file`);
  }
});

test("dotfiles, dot folders (also through a link) and node_modules/ are refused", async () => {
  for (const path of ["/.env", "/.git/HEAD", "/.git/", "/%2egit/HEAD", "/link-to-dot/HEAD", "/node_modules/pkg/index.js", "/folder/../node_modules/pkg/index.js"]) {
    const a = await get(site.origin, path);
    expectStatus(a, 403, path);
    if (a.body.includes("DOTFILE") || a.body.includes("MODULE")) throw new Error(`${path} leaked the file`);
  }
});

test("malformed URLs get 400, other methods 405, and the server goes on answering", async () => {
  for (const path of ["/%", "/%zz", "/data%.bin", "/a%00b"]) expectStatus(await get(site.origin, path), 400, path);
  const post = await get(site.origin, "/index.html", {}, "POST");
  if (post.status !== 405 || post.headers.allow !== "GET, HEAD") throw new Error(`POST: ${post.status} ${post.headers.allow}`);
  expectStatus(await get(site.origin, "/index.html"), 200, "after the bad requests");
});

test("ranges: a valid one gets 206 with the bytes and Content-Range; a reversed or past-the-end one 416", async () => {
  for (const [range, start, end] of [["bytes=10-19", 10, 19], ["bytes=90-", 90, 99], ["bytes=-5", 95, 99], ["bytes=95-500", 95, 99], ["bytes=0-0", 0, 0]] as const) {
    const a = await get(site.origin, "/data.bin", { range });
    expectStatus(a, 206, range);
    if (a.headers["content-range"] !== `bytes ${start}-${end}/100` || Number(a.headers["content-length"]) !== end - start + 1) {
      throw new Error(`${range}: ${a.headers["content-range"]}, length ${a.headers["content-length"]}`);
    }
    if (Buffer.compare(a.body, Buffer.from(bytes.subarray(start, end + 1))) !== 0) throw new Error(`${range}: wrong bytes [${[...a.body]}]`);
  }
  for (const range of ["bytes=5-2", "bytes=100-", "bytes=1000-2000", "bytes=-0", "bytes=x-y", "bytes=-"]) {
    const a = await get(site.origin, "/data.bin", { range });
    expectStatus(a, 416, range);
    if (a.headers["content-range"] !== "bytes */100") throw new Error(`${range}: content-range ${a.headers["content-range"]}`);
  }
  const whole = await get(site.origin, "/data.bin");
  expectStatus(whole, 200, "no range");
  if (whole.body.length !== 100 || whole.headers["accept-ranges"] !== "bytes") throw new Error(`whole file: ${whole.body.length} bytes`);
});

test("npm run demo's server: the README's URL /dist/demo/ is the demo page; .git and node_modules are not served", async () => {
  const repo = await serve("0");
  try {
    const demo = await get(repo.origin, "/dist/demo/");
    expectStatus(demo, 200, "/dist/demo/ (built by npm run build)");
    if (!demo.body.toString().includes('src="./main.js"')) throw new Error(`not the demo page: ${demo.body.toString().slice(0, 200)}`);
    for (const path of ["/.git/HEAD", "/.git", "/node_modules/uvu/package.json"]) expectStatus(await get(repo.origin, path), 403, path);
  } finally {
    repo.child.kill();
  }
});

test("a folder mounted under a URL prefix (the benchmarks' /model/) is served with the same checks", async () => {
  const server = (await startServer(0, root, null, { "/model/": join(tmp, "site-secret") })) as import("node:http").Server;
  const origin = `http://127.0.0.1:${(server.address() as import("node:net").AddressInfo).port}`;
  try {
    const mounted = await get(origin, "/model/secret.txt", { range: "bytes=1-3" });
    expectStatus(mounted, 206, "/model/secret.txt");
    if (mounted.body.toString() !== "ECR") throw new Error(`mounted range: ${mounted.body.toString()}`);
    expectStatus(await get(origin, "/data.bin"), 200, "the root beside the mount");
    for (const path of ["/model/../outside.txt", "/model/%2e%2e/outside.txt", "/model/..%2foutside.txt"]) {
      const a = await get(origin, path);
      if (a.status < 400 || a.body.toString().includes("SECRET")) throw new Error(`${path}: ${a.status} ${a.body.toString().slice(0, 80)}`);
    }
  } finally {
    server.close();
  }
});

test("a bad port is a clear error", () => {
  const r = spawnSync(process.execPath, [SCRIPT, "eighty"], { encoding: "utf8" });
  if (r.status !== 2 || !r.stderr.includes("the port must be an integer")) throw new Error(`status ${r.status}: ${r.stderr}`);
});

test.run();
