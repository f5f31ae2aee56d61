// Byte-pair encoding of one word.
//
// A word starts as one token per UTF-8 byte (the vocabulary holds all bytes that UTF-8 uses, written
// as byte-level characters). Repeatedly, the adjacent pair whose merge has the lowest rank (it was
// learned earliest) is merged everywhere it occurs, left to right, until no adjacent pair has a
// merge. Tokens are handled as ids, and a pair as one number, so merging allocates no strings.
// (The tokenizer caches results per word: words repeat a lot in text.)

import { byteToChar } from "./byte-level.js";

export class BytePairEncoder {
  /** id of each byte's token (-1 where the vocabulary has none, e.g. 0xC0, which UTF-8 never uses). */
  private readonly byteIds = new Int32Array(256);
  /** pair key (left * stride + right) -> rank of its merge; the merged token is mergedIds[rank]. */
  private readonly rankOfPair = new Map<number, number>();
  private readonly mergedIds: Int32Array;
  private readonly stride: number;

  constructor(vocab: Map<string, number>, merges: readonly string[]) {
    this.stride = Math.max(0, ...vocab.values()) + 1;
    for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(byteToChar[b]!) ?? -1;
    this.mergedIds = new Int32Array(merges.length);
    merges.forEach((merge, rank) => {
      // The config check guarantees both parts and their concatenation are in the vocabulary.
      const [left, right] = merge.split(" ") as [string, string];
      const key = vocab.get(left)! * this.stride + vocab.get(right)!;
      if (!this.rankOfPair.has(key)) this.rankOfPair.set(key, rank); // a repeated merge keeps its first rank
      this.mergedIds[rank] = vocab.get(left + right)!;
    });
  }

  /** Token ids of one word given as UTF-8 bytes. */
  encodeWord(bytes: Uint8Array): number[] {
    const symbols = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      const id = this.byteIds[bytes[i]!]!;
      if (id < 0) throw new Error(`tokenizer: the vocabulary has no token for byte 0x${bytes[i]!.toString(16)}`);
      symbols[i] = id;
    }
    let length = symbols.length;
    while (length > 1) {
      let bestRank = Infinity;
      let bestKey = -1;
      for (let i = 0; i + 1 < length; i++) {
        const key = symbols[i]! * this.stride + symbols[i + 1]!;
        const rank = this.rankOfPair.get(key);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestKey = key;
        }
      }
      if (bestKey < 0) break;
      const merged = this.mergedIds[bestRank]!;
      let write = 0;
      for (let read = 0; read < length; read++) {
        if (read + 1 < length && symbols[read]! * this.stride + symbols[read + 1]! === bestKey) {
          symbols[write++] = merged;
          read++;
        } else {
          symbols[write++] = symbols[read]!;
        }
      }
      length = write;
    }
    symbols.length = length;
    return symbols;
  }
}
