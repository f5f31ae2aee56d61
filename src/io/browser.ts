// Model folders in browsers: fetched once and kept for the next visit (in the Origin Private File System,
// or the Cache API), or files a user picked with <input type="file" multiple>. All read byte ranges
// (from Blobs, which browsers keep on disk, or from OPFS files), so a checkpoint never has to sit in
// memory whole.
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
interface StreamWriterLike {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason: unknown): Promise<void>;
}
/** The parts of the File System Access API (its Origin Private File System) this module uses. */
interface SyncAccessHandleLike {
  read(target: Uint8Array, options: { at: number }): number;
  write(data: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}
interface FileHandleLike {
  getFile(): Promise<BlobLike>;
  createSyncAccessHandle?(options?: { mode: "read-only" | "readwrite" }): Promise<SyncAccessHandleLike>;
  createWritable?(): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void>; abort(): Promise<void> }>;
  move?(newName: string): Promise<void>;
}
interface DirectoryHandleLike {
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<DirectoryHandleLike>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string): Promise<void>;
}
interface WebGlobals {
  fetch(url: string): Promise<ResponseLike>;
  navigator?: { storage?: { getDirectory?(): Promise<DirectoryHandleLike> } };
  FileSystemFileHandle?: { prototype: FileHandleLike };
  location?: { href: string };
  caches?: { open(name: string): Promise<CacheLike> };
  TransformStream: new () => { readable: unknown; writable: { getWriter(): StreamWriterLike } };
  Response: new (body: unknown, init?: { headers?: Record<string, string> }) => unknown;
}

/** A ByteSource over a Blob or File. */
export function blobSource(name: string, blob: BlobLike): ByteSource {
  return {
    name,
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
    // Streamed into the target in the stream's own chunks (no ArrayBuffer of the whole range): as fast
    // as Chromium delivers a Blob (OLMo-1B from picked files in 2.7-3.1 s, dropping the bytes instead
    // 2.6-2.9 s; whole-range ArrayBuffers, parallel streams and FileReaderSync were slower:
    // bench/NOTES.md, "Loading"). Not through one reused buffer (a byte stream's BYOB reader): in
    // Chromium 156 a BYOB read of a file-backed Blob (a picked File, an OPFS File) sometimes never
    // settled, in 3 of 8 runs of test/browser.test.ts's sources case.
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
      else {
        const reader = stream.getReader();
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) put(chunk.value!);
      }
      if (filled !== target.length) throw new Error(`${name}: read ${filled} bytes at ${offset}, expected ${target.length}`);
    },
  };
}

/** How long an OPFS file's access handle stays open after its last read (opfsFileSource). */
const HANDLE_IDLE_MS = 1000;

/** Files a user picked (e.g. a whole model folder), found by their names. */
export function fileListSource(files: ArrayLike<FileLike>, name = "picked files"): ModelSource {
  const byName = new Map<string, FileLike>();
  for (let i = 0; i < files.length; i++) byName.set(files[i]!.name, files[i]!);
  return { name, open: async (file) => (byName.has(file) ? blobSource(`${name}/${file}`, byName.get(file)!) : null) };
}

export interface CachedUrlOptions {
  /**
   * Where downloaded files are kept: "opfs", the Origin Private File System (in a Web Worker read back
   * at disk speed straight into WebAssembly memory, elsewhere as Blob streams), or "cache", the Cache
   * API (read back as Blob streams: OLMo-1B loaded in 2.8-3.0 s against OPFS's 1.2 s in Chromium's
   * workers, bench/NOTES.md "Loading"). Either way a download is passed on as it arrives, never held whole.
   * Default: "opfs" where the host can write it (a page's main thread needs createWritable).
   */
  storage?: "opfs" | "cache";
  /** Cache API cache, or OPFS folder, to use (default "olmo-js"). */
  cacheName?: string;
  /** Bytes received of the file being downloaded. */
  onProgress?: (file: string, received: number, total: number) => void;
}

/**
 * A model folder at a URL, each file downloaded once (with progress) into the browser's storage (the
 * Origin Private File System, or the Cache API: options.storage) and read from there afterwards, also on
 * the next visit. A file is stored only once it has arrived whole.
 */
export function cachedUrlSource(baseUrl: string, options: CachedUrlOptions = {}): ModelSource {
  const web = globalThis as unknown as WebGlobals;
  const storage = options.storage ?? (opfsWritable(web) ? "opfs" : "cache");
  if (storage === "opfs" && !opfsWritable(web)) {
    throw new HubError("cachedUrlSource: this host cannot keep files in the Origin Private File System (it needs navigator.storage.getDirectory, FileSystemFileHandle.move and createWritable, or createSyncAccessHandle in a Web Worker); use storage: \"cache\"");
  }
  if (storage === "cache" && !web.caches) throw new HubError("cachedUrlSource: this host has no Cache API (it needs a secure context: https or localhost)");
  // Absolute, so that one relative URL on two pages is not one folder.
  const base = (web.location ? new URL(baseUrl, web.location.href).href : baseUrl).replace(/\/+$/, "");
  const cacheName = options.cacheName ?? "olmo-js";
  return {
    name: base,
    open: async (file) => {
      checkRepoFilePath(file); // a shard name from an index file must not reach outside the folder
      const url = `${base}/${file.split("/").map(encodeURIComponent).join("/")}`;
      if (storage === "opfs") {
        // <cacheName>/<the model's URL>/<file's path>; folders are created only for a file that arrived.
        const path = [cacheName, encodeURIComponent(base), ...file.split("/")];
        const root = await web.navigator!.storage!.getDirectory!();
        const kept = await opfsFile(root, path, false);
        if (kept) return opfsFileSource(url, kept.file);
        const response = await download(web, url, file);
        if (!response) return null;
        return opfsFileSource(url, await writeOpfsFile(root, path, url, file, response, options.onProgress));
      }
      const cache = await web.caches!.open(cacheName);
      const hit = await cache.match(url);
      if (hit) return blobSource(url, await hit.blob());
      const response = await download(web, url, file);
      if (!response) return null;
      return blobSource(url, await putStreaming(web, cache, url, file, response, options.onProgress));
    },
  };
}

/**
 * Store a response's body in the Cache API as it arrives and hand back the stored Blob. The body goes
 * to cache.put as a stream this function feeds chunk by chunk, so the page never holds the file whole
 * (an OLMo-7B shard is up to 5 GB; what the browser buffers while storing is its own affair: Chromium's
 * blob storage pages large bodies to disk). A transfer cut short errors the stream, and cache.put then
 * rejects and stores nothing.
 */
async function putStreaming(
  web: WebGlobals, cache: CacheLike, url: string, file: string, response: ResponseLike, onProgress: CachedUrlOptions["onProgress"],
): Promise<BlobLike> {
  const { readable, writable } = new web.TransformStream();
  const writer = writable.getWriter();
  // No Content-Length: fetch hands over the decoded body, which a compressed transfer's header does not count.
  const stored = cache.put(url, new web.Response(readable));
  // A write settles only once cache.put has read the chunk; where put stops reading (a full quota, a URL
  // it does not store), the writes would wait forever, so each one races put's end.
  let putFailure: { reason: unknown } | null = null;
  const putEnded = stored.then(
    () => Promise.reject(new HubError(`${url}: cache.put returned before the whole body was written`, { url })),
    (reason: unknown) => Promise.reject((putFailure = { reason }).reason),
  );
  putEnded.catch(() => {}); // awaited below only through the races: never an unhandled rejection
  try {
    await receive(response, url, file, onProgress, (chunk) => Promise.race([writer.write(chunk), putEnded]));
    await Promise.race([writer.close(), putEnded]);
    await stored;
  } catch (e) {
    const failure = putFailure as { reason: unknown } | null;
    if (failure) throw new HubError(`${url}: not stored in the Cache API: ${describeError(failure.reason)}`, { url });
    // No write is waiting here (each is awaited before the next read; where put already returned, it has
    // settled), so the abort errors the body at once and put rejects without storing.
    void writer.abort(e).catch(() => {});
    await stored.catch(() => {});
    throw e;
  }
  const kept = await cache.match(url);
  if (!kept) throw new HubError(`${url}: stored in the Cache API but gone right after (was the site's storage cleared?)`, { url });
  return kept.blob();
}

/** "Name: message" of a DOMException or Error (a QuotaExceededError says what it is by its name), else the value as text. */
function describeError(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    const { name, message } = e as { name?: string; message: string };
    return name && name !== "Error" ? `${name}: ${message}` : message;
  }
  return String(e);
}

/** Whether this host can write OPFS files and rename them (createWritable, or sync handles in a worker). */
function opfsWritable(web: WebGlobals): boolean {
  const file = web.FileSystemFileHandle?.prototype;
  return typeof web.navigator?.storage?.getDirectory === "function" && !!file && typeof file.move === "function" &&
    (typeof file.createWritable === "function" || typeof file.createSyncAccessHandle === "function");
}

/** GET url: the response to read, or null for 404; errors and web pages in place of `file` throw. */
async function download(web: WebGlobals, url: string, file: string): Promise<ResponseLike | null> {
  let response: ResponseLike;
  try {
    response = await web.fetch(url);
  } catch (e) {
    throw fetchFailure("GET", url, e);
  }
  if (response.status === 404) return null;
  if (!response.ok || !response.body) throw new HubError(`GET ${url} answered ${response.status}`, { url, status: response.status });
  // What is stored is read back on every later visit: an error page or a cut transfer must not get there.
  if (isErrorPage(file, response.headers.get("content-type"))) throw new HubError(`GET ${url} answered with a web page (text/html), not ${file}: an error or login page?`, { url, status: response.status });
  return response;
}

/** Pass every chunk of a response's body to `put`; a transfer cut short (Content-Length not reached) throws. */
async function receive(response: ResponseLike, url: string, file: string, onProgress: CachedUrlOptions["onProgress"], put: (chunk: Uint8Array) => Promise<void> | void): Promise<void> {
  const total = Number(response.headers.get("content-length") ?? NaN);
  const reader = response.body!.getReader() as { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel?(): Promise<void> };
  let received = 0;
  try {
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      await put(part.value!);
      received += part.value!.length;
      onProgress?.(file, received, total);
    }
  } catch (e) {
    await reader.cancel?.().catch(() => {}); // a failed write (a full quota) closes the connection too
    throw e;
  }
  // Content-Length counts the bytes on the wire: a compressed answer decodes to more.
  const encoded = !/^(identity)?$/i.test(response.headers.get("content-encoding") ?? "");
  if (Number.isFinite(total) && !encoded && received !== total) throw new HubError(`GET ${url} ended after ${received} of ${total} bytes; not cached, try again`, { url, status: response.status });
}

/** The OPFS file at `path` (its parts: folders, then the file's name) below `root` and its folder, or null where it is not there. */
async function opfsFile(root: DirectoryHandleLike, path: string[], create: boolean): Promise<{ folder: DirectoryHandleLike; file: FileHandleLike } | null> {
  try {
    let folder = root;
    for (const part of path.slice(0, -1)) folder = await folder.getDirectoryHandle(part, { create });
    return { folder, file: await folder.getFileHandle(path.at(-1)!, { create }) };
  } catch (e) {
    if ((e as { name?: string }).name === "NotFoundError") return null;
    throw e;
  }
}

/**
 * Write a response's body to `path` below `root`: into "<name>.part" first, renamed to the name once the
 * whole body has arrived, so a cut download is never read back as the file; a failed one leaves nothing.
 */
async function writeOpfsFile(
  root: DirectoryHandleLike, path: string[], url: string, file: string, response: ResponseLike, onProgress: CachedUrlOptions["onProgress"],
): Promise<FileHandleLike> {
  const name = path.at(-1)!;
  const { folder, file: partial } = (await opfsFile(root, [...path.slice(0, -1), `${name}.part`], true))!;
  try {
    if (partial.createWritable) {
      const writable = await partial.createWritable();
      try {
        await receive(response, url, file, onProgress, (chunk) => writable.write(chunk));
        await writable.close();
      } catch (e) {
        await writable.abort().catch(() => {});
        throw e;
      }
    } else {
      // Safari before 26 has no createWritable; its Web Workers have synchronous access handles.
      const handle = await partial.createSyncAccessHandle!();
      try {
        handle.truncate(0);
        let at = 0;
        await receive(response, url, file, onProgress, (chunk) => void (at += handle.write(chunk, { at })));
        handle.flush();
      } finally {
        handle.close();
      }
    }
    await partial.move!(name);
    return partial;
  } catch (e) {
    // Another load may have stored the same file meanwhile (two tabs): use it.
    const kept = await opfsFile(root, path, false).catch(() => null);
    await folder.removeEntry(`${name}.part`).catch(() => {});
    if (kept) return kept.file;
    throw e;
  }
}

/**
 * A ByteSource over an OPFS file. In a dedicated Web Worker, reads go through a synchronous access
 * handle straight into the target (WebAssembly memory: no stream, no copy), into memory the loader has
 * zero-filled first (prefault: on this project's VM, read() into untouched pages took 6.0-6.8 s for
 * OLMo-1B's 2.35 GB, into filled ones 0.2 s); elsewhere (a page's main thread), and where the file
 * cannot be opened that way, through the file's Blob.
 */
async function opfsFileSource(name: string, handle: FileHandleLike): Promise<ByteSource> {
  const blob = await handle.getFile();
  const viaBlob = blobSource(name, blob);
  if (!handle.createSyncAccessHandle) return viaBlob;
  const size = blob.size;
  const timers = globalThis as unknown as { setTimeout(f: () => void, ms: number): number; clearTimeout(id: number | undefined): void };
  // One access handle serves a run of reads and is closed once none came for HANDLE_IDLE_MS (not one
  // per read: each open is a round trip to the browser process). Reads run one at a time: a host without
  // read-only handles (the mode option, Chromium 121+) locks the file to one handle, and where another
  // holds it (NoModificationAllowedError), this source reads through the Blob from then on.
  let access: Promise<SyncAccessHandleLike> | null = null;
  let idle: number | undefined;
  let locked = false;
  let last: Promise<unknown> = Promise.resolve();
  const readAt = (offset: number, target: Uint8Array): Promise<void> => {
    const run = async () => {
      if (offset + target.length > size) throw new Error(`${name}: ${target.length} bytes at ${offset} run past the file's end (${size} bytes)`);
      timers.clearTimeout(idle);
      if (locked) return viaBlob.readInto!(offset, target);
      access ??= handle.createSyncAccessHandle!({ mode: "read-only" });
      const opened = access;
      let reader: SyncAccessHandleLike;
      try {
        reader = await opened;
      } catch (e) {
        access = null;
        if ((e as { name?: string }).name !== "NoModificationAllowedError") throw e;
        locked = true; // the rest of this source's reads go through the Blob (not one failed open each)
        return viaBlob.readInto!(offset, target);
      }
      try {
        for (let filled = 0; filled < target.length; ) {
          const n = reader.read(target.subarray(filled), { at: offset + filled });
          if (n <= 0) throw new Error(`${name}: no bytes at ${offset + filled} (the file shrank?)`);
          filled += n;
        }
      } finally {
        idle = timers.setTimeout(() => {
          if (access === opened) access = null;
          reader.close();
        }, HANDLE_IDLE_MS);
      }
    };
    const next = last.then(run, run);
    last = next.catch(() => {});
    return next;
  };
  return {
    name,
    size,
    read: async (offset, length) => {
      const bytes = new Uint8Array(length);
      await readAt(offset, bytes);
      return bytes;
    },
    readInto: readAt,
    // Only for reads through access handles: Blob streams ran slower after the fill (bench/NOTES.md, "Loading").
    get prefault() {
      return !locked;
    },
  };
}

