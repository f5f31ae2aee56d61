// A model folder whose files are already in memory: a Worker's data modules or bindings, files a
// bundle carries, bytes a test made. Reads are views of those bytes, so the weights are copied once,
// into the backend's memory, and nothing more is held than the caller already holds.

import type { ModelSource } from "./checkpoint.js";
import type { ByteSource } from "./safetensors.js";

/** One file: its bytes, or its text (config.json, tokenizer.json), encoded as UTF-8 when opened. */
export type FileContents = ArrayBufferView | ArrayBuffer | string;

/** The folder `name` holding `files` (file name -> contents); a name not there is a missing file. */
export function bytesSource(name: string, files: Readonly<Record<string, FileContents>>): ModelSource {
  return {
    name,
    open: async (file) => {
      if (!Object.hasOwn(files, file)) return null;
      const contents = files[file]!;
      // (ArrayBuffer.isView rather than instanceof: the bytes may come from another realm, as in a vm sandbox.)
      const bytes =
        typeof contents === "string" ? new TextEncoder().encode(contents)
        : ArrayBuffer.isView(contents) ? new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength)
        : new Uint8Array(contents);
      return bytesFile(`${name}/${file}`, bytes);
    },
  };
}

function bytesFile(name: string, bytes: Uint8Array): ByteSource {
  const range = (offset: number, length: number) => {
    if (offset < 0 || length < 0 || offset + length > bytes.length) throw new RangeError(`${name}: bytes ${offset}..${offset + length} are past its end (${bytes.length} bytes)`);
    return bytes.subarray(offset, offset + length);
  };
  return {
    name,
    size: bytes.length,
    // A copy: the caller may keep or change what it is given.
    read: async (offset, length) => range(offset, length).slice(),
    readInto: async (offset, target) => target.set(range(offset, target.length)),
  };
}
