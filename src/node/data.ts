// Training data on disk in OLMo's format (src/train/data.ts): a folder holding input_ids.npy and,
// optionally, label_mask.npy beside it, or the ids file itself. Files are checked for OLMo's raw
// layout before training starts: no .npy header, not text, a whole number of ids, a mask of the same
// length. Ids past the last whole instance are dropped, as OLMo drops them (the caller may warn).

import { existsSync } from "node:fs";
import { mkdir, readFile, stat } from "node:fs/promises";
import { writeFileAtomic } from "./fs.js";
import { basename, join } from "node:path";
import { DataError, TokenDataset, type IdDType } from "../train/data.js";

export interface TokenDatasetFiles {
  /** The label mask file (default: label_mask.npy beside input_ids.npy in a folder, else all ones). */
  labelMask?: string;
  /** The ids' type (default uint16). */
  idsDType?: IdDType;
  seqLen: number;
  /** Ids at or above this are refused (the model's vocabulary size). */
  vocabSize: number;
}

async function readDataFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(code === "ENOENT" ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Read `path` (a folder with input_ids.npy [+ label_mask.npy], or an ids file) as a TokenDataset. */
export async function readTokenDataset(path: string, options: TokenDatasetFiles): Promise<TokenDataset> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new DataError(`${path} does not exist: expected a folder with input_ids.npy (from \`olmo prepare-data\`) or an ids file`);
  }
  const idsFile = isDir ? join(path, "input_ids.npy") : path;
  if (/\.(txt|text|md|json|jsonl|csv)$/i.test(idsFile)) {
    throw new DataError(`${idsFile} is text, not token ids: tokenize it into OLMo's format first with \`olmo prepare-data --input ${idsFile} ...\``);
  }
  const maskFile = options.labelMask ?? (isDir && existsSync(join(path, "label_mask.npy")) ? join(path, "label_mask.npy") : null);
  const dtype = options.idsDType ?? "uint16";
  const ids = TokenDataset.idsFromBytes(await readDataFile(idsFile, "the ids file"), dtype, idsFile);
  const mask = maskFile ? await readDataFile(maskFile, "the label mask") : null;
  if (mask && mask.length !== ids.length) {
    throw new DataError(`${maskFile} has ${mask.length} entries but ${idsFile} has ${ids.length} ids: a label mask holds one byte per token`);
  }
  return new TokenDataset(ids, mask, options.seqLen, options.vocabSize, basename(idsFile));
}

/** Write ids and label mask as `dir`/input_ids.npy and `dir`/label_mask.npy (raw memmaps, no .npy header, as OLMo reads them). */
export async function writeTokenData(dir: string, ids: Uint16Array | Uint32Array, mask: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Each file whole or not at all: a short ids file could still pass the loader's size checks.
  await writeFileAtomic(join(dir, "input_ids.npy"), new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  await writeFileAtomic(join(dir, "label_mask.npy"), mask);
}
