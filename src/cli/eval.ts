// `olmo eval`: perplexity of a text or an OLMo memmap, or a multiple-choice task's accuracy as OLMo's
// downstream evaluator scores it (src/eval/ does the scoring; this file reads files and prints).

import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import {
  EvalDataError, loadOlmo, MULTIPLE_CHOICE_TASKS, multipleChoiceTask, parseJsonRows, perplexity, scoreMultipleChoice, TokenDataset, Tokenizer,
  type AnyBackend, type IdDType, type ParsedRows, type TaskScores,
} from "../index.js";
import { closest } from "../core/format.js";
import { writeFileAtomic } from "../node/index.js";
import { attachAdapter, DEFAULT_MODEL, embeddingChoice, locateModel, maxMemoryPerInstanceOption, modelSource, quantizeChoice, quantizeOptions } from "./model.js";
import { numberOption, parseArgs, UsageError, usage, type OptionSpec, type ParsedArgs } from "./args.js";
import { backendByName } from "./backends.js";

const spec: Record<string, OptionSpec> = {
  model: { kind: "value", placeholder: "DIR_OR_RUN_OR_REPO", help: "model folder, a training run's --save folder, or a Hub repo owner/name (default: the bundled tiny Shakespeare model)" },
  revision: { kind: "value", help: "Hub revision: branch, tag or commit (default main)" },
  backend: { kind: "value", choices: ["js", "wasm", "webgpu"], help: "backend (default wasm)" },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads of the wasm backend (default: cores, at most 8)" },
  dtype: { kind: "value", choices: ["auto", "f32", "bf16"], help: "weight storage (default auto: f32 under 200M parameters)" },
  "max-memory-per-instance": maxMemoryPerInstanceOption,
  ...quantizeOptions,
  tokenizer: { kind: "value", help: "tokenizer.json to use instead of the model folder's" },
  task: { kind: "value", help: `multiple-choice task: ${MULTIPLE_CHOICE_TASKS.join(", ")}` },
  data: { kind: "value", help: "with --task: the dataset's rows (.jsonl, .json or .parquet, or a folder of them); without: an OLMo memmap folder or input_ids file" },
  split: { kind: "value", help: "with --task and a --data folder: read the files whose names start with this split (default validation)" },
  limit: { kind: "value", help: "with --task: score only the first N rows" },
  out: { kind: "value", help: "with --task: write one JSON line per item (index, label, choices with ll, ll_dc, chars, tokens)" },
  "no-prefix-reuse": { kind: "flag", help: "with --task: run every choice from scratch instead of from the item's cached context" },
  text: { kind: "value", help: "perplexity of this UTF-8 text file" },
  "seq-len": { kind: "value", help: "perplexity: window length in tokens" },
  stride: { kind: "value", help: "perplexity: tokens between window starts (default --seq-len: no overlap)" },
  "ids-dtype": { kind: "value", help: "perplexity of a memmap: uint16 (default) or uint32" },
  json: { kind: "flag", help: "print one JSON object" },
  help: { kind: "flag", help: "show this help" },
};

export async function runEval(args: string[]): Promise<void> {
  const parsed = parseArgs("eval", args, spec);
  const { values, flags } = parsed;
  if (flags.has("help")) return void console.log(usage("eval", spec));
  const task = values.get("task"), data = values.get("data"), text = values.get("text");
  if (task !== undefined) {
    // An unknown task fails before the model loads, as a mistake in the command line (exit status 2),
    // with the closest task's name.
    try {
      multipleChoiceTask(task);
    } catch (e) {
      const guess = closest(task.toLowerCase(), MULTIPLE_CHOICE_TASKS);
      throw new UsageError(`--task: ${(e as Error).message}${guess ? ` (did you mean ${guess}?)` : ""}`);
    }
    if (data === undefined) throw new UsageError("olmo eval: --task needs --data FILE_OR_DIR with the dataset's rows");
    if (text !== undefined) throw new UsageError("olmo eval: give --task with --data, or --text / --data for perplexity, not both");
  } else if ((text === undefined) === (data === undefined)) {
    throw new UsageError("olmo eval: give --task NAME --data FILE, or --text FILE or --data DIR (a memmap) with --seq-len L");
  }
  const num = (name: string) => numberOption("eval", values, name);
  const limit = num("limit");
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw new UsageError(`--limit must be a positive integer, got ${values.get("limit")}`);
  // Rows, perplexity's window and its text are checked before the model loads, so a bad flag or file fails fast.
  const rows = task !== undefined ? await readTaskRows(data!, values.get("split") ?? "validation") : null;
  let seqLen: number | undefined, stride: number | undefined, textContent: string | null = null;
  if (rows) {
    if (values.has("seq-len") || values.has("stride")) throw new UsageError("olmo eval: --seq-len and --stride are for perplexity (--text, or --data with a memmap), not --task");
  } else {
    seqLen = num("seq-len");
    stride = num("stride");
    if (seqLen === undefined) throw new UsageError("olmo eval: perplexity needs --seq-len L");
    if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new UsageError(`--seq-len must be an integer >= 2 (tokens per window), got ${values.get("seq-len")}`);
    if (stride !== undefined && !(Number.isInteger(stride) && stride >= 1 && stride <= seqLen)) {
      throw new UsageError(`--stride must be an integer from 1 to --seq-len (${seqLen}), got ${values.get("stride")}`);
    }
    if (text !== undefined) textContent = await readText(text);
  }

  const { model, tokenizer, backend } = await openModel(parsed);
  try {
    if (rows) {
      if (!tokenizer) throw new UsageError("the model folder has no tokenizer.json: pass --tokenizer FILE");
      const selected = limit !== undefined ? rows.rows.slice(0, limit) : rows.rows;
      const result = await scoreMultipleChoice(model, tokenizer, task!, selected, {
        reusePrefix: !flags.has("no-prefix-reuse"),
        describeRow: rows.where,
        onProgress: progressLine("items"),
      });
      const out = values.get("out");
      if (out) await writeItems(out, result);
      printTask(result, flags.has("json"));
    } else {
      const context = model.config.maxPositionEmbeddings;
      if (seqLen! > context) throw new UsageError(`--seq-len ${seqLen} is longer than the model's context (${context} tokens)`);
      const { ids, mask } = textContent !== null ? textIds(text!, textContent, tokenizer) : await memmapIds(data!, values.get("ids-dtype") ?? "uint16", model.config.vocabSize);
      const result = await perplexity(model, ids, { seqLen: seqLen!, stride, mask: mask ?? undefined, tokenizer: tokenizer ?? undefined, onProgress: progressLine("tokens") });
      const summary = { tokens: result.tokens, loss: result.loss, perplexity: result.perplexity, bits_per_byte: result.bitsPerByte };
      if (flags.has("json")) console.log(JSON.stringify(summary));
      else {
        console.log(`tokens          ${result.tokens}`);
        console.log(`loss            ${result.loss.toFixed(4)} nats/token`);
        console.log(`perplexity      ${result.perplexity.toFixed(3)}`);
        console.log(`bits per byte   ${result.bitsPerByte === null ? "n/a (no tokenizer)" : result.bitsPerByte.toFixed(4)}`);
      }
    }
  } finally {
    model.dispose();
    backend.dispose();
  }
}

async function openModel({ values, flags, numbers }: ParsedArgs) {
  // Where --model points is decided as for every command (src/cli/model.ts): a folder or a training
  // run's --save folder, else a Hub repo id; checked before the backend starts.
  const location = await locateModel(values.get("model") ?? DEFAULT_MODEL, values.get("revision"));
  if (!values.has("model")) console.error(`olmo eval: no --model given, using the default model ${DEFAULT_MODEL}`);
  const threads = numbers.get("threads") ?? Math.min(8, (await import("node:os")).availableParallelism());
  const dtype = (values.get("dtype") ?? "auto") as "auto" | "f32" | "bf16";
  const backend: AnyBackend = await backendByName(values.get("backend") ?? "wasm", threads, { maxMemoryPerInstance: numbers.get("max-memory-per-instance") });
  try {
    const quantize = quantizeChoice({ values, flags });
    const loaded = await loadOlmo(modelSource(location, values.get("revision")), backend, { weightDType: dtype, quantize, quantizeEmbedding: embeddingChoice(values, quantize) });
    await attachAdapter(loaded.model, values, location);
    const tokenizerFile = values.get("tokenizer");
    const tokenizer = tokenizerFile ? new Tokenizer(await readFile(tokenizerFile, "utf8"), { eosTokenId: loaded.model.config.eosTokenId }) : loaded.tokenizer;
    return { model: loaded.model, tokenizer, backend };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

/** A task's rows from a file, or from the files of a folder whose names start with the split. */
async function readTaskRows(path: string, split: string): Promise<ParsedRows> {
  if (!existsSync(path)) throw new UsageError(`--data ${path} does not exist`);
  if (!(await stat(path)).isDirectory()) return readRowFile(path);
  const readable = /\.(jsonl|json|parquet)$/;
  const files = (await readdir(path)).filter((f) => f.startsWith(split) && readable.test(f)).sort();
  if (files.length === 0) throw new UsageError(`${path} has no ${split}*.jsonl, .json or .parquet file (--split names the split)`);
  const parts = await Promise.all(files.map((f) => readRowFile(join(path, f))));
  const rows = parts.flatMap((p) => p.rows);
  const where = (i: number) => {
    for (const p of parts) {
      if (i < p.rows.length) return p.where(i);
      i -= p.rows.length;
    }
    return `row ${i}`;
  };
  return { rows, where };
}

async function readRowFile(file: string): Promise<ParsedRows> {
  const bytes = await readFile(file);
  if (bytes.length === 0) throw new EvalDataError(`${file} is empty: no rows to score`);
  if (!file.endsWith(".parquet")) return parseJsonRows(new TextDecoder().decode(bytes), file);
  return readParquetRows(file, bytes);
}

/** Parquet through hyparquet (a pure-JS reader), imported only when a Parquet file is read. */
async function readParquetRows(file: string, bytes: Uint8Array): Promise<ParsedRows> {
  // Imported here, not at the top: only Parquet files need it, and the CLI starts faster without it.
  const hyparquet = await import("hyparquet");
  let rows: Record<string, unknown>[];
  try {
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    rows = await hyparquet.parquetReadObjects({ file: buffer });
  } catch (e) {
    throw new EvalDataError(`${file}: not a readable Parquet file (${(e as Error).message})`);
  }
  if (rows.length === 0) throw new EvalDataError(`${file} has no rows to score`);
  return { rows, where: (i) => `${file} row ${i}` };
}

/** The --text file, read before the model loads. */
async function readText(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new EvalDataError(`cannot read --text ${file}: ${(e as Error).message}`);
  }
  if (text.length === 0) throw new EvalDataError(`${file} is empty: nothing to score`);
  return text;
}

function textIds(file: string, text: string, tokenizer: Tokenizer | null): { ids: number[]; mask: null } {
  if (!tokenizer) throw new UsageError(`--text ${file} needs a tokenizer: the model folder has no tokenizer.json; pass --tokenizer FILE`);
  return { ids: tokenizer.encode(text), mask: null };
}

/** OLMo's memmap (see src/train/data.ts): input_ids.npy, and label_mask.npy beside it when present. */
async function memmapIds(path: string, dtype: string, vocabSize: number): Promise<{ ids: Uint16Array | Uint32Array; mask: Uint8Array | null }> {
  if (dtype !== "uint16" && dtype !== "uint32") throw new UsageError(`--ids-dtype must be uint16 or uint32, got ${dtype}`);
  if (!existsSync(path)) throw new UsageError(`--data ${path} does not exist`);
  const isDir = (await stat(path)).isDirectory();
  const idsFile = isDir ? join(path, "input_ids.npy") : path;
  const maskFile = isDir && existsSync(join(path, "label_mask.npy")) ? join(path, "label_mask.npy") : null;
  const bytes = await readFile(idsFile);
  if (bytes.length === 0) throw new EvalDataError(`${idsFile} is empty: nothing to score`);
  const ids = TokenDataset.idsFromBytes(bytes, dtype as IdDType, basename(idsFile));
  const bad = ids.findIndex((id) => id >= vocabSize);
  if (bad >= 0) throw new EvalDataError(`${idsFile}: token ${bad} is id ${ids[bad]}, outside the model's vocabulary [0, ${vocabSize})`);
  const mask = maskFile ? new Uint8Array(await readFile(maskFile)) : null;
  return { ids, mask };
}

/** Progress on stderr: one updating line on a terminal, else a line every 10 seconds. */
function progressLine(unit: string): (done: number, total: number) => void {
  const started = performance.now();
  let lastPrinted = started;
  return (done, total) => {
    const now = performance.now();
    const seconds = (now - started) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const eta = rate > 0 ? (total - done) / rate : 0;
    const line = `${done}/${total} ${unit}  ${rate.toFixed(rate < 10 ? 2 : 0)} ${unit}/s  ETA ${formatSeconds(eta)}`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}   ${done === total ? "\n" : ""}`);
    } else if (done === total || now - lastPrinted > 10_000) {
      lastPrinted = now;
      console.error(line);
    }
  };
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
}

async function writeItems(out: string, result: TaskScores): Promise<void> {
  const lines = result.itemScores.map((item) =>
    JSON.stringify({
      index: item.index,
      label: item.label,
      choices: item.choices.map((c) => ({ ll: c.ll, ll_dc: c.llDc, chars: c.chars, tokens: c.tokens })),
    }),
  );
  await writeFileAtomic(out, lines.join("\n") + "\n");
}

function printTask(result: TaskScores, json: boolean): void {
  const metrics = { acc: result.acc, len_norm: result.lenNorm, pmi_dc: result.pmiDc };
  if (json) {
    console.log(JSON.stringify({ task: result.task, items: result.items, ...metrics, primary_metric: result.primaryMetric }));
    return;
  }
  console.log(`${result.task}: ${result.items} items`);
  for (const [name, value] of Object.entries(metrics)) {
    console.log(`  ${name.padEnd(9)} ${value.toFixed(4)}${name === result.primaryMetric ? "  (OLMo's headline metric for this task)" : ""}`);
  }
}
