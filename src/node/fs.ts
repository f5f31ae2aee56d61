// Model folders on disk, for the loader (src/io/checkpoint.ts reads through ModelSource / ByteSource).

import { existsSync, readdirSync } from "node:fs";
import { mkdir, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ByteSource } from "../io/safetensors.js";
import type { ModelSource } from "../io/checkpoint.js";

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
      await readInto(offset, bytes);
      return bytes;
    },
    readInto,
  };

  async function readInto(offset: number, target: Uint8Array): Promise<void> {
    const handle = await open(path, "r");
    try {
      for (let done = 0; done < target.length; ) {
        const { bytesRead } = await handle.read(target, done, target.length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: file ended at byte ${offset + done}, expected ${offset + target.length}`);
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
}

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
  await writeFile(temp, data);
  await rename(temp, path);
}

/**
 * Create the folder `out` with what `fill` writes into the folder it is given, so that `out` appears
 * whole or not at all: `fill` writes a temporary folder beside it (named by the process), which is
 * renamed into place at the end, and removed if `fill` throws. `out` must not exist or be empty;
 * `what` names the caller in that error.
 */
export async function writeFolderAtomic(out: string, what: string, fill: (staging: string) => Promise<void>): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${what}: ${out} exists and is not empty; give a new folder`);
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
