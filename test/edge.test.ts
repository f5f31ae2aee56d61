// Edge runtimes for real: the Cloudflare Worker example (examples/cloudflare-worker) in workerd,
// Cloudflare's open-source Workers runtime, and the edge function example (examples/edge-function) in
// Vercel's edge-runtime sandbox, each built and started with the commands of its README on a free port
// of 127.0.0.1. In each, a POST /generate must stream the greedy ids Node computes for the same prompt
// (with the same kernels), bad requests must get a 400 with a JSON error naming the field, and with a
// memory limit too small for the model the first request must get a 503 whose error has the numbers.
// Both runtimes are devDependencies, so nothing here is skipped.
//
// Before them, in this process: the backend on precompiled kernels (createWasmBackend's `modules`)
// with run-time compilation, SharedArrayBuffer and Atomics taken away; the handler's other answers.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { setFlagsFromString } from "node:v8";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bytesSource, createGenerateHandler, createWasmBackend, generate, loadOlmo, OlmoGenerator, type WasmBackend } from "../src/index.js";
import { createNodeWasmBackend, folderSource } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
const PROMPT = "ROMEO:";
const NEW_TOKENS = 48;
// Too small for the model in both examples: the budget they leave the WASM backend (the limit less
// the JavaScript allowance, and in the Worker the model files too) is below its 19 MiB.
const TINY_LIMIT_MB = "64";
const MiB = 2 ** 20;
const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

// Node 20 compiles the relaxed-SIMD kernels only with this flag (createNodeWasmBackend sets it too);
// the tests below compile them themselves.
setFlagsFromString("--experimental-wasm-relaxed-simd");

/** Node's greedy ids for PROMPT on a 1-thread WASM backend with the given kernels, bf16 weights as the examples load them. */
async function nodeIds(kernels: string, maxNewTokens = NEW_TOKENS): Promise<number[]> {
  if (kernels !== "simd" && kernels !== "relaxed-simd") throw new Error(`unknown kernels "${kernels}"`);
  const backend = await createNodeWasmBackend({ threads: 1, relaxedSimd: kernels === "relaxed-simd" });
  try {
    const { model, tokenizer } = await loadOlmo(folderSource(MODEL), backend, { weightDType: "bf16" });
    const { newIds } = await generate(model, tokenizer!.encode(PROMPT), { maxNewTokens });
    model.dispose();
    return newIds;
  } finally {
    backend.dispose();
  }
}

test("precompiled kernels: the backend compiles nothing and touches no SharedArrayBuffer or Atomics; ids equal Node's", async () => {
  const modules = {
    simd: new WebAssembly.Module(readFileSync(`${repoRoot}dist/olmo-simd.wasm`)),
    relaxedSimd: new WebAssembly.Module(readFileSync(`${repoRoot}dist/olmo-relaxed-simd.wasm`)),
  };
  const files = Object.fromEntries(["config.json", "tokenizer.json", "model.safetensors"].map((f) => [f, readFileSync(`${MODEL}/${f}`)]));
  const host = globalThis as Record<string, unknown>;
  const saved = { compile: WebAssembly.compile, SharedArrayBuffer: host.SharedArrayBuffer, Atomics: host.Atomics };
  const refuse = () => Promise.reject(new Error("this test forbids compiling WebAssembly"));
  let backend: WasmBackend | null = null;
  let ids: number[], relaxed: boolean;
  try {
    (WebAssembly as { compile: unknown }).compile = refuse;
    delete host.SharedArrayBuffer;
    delete host.Atomics;
    backend = await createWasmBackend({ modules });
    relaxed = backend.relaxedSimd;
    if (backend.threads !== 1 || backend.features.threads) throw new Error(`threads ${backend.threads}, shared memory probed ${backend.features.threads}`);
    const { model, tokenizer } = await loadOlmo(bytesSource("in memory", files), backend, { weightDType: "bf16" });
    ids = (await generate(model, tokenizer!.encode(PROMPT), { maxNewTokens: NEW_TOKENS })).newIds;
    model.dispose();
  } finally {
    Object.assign(WebAssembly, { compile: saved.compile });
    Object.assign(host, { SharedArrayBuffer: saved.SharedArrayBuffer, Atomics: saved.Atomics });
    backend?.dispose();
  }
  const want = await nodeIds(relaxed ? "relaxed-simd" : "simd");
  if (ids.join() !== want.join()) throw new Error(`precompiled kernels generated [${ids}], Node [${want}]`);
});

test("precompiled kernels: one thread only, the simd build where relaxed SIMD is refused, and a wrong module named", async () => {
  const simd = new WebAssembly.Module(readFileSync(`${repoRoot}dist/olmo-simd.wasm`));
  const relaxedSimd = new WebAssembly.Module(readFileSync(`${repoRoot}dist/olmo-relaxed-simd.wasm`));
  const expectError = async (options: Parameters<typeof createWasmBackend>[0], fragment: string) => {
    const error = await createWasmBackend(options).then((b) => (b.dispose(), null), (e: Error) => e);
    if (!error?.message.includes(fragment)) throw new Error(`expected an error with "${fragment}", got ${error?.message ?? "a backend"}`);
  };
  await expectError({ modules: { simd }, threads: 2, spawnWorker: () => { throw new Error("no worker wanted"); } }, "run on 1 thread");
  await expectError({ modules: { relaxedSimd }, relaxedSimd: false }, "pass modules.simd too");
  await expectError({ modules: { simd: new WebAssembly.Module(readFileSync(`${repoRoot}build/wasm/exp.wasm`)) } }, "is not olmo-js's kernels");
  const plain = await createWasmBackend({ modules: { simd, relaxedSimd }, relaxedSimd: false });
  plain.dispose();
  if (plain.relaxedSimd) throw new Error("relaxedSimd: false should take modules.simd");
});

test("createGenerateHandler: 404, 405 and 413 with JSON errors; a failed load is a 503 and the next request loads again", async () => {
  let loads = 0;
  const handler = createGenerateHandler({
    maxWaiting: 0, // a failed load that kept its place in line would turn the next request away (429)
    load: async () => {
      if (++loads === 1) throw new Error("the first load fails");
      const backend = await createWasmBackend({ threads: 1 });
      const { model, tokenizer } = await loadOlmo(folderSource(MODEL), backend, { weightDType: "bf16" });
      return new OlmoGenerator(model, tokenizer!, backend, true);
    },
  });
  const ask = async (path: string, method: string, body?: string, headers: Record<string, string> = {}) => {
    const response = await handler(new Request(`http://localhost${path}`, { method, body, headers }));
    return { status: response.status, body: (await response.text()) };
  };
  const expect = (got: { status: number; body: string }, status: number, says: string) => {
    if (got.status !== status || !(JSON.parse(got.body) as { error: string }).error.includes(says)) throw new Error(`expected ${status} saying "${says}", got ${got.status} ${got.body}`);
  };
  const body = JSON.stringify({ prompt: PROMPT, max_new_tokens: 2 });
  expect(await ask("/", "POST", body), 404, "POST a JSON body to /generate");
  expect(await ask("/generate", "GET"), 405, "takes POST");
  expect(await ask("/generate", "POST", JSON.stringify({ prompt: "x".repeat(70000) })), 413, "at most 65536");
  const huge = JSON.stringify({ prompt: "x".repeat(300000) });
  expect(await ask("/generate", "POST", huge, { "content-length": String(huge.length) }), 413, "bytes; at most 65536");
  // A streamed body with no content-length: read only up to the limit (a client sending gigabytes is cut off).
  let sent = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull: (c) => {
      if (sent >= 16 << 20) return c.close(); // 16 MiB in all, so a handler that reads it whole still ends
      sent += 65536;
      c.enqueue(new Uint8Array(65536).fill(120));
    },
  });
  const streamed = await handler(new Request("http://localhost/generate", { method: "POST", body: endless, duplex: "half" } as RequestInit));
  if (streamed.status !== 413 || !(await streamed.text()).includes("the body is over 262144 bytes") || sent > 8 * 65536) throw new Error(`streamed body: ${streamed.status}, ${sent} bytes pulled`);
  // A deep object where a string belongs: described in a few words, not stringified (which overflowed the stack).
  const deep = '{"prompt": ' + "{\"a\":".repeat(6000) + "1" + "}".repeat(6000) + "}";
  const described = await ask("/generate", "POST", deep);
  if (described.status !== 400 || JSON.parse(described.body).error !== '"prompt" must be a string, got an object') throw new Error(`${described.status} ${described.body.slice(0, 200)}`);
  // The path alone as the URL (some adapters pass it so).
  const relative = await handler({ method: "GET", url: "/generate", text: async () => "" });
  if (relative.status !== 405) throw new Error(`a relative URL: ${relative.status}`);
  expect(await ask("/generate", "POST", body), 503, "the model could not be loaded: the first load fails");
  const loaded = await ask("/generate", "POST", body);
  if (loaded.status !== 200 || !loaded.body.includes("event: done") || loads !== 2) throw new Error(`after a failed load: ${loaded.status} ${loaded.body} (loads: ${loads})`);
});

test("createGenerateHandler: past maxWaiting requests in line a request is answered 429 at once; refused and finished ones leave the line", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  const { model, tokenizer } = await loadOlmo(folderSource(MODEL), backend, { weightDType: "bf16" });
  const generator = new OlmoGenerator(model, tokenizer!, backend, true);
  try {
    const handler = createGenerateHandler({ load: async () => generator, maxWaiting: 1 });
    const post = (body: object) => handler(new Request("http://localhost/generate", { method: "POST", body: JSON.stringify(body) }));
    const ok = { prompt: PROMPT, max_new_tokens: 8 };
    // A prompt longer than the context is refused after the request got in line: it must leave it.
    const tooLong = await post({ prompt: "ROMEO: ".repeat(model.config.maxPositionEmbeddings), max_new_tokens: 1 });
    assert.is(tooLong.status, 400);
    // One generates, one waits, the third is turned away.
    const answers = await Promise.all([post(ok), post(ok), post(ok)]);
    assert.equal(answers.map((r) => r.status), [200, 200, 429]);
    const busy = JSON.parse(await answers[2]!.text()) as { error: string };
    assert.match(busy.error, /^busy: the model generates for one request at a time and 1 more already wait \(the most it takes\); try again later$/);
    for (const r of answers.slice(0, 2)) assert.match(await r.text(), /event: done/);
    // Both finished: the line is empty again, so two more get in.
    const again = await Promise.all([post(ok), post(ok)]);
    assert.equal(again.map((r) => r.status), [200, 200]);
    for (const r of again) assert.match(await r.text(), /event: done/);
    // A waiting client that goes gives up its place at once: a third gets in while the first still generates.
    const [first, second] = await Promise.all([post({ prompt: PROMPT, max_new_tokens: 96 }), post(ok)]);
    assert.equal([first.status, second.status], [200, 200]);
    let firstDoneAt = Infinity;
    const firstText = first.text().then((t) => ((firstDoneAt = performance.now()), t));
    await second.body!.cancel();
    const third = await post(ok);
    const thirdAt = performance.now();
    assert.is(third.status, 200);
    assert.match(await firstText, /event: done/);
    assert.ok(thirdAt < firstDoneAt, "the third request was let in while the first generated");
    assert.match(await third.text(), /event: done/);
    assert.throws(() => createGenerateHandler({ load: async () => generator, maxWaiting: -1 }), /maxWaiting must be a non-negative integer or Infinity, got -1/);
  } finally {
    model.dispose();
    backend.dispose();
  }
});

test("the examples' JavaScript allowance holds: Node loads the model and generates the whole context with its V8 heap capped there", () => {
  // JAVASCRIPT_BYTES of the Worker (the edge function adds the tensor being read to it). V8's young
  // generation takes three semi-spaces beside the old space: 1 MiB each here.
  const allowance = Number(/const JAVASCRIPT_BYTES = (\d+) \* MiB;/.exec(readFileSync(`${repoRoot}examples/cloudflare-worker/worker.ts`, "utf8"))?.[1]);
  if (!(allowance > 0)) throw new Error("examples/cloudflare-worker/worker.ts has no JAVASCRIPT_BYTES = N * MiB");
  const run = spawnSync(process.execPath, [`--max-old-space-size=${allowance - 3}`, "--max-semi-space-size=1", `${repoRoot}test/hosts/edge-heap.mjs`, MODEL, `${repoRoot}dist`], { encoding: "utf8", timeout: 60_000 });
  const result = run.status === 0 ? (JSON.parse(run.stdout.trim().split("\n").pop()!) as { status: number; tokens: number }) : null;
  if (result?.status !== 200 || result.tokens !== 252) throw new Error(`with a ${allowance} MiB heap: exit ${run.status}, ${run.stdout}${run.stderr.slice(-2000)}`);
});

// ---- the examples in their runtimes ----

interface Runtime {
  name: string;
  /** The example's build command (its README's). */
  build: string[];
  /** The command that serves the example on `port`. */
  serve: (port: number) => string[];
  /**
   * What the example holds against its memory limit, at most, after its requests (null where this
   * machine cannot say), and how that was measured.
   */
  memoryUsed: (server: Started, before: Resident | null) => { bytes: number; how: string } | null;
}

const RUNTIMES: Runtime[] = [
  {
    name: "Cloudflare Worker (workerd)",
    build: [process.execPath, `${repoRoot}examples/cloudflare-worker/build.mjs`],
    serve: (port) => [`${repoRoot}node_modules/.bin/workerd`, "serve", `${repoRoot}examples/cloudflare-worker/config.capnp`, "--socket-addr", `http=127.0.0.1:${port}`],
    // workerd has read the model files (data modules) before the first request; what the process grew
    // by from then to its peak bounds what loading and generating added (with the allocator's slack).
    memoryUsed: (server, before) => {
      const after = residentBytes(server.child.pid!);
      if (!before || !after) return null;
      const files = ["config.json", "tokenizer.json", "model.safetensors"].reduce((sum, f) => sum + statSync(`${MODEL}/${f}`).size, 0);
      return { bytes: files + after.peak - before.rss, how: `the model files ${mb(files)} + the process's growth to its peak ${mb(after.peak - before.rss)}` };
    },
  },
  {
    name: "Vercel edge function (edge-runtime)",
    build: [process.execPath, `${repoRoot}examples/edge-function/build.mjs`],
    serve: (port) => [process.execPath, `${repoRoot}examples/edge-function/serve.mjs`, "--port", String(port)],
    // serve.mjs prints its isolate's V8 heap and outside memory after each request (the sandbox shares it).
    memoryUsed: (server) => {
      const totals = [...server.output().matchAll(/^memory after POST .* = ([\d.]+) MiB$/gm)].map((m) => Number(m[1]) * MiB);
      return totals.length === 0 ? null : { bytes: Math.max(...totals), how: "the isolate's V8 heap + memory outside it, the most serve.mjs printed" };
    },
  },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Started {
  url: string;
  child: ChildProcess;
  output: () => string;
}

const children: ChildProcess[] = [];

/** Start `runtime` on a free port with `memoryLimitMb` ("" : its default), and wait until it answers HTTP. */
async function start(runtime: Runtime, memoryLimitMb = ""): Promise<Started> {
  const port = await freePort();
  const [command, ...args] = runtime.serve(port);
  const env: NodeJS.ProcessEnv = { ...process.env, OLMO_MEMORY_LIMIT_MB: memoryLimitMb };
  if (memoryLimitMb === "") delete env.OLMO_MEMORY_LIMIT_MB;
  const child = spawn(command!, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (output += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (output += c));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${runtime.name} exited with ${child.exitCode} before it answered:\n${output}`);
    try {
      await fetch(`${url}/`);
      return { url, child, output: () => output };
    } catch {
      if (Date.now() > deadline) throw new Error(`${runtime.name} did not answer on ${url} within 30 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

interface Answer {
  status: number;
  contentType: string;
  /** The body as it came off the network, one chunk per read. */
  chunks: AsyncIterable<Buffer>;
}

/**
 * POST `body` to /generate. With node:http, whose first write carries the headers and a small body
 * together: fetch sends them apart, and the server's delayed ACK of the first would then add 40 ms to
 * the first token in some runtimes.
 */
function post(url: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${url}/generate`, { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (response) =>
      resolve({ status: response.statusCode!, contentType: response.headers["content-type"] ?? "", chunks: response }),
    );
    request.on("error", reject);
    request.end(body);
  });
}

async function textOf(answer: Answer): Promise<string> {
  let text = "";
  for await (const chunk of answer.chunks) text += chunk.toString("utf8");
  return text;
}

interface Event {
  event: string;
  data: Record<string, unknown>;
}

/** The server-sent events of an answer, and how many network reads brought them. */
async function readEvents(answer: Answer): Promise<{ events: Event[]; reads: number }> {
  let text = "", reads = 0;
  for await (const chunk of answer.chunks) {
    text += chunk.toString("utf8");
    reads++;
  }
  const events = text.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1] ?? "";
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (data === undefined) throw new Error(`an event without data: ${JSON.stringify(block)}`);
    return { event, data: JSON.parse(data) as Record<string, unknown> };
  });
  return { events, reads };
}

interface Resident {
  rss: number;
  peak: number;
}

/** Resident and peak memory (VmRSS, VmHWM) of a process in bytes, where Linux's /proc says; else null. */
function residentBytes(pid: number): Resident | null {
  const path = `/proc/${pid}/status`;
  if (!existsSync(path)) return null;
  const status = readFileSync(path, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** CPU time (user + system) a process has used in ms, where Linux's /proc says; else null. */
function cpuMs(pid: number): number | null {
  const path = `/proc/${pid}/stat`;
  if (!existsSync(path)) return null;
  const fields = readFileSync(path, "utf8").replace(/^.*\) /s, "").split(" ");
  const ticksPerSecond = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1000;
}

const BAD_REQUESTS: { name: string; body: string; field?: string; says: string }[] = [
  { name: "bad JSON", body: '{"prompt": "ROMEO:",', says: "not valid JSON" },
  { name: "a body that is not an object", body: '"ROMEO:"', says: "must be a JSON object" },
  { name: "no prompt", body: '{"max_new_tokens": 8}', field: "prompt", says: '"prompt" is missing' },
  { name: "a prompt that is not a string", body: '{"prompt": ["ROMEO:"]}', field: "prompt", says: '"prompt" must be a string' },
  { name: "max_new_tokens past the limit", body: '{"prompt": "ROMEO:", "max_new_tokens": 100000}', field: "max_new_tokens", says: "from 1 to 256" },
  { name: "max_new_tokens past the context", body: '{"prompt": "ROMEO:", "max_new_tokens": 255}', field: "max_new_tokens", says: "context of 256 tokens" },
  { name: "max_new_tokens not an integer", body: '{"prompt": "ROMEO:", "max_new_tokens": 2.5}', field: "max_new_tokens", says: "an integer" },
  { name: "an unknown field", body: '{"prompt": "ROMEO:", "max_tokens": 8}', field: "max_tokens", says: 'unknown field "max_tokens"' },
];

for (const runtime of RUNTIMES) {
  test(`${runtime.name}: streams Node's greedy ids, answers bad requests with 400s, fails a model too large at load with the numbers`, async () => {
    const built = spawnSync(runtime.build[0]!, runtime.build.slice(1), { encoding: "utf8" });
    if (built.status !== 0) throw new Error(`${runtime.build.join(" ")} exited with ${built.status}:\n${built.stdout}${built.stderr}`);
    // Both at once: the one with a tiny memory limit only has to refuse.
    const [server, tiny] = await Promise.all([start(runtime), start(runtime, TINY_LIMIT_MB)]);
    try {
      const before = residentBytes(server.child.pid!);
      const cpuBefore = cpuMs(server.child.pid!);
      const response = await post(server.url, JSON.stringify({ prompt: PROMPT, max_new_tokens: NEW_TOKENS }));
      if (response.status !== 200 || !response.contentType.startsWith("text/event-stream")) {
        throw new Error(`POST /generate answered ${response.status} ${response.contentType}: ${await textOf(response)}\n${server.output()}`);
      }
      const { events, reads } = await readEvents(response);
      const cpuAfter = cpuMs(server.child.pid!);
      const tokens = events.filter((e) => e.event === "token").map((e) => e.data.id as number);
      const done = events.at(-1)!;
      if (done.event !== "done") throw new Error(`the stream ended with ${JSON.stringify(done)}`);
      const want = await nodeIds(done.data.kernels as string);
      if (tokens.join() !== want.join()) throw new Error(`${runtime.name} streamed [${tokens}], Node generated [${want}] (${done.data.kernels})`);
      if ((done.data.ids as number[]).join() !== want.join()) throw new Error(`the done event's ids [${done.data.ids as number[]}] are not the streamed ones`);
      // One read for everything would mean the tokens were held back until the end.
      if (reads < 2) throw new Error(`the ${events.length} events arrived in ${reads} read: not streamed`);

      // A second request reuses the loaded model: its figures are the steady state.
      const again = await readEvents(await post(server.url, JSON.stringify({ prompt: PROMPT, max_new_tokens: NEW_TOKENS })));
      const steady = again.events.at(-1)!.data;
      if ((steady.ids as number[]).join() !== want.join()) throw new Error(`the second request generated [${steady.ids as number[]}]`);

      for (const bad of BAD_REQUESTS) {
        const r = await post(server.url, bad.body);
        const text = await textOf(r);
        let body: { error?: unknown; field?: unknown };
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          throw new Error(`${bad.name}: the answer is not JSON: ${r.status} ${text}`);
        }
        if (r.status !== 400 || typeof body.error !== "string" || !body.error.includes(bad.says) || body.field !== bad.field) {
          throw new Error(`${bad.name}: expected 400 with an error saying ${JSON.stringify(bad.says)} (field ${bad.field}), got ${r.status} ${text}`);
        }
      }

      const refused = await post(tiny.url, JSON.stringify({ prompt: PROMPT, max_new_tokens: 8 }));
      const refusal = await textOf(refused);
      const numbers = refusal.match(/\d+\.\d MiB/g) ?? [];
      if (refused.status !== 503 || !refusal.includes("does not fit the wasm backend") || numbers.length < 3 || !refusal.includes(`${TINY_LIMIT_MB} MiB`)) {
        throw new Error(`with a ${TINY_LIMIT_MB} MiB limit, expected a 503 saying the model does not fit, with the numbers; got ${refused.status} ${refusal}\n${tiny.output()}`);
      }
      if (tiny.child.exitCode !== null) throw new Error(`${runtime.name} with the tiny limit exited: ${tiny.output()}`);

      // The figures README.md's "Edge runtimes" quotes, and the memory limit held.
      const first = done.data, backend = first.backend as { peak_bytes: number; limit_bytes: number };
      const used = runtime.memoryUsed(server, before);
      console.log(
        `${runtime.name}: ${first.kernels}; load ${first.load_ms} ms, first token ${first.first_token_ms} ms, ${first.tokens_per_second} tokens/s; ` +
          `then first token ${steady.first_token_ms} ms, ${steady.tokens_per_second} tokens/s; cpu_ms ${first.cpu_ms} then ${steady.cpu_ms} for ${NEW_TOKENS} tokens` +
          (cpuBefore !== null && cpuAfter !== null ? ` (the process: ${(cpuAfter - cpuBefore).toFixed(0)} ms with the load)` : "") +
          `; WASM memory peak ${mb(backend.peak_bytes)} of ${mb(backend.limit_bytes)}; memory used ${used ? `${mb(used.bytes)} (${used.how})` : "not measured on this machine"}`,
      );
      const limit = first.memory_limit_bytes as number;
      if (used && used.bytes > limit) throw new Error(`${runtime.name} used ${mb(used.bytes)} (${used.how}), past its ${mb(limit)} limit`);
    } finally {
      for (const s of [server, tiny]) s.child.kill();
    }
  });
}

test.after(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});

test.run();
