// OLMo's fine-tuning data: `input_ids.npy` and `label_mask.npy` are raw little-endian memmaps without
// an .npy header (uint16 ids by default, or uint32; the mask one byte per token), cut into instances of
// seq_len tokens with the remainder dropped. Instances are visited in a seeded random order, one
// permutation per epoch (seed + epoch), or in file order with shuffle off: step k (1-based) then uses
// instances (k-1)B ... kB-1, modulo the instance count.

import { Random } from "../core/random.js";

export type IdDType = "uint16" | "uint32";

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

/**
 * Text, not ids: the first 64 KiB hold no zero byte and decode as UTF-8. Token ids always hold zero
 * bytes: a uint32 id below 2^24 has a zero high byte, and any real corpus has uint16 ids below 256
 * (punctuation, " the"), whose high byte is zero.
 */
function looksLikeText(bytes: Uint8Array): boolean {
  const head = bytes.subarray(0, 65536);
  if (head.length < 16 || head.includes(0)) return false;
  try {
    // A multi-byte character cut at the 64 KiB boundary is not an error (stream: true).
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}

export class TokenDataset {
  readonly instances: number;

  constructor(
    readonly ids: Uint16Array | Uint32Array,
    readonly mask: Uint8Array | null,
    readonly seqLen: number,
    vocabSize: number,
    source = "input_ids",
  ) {
    if (!Number.isInteger(seqLen) || seqLen < 2) throw new DataError(`seq_len must be an integer >= 2, got ${seqLen}`);
    if (mask && mask.length !== ids.length) {
      throw new DataError(`label mask has ${mask.length} entries but ${source} has ${ids.length} tokens: they must match one to one`);
    }
    this.instances = Math.floor(ids.length / seqLen);
    if (this.instances === 0) throw new DataError(`${source} has ${ids.length} tokens, fewer than one instance of seq_len ${seqLen}`);
    for (let i = 0; i < this.instances * seqLen; i++) {
      if (ids[i]! >= vocabSize) {
        throw new DataError(
          `${source}: token ${i} is id ${ids[i]}, outside the model's vocabulary [0, ${vocabSize}) ` +
            `(data tokenized for another model, or ids of another dtype: --ids-dtype uint16 / uint32)`,
        );
      }
    }
    if (mask) {
      let labels = 0;
      for (let i = 0; i < mask.length; i++) {
        if (mask[i]! > 1) throw new DataError(`label mask entry ${i} is ${mask[i]}; a label mask holds one byte per token, 0 or 1`);
        // The first token of an instance is never a target (nothing predicts it).
        if (i < this.instances * seqLen && i % seqLen !== 0) labels += mask[i]!;
      }
      // Every target masked: the loss is 0 and training would only apply weight decay.
      if (labels === 0) throw new DataError(`the label mask of ${source} masks every token: there is nothing to train on`);
    }
  }

  /**
   * Read raw memmap bytes (the file contents) as ids of `dtype`, refusing what is not OLMo's raw
   * layout: an .npy file with its header (numpy.save), text, a size that is not a whole number of
   * ids, and uint32 ids read as uint16.
   */
  static idsFromBytes(bytes: Uint8Array, dtype: IdDType, source: string): Uint16Array | Uint32Array {
    const size = dtype === "uint16" ? 2 : 4;
    const prepare = "write it with `olmo prepare-data` (or numpy's ndarray.tofile)";
    if (bytes.length >= 6 && bytes[0] === 0x93 && String.fromCharCode(...bytes.subarray(1, 6)) === "NUMPY") {
      throw new DataError(`${source} is an .npy file with a header (numpy.save); OLMo reads raw ids without a header: ${prepare}`);
    }
    if (looksLikeText(bytes)) throw new DataError(`${source} looks like text, not token ids: tokenize it first with \`olmo prepare-data --input ${source} ...\``);
    if (bytes.length % size !== 0) throw new DataError(`${source}: ${bytes.length} bytes is not a whole number of ${dtype} ids (${size} bytes each)`);
    const copy = bytes.slice(); // aligned, owned
    const ids = dtype === "uint16" ? new Uint16Array(copy.buffer, 0, copy.length / 2) : new Uint32Array(copy.buffer, 0, copy.length / 4);
    // Wider ids read as narrower ones: every second value is a high half, 0 for any vocabulary under
    // 65536 (uint32 read as uint16, int64 read as uint32). Ids that are all 0 are not that.
    const highHalvesZero = ids.length >= 32 && ids.every((v, i) => i % 2 === 0 || v === 0) && ids.some((v, i) => i % 2 === 0 && v !== 0);
    if (highHalvesZero && dtype === "uint16") throw new DataError(`${source}: every second uint16 id is 0, as uint32 ids read as uint16 are: pass --ids-dtype uint32`);
    if (highHalvesZero) {
      throw new DataError(`${source}: every second uint32 id is 0, as 64-bit ids read as uint32 are; OLMo's ids are uint16 or uint32: convert them (numpy: ids.astype(np.uint32).tofile(path))`);
    }
    return ids;
  }

  /** The instance index at position `i` of the visiting order. */
  instanceAt(i: number, shuffle: boolean, seed: number): number {
    if (!shuffle) return i % this.instances;
    const epoch = Math.floor(i / this.instances);
    return this.permutation(seed + epoch)[i % this.instances]!;
  }

  private cached: { seed: number; order: Uint32Array } | null = null;

  /** A Fisher-Yates permutation of the instances from core/random.ts's generator. */
  private permutation(seed: number): Uint32Array {
    if (this.cached?.seed === seed) return this.cached.order;
    const order = Uint32Array.from({ length: this.instances }, (_, i) => i);
    const random = new Random(seed);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random.uniform() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    this.cached = { seed, order };
    return order;
  }

  /** Ids [B * seqLen] and mask [B * seqLen] (1 where the label counts) of `count` instances starting at visiting position `start`. */
  batch(start: number, count: number, shuffle: boolean, seed: number): { ids: Int32Array; mask: Float32Array } {
    const T = this.seqLen;
    const ids = new Int32Array(count * T), mask = new Float32Array(count * T);
    for (let b = 0; b < count; b++) {
      const base = this.instanceAt(start + b, shuffle, seed) * T;
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = this.ids[base + t]!;
        mask[b * T + t] = this.mask ? (this.mask[base + t] ? 1 : 0) : 1;
      }
    }
    return { ids, mask };
  }
}
