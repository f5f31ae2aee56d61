// Byte-pair encoding of one word.
//
// A word (a byte-level string, one character per byte) starts as single characters. Repeatedly, the
// adjacent pair whose merge has the lowest rank (it was learned earliest) is merged everywhere it
// occurs, left to right, until no adjacent pair has a merge. The resulting pieces are vocabulary
// entries. Words repeat a lot in text, so results are cached.

export class BytePairEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private static readonly CACHE_LIMIT = 200_000;

  constructor(
    private readonly vocab: Map<string, number>,
    merges: readonly string[],
  ) {
    merges.forEach((merge, rank) => {
      if (!this.ranks.has(merge)) this.ranks.set(merge, rank); // a repeated merge keeps its first rank
    });
  }

  /** Token ids of one byte-level word. */
  encodeWord(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const ids = this.merge(word).map((piece) => this.idOf(piece, word));
    if (this.cache.size >= BytePairEncoder.CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  private idOf(piece: string, word: string): number {
    const id = this.vocab.get(piece);
    // Cannot happen with a consistent file (every byte and every merge result is in the vocabulary,
    // which the config check verifies for merges); say so rather than emit garbage.
    if (id === undefined) throw new Error(`tokenizer: BPE piece ${JSON.stringify(piece)} of ${JSON.stringify(word)} is not in the vocabulary`);
    return id;
  }

  private merge(word: string): string[] {
    const parts = Array.from(word);
    while (parts.length > 1) {
      let best = Infinity;
      let bestPair = "";
      for (let i = 0; i + 1 < parts.length; i++) {
        const pair = parts[i] + " " + parts[i + 1];
        const rank = this.ranks.get(pair);
        if (rank !== undefined && rank < best) {
          best = rank;
          bestPair = pair;
        }
      }
      if (best === Infinity) break;
      const [left, right] = bestPair.split(" ") as [string, string];
      let write = 0;
      for (let read = 0; read < parts.length; read++) {
        if (read + 1 < parts.length && parts[read] === left && parts[read + 1] === right) {
          parts[write++] = left + right;
          read++;
        } else {
          parts[write++] = parts[read]!;
        }
      }
      parts.length = write;
    }
    return parts;
  }
}
