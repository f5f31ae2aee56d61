// Model folders on disk, for the loader (src/io/checkpoint.ts reads through ModelSource / ByteSource).

import { open, stat } from "node:fs/promises";
import { join } from "node:path";
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
