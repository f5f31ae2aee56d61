// The loader's fast path (file bytes read straight into the backend's memory, dtype changes done by the
// backend's cast kernel) gives bit-identical weights to the plain path (read into a host array, convert
// on the host, upload), for every file dtype (F32, BF16, F16), both storage choices, sharded files and
// OLMo's own layout, on the js backend and on wasm with 1 and 2 threads.

import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import {
  blobSource, cachedUrlSource, CheckpointError, createJsBackend, encodeSafetensors, fileListSource, loadCheckpoint, narrowFromF32, Random, readSafetensorsHeader, type AnyBackend, type ByteSource, type ModelSource,
  type Tensor, weightBytes,
} from "../src/index.js";
import { fileSource, folderSource } from "../src/node/index.js";
import { repoRoot, wasmBackendsUnderTest } from "./helpers.js";

const FIXTURES = `${repoRoot}test/fixtures/olmo`;

/** f32-untied-clip re-encoded as F16 (no F16 checkpoint is committed; the values are small, so F16 holds them). */
async function f16Fixture(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "olmo-f16-"));
  const file = (await folderSource(`${FIXTURES}/f32-untied-clip`).open("model.safetensors"))!;
  const problems: string[] = [];
  const header = await readSafetensorsHeader(file, problems);
  if (problems.length) throw new Error(problems.join("\n"));
  const tensors = [];
  for (const [name, entry] of header.tensors) {
    const bytes = await file.read(entry.begin, entry.end - entry.begin);
    const f16 = narrowFromF32(new Float32Array(bytes.slice().buffer), "f16");
    tensors.push({ name, dtype: "F16" as const, shape: entry.shape, bytes: new Uint8Array(f16.buffer) });
  }
  writeFileSync(join(dir, "model.safetensors"), Buffer.concat(encodeSafetensors(tensors)));
  copyFileSync(`${FIXTURES}/f32-untied-clip/config.json`, join(dir, "config.json"));
  return dir;
}

/** The same folder without `readInto`: every read returns a fresh host array. */
function plainSource(source: ModelSource): ModelSource {
  return {
    name: source.name,
    open: async (file) => {
      const bytes = await source.open(file);
      return bytes && ({ name: bytes.name, size: bytes.size, read: (o, n) => bytes.read(o, n) } satisfies ByteSource);
    },
  };
}

/** Every weight's raw bits (f32 / bf16 / f16 as stored), by weight name. */
async function rawWeights(source: ModelSource, backend: AnyBackend, weightDType: "f32" | "bf16"): Promise<Map<string, Uint8Array>> {
  const loaded = await loadCheckpoint(source, backend, { weightDType });
  const out = new Map<string, Uint8Array>();
  for (const [name, t] of loaded.weights as Map<string, Tensor>) {
    const data = await t.data(); // f32 values; for 16-bit storage compare the stored bits too
    out.set(name, new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
    if (t.dtype !== "f32") {
      const bits = await t.backend.download(t.bufferFor("test"), t.dtype, t.size);
      out.set(`${name} (${t.dtype} bits)`, new Uint8Array(bits.buffer.slice(0)));
    }
    t.dispose();
  }
  return out;
}

test("every load path gives the plain path's bits (all dtypes, sharded, OLMo layout; js and wasm on 1 and 2 threads)", async () => {
  const [wasm1, wasm2] = await wasmBackendsUnderTest();
  const folders = ["bf16-tied", "f32-untied-clip", "gqa-sharded", "native-layout"].map((f) => `${FIXTURES}/${f}`);
  folders.push(await f16Fixture());
  // The reference: a backend with no rawBytes, so the loader reads, converts on the host and uploads.
  const { rawBytes: _, ...plainJs } = createJsBackend();
  const fast: [string, AnyBackend][] = [["js", createJsBackend()], ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!]];
  let compared = 0;
  for (const folder of folders) {
    for (const weightDType of ["f32", "bf16"] as const) {
      const want = await rawWeights(plainSource(folderSource(folder)), plainJs, weightDType);
      for (const [name, backend] of fast) {
        const got = await rawWeights(folderSource(folder), backend, weightDType);
        if (got.size !== want.size) throw new Error(`${folder} ${weightDType} ${name}: ${got.size} weights, expected ${want.size}`);
        for (const [weight, bits] of want) {
          const other = got.get(weight)!;
          const at = bits.findIndex((b, i) => other[i] !== b);
          if (other.length !== bits.length || at >= 0) throw new Error(`${folder}, ${weightDType}, ${name}: ${weight} differs at byte ${at}`);
          compared++;
        }
      }
    }
  }
  if (compared < 5 * 2 * 3 * 20) throw new Error(`only ${compared} weights compared`);
});

test("files picked in a browser (Blobs, streamed) load the same bits", async () => {
  const [, wasm2] = await wasmBackendsUnderTest();
  const { rawBytes: _, ...plainJs } = createJsBackend();
  for (const fixture of ["gqa-sharded", "bf16-tied"]) {
    const dir = `${FIXTURES}/${fixture}`;
    const files = readdirSync(dir).map((name) => new File([readFileSync(join(dir, name))], name));
    for (const weightDType of ["f32", "bf16"] as const) {
      const want = await rawWeights(plainSource(folderSource(dir)), plainJs, weightDType);
      const got = await rawWeights(fileListSource(files, fixture), wasm2!, weightDType);
      for (const [weight, bits] of want) {
        if (Buffer.compare(Buffer.from(bits), Buffer.from(got.get(weight)!)) !== 0) throw new Error(`${fixture} ${weightDType}: ${weight} differs`);
      }
    }
  }
});

/** `length` random bytes from the project's seeded generator, four from each 32-bit draw. */
function randomBytes(length: number, seed: number): Uint8Array {
  const random = new Random(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 4) {
    const word = random.nextUint32();
    for (let j = 0; j < 4 && i + j < length; j++) bytes[i + j] = (word >>> (8 * j)) & 255;
  }
  return bytes;
}

/** A Blob-like whose slices are `delta` bytes long or short, read as a stream or as an ArrayBuffer. */
function blobLike(bytes: Uint8Array, delta: number, mode: "stream" | "arrayBuffer") {
  return {
    size: bytes.length,
    slice: (start: number, end: number) => {
      const part = new Blob([bytes.subarray(start, end + delta)]);
      return mode === "stream" ? { arrayBuffer: () => part.arrayBuffer(), stream: () => part.stream() } : { arrayBuffer: () => part.arrayBuffer() };
    },
  };
}

test("Blobs read exactly: in a stream's own chunks, or whole", async () => {
  const bytes = randomBytes(9 * 2 ** 20 + 3, 7);
  for (const mode of ["stream", "arrayBuffer"] as const) {
    const source = blobSource("b.safetensors", blobLike(bytes, 0, mode));
    for (const [offset, length] of [[5, 9 * 2 ** 20 - 5], [0, 100], [4 * 2 ** 20 - 1, 4 * 2 ** 20 + 2]] as const) {
      const target = new Uint8Array(length);
      await source.readInto!(offset, target);
      const bad = target.findIndex((b, i) => b !== bytes[offset + i]);
      if (bad >= 0) throw new Error(`${mode}: ${length} bytes at ${offset}: byte ${bad} differs`);
    }
  }
});

test("a Blob that hands back more or fewer bytes than asked is an error, not a half-filled tensor", async () => {
  const bytes = new Uint8Array(100).map((_, i) => i);
  for (const delta of [-1, 1]) {
    for (const mode of ["stream", "arrayBuffer"] as const) {
      let message = "";
      await blobSource("b.safetensors", blobLike(bytes, delta, mode)).readInto!(10, new Uint8Array(20)).catch((e: Error) => (message = e.message));
      if (!message.startsWith("b.safetensors: ")) throw new Error(`${delta} byte(s), ${mode}: ${message || "no error"}`);
    }
  }
});

/**
 * A server's answer whose body is made chunk by chunk as it is read (`produced` counts them), claiming
 * `claimed` bytes in its Content-Length, and a Cache API whose put reads the body it is given as
 * Chromium's does, noting for each chunk how many the server had made by then.
 */
function fakeDownload(bytes: Uint8Array, claimed: number, putFails?: { afterChunks: number; error: Error }) {
  const chunk = 64 * 1024;
  let produced = 0;
  const fetches: string[] = [];
  const fetch = async (url: string) => {
    fetches.push(url);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(at, at + chunk));
        at += chunk;
        produced++;
      },
    }, { highWaterMark: 0 });
    return new Response(body, { headers: { "content-length": String(claimed), "content-type": "application/octet-stream" } });
  };
  const stored = new Map<string, Blob>();
  const lead: number[] = []; // chunks the server had made, less the chunks put had stored, at each chunk put stored
  const cache = {
    match: async (url: string) => (stored.has(url) ? new Response(stored.get(url)!) : undefined),
    put: async (url: string, response: Response) => {
      const parts: Uint8Array[] = [];
      const reader = response.body!.getReader();
      // A put that gives up (a full quota) stops reading and rejects, without cancelling the body.
      if (putFails?.afterChunks === 0) throw putFails.error;
      for (let part = await reader.read(); !part.done; part = await reader.read()) {
        if (parts.length === putFails?.afterChunks) throw putFails.error;
        parts.push(part.value);
        lead.push(produced - parts.length);
      }
      stored.set(url, new Blob(parts));
    },
  };
  return { fetch, fetches, stored, lead, caches: { open: async () => cache } };
}

/** Run `body` with these globals replaced (each restored after, or removed where the host had none). */
async function withGlobals(replacements: Record<string, unknown>, body: () => Promise<void>): Promise<void> {
  const saved = Object.keys(replacements).map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)] as const);
  for (const [name, value] of Object.entries(replacements)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  try {
    await body();
  } finally {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete (globalThis as Record<string, unknown>)[name];
    }
  }
}

/** Run `body` with globalThis.fetch and globalThis.caches replaced by a fake download's. */
const withFakeWeb = (fake: ReturnType<typeof fakeDownload>, body: () => Promise<void>) => withGlobals({ fetch: fake.fetch, caches: fake.caches }, body);

test("the Cache API: a download streams into cache.put (never whole in memory) and is read from the cache afterwards", async () => {
  const bytes = randomBytes(3 * 2 ** 20 + 5, 11); // 49 chunks of 64 KiB
  const fake = fakeDownload(bytes, bytes.length);
  await withFakeWeb(fake, async () => {
    for (let visit = 0; visit < 2; visit++) {
      const progress: number[] = [];
      const file = (await cachedUrlSource("http://models.test/olmo/", { storage: "cache", onProgress: (_, received) => progress.push(received) }).open("model.safetensors"))!;
      const back = await file.read(0, bytes.length);
      if (file.size !== bytes.length || back.some((b, i) => b !== bytes[i])) throw new Error(`visit ${visit}: the stored file differs from the download`);
      if (visit === 0 && progress.at(-1) !== bytes.length) throw new Error(`progress ${progress.at(-1)} of ${bytes.length}`);
    }
  });
  if (fake.fetches.join() !== "http://models.test/olmo/model.safetensors") throw new Error(`fetched ${JSON.stringify(fake.fetches)} (expected once)`);
  // Streamed: put stored each chunk while the server had made at most a few more (holding the file
  // whole before put, as this source once did, gives a lead of all 49 chunks).
  if (fake.lead.length !== 49 || Math.max(...fake.lead) > 4) throw new Error(`put stored ${fake.lead.length} of 49 chunks, at most ${Math.max(...fake.lead)} behind the download`);
});

test("the Cache API: a transfer cut short is an error and stores nothing", async () => {
  const bytes = randomBytes(600 * 1024, 12);
  const fake = fakeDownload(bytes, 1000 * 1024);
  await withFakeWeb(fake, async () => {
    const source = cachedUrlSource("http://models.test/olmo", { storage: "cache" });
    for (let attempt = 1; attempt <= 2; attempt++) {
      let message = "";
      await source.open("model.safetensors").catch((e: Error) => (message = e.message));
      if (message !== `GET http://models.test/olmo/model.safetensors ended after ${bytes.length} of ${1000 * 1024} bytes; not cached, try again`) {
        throw new Error(`attempt ${attempt}: ${message || "no error"}`);
      }
      if (fake.stored.size !== 0) throw new Error(`attempt ${attempt}: a cut download was stored`);
    }
  });
  if (fake.fetches.length !== 2) throw new Error(`fetched ${fake.fetches.length} times (a cut download must be fetched again)`);
});

test("the Cache API: a put that fails before or while reading the body is an error naming the URL and the reason, not a wait", async () => {
  const bytes = randomBytes(1024 * 1024, 14);
  for (const afterChunks of [0, 2]) {
    const quota = Object.assign(new Error("the origin's quota is used up"), { name: "QuotaExceededError" });
    const fake = fakeDownload(bytes, bytes.length, { afterChunks, error: quota });
    await withFakeWeb(fake, async () => {
      let message = "";
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("still waiting after 5 s")), 5000)));
      await Promise.race([cachedUrlSource("http://models.test/olmo", { storage: "cache" }).open("model.safetensors"), hung])
        .catch((e: Error) => (message = e.message))
        .finally(() => clearTimeout(timer));
      const want = "http://models.test/olmo/model.safetensors: not stored in the Cache API: QuotaExceededError: the origin's quota is used up";
      if (message !== want) throw new Error(`put failing after ${afterChunks} chunks: ${message || "no error"}`);
      if (fake.stored.size !== 0) throw new Error(`put failing after ${afterChunks} chunks: something was stored`);
    });
  }
});

/**
 * An Origin Private File System holding one file at `path` (folders, then the name), as navigator.storage
 * and FileSystemFileHandle give it to a Web Worker: its access handles read the bytes (counted), or,
 * with `locked`, fail to open as when another handle holds the file (NoModificationAllowedError).
 */
function fakeOpfs(path: string[], bytes: Uint8Array, locked: boolean) {
  const counts = { opens: 0, handleReads: 0 };
  class FakeFileHandle {
    getFile = async () => new Blob([bytes]);
    async createSyncAccessHandle() {
      counts.opens++;
      if (locked) throw Object.assign(new Error("the file is locked by another handle"), { name: "NoModificationAllowedError" });
      return {
        read: (target: Uint8Array, { at }: { at: number }) => {
          counts.handleReads++;
          const n = Math.min(target.length, bytes.length - at);
          target.set(bytes.subarray(at, at + n));
          return n;
        },
        close: () => {},
      };
    }
    async move() {}
  }
  const folder = (depth: number): unknown => ({
    getDirectoryHandle: async (name: string) => {
      if (name !== path[depth]) throw Object.assign(new Error(`no folder ${name}`), { name: "NotFoundError" });
      return folder(depth + 1);
    },
    getFileHandle: async (name: string) => {
      if (depth !== path.length - 1 || name !== path[depth]) throw Object.assign(new Error(`no file ${name}`), { name: "NotFoundError" });
      return new FakeFileHandle();
    },
  });
  return { counts, navigator: { storage: { getDirectory: async () => folder(0) } }, FileSystemFileHandle: FakeFileHandle };
}

test("OPFS in a worker: reads go through one access handle into memory the loader fills first; a locked file is read through its Blob, unfilled", async () => {
  const bytes = randomBytes(2 * 2 ** 20 + 9, 13);
  const base = "http://models.test/olmo";
  for (const locked of [false, true]) {
    const fake = fakeOpfs(["olmo-js", encodeURIComponent(base), "model.safetensors"], bytes, locked);
    await withGlobals({ navigator: fake.navigator, FileSystemFileHandle: fake.FileSystemFileHandle }, async () => {
      const file = (await cachedUrlSource(base, { storage: "opfs" }).open("model.safetensors"))!;
      if (!file.prefault) throw new Error(`locked ${locked}: an OPFS source must ask for the fill before its first read`);
      const target = new Uint8Array(bytes.length - 100);
      await file.readInto!(100, target.subarray(0, 2 ** 20));
      await file.readInto!(100 + 2 ** 20, target.subarray(2 ** 20));
      if (target.some((b, i) => b !== bytes[100 + i])) throw new Error(`locked ${locked}: the bytes read differ from the file's`);
      // One open serves both reads; a locked file is tried once, then read as a Blob (which the fill slows).
      if (fake.counts.opens !== 1) throw new Error(`locked ${locked}: ${fake.counts.opens} access handles opened (expected 1)`);
      if (locked ? fake.counts.handleReads !== 0 || file.prefault : fake.counts.handleReads === 0 || !file.prefault) {
        throw new Error(`locked ${locked}: ${fake.counts.handleReads} handle reads, prefault ${file.prefault} after them`);
      }
    });
  }
});

test("progress counts every byte once and ends at the total", async () => {
  const [, wasm2] = await wasmBackendsUnderTest();
  const seen: [number, number][] = [];
  const loaded = await loadCheckpoint(folderSource(`${FIXTURES}/gqa-sharded`), wasm2!, { weightDType: "bf16", onProgress: (read, total) => seen.push([read, total]) });
  const bytes = [...loaded.weights.values()].reduce((s, t) => s + weightBytes(t), 0);
  for (const t of loaded.weights.values()) t.dispose();
  if (seen.at(-1)![0] !== bytes || seen.some(([r, t], i) => t !== bytes || (i > 0 && r <= seen[i - 1]![0]))) throw new Error(JSON.stringify(seen));
});

test("a file's large reads are exact: in parts, through the bounce buffer and across its windows, several at once", async () => {
  // 40 MiB of random bytes (a wrong offset shows), read in the ways the loader reads: under 4 MiB
  // straight in; larger in four parts at once through a reused 32 MiB bounce buffer, window after
  // window; reads in flight together (each takes its own buffer).
  const dir = mkdtempSync(join(tmpdir(), "olmo-read-"));
  const bytes = randomBytes(40 * 2 ** 20 + 7, 12345);
  writeFileSync(join(dir, "big.bin"), bytes);
  const file = (await fileSource(join(dir, "big.bin")))!;
  try {
  const ranges: [number, number][] = [[3, 1000], [1, 4 * 2 ** 20 + 5], [65537, 32 * 2 ** 20], [9, 40 * 2 ** 20 - 2], [0, bytes.length]];
  const check = async ([offset, length]: [number, number]) => {
    const target = new Uint8Array(length).fill(0xee);
    await file.readInto!(offset, target);
    const bad = target.findIndex((b, i) => b !== bytes[offset + i]);
    if (bad >= 0) throw new Error(`read of ${length} bytes at ${offset}: byte ${bad} is ${target[bad]}, the file has ${bytes[offset + bad]}`);
    const copy = await file.read(offset, length);
    if (copy.findIndex((b, i) => b !== bytes[offset + i]) >= 0) throw new Error(`read() of ${length} bytes at ${offset} differs`);
  };
  for (const range of ranges) await check(range);
  await Promise.all(ranges.map(check));
  let message = "";
  await file.readInto!(bytes.length - 10, new Uint8Array(5 * 2 ** 20)).catch((e: Error) => (message = e.message));
  if (!message.includes(`file ended at byte ${bytes.length}`)) throw new Error(`a read past the end: ${message || "no error"}`);
    // A file that shrinks after it was opened as a source: the parts past its new end fail, and the
    // read fails with them once every part has settled; a read after it is whole again.
    truncateSync(join(dir, "big.bin"), 6 * 2 ** 20);
    message = "";
    await file.readInto!(0, new Uint8Array(8 * 2 ** 20)).catch((e: Error) => (message = e.message));
    if (!/no bytes at \d+ \(the file shrank\?\)/.test(message)) throw new Error(`a read of a shrunk file: ${message || "no error"}`);
    await check([100, 5 * 2 ** 20]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a checkpoint wrong throughout lists its first problems and counts the rest; the error keeps them all", () => {
  const problems = Array.from({ length: 45 }, (_, i) => `problem ${i}`);
  const error = new CheckpointError("some/folder", problems);
  const lines = error.message.split("\n");
  if (lines[0] !== "cannot load the checkpoint in some/folder: 45 problem(s):") throw new Error(lines[0]);
  if (lines.length !== 22 || lines[20] !== "  - problem 19" || lines[21] !== "  - ... and 25 more") throw new Error(error.message);
  if (error.problems.length !== 45) throw new Error("the problems property lost some");
  if (new CheckpointError("f", problems.slice(0, 20)).message.includes("more")) throw new Error("20 problems are all shown");
});

test.run();
