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
// once into the KV cache and each choice runs only its own tail from there. With a cache of one row
// per choice (`tails`), the prefix's keys and values are copied into every row and the tails run as
// ONE batch [choices, longest tail] (shorter tails padded at the end, which causal attention never lets
// an earlier position see): each weight is read once for all choices instead of once per choice. That
// matters where a forward of a few rows is bound by reading the weights; on this project's 2-core CPU
// the GEMMs cost about the same per row at 12 rows as at 48, and bench/eval.ts moved only from 2.06x
// to 2.09x over scoring from scratch. Without it (memory too tight), the choices run one after
// another in the prefix's cache: attention reads only the first `cache.length + T` cached positions,
// so each starts by setting the length back to the shared prefix and overwrites the previous
// choice's tail.

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

export interface ScoreOptions {
  /** Run the shared prefix of an item's queries once (default true); false runs every query from scratch. */
  reusePrefix?: boolean;
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
 * Summed log-probabilities of the continuations (downstream.py's "acc" log-likelihood). With `cache`,
 * the queries' common prefix runs once; with `tails` too (a cache of one row per request, at least
 * `cache`'s capacity), the tails run as one batch.
 */
export async function scoreContinuations(
  model: Olmo, requests: readonly ContinuationRequest[], cache: KVCache | null, tails: KVCache | null = null,
): Promise<number[]> {
  // Tokens run once into the cache: the longest common prefix of the queries, ending one token before
  // the earliest context end, so that every choice's first scored position is in its own run.
  let shared = 0;
  if (cache) {
    shared = Math.min(...requests.map((r) => r.ctxLen)) - 1;
    for (const r of requests) {
      let i = 0;
      while (i < shared && r.query[i] === requests[0]!.query[i]) i++;
      shared = i;
    }
    cache.length = 0;
    if (shared > 0) {
      const prefix = requests[0]!.query.slice(0, shared);
      noGrad(() => scope(() => void model.forward(ids(model, [prefix]), { cache, lastOnly: true })));
    }
  }
  // Position i of a query predicts token i+1 of query + [last continuation token]; each request's
  // run covers its query from `shared` on, and its scored positions start at `first`.
  const runs = requests.map((r) => ({
    tail: r.query.slice(shared),
    targets: [...r.query, r.continuation[r.continuation.length - 1]!].slice(shared + 1),
    first: r.ctxLen - 1 - shared,
  }));
  if (cache && tails && tails.batch === requests.length && tails.capacity >= cache.capacity) {
    return scoreBatched(model, runs, cache, tails, shared);
  }
  // All runs are queued before any result is read, so a GPU backend works through them in one go.
  const pending = runs.map(({ tail, targets, first }) => {
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

/** The tails as one batch: the prefix's keys and values copied into each row of `tails`, then one forward. */
async function scoreBatched(
  model: Olmo, runs: { tail: number[]; targets: number[]; first: number }[], prefix: KVCache, tails: KVCache, shared: number,
): Promise<number[]> {
  const width = Math.max(...runs.map((r) => r.tail.length));
  // Padding repeats a row's last token: any id works, its positions come after everything scored.
  const pad = (row: number[]) => [...row, ...new Array<number>(width - row.length).fill(row[row.length - 1]!)];
  const nll = noGrad(() =>
    scope(() => {
      if (shared > 0) {
        for (const [from, to] of prefix.keys.map((k, i) => [[k, tails.keys[i]!], [prefix.values[i]!, tails.values[i]!]] as const).flat()) {
          const [, G, , D] = from.shape as [number, number, number, number];
          const cached = slice(from, [0, 0, 0, 0], [1, G, shared, D]);
          for (let b = 0; b < runs.length; b++) writeSlice(to, cached, [b, 0, 0, 0]);
        }
      }
      tails.length = shared;
      const logits = model.forward(ids(model, runs.map((r) => pad(r.tail))), { cache: tails });
      return negativeLogLikelihood(logits, ids(model, runs.map((r) => pad(r.targets))));
    }),
  );
  try {
    const values = await nll.data();
    return runs.map((r, b) => summedLogLikelihood(values.subarray(b * width, (b + 1) * width), r.first, r.tail.length));
  } finally {
    nll.dispose();
  }
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
  const longest = Math.max(...prepared.flatMap((p) => [...p.requests, ...p.dcRequests].map((r) => r.query.length)));
  if (longest > model.config.maxPositionEmbeddings) {
    throw new EvalDataError(`${spec.name}: a domain-conditional query has ${longest} tokens, more than the context length ${model.config.maxPositionEmbeddings}`);
  }
  const reuse = options.reusePrefix ?? true;
  const cache = reuse ? model.createCache(1, longest) : null;
  // A cache of one row per choice for batched tails, per choice count (tasks mix 2 to 5), when it takes
  // at most a quarter of what the backend can still hold: the rest stays for activations and logits.
  const tailCaches = new Map<number, KVCache | null>();
  const tailsFor = (choices: number): KVCache | null => {
    if (!reuse) return null;
    if (!tailCaches.has(choices)) {
      const { limit, inUse } = model.backend.memoryUsage();
      tailCaches.set(choices, KVCache.bytes(model.config, choices, longest) <= (limit - inUse) / 4 ? model.createCache(choices, longest) : null);
    }
    return tailCaches.get(choices)!;
  };
  const itemScores: ItemScore[] = [];
  try {
    for (const item of prepared) {
      const ll = await scoreContinuations(model, item.requests, cache, tailsFor(item.requests.length));
      const llDc = await scoreContinuations(model, item.dcRequests, cache, tailsFor(item.dcRequests.length));
      itemScores.push({
        index: item.index,
        label: item.label,
        choices: ll.map((v, c) => ({ ll: v, llDc: llDc[c]!, chars: item.chars[c]!, tokens: item.requests[c]!.continuation.length })),
      });
      options.onProgress?.(itemScores.length, prepared.length);
    }
  } finally {
    cache?.dispose();
    for (const c of tailCaches.values()) c?.dispose();
  }
  const metrics = taskMetrics(itemScores);
  return { task: spec.name, items: itemScores.length, acc: metrics.acc, lenNorm: metrics.len_norm, pmiDc: metrics.pmi_dc, primaryMetric: spec.primaryMetric, itemScores };
}
