// Model folders in browsers: fetched once and kept in the Cache API for the next visit, or files a user
// picked with <input type="file" multiple>. Both read byte ranges from Blobs (which browsers keep on
// disk), so a checkpoint never has to sit in memory whole.
//
// Only web APIs are used, reached through globalThis, so the core keeps compiling without the DOM types.

import type { ModelSource } from "./checkpoint.js";
import type { ByteSource } from "./safetensors.js";
import { checkRepoFilePath, fetchFailure, HubError, isErrorPage } from "./hub.js";

/** The parts of Blob / File / Response / Cache this module uses. */
interface BlobLike {
  readonly size: number;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer>; stream?(): StreamLike };
}
interface StreamLike {
  getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> };
  getReader(options: { mode: "byob" }): { read(view: Uint8Array): Promise<{ done: boolean; value?: Uint8Array }>; cancel?(): Promise<void> };
}
interface FileLike extends BlobLike {
  readonly name: string;
}
interface ResponseLike {
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  blob(): Promise<BlobLike>;
}
interface CacheLike {
  match(url: string): Promise<ResponseLike | undefined>;
  put(url: string, response: unknown): Promise<void>;
}
interface WebGlobals {
  fetch(url: string): Promise<ResponseLike>;
  caches?: { open(name: string): Promise<CacheLike> };
  Blob: new (parts: Uint8Array[]) => BlobLike;
  Response: new (body: BlobLike, init?: { headers?: Record<string, string> }) => unknown;
}

/** A ByteSource over a Blob or File. */
export function blobSource(name: string, blob: BlobLike): ByteSource {
  return {
    name,
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
    // Streamed into the target (no ArrayBuffer of the whole range): through a reused buffer
    // where the stream takes one (a byte stream's "BYOB" reader), else in the stream's own chunks.
    readInto: async (offset, target) => {
      const part = blob.slice(offset, offset + target.length);
      let filled = 0;
      const put = (chunk: Uint8Array) => {
        if (filled + chunk.length > target.length) throw new Error(`${name}: more than ${target.length} bytes at ${offset}`);
        target.set(chunk, filled);
        filled += chunk.length;
      };
      const stream = part.stream?.();
      if (!stream) put(new Uint8Array(await part.arrayBuffer()));
      else if (!(await readThroughBuffer(stream, target.length, put))) {
        const reader = stream.getReader();
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) put(chunk.value!);
      }
      if (filled !== target.length) throw new Error(`${name}: read ${filled} bytes at ${offset}, expected ${target.length}`);
    },
  };
}

/**
 * Read a byte stream into `put` through a buffer kept from one read to the next; false (nothing read)
 * where the stream has no BYOB reader. Why: a default reader hands each chunk over in a new
 * ArrayBuffer, memory the host may have to fault in afresh every time (in Chromium it made reading a
 * cached blob 3-4x slower: bench/NOTES.md, "Loading").
 */
async function readThroughBuffer(stream: StreamLike, length: number, put: (chunk: Uint8Array) => void): Promise<boolean> {
  let reader;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    return false; // not a byte stream
  }
  // A read transfers the buffer it is given; the view it returns holds the buffer to pass on next.
  let buffer = streamBuffers.pop() ?? new ArrayBuffer(STREAM_BUFFER_BYTES);
  try {
    for (let done = 0; ; ) {
      const chunk = await reader.read(new Uint8Array(buffer, 0, Math.max(1, Math.min(buffer.byteLength, length - done))));
      if (chunk.value) buffer = chunk.value.buffer as ArrayBuffer;
      if (chunk.value?.length) put(chunk.value);
      if (chunk.done) break;
      done += chunk.value!.length;
    }
  } catch (e) {
    await reader.cancel?.().catch(() => {});
    throw e;
  }
  // A cancelled stream may end without handing the buffer back (it stays detached): not kept then.
  if (buffer.byteLength > 0) streamBuffers.push(buffer);
  return true;
}

const STREAM_BUFFER_BYTES = 4 * 2 ** 20;
/** Buffers for readThroughBuffer not in use (one per read in flight, kept for the next). */
const streamBuffers: ArrayBuffer[] = [];

/** Files a user picked (e.g. a whole model folder), found by their names. */
export function fileListSource(files: ArrayLike<FileLike>, name = "picked files"): ModelSource {
  const byName = new Map<string, FileLike>();
  for (let i = 0; i < files.length; i++) byName.set(files[i]!.name, files[i]!);
  return { name, open: async (file) => (byName.has(file) ? blobSource(`${name}/${file}`, byName.get(file)!) : null) };
}

export interface CachedUrlOptions {
  /** Cache API cache to use (default "olmo-js"). */
  cacheName?: string;
  /** Bytes received of the file being downloaded. */
  onProgress?: (file: string, received: number, total: number) => void;
}

/**
 * A model folder at a URL, each file downloaded once (with progress) into the browser's Cache API and
 * read from there afterwards, also on the next visit.
 */
export function cachedUrlSource(baseUrl: string, options: CachedUrlOptions = {}): ModelSource {
  const web = globalThis as unknown as WebGlobals;
  if (!web.caches) throw new HubError("cachedUrlSource: this host has no Cache API (it needs a secure context: https or localhost)");
  const base = baseUrl.replace(/\/+$/, "");
  return {
    name: base,
    open: async (file) => {
      checkRepoFilePath(file); // a shard name from an index file must not reach outside the folder
      const url = `${base}/${file.split("/").map(encodeURIComponent).join("/")}`;
      const cache = await web.caches!.open(options.cacheName ?? "olmo-js");
      const hit = await cache.match(url);
      if (hit) return blobSource(url, await hit.blob());
      let response: ResponseLike;
      try {
        response = await web.fetch(url);
      } catch (e) {
        throw fetchFailure("GET", url, e);
      }
      if (response.status === 404) return null;
      if (!response.ok || !response.body) throw new HubError(`GET ${url} answered ${response.status}`, { url, status: response.status });
      // What is put in the Cache API is read back on every later visit: an error page or a cut transfer must not get there.
      if (isErrorPage(file, response.headers.get("content-type"))) throw new HubError(`GET ${url} answered with a web page (text/html), not ${file}: an error or login page?`, { url, status: response.status });
      const total = Number(response.headers.get("content-length") ?? NaN);
      const reader = response.body.getReader();
      const chunks: Uint8Array[] = [];
      let received = 0;
      for (let part = await reader.read(); !part.done; part = await reader.read()) {
        chunks.push(part.value!);
        received += part.value!.length;
        options.onProgress?.(file, received, total);
      }
      // Content-Length counts the bytes on the wire: a compressed answer decodes to more.
      const encoded = !/^(identity)?$/i.test(response.headers.get("content-encoding") ?? "");
      if (Number.isFinite(total) && !encoded && received !== total) throw new HubError(`GET ${url} ended after ${received} of ${total} bytes; not cached, try again`, { url, status: response.status });
      const blob = new web.Blob(chunks);
      await cache.put(url, new web.Response(blob, { headers: { "content-length": String(blob.size) } }));
      return blobSource(url, blob);
    },
  };
}
