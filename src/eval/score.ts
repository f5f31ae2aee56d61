// Multiple-choice scoring as OLMo's downstream evaluator does it (allenai/OLMo olmo/eval/downstream.py,
// ICLMultiChoiceTaskDataset.prep_examples and ICLMetric):
//
//   ctx, cont, dc = tokens of the context, the continuation, the domain-conditional prompt (each
//                   encoded alone, no special tokens)
//   query         = (ctx + cont[:-1])[-context_length:]       (truncated from the left)
//   ll            = sum over the continuation's tokens of log p(token | everything before it)
//   ll_dc         = the same with dc in place of ctx (never truncated)
//   chars         = len(continuation string) - 1               (code points, without the leading space)
//   acc      picks argmax ll,   len_norm picks argmax ll / chars,   pmi_dc picks argmax ll / ll_dc
//   (argmax takes the first of equal values, as torch.argmax; each metric is the fraction of items whose
//   pick is the label.)
//
// Speed: the choices of an item share their context, so the tokens every query has in common are run
// once into a KV cache and each choice runs only its own tail from there (downstream.py runs every
// query whole; the log-likelihoods are the same). All of an item's tails, the context's and the
// domain-conditional prompt's, then run as ONE packed forward (scorePacked): each tail continues a
// cache of its own holding a copy of its prefix's keys and values, and Olmo.forward's `segments` lay
// the tails end to end in one row, so the linear layers, nearly all the work, see every tail token at
// once with no padding (an earlier version batched the tails as [choices, longest tail], padded: a
// quarter of its rows were padding, and the context's and domain-conditional tails were two
// forwards). Where the caches would take more than a quarter of the free memory, the tails run one
// after another in the prefix's cache instead: attention reads only the first `cache.length + T`
// cached positions, so each starts by setting the length back to the shared prefix and overwrites the
// previous choice's tail.

import type { MemoryUsage } from "../core/backend.js";
import { noGrad } from "../core/autograd.js";
import { tensor } from "../core/creation.js";
import { scope, type Tensor } from "../core/tensor.js";
import { KVCache, type Olmo } from "../model/olmo.js";
import { negativeLogLikelihood, slice, writeSlice } from "../ops/index.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { EvalDataError, multipleChoiceTask, pyLen, RowReader, type MetricName, type MultipleChoiceTask } from "./tasks.js";

/** One continuation to score: the model reads `query`; positions ctxLen-1 ... predict `continuation`. */
export interface ContinuationRequest {
  query: number[];
  ctxLen: number;
  continuation: number[];
}

export interface ChoiceScore {
  /** Summed log-probability of the continuation given the context. */
  ll: number;
  /** The same given the domain-conditional prompt. */
  llDc: number;
  /** The character count len_norm divides by. */
  chars: number;
  /** The continuation's token count. */
  tokens: number;
}

export interface ItemScore {
  index: number;
  label: number;
  choices: ChoiceScore[];
}

export interface TaskScores {
  task: string;
  items: number;
  acc: number;
  lenNorm: number;
  pmiDc: number;
  primaryMetric: MetricName;
  itemScores: ItemScore[];
}

/** Where a backend cannot say how much it holds (WebGPU, the reference backend), packed scoring's caches take at most this. */
export const PACKED_CACHE_BYTES_UNKNOWN_LIMIT = 2 ** 30;

/**
 * The most bytes packed scoring's KV caches may take: a quarter of what the backend can still hold,
 * the rest staying for activations and logits. A backend with no known limit (`limit` Infinity: WebGPU
 * has no API for the device's memory) gets 1 GiB, a quarter of a small 4 GiB GPU: an OLMo-1B item of
 * 2048 tokens with four choices would ask for 5 GiB of caches, and an OLMo-7B one for 20 GiB.
 */
export function packedCacheBudget({ limit, inUse }: MemoryUsage): number {
  return Number.isFinite(limit) ? (limit - inUse) / 4 : PACKED_CACHE_BYTES_UNKNOWN_LIMIT;
}

export interface ScoreOptions {
  /** Run the shared prefix of an item's queries once (default true); false runs every query from scratch. */
  reusePrefix?: boolean;
  /**
   * With reusePrefix, run all of an item's tails as one packed forward (default true, where their KV
   * caches fit a quarter of the free memory); false runs them one after another in the prefix's cache.
   */
  packTails?: boolean;
  /** Truncate queries on the left to this many tokens (default: the model's context length). */
  contextLength?: number;
  /** Names row i in error messages (default "row i"). */
  describeRow?: (index: number) => string;
  /** Called after each item. */
  onProgress?: (done: number, total: number) => void;
}

/** An item's requests: one per choice for the context, one per choice for the domain-conditional prompt. */
export interface PreparedItem {
  index: number;
  label: number;
  requests: ContinuationRequest[];
  dcRequests: ContinuationRequest[];
  chars: number[];
}

/** Tokenize one row into its requests (downstream.py's prep_examples). */
export function prepareItem(task: MultipleChoiceTask, tokenizer: Tokenizer, row: unknown, index: number, contextLength: number, where = `row ${index}`): PreparedItem {
  const item = task.item(new RowReader(row, where, task));
  const requests: ContinuationRequest[] = [], dcRequests: ContinuationRequest[] = [], chars: number[] = [];
  item.continuations.forEach((text, c) => {
    const continuation = tokenizer.encode(text);
    const ctx = tokenizer.encode(item.contexts[c]!);
    const dc = tokenizer.encode(item.domainConditionals[c]!);
    if (continuation.length === 0) throw new EvalDataError(`${where}: choice ${c} has an empty continuation`);
    if (continuation.length > contextLength) {
      throw new EvalDataError(`${where}: choice ${c}'s continuation has ${continuation.length} tokens, more than the context length ${contextLength}`);
    }
    if (ctx.length === 0) throw new EvalDataError(`${where}: the context of choice ${c} is empty: there is nothing to condition on`);
    if (dc.length === 0) throw new EvalDataError(`${where}: the domain-conditional prompt of choice ${c} is empty`);
    const query = [...ctx, ...continuation.slice(0, -1)].slice(-contextLength);
    // downstream.py's "actual_ctx_len": shorter than ctx when the left was cut off. (Its WinoGrande
    // keeps len(ctx) even then, which scores the wrong positions; that only matters past the context length.)
    requests.push({ query, ctxLen: query.length - continuation.length + 1, continuation });
    dcRequests.push({ query: [...dc, ...continuation.slice(0, -1)], ctxLen: dc.length, continuation });
    chars.push(pyLen(text) - 1); // the continuation's leading space is not counted
  });
  return { index, label: item.label, requests, dcRequests, chars };
}

/**
 * How many leading tokens the queries share and can run once: their longest common prefix, ending one
 * token before the earliest context end, so that every request's first scored position is in its own run.
 */
function sharedPrefixLength(requests: readonly ContinuationRequest[]): number {
  let shared = Math.min(...requests.map((r) => r.ctxLen)) - 1;
  for (const r of requests) {
    let i = 0;
    while (i < shared && r.query[i] === requests[0]!.query[i]) i++;
    shared = i;
  }
  return shared;
}

/** Run the first `shared` tokens of the first request into `cache` (emptied first). */
function runPrefix(model: Olmo, requests: readonly ContinuationRequest[], shared: number, cache: KVCache): void {
  cache.length = 0;
  if (shared === 0) return;
  noGrad(() => scope(() => void model.forward(ids(model, [requests[0]!.query.slice(0, shared)]), { cache, lastOnly: true })));
}

/**
 * What a request runs after the shared prefix: its tail, the tokens each tail position predicts, and the
 * first of those positions that belongs to the continuation.
 */
function tailOf(r: ContinuationRequest, shared: number): { tail: number[]; targets: number[]; first: number } {
  // Position i of a query predicts token i+1 of query + [last continuation token]; the tail's position
  // j is the query's position shared + j.
  return {
    tail: r.query.slice(shared),
    targets: [...r.query, r.continuation[r.continuation.length - 1]!].slice(shared + 1),
    first: r.ctxLen - 1 - shared,
  };
}

/**
 * Summed log-probabilities of the continuations (downstream.py's "acc" log-likelihood), one request
 * after another. With `cache`, the queries' common prefix runs once and each request then runs only its
 * tail from there; without, every query runs whole.
 */
export async function scoreContinuations(model: Olmo, requests: readonly ContinuationRequest[], cache: KVCache | null): Promise<number[]> {
  const shared = cache ? sharedPrefixLength(requests) : 0;
  if (cache) runPrefix(model, requests, shared, cache);
  // All runs are queued before any result is read, so a GPU backend works through them in one go.
  const pending = requests.map((r) => {
    const { tail, targets, first } = tailOf(r, shared);
    if (cache) cache.length = shared;
    const nll = noGrad(() => scope(() => negativeLogLikelihood(model.forward(ids(model, [tail]), { cache: cache ?? undefined }), ids(model, [targets]))));
    return { nll, first };
  });
  const out: number[] = [];
  try {
    for (const { nll, first } of pending) out.push(summedLogLikelihood(await nll.data(), first, nll.size));
  } finally {
    // A read can throw (WebGPU reports its errors there): the other queued results are freed too.
    for (const { nll } of pending) nll.dispose();
  }
  return out;
}

/**
 * Several groups of requests (an item's context requests and its domain-conditional ones) in one
 * packed forward: each group's shared prefix runs once into the group's first cache; every request
 * gets a cache after it holding a copy of that prefix, and all tails run packed end to end
 * (Olmo.forward's segments). caches[g]: batch-1 caches for group g, one more than its requests, each
 * holding the group's longest query. Returns each group's log-likelihoods.
 */
export async function scorePacked(
  model: Olmo, groups: readonly (readonly ContinuationRequest[])[], caches: readonly (readonly KVCache[])[],
): Promise<number[][]> {
  const runs: { group: number; cache: KVCache; tail: number[]; targets: number[]; first: number }[] = [];
  groups.forEach((requests, g) => {
    const [prefix, ...own] = caches[g] ?? [];
    if (requests.length === 0) throw new Error(`scorePacked: group ${g} has no requests`);
    if (!prefix || own.length < requests.length) throw new Error(`scorePacked: group ${g} has ${requests.length} requests but ${caches[g]?.length ?? 0} KV caches (one more is the prefix's)`);
    const shared = sharedPrefixLength(requests);
    runPrefix(model, requests, shared, prefix);
    for (const [c, r] of requests.entries()) {
      const cache = own[c]!;
      if (shared > 0) copyPrefix(prefix, cache, shared);
      cache.length = shared;
      runs.push({ group: g, cache, ...tailOf(r, shared) });
    }
  });
  const nll = noGrad(() =>
    scope(() => {
      const segments = runs.map((r) => ({ cache: r.cache, length: r.tail.length }));
      const logits = model.forward(ids(model, [runs.flatMap((r) => r.tail)]), { segments });
      return negativeLogLikelihood(logits, ids(model, [runs.flatMap((r) => r.targets)]));
    }),
  );
  try {
    const values = await nll.data();
    const out: number[][] = groups.map(() => []);
    let offset = 0;
    for (const r of runs) {
      out[r.group]!.push(summedLogLikelihood(values.subarray(offset, offset + r.tail.length), r.first, r.tail.length));
      offset += r.tail.length;
    }
    return out;
  } finally {
    nll.dispose();
  }
}

/** The first `length` cached positions of `from` copied into `to`, every layer's keys and values. */
function copyPrefix(from: KVCache, to: KVCache, length: number): void {
  noGrad(() =>
    scope(() => {
      from.keys.forEach((k, i) => {
        for (const [source, target] of [[k, to.keys[i]!], [from.values[i]!, to.values[i]!]] as const) {
          const [, G, , D] = source.shape as [number, number, number, number];
          writeSlice(target, slice(source, [0, 0, 0, 0], [1, G, length, D]), [0, 0, 0, 0]);
        }
      });
    }),
  );
}

/** ll = -(sum of the negative log-likelihoods at positions first .. end-1). */
function summedLogLikelihood(nll: ArrayLike<number>, first: number, end: number): number {
  let ll = 0;
  for (let j = first; j < end; j++) ll -= nll[j]!;
  return ll;
}

/** Token ids [rows, length] (rows of one length). */
function ids(model: Olmo, rows: readonly (readonly number[])[]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], { backend: model.backend });
}

/** The index of the largest value, the first of equals (torch.argmax). */
function argmaxFirst(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** acc, len_norm and pmi_dc of scored items: the fraction whose pick is the label (ICLMetric.compute). */
export function taskMetrics(items: readonly ItemScore[]): Record<MetricName, number> {
  const correct = { acc: 0, len_norm: 0, pmi_dc: 0 };
  for (const { label, choices } of items) {
    if (argmaxFirst(choices.map((c) => c.ll)) === label) correct.acc++;
    if (argmaxFirst(choices.map((c) => c.ll / c.chars)) === label) correct.len_norm++;
    if (argmaxFirst(choices.map((c) => c.ll / c.llDc)) === label) correct.pmi_dc++;
  }
  const n = Math.max(1, items.length);
  return { acc: correct.acc / n, len_norm: correct.len_norm / n, pmi_dc: correct.pmi_dc / n };
}

/** Score a task's dataset rows on a model: per-choice log-likelihoods and the three metrics. */
export async function scoreMultipleChoice(
  model: Olmo,
  tokenizer: Tokenizer,
  task: string | MultipleChoiceTask,
  rows: readonly unknown[],
  options: ScoreOptions = {},
): Promise<TaskScores> {
  const spec = typeof task === "string" ? multipleChoiceTask(task) : task;
  const contextLength = options.contextLength ?? model.config.maxPositionEmbeddings;
  if (!Number.isInteger(contextLength) || contextLength < 2 || contextLength > model.config.maxPositionEmbeddings) {
    throw new EvalDataError(`contextLength must be an integer in [2, ${model.config.maxPositionEmbeddings}], got ${contextLength}`);
  }
  if (rows.length === 0) throw new EvalDataError(`${spec.name}: no rows to score`);
  const describeRow = options.describeRow ?? ((i: number) => `row ${i}`);
  // Every row is checked and tokenized before the first forward pass: a bad row fails at once.
  const prepared = rows.map((row, i) => prepareItem(spec, tokenizer, row, i, contextLength, describeRow(i)));
  // The longest context query and the longest domain-conditional one: the KV caches' sizes below.
  const longestOf = (kind: "requests" | "dcRequests") => Math.max(...prepared.flatMap((p) => p[kind].map((r) => r.query.length)));
  const capacities = [longestOf("requests"), longestOf("dcRequests")];
  const longest = Math.max(...capacities);
  if (longest > model.config.maxPositionEmbeddings) {
    throw new EvalDataError(`${spec.name}: a domain-conditional query has ${longest} tokens, more than the context length ${model.config.maxPositionEmbeddings}`);
  }
  const reuse = options.reusePrefix ?? true;
  // Packed scoring's caches: for the context's requests and for the domain-conditional ones, a prefix
  // cache and one per choice, each holding that kind's longest query; used when they take at most a
  // quarter of what the backend can still hold (the rest stays for activations and logits). Else one
  // prefix cache, and the tails run one by one.
  const choices = Math.max(...prepared.map((p) => p.requests.length));
  const packedBytes = capacities.reduce((sum, capacity) => sum + (1 + choices) * KVCache.bytes(model.config, 1, capacity), 0);
  const packed = reuse && (options.packTails ?? true) && packedBytes <= packedCacheBudget(model.backend.memoryUsage());
  const caches: KVCache[][] = [];
  const itemScores: ItemScore[] = [];
  try {
    for (const capacity of packed ? capacities : reuse ? [longest] : []) {
      const group: KVCache[] = [];
      caches.push(group);
      for (let c = 0; c < (packed ? 1 + choices : 1); c++) group.push(model.createCache(1, capacity));
    }
    for (const item of prepared) {
      let ll: number[], llDc: number[];
      if (packed) {
        [ll, llDc] = (await scorePacked(model, [item.requests, item.dcRequests], caches)) as [number[], number[]];
      } else {
        const cache = caches[0]?.[0] ?? null;
        ll = await scoreContinuations(model, item.requests, cache);
        llDc = await scoreContinuations(model, item.dcRequests, cache);
      }
      itemScores.push({
        index: item.index,
        label: item.label,
        choices: ll.map((v, c) => ({ ll: v, llDc: llDc[c]!, chars: item.chars[c]!, tokens: item.requests[c]!.continuation.length })),
      });
      options.onProgress?.(itemScores.length, prepared.length);
    }
  } finally {
    for (const c of caches.flat()) c.dispose();
  }
  const metrics = taskMetrics(itemScores);
  return { task: spec.name, items: itemScores.length, acc: metrics.acc, lenNorm: metrics.len_norm, pmiDc: metrics.pmi_dc, primaryMetric: spec.primaryMetric, itemScores };
}
