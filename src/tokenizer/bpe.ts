// Byte-pair encoding of one word.
//
// A word starts as one token per UTF-8 byte (the vocabulary holds all bytes that UTF-8 uses, written
// as byte-level characters). Repeatedly, the adjacent pair whose merge has the lowest rank (it was
// learned earliest) is merged, the leftmost such pair first, until no adjacent pair has a merge.
//
// This is `tokenizers`' Word::merge_all (tokenizers/src/models/bpe/word.rs), which takes
// O(n log n) in the word's length n: the word is a doubly linked list of symbols, and a binary heap
// holds every candidate merge keyed by (rank, position of its left symbol). Popping the smallest gives
// the next merge; merging pushes the two pairs it creates with its neighbours. Entries made stale by an
// earlier merge (a symbol consumed, or a neighbour that changed) are not removed from the heap but
// skipped when popped: the pair now at that position must still be the one the entry was made for.
// A naive "scan for the best pair, merge it, rescan" is O(n^2) and takes minutes on one long word
// (a megabyte of text with no spaces).
//
// Tokens are handled as dense indices (0..vocabulary entries - 1) whatever the ids are; ids are looked
// up only for the result. Merge ranks are found in an open-addressing table of typed arrays keyed by
// the pair itself, so a lookup allocates nothing (left * entries + right passes 2^31, where a Map key
// becomes a heap number).

import { byteToChar } from "./byte-level.js";

export class BytePairEncoder {
  /** Dense index of each byte's token (-1 where the vocabulary has none, e.g. 0xC0, which UTF-8 never uses). */
  private readonly byteIndex = new Int32Array(256);
  /** The id of each dense index. */
  private readonly idOfIndex: Int32Array;
  /** (left, right) -> rank of its merge; the merged token is mergedIndex[rank]. */
  private readonly ranks: PairTable;
  private readonly mergedIndex: Int32Array;

  /**
   * `vocab` maps token strings to ids, which must be distinct integers in [0, 2^31) (the config check
   * guarantees it, and that both parts of every merge and their concatenation are in `vocab`).
   */
  constructor(vocab: Map<string, number>, merges: readonly (readonly [string, string])[]) {
    const indexOf = new Map<string, number>();
    this.idOfIndex = new Int32Array(vocab.size);
    let next = 0;
    for (const [token, id] of vocab) {
      indexOf.set(token, next);
      this.idOfIndex[next++] = id;
    }
    for (let b = 0; b < 256; b++) this.byteIndex[b] = indexOf.get(byteToChar[b]!) ?? -1;
    this.mergedIndex = new Int32Array(merges.length);
    this.ranks = new PairTable(merges.length);
    for (let rank = 0; rank < merges.length; rank++) {
      const [left, right] = merges[rank]!;
      // A merge listed twice keeps its last rank, as `tokenizers` does (its merge map is a HashMap
      // filled in order, so a later entry overwrites an earlier one).
      this.ranks.set(indexOf.get(left)!, indexOf.get(right)!, rank);
      this.mergedIndex[rank] = indexOf.get(left + right)!;
    }
  }

  /** Token ids of one word given as UTF-8 bytes. */
  encodeWord(bytes: Uint8Array): number[] {
    const n = bytes.length;
    // The word as a linked list over positions 0..n-1; a symbol merged into its left neighbour gets -1.
    const symbol = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const index = this.byteIndex[bytes[i]!]!;
      if (index < 0) throw new Error(`tokenizer: the vocabulary has no token for byte 0x${bytes[i]!.toString(16)}`);
      symbol[i] = index;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    if (n < 2) return n === 1 ? [this.idOfIndex[symbol[0]!]!] : [];

    const ranks = this.ranks;
    const heap = new MergeHeap(n);
    for (let i = 0; i + 1 < n; i++) {
      const rank = ranks.get(symbol[i]!, symbol[i + 1]!);
      if (rank >= 0) heap.push(rank, i);
    }
    while (heap.size > 0) {
      const rank = heap.topRank(), pos = heap.topPos();
      heap.pop();
      const right = next[pos]!;
      // Stale: the left symbol was consumed, is now last, or the pair at pos is no longer this merge.
      if (symbol[pos]! < 0 || right < 0 || ranks.get(symbol[pos]!, symbol[right]!) !== rank) continue;
      const merged = this.mergedIndex[rank]!;
      symbol[pos] = merged;
      symbol[right] = -1;
      const after = next[right]!;
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos]!;
      if (before >= 0) {
        const r = ranks.get(symbol[before]!, merged);
        if (r >= 0) heap.push(r, before);
      }
      if (after >= 0) {
        const r = ranks.get(merged, symbol[after]!);
        if (r >= 0) heap.push(r, pos);
      }
    }
    const ids: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) ids.push(this.idOfIndex[symbol[i]!]!);
    return ids;
  }
  /**
   * The merges that build one word, for a reader (Tokenizer.mergeSteps): the ids after each merge,
   * starting from the bytes. The plain O(n^2) loop the heap above makes fast: merge the adjacent pair
   * of lowest rank, the leftmost among equals, until none has a merge. Its last step is encodeWord's
   * result (test/tokenizer.test.ts checks it on a corpus); encode never calls this.
   */
  mergeSteps(bytes: Uint8Array): { ids: number[]; at: number; rank: number }[] {
    const symbols = Array.from(bytes, (b) => {
      const index = this.byteIndex[b]!;
      if (index < 0) throw new Error(`tokenizer: the vocabulary has no token for byte 0x${b.toString(16)}`);
      return index;
    });
    const ids = () => symbols.map((s) => this.idOfIndex[s]!);
    const steps = [{ ids: ids(), at: -1, rank: -1 }];
    for (;;) {
      let at = -1, best = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(symbols[i]!, symbols[i + 1]!);
        if (rank >= 0 && (best < 0 || rank < best)) (at = i), (best = rank);
      }
      if (at < 0) return steps;
      symbols.splice(at, 2, this.mergedIndex[best]!);
      steps.push({ ids: ids(), at, rank: best });
    }
  }
}

/** A map (left, right) -> rank: open addressing with linear probing, at most half full. */
class PairTable {
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly values: Int32Array;
  private readonly mask: number;

  constructor(pairs: number) {
    let capacity = 16;
    while (capacity < 2 * pairs) capacity *= 2;
    this.lefts = new Int32Array(capacity).fill(-1);
    this.rights = new Int32Array(capacity);
    this.values = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  private slot(left: number, right: number): number {
    let i = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) >>> 0;
    i = (i ^ (i >>> 15)) & this.mask;
    while (this.lefts[i]! >= 0 && (this.lefts[i] !== left || this.rights[i] !== right)) i = (i + 1) & this.mask;
    return i;
  }

  /** The value of (left, right), or -1. */
  get(left: number, right: number): number {
    const i = this.slot(left, right);
    return this.lefts[i]! >= 0 ? this.values[i]! : -1;
  }

  set(left: number, right: number, value: number): void {
    const i = this.slot(left, right);
    this.lefts[i] = left;
    this.rights[i] = right;
    this.values[i] = value;
  }
}

/**
 * A binary min-heap of candidate merges ordered by (rank, position): the lowest rank first, and among
 * equal ranks the leftmost, as `tokenizers`' Merge ordering. Stored as two parallel typed arrays.
 */
class MergeHeap {
  private ranks: Int32Array;
  private positions: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.ranks = new Int32Array(capacity);
    this.positions = new Int32Array(capacity);
  }

  topRank(): number {
    return this.ranks[0]!;
  }

  topPos(): number {
    return this.positions[0]!;
  }

  private less(a: number, b: number): boolean {
    const ra = this.ranks[a]!, rb = this.ranks[b]!;
    return ra < rb || (ra === rb && this.positions[a]! < this.positions[b]!);
  }

  private swap(a: number, b: number): void {
    const r = this.ranks[a]!, p = this.positions[a]!;
    this.ranks[a] = this.ranks[b]!;
    this.positions[a] = this.positions[b]!;
    this.ranks[b] = r;
    this.positions[b] = p;
  }

  push(rank: number, pos: number): void {
    if (this.size === this.ranks.length) {
      // Each merge pushes at most two entries: growth is rare and geometric.
      const ranks = new Int32Array(this.size * 2), positions = new Int32Array(this.size * 2);
      ranks.set(this.ranks);
      positions.set(this.positions);
      this.ranks = ranks;
      this.positions = positions;
    }
    let i = this.size++;
    this.ranks[i] = rank;
    this.positions[i] = pos;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): void {
    const last = --this.size;
    this.ranks[0] = this.ranks[last]!;
    this.positions[0] = this.positions[last]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1, right = left + 1;
      let smallest = i;
      if (left < last && this.less(left, smallest)) smallest = left;
      if (right < last && this.less(right, smallest)) smallest = right;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}
