// Model folders on disk, for the loader (src/io/checkpoint.ts reads through ModelSource / ByteSource).

import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ByteSource } from "../io/safetensors.js";
import { parseJsonObject, type ModelSource } from "../io/checkpoint.js";

/** A file on disk as a ByteSource: each read opens, reads the range, and closes. */
export async function fileSource(path: string): Promise<ByteSource | null> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) return null;
    size = info.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  return {
    name: path,
    size,
    read: async (offset, length) => {
      const bytes = new Uint8Array(length);
      await withFile(offset, length, (handle) => readParts(handle, offset, bytes));
      return bytes;
    },
    // Through a bounce buffer, into a tensor the loader has zero-filled first: see BOUNCE_BYTES.
    prefault: true,
    readInto: (offset, target) =>
      withFile(offset, target.length, async (handle) => {
        if (target.length < BOUNCE_MIN_BYTES) return readParts(handle, offset, target);
        const bounce = bounces.pop() ?? new Uint8Array(BOUNCE_BYTES);
        try {
          for (let done = 0; done < target.length; done += BOUNCE_BYTES) {
            const window = bounce.subarray(0, Math.min(BOUNCE_BYTES, target.length - done));
            await readParts(handle, offset + done, window);
            target.set(window, done);
          }
        } finally {
          bounces.push(bounce);
        }
      }),
  };

  async function withFile(offset: number, length: number, use: (handle: FileHandle) => Promise<void>): Promise<void> {
    if (offset + length > size) throw new Error(`${path}: file ended at byte ${size}, expected ${offset + length}`);
    const handle = await open(path, "r");
    try {
      await use(handle);
    } finally {
      await handle.close();
    }
  }

  /** target.length bytes at offset, a large read as READ_PARTS reads at once (each on one of libuv's pool threads). */
  async function readParts(handle: FileHandle, offset: number, target: Uint8Array): Promise<void> {
    const step = target.length >= BOUNCE_MIN_BYTES ? Math.ceil(target.length / READ_PARTS) : target.length;
    const reads = [];
    for (let start = 0; start < target.length; start += step) reads.push(readRange(start, Math.min(target.length, start + step)));
    // Every part settled before returning, failed or not: none may still write into a buffer that the
    // caller hands to another read.
    const failed = (await Promise.allSettled(reads)).find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;

    async function readRange(start: number, end: number): Promise<void> {
      for (let done = start; done < end; ) {
        const { bytesRead } = await handle.read(target, done, end - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: no bytes at ${offset + done} (the file shrank?), expected ${offset + end}`);
        done += bytesRead;
      }
    }
  }
}

// Why readInto reads through a bounce buffer, in parts at once. Some hosts (this project's VM) fault a
// page in at a cost on its first access from user code and again on its first access from the kernel
// (a read() copying into it). The loader first zero-fills each new tensor on every thread (prefault in
// src/io/checkpoint.ts: the user-side faults, in parallel), and readInto copies into the tensor from a
// buffer that earlier reads have touched, so the kernel never touches the tensor's pages. Where pages
// are cheap, this costs one more copy of each byte. Measured step by step in bench/NOTES.md,
// "Loading". Each read in flight at once keeps its 32 MiB buffer for the next (a load has one in flight).
const BOUNCE_BYTES = 32 * 2 ** 20;
/** Reads smaller than this go straight into their target, in one read. */
const BOUNCE_MIN_BYTES = 4 * 2 ** 20;
const READ_PARTS = 4;
/** Bounce buffers not in use (one per read in flight, kept for the next). */
const bounces: Uint8Array[] = [];

/** A model folder on disk. */
export function folderSource(dir: string): ModelSource {
  return { name: dir, open: (file) => fileSource(join(dir, file)) };
}

/**
 * Write a file so that a reader (or a crash) sees the old contents or the new, never a part: write a
 * temporary file beside it (named by the process, so two runs writing the same path do not share one),
 * then rename it over the path. Checkpoints add fsync on top of this (checkpoint.ts).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  // Created exclusively (after removing what a crash left): a link planted there is never written through.
  await rm(temp, { force: true });
  await writeFile(temp, data, { flag: "wx" });
  await rename(temp, path);
}

/**
 * The JSON object in `file`; a file that is not JSON, or not an object, is an error naming the file (a
 * run's trainer_state.json, an adapter's adapter_config.json: hand-edited or cut short by a crash).
 */
export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return parseJsonObject(text, file);
}

/** Throw unless `out` can become a new folder: it does not exist, or is an empty folder. `what` names the caller. */
export function checkNewFolder(out: string, what: string): void {
  if (existsSync(out) && !statSync(out).isDirectory()) throw new Error(`${what}: ${out} is a file; give a new folder`);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${what}: ${out} exists and is not empty; give a new folder`);
}

/**
 * Create the folder `out` with what `fill` writes into the folder it is given, so that `out` appears
 * whole or not at all: `fill` writes a temporary folder beside it (named by the process), which is
 * renamed into place at the end, and removed if `fill` throws. `out` must not exist or be empty;
 * `what` names the caller in that error.
 */
export async function writeFolderAtomic(out: string, what: string, fill: (staging: string) => Promise<void>): Promise<void> {
  checkNewFolder(out, what);
  const staging = join(dirname(out), `.${basename(out)}.${process.pid}.partial`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    await fill(staging);
    if (existsSync(out)) await rm(out, { recursive: true }); // the empty folder checked above
    await rename(staging, out);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/**
 * A text file as a string, refusing bytes that are not UTF-8 (naming the first one) instead of turning
 * them into U+FFFD, which would then be tokenized and trained on. Python's open() refuses them too.
 */
export function decodeUtf8File(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes); // a BOM kept, as Python's open() keeps it
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new Error(`${file} is not UTF-8 text: byte ${at} (0x${bytes[at]?.toString(16).padStart(2, "0")}) starts no valid UTF-8 character (is it Latin-1 or UTF-16?)`);
  }
}

/** Offset of the first byte that starts no valid UTF-8 character (a stray continuation, a lead byte not continued, an overlong or surrogate form). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const x = b[i]!;
    const n = x < 0x80 ? 0 : x >= 0xc2 && x <= 0xdf ? 1 : x >= 0xe0 && x <= 0xef ? 2 : x >= 0xf0 && x <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    // The second byte's range is narrower after E0 (overlong), ED (surrogates), F0 (overlong), F4 (past U+10FFFF).
    const lo = x === 0xe0 ? 0xa0 : x === 0xf0 ? 0x90 : 0x80, hi = x === 0xed ? 0x9f : x === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= n; k++) {
      const c = b[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return b.length;
}

