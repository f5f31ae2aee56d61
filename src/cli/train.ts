// `olmo prepare-data` and `olmo train`.

import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  configFromHf, initialWeights, lossCurveSvg, NaNLossError, Olmo, OLMO_PRESETS, prepareTrainingData, Tokenizer, Trainer,
  type IdDType, type OlmoConfig, type StepMetrics, type TrainOptions,
} from "../index.js";
import { loadTrainableModel, readTokenDataset, restoreTrainerState, saveTrainingCheckpoint, writeTokenData } from "../node/index.js";
import { numberOption, parseArgs, UsageError, usage, type OptionSpec } from "./args.js";
import { backendByName } from "./backends.js";

// ---------------------------------------------------------------------------------------------------
// prepare-data

const prepareSpec: Record<string, OptionSpec> = {
  tokenizer: { kind: "value", help: "tokenizer.json" },
  input: { kind: "value", help: "a text file (one document) or JSONL: {\"text\": ...} or {\"messages\": [{role, content}]} per line (the last message is the labelled answer)" },
  "seq-len": { kind: "value", help: "instance length (chat examples are padded / cut to it)" },
  out: { kind: "value", help: "output folder for input_ids.npy and label_mask.npy" },
  "ids-dtype": { kind: "value", help: "uint16 (default) or uint32" },
  help: { kind: "flag", help: "show this help" },
};

export async function runPrepareData(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("prepare-data", args, prepareSpec);
  if (flags.has("help")) return void console.log(usage("prepare-data", prepareSpec));
  const tokenizerFile = values.get("tokenizer"), input = values.get("input"), out = values.get("out");
  const seqLen = Number(values.get("seq-len"));
  if (!tokenizerFile || !input || !out) throw new UsageError("olmo prepare-data: --tokenizer, --input, --seq-len and --out are required");
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new UsageError(`--seq-len must be an integer >= 2, got ${values.get("seq-len")}`);
  const dtype = (values.get("ids-dtype") ?? "uint16") as IdDType;
  if (dtype !== "uint16" && dtype !== "uint32") throw new UsageError(`--ids-dtype must be uint16 or uint32, got ${dtype}`);
  const tokenizer = new Tokenizer(await readFile(tokenizerFile, "utf8"));
  const text = await readFile(input, "utf8");
  const { ids, mask } = prepareTrainingData(tokenizer, text, { jsonl: input.endsWith(".jsonl"), seqLen, dtype, source: input });
  await writeTokenData(out, ids, mask);
  console.log(`wrote ${ids.length} tokens (${Math.floor(ids.length / seqLen)} instances of ${seqLen}) to ${out}/input_ids.npy (${dtype}, no header) and label_mask.npy`);
}

// ---------------------------------------------------------------------------------------------------
// train

const trainSpec: Record<string, OptionSpec> = {
  model: { kind: "value", help: "start from this model folder (fine-tuning)" },
  config: { kind: "value", help: "start from scratch: a preset (OLMo-1B, ...) or a config.json file" },
  tokenizer: { kind: "value", help: "tokenizer.json to copy into each checkpoint" },
  data: { kind: "value", help: "folder with input_ids.npy [+ label_mask.npy], or the ids file itself" },
  "label-mask": { kind: "value", help: "label mask file (default: label_mask.npy beside the ids, or all ones)" },
  "ids-dtype": { kind: "value", help: "uint16 (default) or uint32" },
  "seq-len": { kind: "value", help: "instance length" },
  "batch-size": { kind: "value", help: "instances per update" },
  "micro-batch-size": { kind: "value", help: "instances per forward / backward pass (gradient accumulation)" },
  steps: { kind: "value", help: "updates to run (in all, counting a resumed run's)" },
  lr: { kind: "value", help: "peak learning rate" },
  warmup: { kind: "value", help: "warmup steps (from 0.1 lr)" },
  schedule: { kind: "value", help: "cosine (default), linear or constant" },
  "t-max": { kind: "value", help: "step where decay ends (default: --steps)" },
  "alpha-f": { kind: "value", help: "final lr fraction (default 0.1)" },
  "weight-decay": { kind: "value", help: "default 0.1" },
  betas: { kind: "value", help: "default 0.9,0.95" },
  eps: { kind: "value", help: "default 1e-5" },
  "max-grad-norm": { kind: "value", help: "clip the global gradient norm (default 1.0; 0 disables)" },
  "decay-embeddings": { kind: "flag", help: "weight-decay the embedding too" },
  "no-shuffle": { kind: "flag", help: "visit instances in file order" },
  seed: { kind: "value", help: "data order and initialisation seed (default 0)" },
  backend: { kind: "value", help: "js, wasm (default) or webgpu" },
  threads: { kind: "value", help: "threads of the wasm backend (default 2)" },
  save: { kind: "value", help: "checkpoint folder (required)" },
  "save-every": { kind: "value", help: "save every K steps (default: only at the end)" },
  load: { kind: "value", help: "resume from a checkpoint folder or --save directory" },
  "reset-trainer-state": { kind: "flag", help: "with --load: keep weights and optimizer, restart step, schedule, data" },
  help: { kind: "flag", help: "show this help" },
};

async function configFromArg(arg: string): Promise<OlmoConfig> {
  const preset = OLMO_PRESETS[arg];
  if (preset) return { ...preset };
  if (!existsSync(arg)) throw new UsageError(`--config ${arg}: neither a preset (${Object.keys(OLMO_PRESETS).join(", ")}) nor a file`);
  return configFromHf(await readFile(arg, "utf8"), arg);
}

export async function runTrain(args: string[]): Promise<void> {
  const { values, flags } = parseArgs("train", args, trainSpec);
  if (flags.has("help")) return void console.log(usage("train", trainSpec));
  const num = (name: string, fallback?: number): number => {
    const v = numberOption("train", values, name) ?? fallback;
    if (v === undefined) throw new UsageError(`olmo train: --${name} is required`);
    return v;
  };
  const save = values.get("save");
  if (!save) throw new UsageError("olmo train: --save DIR is required");
  const data = values.get("data");
  if (!data) throw new UsageError("olmo train: --data DIR_OR_FILE is required");
  const from = [values.get("model"), values.get("config"), values.get("load")].filter((v) => v !== undefined);
  if (from.length !== 1) throw new UsageError("olmo train: give exactly one of --model DIR, --config PRESET_OR_JSON or --load DIR");
  const betas = (values.get("betas") ?? "0.9,0.95").split(",").map(Number);
  if (betas.length !== 2 || betas.some((b) => !(b >= 0 && b < 1))) throw new UsageError(`--betas must be two numbers in [0, 1), got ${values.get("betas")}`);
  const schedule = values.get("schedule") ?? "cosine";
  if (!["cosine", "linear", "constant"].includes(schedule)) throw new UsageError(`--schedule must be cosine, linear or constant, got ${schedule}`);
  const seed = num("seed", 0);
  const options: TrainOptions = {
    steps: num("steps"), batchSize: num("batch-size"), microBatchSize: values.has("micro-batch-size") ? num("micro-batch-size") : undefined,
    lr: num("lr"), warmup: num("warmup", 0), schedule: schedule as TrainOptions["schedule"], tMax: values.has("t-max") ? num("t-max") : undefined,
    alphaF: num("alpha-f", 0.1), weightDecay: num("weight-decay", 0.1), betas: betas as [number, number], eps: num("eps", 1e-5),
    maxGradNorm: num("max-grad-norm", 1.0), decayEmbeddings: flags.has("decay-embeddings"), shuffle: !flags.has("no-shuffle"), seed,
  };
  const seqLen = num("seq-len");

  const backendName = values.get("backend") ?? "wasm";
  const backend = await backendByName(backendName, num("threads", 2));
  try {
    // The model: a checkpoint to resume or fine-tune, or a fresh initialisation.
    let model: Olmo, resumeFolder: string | null = null, tokenizerJson: string | null = null;
    if (values.has("config")) {
      const config = await configFromArg(values.get("config")!);
      model = new Olmo(config, initialWeights(config, seed, backend));
    } else {
      const loaded = await loadTrainableModel((values.get("load") ?? values.get("model"))!, backend);
      model = loaded.model;
      tokenizerJson = loaded.tokenizerJson;
      if (values.has("load")) resumeFolder = loaded.folder;
    }
    // Checkpoints carry the tokenizer: --tokenizer, else the one of the folder the run started from.
    const tokenizerFile = values.get("tokenizer");
    if (tokenizerFile) tokenizerJson = await readFile(tokenizerFile, "utf8");
    // The data.
    const dataset = await readTokenDataset(data, {
      labelMask: values.get("label-mask"), idsDType: (values.get("ids-dtype") ?? "uint16") as IdDType, seqLen, vocabSize: model.config.vocabSize,
    });
    const trainer = new Trainer(model, dataset, options);
    if (resumeFolder) await restoreTrainerState(resumeFolder, trainer, flags.has("reset-trainer-state"));

    await mkdir(save, { recursive: true });
    const metricsFile = join(save, "metrics.jsonl");
    const saveEvery = num("save-every", 0);
    const runOptions = { ...options, seqLen, data, seed };
    // Steps a crashed run logged past the checkpoint it resumes from are dropped: they will be redone.
    const history: StepMetrics[] = existsSync(metricsFile)
      ? (await readFile(metricsFile, "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as StepMetrics).filter((m) => m.step <= trainer.step)
      : [];
    await writeFile(metricsFile, history.map((m) => JSON.stringify(m) + "\n").join(""));
    const saveNow = async () => {
      await saveTrainingCheckpoint(save, trainer, runOptions, tokenizerJson ? { "tokenizer.json": tokenizerJson } : {});
      await writeFile(join(save, "loss.svg"), lossCurveSvg(history));
    };
    console.error(`olmo train: ${dataset.instances} instances of ${seqLen} tokens, steps ${trainer.step + 1}..${options.steps}, ${backend.name} backend`);
    while (trainer.step < options.steps) {
      let m: StepMetrics;
      try {
        m = await trainer.trainStep();
      } catch (e) {
        if (e instanceof NaNLossError) throw new Error(`${e.message} (in ${save})`);
        throw e;
      }
      history.push(m);
      await appendFile(metricsFile, JSON.stringify(m) + "\n");
      const line = `step ${m.step}/${options.steps}  loss ${m.loss.toFixed(4)}  grad_norm ${m.grad_norm.toFixed(3)}  lr ${m.lr.toExponential(2)}  ${m.tokens_per_s.toFixed(0)} tokens/s`;
      if (process.stderr.isTTY) process.stderr.write(`\r${line}   `);
      else console.error(line);
      if (saveEvery > 0 && m.step % saveEvery === 0 && m.step < options.steps) await saveNow();
    }
    if (process.stderr.isTTY) process.stderr.write("\n");
    await saveNow();
    trainer.optimizer.dispose();
    model.dispose();
  } finally {
    backend.dispose();
  }
}
