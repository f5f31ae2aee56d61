// Training checkpoints on disk, written so that a crash at any instant loses nothing.
//
// --save DIR holds one folder per saved step and a file DIR/latest naming the newest complete one.
// A step folder of full training: config.json + model.safetensors in Hugging Face layout (loadable by
// transformers), optimizer.safetensors (AdamW's moments by the weights' names) and trainer_state.json.
// A step folder of a LoRA run: the adapter in PEFT's layout (adapter_config.json +
// adapter_model.safetensors, loadable by PeftModel.from_pretrained and by --adapter), the adapters'
// moments in optimizer.safetensors by PEFT's tensor names, and trainer_state.json, whose options name
// the frozen base model (it is not copied: it never changes).
// The invariant: `latest` always names a complete folder.
//   1. The checkpoint is written into DIR/step-N.tmp, every file fsynced, then the folder itself.
//   2. A new step: step-N.tmp is renamed to step-N and the directory fsynced; then `latest` is
//      switched (written to latest.tmp, fsynced, renamed over latest: atomic).
//   3. A step that already exists (a resumed run redoing a step a crash interrupted): renaming over
//      step-N is impossible while `latest` may name it, so `latest` is first switched to the complete
//      step-N.tmp, step-N is removed and rebuilt from hard links to step-N.tmp's files (no copy), and
//      only then is `latest` switched back and step-N.tmp removed. A crash in between leaves `latest`
//      on step-N.tmp, which the next save finishes moving first.
// Pruning (CheckpointRun) deletes only folders this run wrote, oldest first, after `latest` has moved.

import { existsSync } from "node:fs";
import { link, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { configToHf, type OlmoConfig } from "../model/config.js";
import { encodeSafetensors, firstNonFinite, readSafetensorsHeader, type TensorToWrite } from "../io/safetensors.js";
import { hfTensorName, loadCheckpoint } from "../io/checkpoint.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfig, adapterTensors, loraTensorName } from "../io/lora.js";
import type { WeightName } from "../model/weights.js";
import { Olmo } from "../model/olmo.js";
import type { AnyBackend, Tensor } from "../core/tensor.js";
import type { Trainer } from "../train/trainer.js";
import { fileSource, folderSource, readJsonObject } from "./fs.js";

export interface TrainerState {
  /** Updates done (the data position is step * batch size in the visiting order). */
  step: number;
  /** The options the run was started with (schedule, batch, seed, ...). */
  options: Record<string, unknown>;
}

/** Flush a file's or a folder's contents (a folder: its entries, so a rename in it survives a power cut). */
async function fsync(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } catch (e) {
    // Some platforms (Windows) refuse to sync a directory handle; their renames are durable without it.
    if (!["EISDIR", "EPERM", "EBADF", "EINVAL"].includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
  } finally {
    await handle.close();
  }
}

/**
 * Write the new file `path` and flush it to disk before returning. Created exclusively ("wx"): a file
 * or link already there is an error, never followed (a link planted in a --save folder must not make a
 * save write outside it).
 */
async function writeDurable(path: string, chunks: Uint8Array[] | string): Promise<void> {
  const handle = await open(path, "wx");
  try {
    for (const chunk of typeof chunks === "string" ? [new TextEncoder().encode(chunks)] : chunks) {
      for (let done = 0; done < chunk.length; ) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Point DIR/latest at `name` atomically: a reader sees the old name or the new one, never a partial file. */
async function switchLatest(dir: string, name: string): Promise<void> {
  // A latest.tmp left by a crash (or anything else by that name) is removed, not written through.
  await rm(join(dir, "latest.tmp"), { force: true });
  await writeDurable(join(dir, "latest.tmp"), name + "\n");
  await rename(join(dir, "latest.tmp"), join(dir, "latest"));
  await fsync(dir);
}

/** The folder name DIR/latest holds, or null when there is none. */
export async function readLatest(dir: string): Promise<string | null> {
  let name: string;
  try {
    name = (await readFile(join(dir, "latest"), "utf8")).trim();
  } catch {
    return null;
  }
  if (name === "") return null;
  // Only names this module writes: `latest` is a path that saves delete and rebuild under, so a
  // hand-edited or hostile one ("../elsewhere") must never reach a path outside DIR.
  if (!/^step-\d+(\.tmp)?$/.test(name)) throw new Error(`${join(dir, "latest")}: names "${name}", expected step-N (a folder beside it)`);
  return name;
}

/**
 * The name a trained parameter's tensors go by in a checkpoint: the Hugging Face weight name, or for a
 * LoRA matrix (`layers.3.q.lora_A`) PEFT's (`base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`).
 */
function checkpointName(parameter: string): string {
  const lora = /^(.*)\.lora_([AB])$/.exec(parameter);
  return lora ? loraTensorName(lora[1] as WeightName, lora[2] as "A" | "B") : hfTensorName(parameter as WeightName);
}

/** True when `folder` is a step folder of a LoRA run (or any PEFT adapter folder). */
export function isLoraFolder(folder: string): boolean {
  return existsSync(join(folder, ADAPTER_CONFIG));
}

async function f32Tensor(name: string, t: Tensor): Promise<TensorToWrite> {
  const values = (await t.data()) as Float32Array;
  return { name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/**
 * Refuse to save a step whose weights or moments are NaN or infinite (an update the loss check did not
 * see yet: it sees the next step's loss): `latest` keeps naming the last good step.
 */
function assertFiniteF32(tensors: TensorToWrite[], step: number): void {
  for (const t of tensors) {
    const at = t.dtype === "F32" ? firstNonFinite(t.bytes, "F32") : -1;
    if (at < 0) continue;
    const value = new DataView(t.bytes.buffer, t.bytes.byteOffset).getFloat32(4 * at, true);
    throw new Error(`step ${step}: ${t.name} holds ${value} at element ${at} after the update; the step was not saved (latest still names the last step saved)`);
  }
}

/** Replace DIR/`name` by the complete DIR/`name`.tmp that `latest` names (step 3 above), ending with `latest` on `name`. */
async function replaceFromStaging(dir: string, name: string): Promise<void> {
  const folder = join(dir, name), staging = `${folder}.tmp`;
  await switchLatest(dir, `${name}.tmp`);
  await rm(folder, { recursive: true, force: true });
  await mkdir(folder);
  for (const file of await readdir(staging)) await link(join(staging, file), join(folder, file));
  await fsync(folder);
  await fsync(dir);
  await switchLatest(dir, name);
  await rm(staging, { recursive: true, force: true });
}

/**
 * Save the trainer's model, optimizer and position (plus `extraFiles`, e.g. tokenizer.json: name ->
 * contents) as DIR/step-N, then point DIR/latest at it. Deletes nothing but its own staging folders.
 */
export async function saveTrainingCheckpoint(
  dir: string, trainer: Trainer, options: Record<string, unknown>, extraFiles: Record<string, string> = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  // A crash in the middle of a re-save left `latest` on a staging folder: finish moving it first.
  const latest = await readLatest(dir);
  if (latest?.endsWith(".tmp") && existsSync(join(dir, latest))) await replaceFromStaging(dir, latest.slice(0, -".tmp".length));
  const name = `step-${trainer.step}`;
  const folder = join(dir, name), staging = `${folder}.tmp`;
  // Staging folders `latest` does not name are writes a crash cut short: never checkpoints.
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging);
  try {
    await writeStep(staging, trainer, options, extraFiles);
  } catch (e) {
    // A staging folder is not a checkpoint until renamed: nothing of a refused or failed save remains.
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  await fsync(staging);
  if (existsSync(folder)) {
    await replaceFromStaging(dir, name);
  } else {
    await rename(staging, folder);
    await fsync(dir);
    await switchLatest(dir, name);
  }
  return folder;
}

/** The files of one step into `staging`; each file's tensors checked finite before it is written. */
async function writeStep(staging: string, trainer: Trainer, options: Record<string, unknown>, extraFiles: Record<string, string>): Promise<void> {
  const model = trainer.model;
  for (const file of Object.keys(extraFiles)) {
    if (STEP_FILES.includes(file)) throw new Error(`checkpoint: extra file "${file}" is one the save writes itself`);
  }
  // The trainer only trains plain f32 weights (trainableParameters refuses quantized ones).
  const weights: TensorToWrite[] = [];
  if (model.lora) weights.push(...(await adapterTensors(model.lora)));
  else for (const [weight, t] of model.weights) weights.push(await f32Tensor(hfTensorName(weight), t as Tensor));
  assertFiniteF32(weights, trainer.step);
  if (model.lora) {
    // The base is frozen: only the adapter changes. `options.model` names the base, as PEFT's
    // base_model_name_or_path does.
    await writeDurable(join(staging, ADAPTER_CONFIG), JSON.stringify(adapterConfig(model.lora, String(options.model ?? "")), null, 2) + "\n");
    await writeDurable(join(staging, ADAPTER_WEIGHTS), encodeSafetensors(weights));
  } else {
    await writeDurable(join(staging, "config.json"), JSON.stringify(configToHf(model.config), null, 2) + "\n");
    await writeDurable(join(staging, "model.safetensors"), encodeSafetensors(weights));
  }
  weights.length = 0; // (their host copies can go before the moments are read)
  const moments: TensorToWrite[] = [];
  for (const p of trainer.params) {
    moments.push(await f32Tensor(`exp_avg.${checkpointName(p.name)}`, trainer.optimizer.m.get(p.name)!));
    moments.push(await f32Tensor(`exp_avg_sq.${checkpointName(p.name)}`, trainer.optimizer.v.get(p.name)!));
  }
  assertFiniteF32(moments, trainer.step);
  await writeDurable(join(staging, "optimizer.safetensors"), encodeSafetensors(moments, { format: "pt", step: String(trainer.optimizer.step) }));
  const state: TrainerState = { step: trainer.step, options };
  await writeDurable(join(staging, "trainer_state.json"), JSON.stringify(state, null, 2) + "\n");
  for (const [file, contents] of Object.entries(extraFiles)) await writeDurable(join(staging, file), contents);
}

/** The files a step folder holds, which `extraFiles` may not name. */
const STEP_FILES = [ADAPTER_CONFIG, ADAPTER_WEIGHTS, "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"];

/**
 * The checkpoints of one training run: saves in order, and keeps the `keep` most recent of its own
 * saves. Folders it did not write (an earlier run's, in the same --save folder) are never deleted.
 */
export class CheckpointRun {
  /** Folders this run saved, oldest first. */
  private readonly saved: string[] = [];

  constructor(
    readonly dir: string,
    readonly keep: number,
  ) {
    if (!Number.isInteger(keep) || keep < 1) throw new Error(`checkpoints: keep must be an integer >= 1, got ${keep}`);
  }

  /** The newest folder this run saved, or null. */
  get last(): string | null {
    return this.saved.at(-1) ?? null;
  }

  async save(trainer: Trainer, options: Record<string, unknown>, extraFiles: Record<string, string> = {}): Promise<string> {
    const folder = await saveTrainingCheckpoint(this.dir, trainer, options, extraFiles);
    const again = this.saved.indexOf(folder);
    if (again >= 0) this.saved.splice(again, 1);
    this.saved.push(folder);
    // Pruned only after `latest` names the new folder, so what it names is never among these.
    while (this.saved.length > this.keep) await rm(this.saved.shift()!, { recursive: true, force: true });
    return folder;
  }
}

/**
 * The folder DIR/latest names; without `latest`, the newest step-N folder (a crash between a first
 * save's rename and its `latest` leaves one, complete: it was renamed only once whole); else DIR itself,
 * a plain model folder.
 */
export async function latestCheckpointFolder(dir: string): Promise<string> {
  const latest = await readLatest(dir);
  if (latest === null) {
    const steps = (await readdir(dir)).map((f) => /^step-(\d+)$/.exec(f)).filter((m) => m !== null).map((m) => Number(m![1]));
    return steps.length > 0 ? join(dir, `step-${Math.max(...steps)}`) : dir;
  }
  const folder = join(dir, latest);
  if (!existsSync(folder)) throw new Error(`${join(dir, "latest")} names ${latest}, which does not exist in ${dir}`);
  return folder;
}

/** Load a model (f32, for training) from a checkpoint folder or a --save directory. */
export async function loadTrainableModel(
  dir: string, backend: AnyBackend, options: { extraBytes?: (config: OlmoConfig) => number } = {},
): Promise<{ model: Olmo; folder: string; tokenizerJson: string | null }> {
  const folder = await latestCheckpointFolder(dir);
  const checkpoint = await loadCheckpoint(folderSource(folder), backend, { weightDType: "f32", extraBytes: options.extraBytes });
  return { model: new Olmo(checkpoint.config, checkpoint.weights), folder, tokenizerJson: checkpoint.tokenizerJson };
}

/** Restore optimizer moments and step, and the trainer position, saved with the checkpoint in `folder`. */
export async function restoreTrainerState(folder: string, trainer: Trainer, resetTrainerState: boolean): Promise<TrainerState | null> {
  const file = await fileSource(join(folder, "optimizer.safetensors"));
  const stateFile = join(folder, "trainer_state.json");
  if (!file) {
    // A model folder (fine-tuning starts at step 0); a run's step folder without its moments cannot resume exactly.
    if (!existsSync(stateFile)) return null;
    throw new Error(
      `${join(folder, "optimizer.safetensors")} is missing beside ${stateFile}: the run cannot resume where it stopped (AdamW's moments and step are in it); ` +
        `restore the file, or start a new run from these weights with --model ${folder}`,
    );
  }
  const problems: string[] = [];
  const header = await readSafetensorsHeader(file, problems);
  if (problems.length) throw new Error(`${file.name}: ${problems.join("; ")}`);
  for (const p of trainer.params) {
    for (const [prefix, target] of [["exp_avg", trainer.optimizer.m], ["exp_avg_sq", trainer.optimizer.v]] as const) {
      const entry = header.tensors.get(`${prefix}.${checkpointName(p.name)}`);
      const t = target.get(p.name)!;
      if (!entry || entry.dtype !== "F32" || entry.shape.join() !== t.shape.join()) {
        throw new Error(`${file.name}: ${prefix} of ${checkpointName(p.name)} is missing or has the wrong shape`);
      }
      const bytes = await file.read(entry.begin, entry.end - entry.begin);
      const values = new Float32Array(bytes.slice().buffer);
      // A moment no update can produce (NaN, infinite, a negative second moment) would poison every weight it touches.
      const bad = values.findIndex((v) => !Number.isFinite(v) || (prefix === "exp_avg_sq" && v < 0));
      if (bad >= 0) throw new Error(`${file.name}: ${prefix}.${checkpointName(p.name)} element ${bad} is ${values[bad]}; ${prefix === "exp_avg_sq" ? "a second moment must be finite and >= 0" : "a moment must be finite"}`);
      t.backend.upload(t.bufferFor("restore"), "f32", values);
    }
  }
  const state = (await readJsonObject(stateFile)) as unknown as TrainerState;
  if (!Number.isSafeInteger(state.step) || state.step < 0) throw new Error(`${stateFile}: step must be a non-negative integer, got ${JSON.stringify(state.step)}`);
  // The optimizer's own step (its bias corrections) is in the moments file's metadata.
  const optimizerStep = header.metadata.step === undefined ? state.step : Number(header.metadata.step);
  if (!Number.isSafeInteger(optimizerStep) || optimizerStep < 0) {
    throw new Error(`${file.name}: its metadata "step" (AdamW's step count) must be a non-negative integer, got ${JSON.stringify(header.metadata.step)}`);
  }
  trainer.optimizer.step = optimizerStep;
  // --reset-trainer-state (OLMo's meaning): keep the weights and the optimizer state (moments and
  // its step count), restart the trainer's step, hence the schedule and the data position.
  trainer.step = resetTrainerState ? 0 : state.step;
  return state;
}
