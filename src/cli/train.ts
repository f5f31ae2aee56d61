// `olmo prepare-data` and `olmo train`.

import { appendFile, mkdir, readFile } from "node:fs/promises";
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import {
  ADAPTER_CONFIG, configFromHf, initialWeights, loadLoraAdapters, loadOlmo, LoraAdapters, loraParameterCount, loraTargets, loraTrainingBytes,
  lossCurveSvg, Olmo, OLMO_PRESETS, parameterCount, parseAdapterConfig, prepareTrainingData, QuantizedWeight, readTextFile, Tokenizer, Trainer,
  trainingBytes, TrainingStoppedError, type AnyBackend, type IdDType, type LoraOptions, type OlmoConfig, type QuantScheme, type StepMetrics,
  type TrainOptions, type WasmBackend,
} from "../index.js";
import {
  CheckpointRun, folderSource, isLoraFolder, latestCheckpointFolder, loadTrainableModel, readLatest, readTokenDataset, restoreTrainerState,
  writeFileAtomic, writeTokenData, type TrainerState,
} from "../node/index.js";
import { decodeUtf8File, readJsonObject } from "../node/fs.js";
import { parseArgs, UsageError, usage, type CommandSpec } from "./args.js";
import { backendByName } from "./backends.js";
import { readTokenizerFile } from "./generate.js";
import { locateModel, maxMemoryPerInstanceOption, modelSource, quantizeChoice, warnIfOtherBase } from "./model.js";

// ---------------------------------------------------------------------------------------------------
// prepare-data

// Bounds far past any model's context or a host's memory, so a typo is a usage error, not an allocation
// that takes the process down.
const MAX_SEQ_LEN = 2 ** 20;
const MAX_BATCH = 2 ** 16;

const prepareSpec: CommandSpec = {
  tokenizer: { kind: "value", required: true, placeholder: "FILE.json", help: "tokenizer.json" },
  input: {
    kind: "value", required: true, placeholder: "FILE",
    help: "a UTF-8 text file (one document), or JSON Lines named .jsonl / .ndjson: {\"text\": ...} or {\"messages\": [{role, content}]} per line (the last message is the labelled answer)",
  },
  "seq-len": { kind: "value", required: true, number: { integer: true, min: 2, max: MAX_SEQ_LEN }, help: "instance length (chat examples are padded / cut to it)" },
  out: { kind: "value", required: true, placeholder: "DIR", help: "output folder for input_ids.npy and label_mask.npy" },
  "ids-dtype": { kind: "value", choices: ["uint16", "uint32"], help: "id type (default uint16)" },
};

async function readBytes(flag: string, path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(`cannot read ${flag} ${path}: ${(e as Error).message}`);
  }
}

async function readInput(flag: string, path: string): Promise<string> {
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(await readBytes(flag, path)); // as readFile(path, "utf8") reads it
}

export async function runPrepareData(args: string[]): Promise<void> {
  const parsed = parseArgs("prepare-data", args, prepareSpec);
  if (parsed.help) return void console.log(usage("prepare-data", prepareSpec));
  const { values, numbers } = parsed;
  const input = values.get("input")!, out = values.get("out")!, seqLen = numbers.get("seq-len")!;
  const dtype = (values.get("ids-dtype") ?? "uint16") as IdDType;
  if (existsSync(out) && !statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a file; expected a folder for input_ids.npy and label_mask.npy`);
  const tokenizer = readTokenizerFile(values.get("tokenizer")!).tokenizer;
  // A UTF-8 byte order mark is not text (editors on Windows write one).
  const text = decodeUtf8File(await readBytes("--input", input), input).replace(/^\uFEFF/, "");
  const jsonl = /\.(jsonl|ndjson)$/i.test(input);
  if (!jsonl) {
    // Records in a file named otherwise would be trained on as their JSON text.
    const first = text.slice(0, 1 << 16).split("\n").find((l) => l.trim() !== "");
    let record: unknown = null;
    try {
      record = first === undefined ? null : JSON.parse(first);
    } catch {
      // text
    }
    if (typeof record === "object" && record !== null && ("messages" in record || "text" in record)) {
      throw new UsageError(`--input ${input} looks like JSON Lines (its first line is a record with "${"messages" in record ? "messages" : "text"}"), but only a .jsonl or .ndjson file is read as records: rename it, or it would be trained on as raw JSON text`);
    }
  }
  const { ids, mask, unlabelled } = prepareTrainingData(tokenizer, text, { jsonl, seqLen, dtype, source: input });
  if (unlabelled.length > 0) {
    console.error(`warning: ${unlabelled.length} chat example(s) have no label token left, their prompt filling --seq-len ${seqLen} (${unlabelled.slice(0, 3).join(", ")}${unlabelled.length > 3 ? ", ..." : ""}): they teach nothing`);
  }
  const instances = Math.floor(ids.length / seqLen);
  if (instances === 0) throw new Error(`olmo prepare-data: ${input} gives ${ids.length} tokens, less than one instance of --seq-len ${seqLen}: nothing to train on`);
  await writeTokenData(out, ids, mask);
  console.log(`wrote ${ids.length} tokens (${Math.floor(ids.length / seqLen)} instances of ${seqLen}) to ${out}/input_ids.npy (${dtype}, no header) and label_mask.npy`);
}

// ---------------------------------------------------------------------------------------------------
// train

const int = (min: number) => ({ integer: true, min });
const positive = { min: 0, minExclusive: true };

const trainSpec: CommandSpec = {
  model: { kind: "value", placeholder: "DIR_OR_REPO", help: "start from this model (fine-tuning): a folder, a --save folder, or with LoRA a Hub repo" },
  config: { kind: "value", placeholder: "PRESET_OR_JSON", help: "start from scratch: a preset (OLMo-1B, ...) or a config.json file" },
  load: { kind: "value", placeholder: "DIR", help: "resume from a checkpoint folder or --save folder (a LoRA run's finds its base where it was; --model overrides)" },
  tokenizer: { kind: "value", placeholder: "FILE.json", help: "tokenizer.json to copy into each checkpoint" },
  data: { kind: "value", required: true, placeholder: "DIR_OR_FILE", help: "folder with input_ids.npy [+ label_mask.npy] (from olmo prepare-data), or the ids file itself" },
  "label-mask": { kind: "value", placeholder: "FILE", help: "label mask file (default: label_mask.npy beside the ids, or all ones)" },
  "ids-dtype": { kind: "value", choices: ["uint16", "uint32"], help: "id type of the data (default uint16)" },
  "seq-len": { kind: "value", required: true, number: { ...int(2), max: MAX_SEQ_LEN }, help: "instance length" },
  "batch-size": { kind: "value", required: true, number: { ...int(1), max: MAX_BATCH }, help: "instances per update" },
  "micro-batch-size": { kind: "value", number: { ...int(1), max: MAX_BATCH }, help: "instances per forward / backward pass (gradient accumulation; divides --batch-size)" },
  steps: { kind: "value", required: true, number: int(1), help: "updates to run (in all, counting a resumed run's)" },
  lr: { kind: "value", required: true, number: positive, help: "peak learning rate" },
  warmup: { kind: "value", number: int(0), help: "warmup steps (from 0.1 lr; default 0)" },
  schedule: { kind: "value", choices: ["cosine", "linear", "constant"], help: "learning-rate decay (default cosine)" },
  "t-max": { kind: "value", number: int(1), help: "step where decay ends (default: --steps)" },
  "alpha-f": { kind: "value", number: { min: 0, max: 1 }, help: "final lr fraction (default 0.1)" },
  "weight-decay": { kind: "value", number: { min: 0 }, help: "default 0.1" },
  betas: { kind: "value", placeholder: "B1,B2", help: "AdamW betas, two numbers in [0, 1) (default 0.9,0.95)" },
  eps: { kind: "value", number: positive, help: "AdamW epsilon (default 1e-5)" },
  "max-grad-norm": { kind: "value", number: { min: 0 }, help: "clip the global gradient norm (default 1.0; 0 disables)" },
  "decay-embeddings": { kind: "flag", help: "weight-decay the embedding too" },
  "no-shuffle": { kind: "flag", help: "visit instances in file order" },
  seed: { kind: "value", number: { integer: true, min: 0, max: 2 ** 32 - 1 }, help: "data order and initialisation seed (default 0)" },
  backend: { kind: "value", choices: ["js", "wasm", "webgpu"], help: "backend (default wasm)" },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads of the wasm backend (default 2)" },
  "max-memory-per-instance": maxMemoryPerInstanceOption,
  save: { kind: "value", required: true, placeholder: "DIR", help: "checkpoint folder: DIR/step-N folders and DIR/latest" },
  "save-every": { kind: "value", number: int(0), help: "save every K steps (default 0: at the end, and on Ctrl-C)" },
  keep: { kind: "value", number: int(1), help: "checkpoints this process saved to keep, newest first (default 2; folders it found, such as a resumed run's earlier saves, are never deleted)" },
  "stop-on-spike": { kind: "value", number: { min: 1, minExclusive: true }, placeholder: "FACTOR", help: "stop, before updating or saving, when a loss exceeds FACTOR times the mean of the last 10" },
  "reset-trainer-state": { kind: "flag", help: "with --load: keep weights and optimizer, restart step, schedule, data" },
  "checkpoint-activations": { kind: "flag", help: "keep only each block's input in the forward pass, recompute the block in the backward (less memory, about 1/3 more time; same results)" },
  "checkpoint-layers": { kind: "value", number: int(0), help: "checkpoint only the first N blocks (the others keep their activations: more memory, less time)" },
  // LoRA (src/model/lora.ts): adapters on a frozen base, saved in PEFT's format.
  "lora-r": { kind: "value", number: int(1), help: "LoRA: train adapters of rank R on the frozen --model instead of every weight" },
  "lora-alpha": { kind: "value", number: positive, help: "LoRA: the adapters' update is scaled by alpha / r (default 8, PEFT's)" },
  "lora-targets": { kind: "value", placeholder: "q,v,...", help: "LoRA: layers that get adapters: q, k, v, o, gate, up, down (or PEFT's q_proj, ...), or all (default q,v, PEFT's for OLMo)" },
  "lora-dropout": { kind: "value", number: { min: 0, max: 1, maxExclusive: true }, help: "LoRA: dropout on the adapters' input while training (default 0)" },
  adapter: { kind: "value", placeholder: "DIR", help: "LoRA: start from this adapter folder (PEFT's, or a LoRA run's step or --save folder) instead of fresh adapters" },
  quantize: { kind: "value", choices: ["int8", "int4", "none"], help: "LoRA: quantize the frozen base's float weights as it loads (QLoRA-style); default none: every weight as the folder stores it" },
  "load-in-8bit": { kind: "flag", help: "LoRA: the model card's spelling of --quantize int8" },
};

const LORA_SHAPE_FLAGS = ["lora-r", "lora-alpha", "lora-targets", "lora-dropout"] as const;

async function configFromArg(arg: string): Promise<OlmoConfig> {
  const preset = OLMO_PRESETS[arg];
  if (preset) return { ...preset };
  if (!existsSync(arg)) throw new UsageError(`--config ${arg}: neither a preset (${Object.keys(OLMO_PRESETS).join(", ")}) nor a file`);
  return configFromHf(await readFile(arg, "utf8"), arg);
}

/** The config.json of a model folder or a --save folder's latest step, read before any weight is loaded. */
async function configOfFolder(flag: string, dir: string): Promise<OlmoConfig> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--${flag} ${dir}: no such folder`);
  const folder = await latestCheckpointFolder(dir);
  const file = join(folder, "config.json");
  if (!existsSync(file)) throw new UsageError(`--${flag} ${dir}: no config.json in ${folder}; expected a model folder or a training run's --save folder`);
  return configFromHf(await readFile(file, "utf8"), file);
}

/** Refuse, from the size arithmetic alone, a model whose training state cannot fit the backend. */
function checkTrainingFits(config: OlmoConfig, backend: AnyBackend, microBatchSize: number, seqLen: number, what: string): void {
  const needed = trainingBytes(config, microBatchSize, seqLen);
  const { limit, inUse } = backend.memoryUsage();
  if (inUse + needed > limit) {
    const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
    throw new Error(
      `${what}: training needs at least ${gb(needed)} (${parameterCount(config).toLocaleString("en")} weights in f32 with their gradients and ` +
        `AdamW's two moments, 16 bytes each, plus the logits of a micro-batch), but the ${backend.name} backend holds at most ${gb(limit)}` +
        `${backend.name === "wasm" ? " (WebAssembly memories of at most 4 GiB each, together at most this machine's memory)" : ""}: ` +
        `train a smaller model, LoRA adapters on it (--lora-r), or on a GPU (--backend webgpu)`,
    );
  }
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Steps logged by earlier runs into metrics.jsonl; a last line a crash cut short is dropped. */
async function readHistory(file: string, upToStep: number): Promise<StepMetrics[]> {
  if (!existsSync(file)) return [];
  if (!statSync(file).isFile()) throw new Error(`${file} is not a file; the run's metrics log goes there`);
  const lines = (await readFile(file, "utf8")).split("\n").filter(Boolean);
  const history: StepMetrics[] = [];
  for (const [i, line] of lines.entries()) {
    let m: unknown;
    try {
      m = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1) break; // a line a crash cut short
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof m !== "object" || m === null || !Number.isInteger((m as StepMetrics).step)) throw new Error(`${file}:${i + 1}: expected a step's metrics ({"step": N, ...}), got ${line.slice(0, 60)}`);
    history.push(m as StepMetrics);
  }
  // Steps a crashed run logged past the checkpoint it resumes from are dropped: they will be redone.
  return history.filter((m) => m.step <= upToStep);
}

/** What a LoRA run trains on: its frozen base model, the quantization of the base, and where its adapters start. */
interface LoraPlan {
  /** --model as given, or the base a resumed run recorded: a folder or a Hub repo. */
  base: string;
  quantize: QuantScheme | "none" | undefined;
  /** The adapters' options: the flags', or those of the folder they start from. */
  options: LoraOptions;
  /** The folder the adapters start from (--adapter, or the resumed step), or null for fresh adapters. */
  adapterFolder: string | null;
}

/** The LoRA part of the command line, checked against --load and --config; null for full training. */
async function loraPlan(
  parsed: { values: Map<string, string>; flags: Set<string>; numbers: Map<string, number> }, resumeFolder: string | null,
): Promise<LoraPlan | null> {
  const { values, numbers } = parsed;
  const shapeFlags = LORA_SHAPE_FLAGS.filter((f) => values.has(f)).map((f) => `--${f}`);
  const quantize = quantizeChoice(parsed);
  const resumeLora = resumeFolder !== null && isLoraFolder(resumeFolder);
  if (!resumeLora && shapeFlags.length === 0 && !values.has("adapter")) {
    if (quantize !== undefined && quantize !== "none") throw new UsageError(`--quantize / --load-in-8bit need LoRA (--lora-r R or --adapter DIR): full training updates every weight, in f32`);
    if (resumeFolder !== null && values.has("model")) throw new UsageError(`--model with --load names a LoRA run's base model; ${resumeFolder} is a full checkpoint`);
    return null;
  }
  if (values.has("config")) throw new UsageError("LoRA fine-tunes a trained model: give --model DIR (the frozen base), not --config");
  if (resumeLora) {
    const given = [...shapeFlags, ...(values.has("adapter") ? ["--adapter"] : [])];
    if (given.length > 0) throw new UsageError(`--load resumes the LoRA run in ${resumeFolder}, whose adapter_config.json sets r, alpha, targets and dropout: drop ${given.join(", ")}`);
    const stateFile = join(resumeFolder, "trainer_state.json");
    const state = (await readJsonObject(stateFile)) as unknown as TrainerState;
    if (typeof state.options !== "object" || state.options === null) throw new Error(`${stateFile}: "options" (the run's settings and its base model) is missing`);
    const recorded = state.options.model, recordedQuantize = (state.options.quantize ?? "none") as string;
    if (typeof recorded !== "string" || recorded === "") throw new Error(`${join(resumeFolder, "trainer_state.json")}: options.model (the base model) is missing; give it with --model`);
    if (quantize !== undefined && quantize !== recordedQuantize) {
      // base_quantization: written since the recorded quantize is the option; before, it was the layers' scheme.
      const layers = state.options.base_quantization;
      const how = typeof layers !== "string" ? `on a base quantized ${recordedQuantize}`
        : `with its base loaded ${recordedQuantize === "none" ? "as stored" : `with --quantize ${recordedQuantize}`}${layers === "none" ? "" : ` (its layers ${layers})`}`;
      const asked = parsed.flags.has("load-in-8bit") ? "--load-in-8bit" : `--quantize ${quantize}`;
      throw new UsageError(`${asked}: the run in ${resumeFolder} trained ${how}, and --load loads it the same way: its adapters are for that base; drop ${asked.split(" ")[0]}`);
    }
    return { base: values.get("model") ?? recorded, quantize: recordedQuantize as QuantScheme | "none", options: await adapterOptions(resumeFolder), adapterFolder: resumeFolder };
  }
  if (!values.has("model")) throw new UsageError("LoRA needs the base model: --model DIR_OR_REPO");
  const adapter = values.get("adapter");
  if (adapter !== undefined) {
    if (shapeFlags.length > 0) throw new UsageError(`--adapter ${adapter} sets r, alpha, targets and dropout (its adapter_config.json): drop ${shapeFlags.join(", ")}`);
    if (!existsSync(adapter) || !statSync(adapter).isDirectory()) throw new UsageError(`--adapter ${adapter}: no such folder`);
    const folder = await latestCheckpointFolder(adapter);
    if (!isLoraFolder(folder)) throw new UsageError(`--adapter ${adapter}: no adapter_config.json in ${folder}; expected a PEFT adapter folder or a LoRA run's --save folder`);
    return { base: values.get("model")!, quantize, options: await adapterOptions(folder), adapterFolder: folder };
  }
  if (!values.has("lora-r")) throw new UsageError(`${shapeFlags.join(", ")} need --lora-r R (the adapters' rank)`);
  const targetsRaw = values.get("lora-targets") ?? "q,v";
  const targets = targetsRaw === "all" ? loraTargets(["q", "k", "v", "o", "gate", "up", "down"]) : targetsRaw.split(",").map((t) => t.trim());
  try {
    loraTargets(targets);
  } catch (e) {
    throw new UsageError(`--lora-targets ${targetsRaw}: ${(e as Error).message.replace(/^LoRA: /, "")}`);
  }
  const options = { r: numbers.get("lora-r")!, alpha: numbers.get("lora-alpha") ?? 8, targets, dropout: numbers.get("lora-dropout") ?? 0 };
  return { base: values.get("model")!, quantize, options, adapterFolder: null };
}

/** The LoRA options in an adapter folder's adapter_config.json (checked as the loader checks them). */
async function adapterOptions(folder: string): Promise<LoraOptions> {
  const file = join(folder, ADAPTER_CONFIG);
  return parseAdapterConfig(await readJsonObject(file), file);
}

export async function runTrain(args: string[]): Promise<void> {
  // --model and --load go together only to resume a LoRA run on a moved base (checked in loraPlan).
  const parsed = parseArgs("train", args, trainSpec, { atLeastOne: [["model", "config", "load"]] });
  if (parsed.help) return void console.log(usage("train", trainSpec));
  const { values, flags, numbers } = parsed;
  const save = values.get("save")!, data = values.get("data")!;
  const seqLen = numbers.get("seq-len")!, batchSize = numbers.get("batch-size")!, steps = numbers.get("steps")!;
  const microBatchSize = numbers.get("micro-batch-size");
  // Checks between flags, after each flag's own range.
  const problems: string[] = [];
  const starts = (["model", "config", "load"] as const).filter((f) => values.has(f));
  if (values.has("config") && starts.length > 1) problems.push(`--config starts from scratch; it cannot go with ${starts.filter((f) => f !== "config").map((f) => `--${f}`).join(" or ")}`);
  if (microBatchSize !== undefined && batchSize % microBatchSize !== 0) problems.push(`--micro-batch-size ${microBatchSize} must divide --batch-size ${batchSize}`);
  const betasRaw = values.get("betas") ?? "0.9,0.95";
  const betas = betasRaw.split(",").map((b) => (b.trim() === "" ? NaN : Number(b)));
  if (betas.length !== 2 || betas.some((b) => !(b >= 0 && b < 1))) problems.push(`--betas must be two numbers in [0, 1), got ${betasRaw}`);
  if (flags.has("reset-trainer-state") && !values.has("load")) problems.push("--reset-trainer-state needs --load DIR");
  if (existsSync(save) && !statSync(save).isDirectory()) problems.push(`--save ${save} is a file; expected a folder`);
  else if (existsSync(save)) {
    // A folder that holds a run (its latest, its step folders) belongs to that run: a new run there would
    // replace its checkpoints and its log. Resuming it (--load of the folder or of one of its steps)
    // continues it. (Staging folders and a log alone are a run that saved nothing: no checkpoint to lose.)
    const held = readdirSync(save).filter((f) => f === "latest" || /^step-\d+$/.test(f)).sort();
    const load = values.get("load");
    const real = (path: string) => realpathSync.native(path); // (the case the file system has, on Windows too)
    const resumesIt = load !== undefined && existsSync(load) && [real(load), dirname(real(load))].includes(real(save));
    if (held.length > 0 && !resumesIt) {
      problems.push(`--save ${save} already holds a training run (${held.slice(0, 3).join(", ")}${held.length > 3 ? ", ..." : ""}): resume it with --load ${save}, or give a new folder`);
    }
  }
  if (values.has("load") && (!existsSync(values.get("load")!) || !statSync(values.get("load")!).isDirectory())) problems.push(`--load ${values.get("load")}: no such folder`);
  if (problems.length) throw new UsageError(problems.join("\n"));
  const seed = numbers.get("seed") ?? 0;
  const options: TrainOptions = {
    steps, batchSize, microBatchSize, lr: numbers.get("lr")!, warmup: numbers.get("warmup") ?? 0,
    schedule: (values.get("schedule") ?? "cosine") as TrainOptions["schedule"], tMax: numbers.get("t-max"),
    alphaF: numbers.get("alpha-f") ?? 0.1, weightDecay: numbers.get("weight-decay") ?? 0.1, betas: betas as [number, number], eps: numbers.get("eps") ?? 1e-5,
    maxGradNorm: numbers.get("max-grad-norm") ?? 1.0, decayEmbeddings: flags.has("decay-embeddings"), shuffle: !flags.has("no-shuffle"), seed,
    stopOnSpike: numbers.get("stop-on-spike"), checkpointActivations: numbers.get("checkpoint-layers") ?? flags.has("checkpoint-activations"),
  };
  const saveEvery = numbers.get("save-every") ?? 0;

  // What the run starts from, its config (without weights) and the data, checked before anything is allocated.
  const resumeFolder = values.has("load") ? await latestCheckpointFolder(values.get("load")!) : null;
  const lora = await loraPlan(parsed, resumeFolder);
  const from = values.has("config") ? "config" : values.has("load") ? "load" : "model";
  let config: OlmoConfig, baseSource = null as ReturnType<typeof modelSource> | null, baseName = "";
  if (lora) {
    const location = await locateModel(lora.base, undefined);
    if (lora.adapterFolder) warnIfOtherBase(lora.adapterFolder, location);
    baseSource = modelSource(location, undefined);
    // Recorded in the run's options and the adapter's base_model_name_or_path: a folder by its full path.
    baseName = location.kind === "folder" ? resolve(location.folder) : location.repo;
    const configText = await readTextFile(baseSource, "config.json");
    if (configText === null) throw new UsageError(`--model ${lora.base}: no config.json`);
    config = configFromHf(configText, `${baseSource.name}/config.json`);
  } else {
    config = from === "config" ? await configFromArg(values.get("config")!) : await configOfFolder(from, values.get(from)!);
  }
  const dataset = await readTokenDataset(data, {
    labelMask: values.get("label-mask"), idsDType: (values.get("ids-dtype") ?? "uint16") as IdDType, seqLen, vocabSize: config.vocabSize,
  });
  if (seqLen > config.maxPositionEmbeddings) throw new UsageError(`--seq-len ${seqLen} exceeds the model's context of ${config.maxPositionEmbeddings}`);
  const tokenizerFile = values.get("tokenizer");
  let tokenizerJson = tokenizerFile ? await readInput("--tokenizer", tokenizerFile) : null;

  // On wasm, a model whose training state passes 4 GiB spans several WebAssembly memories (each layer's
  // weights kept in one; gradients and AdamW moments wherever there is room), up to the machine's memory.
  const backend = await backendByName(values.get("backend") ?? "wasm", numbers.get("threads") ?? 2, {
    maxMemoryPerInstance: numbers.get("max-memory-per-instance"),
  });
  try {
    let model: Olmo;
    let runOptions: Record<string, unknown> = { ...options, seqLen, data, seed };
    if (lora) {
      // The frozen base as stored (bf16 stays bf16) or quantized; the fit check counts the adapters'
      // training state beside it. The adapters: fresh, from --adapter, or the resumed step's.
      const extraBytes = (c: OlmoConfig) => loraTrainingBytes(c, lora.options, microBatchSize ?? batchSize, seqLen);
      model = (await loadOlmo(baseSource!, backend, { quantize: lora.quantize, extraBytes })).model;
      try {
        model.lora = lora.adapterFolder
          ? await loadLoraAdapters(folderSource(lora.adapterFolder), model, seed)
          : LoraAdapters.create(model.config, lora.options, backend, seed);
      } catch (e) {
        model.dispose();
        throw e;
      }
      const q = model.weights.get("layers.0.q")!;
      const quantization = q instanceof QuantizedWeight ? q.scheme : "none";
      const { r, alpha } = model.lora.options;
      // quantize: what --load applies to the base again (the option, so a folder stored quantized loads
      // as stored again); base_quantization: what the frozen layers are.
      runOptions = { ...runOptions, model: baseName, quantize: lora.quantize ?? "none", base_quantization: quantization, lora: { r, alpha, targets: model.lora.targets, dropout: model.lora.dropout } };
      console.error(
        `olmo train: LoRA r ${r}, alpha ${alpha} on ${model.lora.targets.join(", ")} of ${config.numLayers} layers: ` +
          `${loraParameterCount(config, model.lora.options).toLocaleString("en")} trainable numbers; the base ${baseName} is frozen (${q instanceof QuantizedWeight ? q.scheme : q.dtype})`,
      );
    } else {
      checkTrainingFits(config, backend, microBatchSize ?? batchSize, seqLen, `--${from} ${values.get(from)}`);
      if (from === "config") {
        model = new Olmo(config, initialWeights(config, seed, backend));
      } else {
        const loaded = await loadTrainableModel(values.get(from)!, backend);
        model = loaded.model;
        // Checkpoints carry the tokenizer: --tokenizer, else the one of the folder the run started from.
        tokenizerJson ??= loaded.tokenizerJson;
      }
    }
    const trainer = new Trainer(model, dataset, options);
    if (resumeFolder) await restoreTrainerState(resumeFolder, trainer, flags.has("reset-trainer-state"));
    const startStep = trainer.step;
    if (startStep >= steps) {
      console.error(`olmo train: nothing to do: ${resumeFolder} is at step ${startStep}, and --steps is ${steps}`);
      trainer.optimizer.dispose();
      model.dispose();
      return;
    }
    const leftover = dataset.ids.length - dataset.instances * seqLen;
    // OLMo drops ids past the last whole instance too; said here because data prepared for another
    // seq_len (chat examples padded to 512, read as 300) leaves a remainder and straddles examples.
    if (leftover > 0) console.error(`olmo train: warning: the last ${leftover} of ${dataset.ids.length} ids in ${data} do not fill an instance of --seq-len ${seqLen} and are not used`);
    // The visiting order wraps around the data, so a batch larger than the data repeats instances in it.
    if (dataset.instances < batchSize) console.error(`olmo train: warning: ${data} holds ${dataset.instances} instance(s) of --seq-len ${seqLen}, fewer than --batch-size ${batchSize}: every batch repeats instances`);
    await train(trainer, { save, saveEvery, keep: numbers.get("keep") ?? 2, data, seqLen, tokenizerJson, runOptions });
    trainer.optimizer.dispose();
    model.dispose();
  } finally {
    backend.dispose();
  }
}

interface RunSettings {
  save: string;
  saveEvery: number;
  keep: number;
  data: string;
  seqLen: number;
  tokenizerJson: string | null;
  runOptions: Record<string, unknown>;
}

/** The training loop: steps, metrics, checkpoints, and a checkpoint on SIGINT / SIGTERM. */
async function train(trainer: Trainer, s: RunSettings): Promise<void> {
  const { steps } = trainer.options;
  await mkdir(s.save, { recursive: true });
  const metricsFile = join(s.save, "metrics.jsonl");
  const history = await readHistory(metricsFile, trainer.step);
  await writeFileAtomic(metricsFile, history.map((m) => JSON.stringify(m) + "\n").join(""));
  const checkpoints = new CheckpointRun(s.save, s.keep);
  let savedStep = -1;
  const saveNow = async () => {
    const folder = await checkpoints.save(trainer, s.runOptions, s.tokenizerJson ? { "tokenizer.json": s.tokenizerJson } : {});
    savedStep = trainer.step;
    await writeFileAtomic(join(s.save, "loss.svg"), lossCurveSvg(history));
    return folder;
  };
  // Ctrl-C (SIGINT) or SIGTERM: finish the step under way, save it, exit 130 / 143. A second signal
  // exits at once: saves are atomic, so that loses only the step under way.
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    const code = signal === "SIGINT" ? 130 : 143;
    if (stopSignal) process.exit(code);
    stopSignal = signal;
    process.stderr.write(`\nolmo train: ${signal}: saving after this step (again to quit without saving)\n`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const tty = process.stderr.isTTY;
  const startStep = trainer.step, started = performance.now();
  const backend = trainer.model.backend;
  const memories = backend.name === "wasm" ? (backend as WasmBackend).memoryUsageByMemory().length : 1;
  const where = `${backend.name} backend${memories > 1 ? ` across ${memories} WebAssembly memories` : ""}`;
  console.error(`olmo train: ${trainer.data.instances} instances of ${s.seqLen} tokens, steps ${startStep + 1}..${steps}, ${where}, saving to ${s.save}`);
  const lastSaveNote = async () => {
    if (checkpoints.last) return `the last checkpoint this run saved is ${checkpoints.last} (${join(s.save, "latest")} names it)`;
    const latest = await readLatest(s.save);
    return `this run saved nothing${latest ? `; ${join(s.save, "latest")} still names ${latest}, from before this run` : ""}`;
  };
  try {
    while (trainer.step < steps && !stopSignal) {
      let m: StepMetrics;
      try {
        m = await trainer.trainStep();
      } catch (e) {
        if (e instanceof TrainingStoppedError) throw new Error(`${e.message}; ${await lastSaveNote()}`);
        throw e;
      }
      history.push(m);
      await appendFile(metricsFile, JSON.stringify(m) + "\n");
      const elapsed = (performance.now() - started) / 1000;
      const eta = (elapsed / (m.step - startStep)) * (steps - m.step);
      const line =
        `step ${m.step}/${steps}  loss ${m.loss.toFixed(4)}  grad_norm ${m.grad_norm.toFixed(3)}  lr ${m.lr.toExponential(2)}  ` +
        `${m.tokens_per_s.toFixed(0)} tokens/s  elapsed ${duration(elapsed)}  eta ${duration(eta)}`;
      if (tty) process.stderr.write(`\r${line}   `);
      else console.error(line);
      if (s.saveEvery > 0 && m.step % s.saveEvery === 0 && m.step < steps) {
        const folder = await saveNow();
        if (!tty) console.error(`saved ${folder}`);
      }
    }
    if (tty) process.stderr.write("\n");
    const folder = savedStep === trainer.step ? checkpoints.last! : await saveNow();
    const elapsed = duration((performance.now() - started) / 1000);
    if (stopSignal) {
      console.error(`olmo train: stopped by ${stopSignal} after step ${trainer.step} (${elapsed}); saved ${folder}; resume with --load ${s.save}`);
      process.exitCode = stopSignal === "SIGINT" ? 130 : 143;
    } else {
      console.error(`olmo train: ${trainer.step - startStep} steps in ${elapsed}; saved ${folder} (${join(s.save, "latest")} names it)`);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
