// Training data on disk in OLMo's format (src/train/data.ts): a folder holding input_ids.npy and,
// optionally, label_mask.npy beside it, or the ids file itself.

import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { TokenDataset, type IdDType } from "../train/data.js";

export interface TokenDatasetFiles {
  /** The label mask file (default: label_mask.npy beside input_ids.npy in a folder, else all ones). */
  labelMask?: string;
  /** The ids' type (default uint16). */
  idsDType?: IdDType;
  seqLen: number;
  /** Ids at or above this are refused (the model's vocabulary size). */
  vocabSize: number;
}

/** Read `path` (a folder with input_ids.npy [+ label_mask.npy], or an ids file) as a TokenDataset. */
export async function readTokenDataset(path: string, options: TokenDatasetFiles): Promise<TokenDataset> {
  const isDir = (await stat(path)).isDirectory();
  const idsFile = isDir ? join(path, "input_ids.npy") : path;
  const maskFile = options.labelMask ?? (isDir && existsSync(join(path, "label_mask.npy")) ? join(path, "label_mask.npy") : null);
  const ids = TokenDataset.idsFromBytes(await readFile(idsFile), options.idsDType ?? "uint16", idsFile);
  const mask = maskFile ? new Uint8Array(await readFile(maskFile)) : null;
  return new TokenDataset(ids, mask, options.seqLen, options.vocabSize, basename(idsFile));
}

/** Write ids and label mask as `dir`/input_ids.npy and `dir`/label_mask.npy (raw memmaps, no .npy header, as OLMo reads them). */
export async function writeTokenData(dir: string, ids: Uint16Array | Uint32Array, mask: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "input_ids.npy"), new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  await writeFile(join(dir, "label_mask.npy"), mask);
}
