// Training checkpoints on disk, written atomically.
//
// --save DIR holds one folder per saved step (DIR/step-N: config.json + model.safetensors in Hugging
// Face layout, loadable by transformers, plus optimizer.safetensors and trainer_state.json) and a file
// DIR/latest naming the newest complete one. A checkpoint is written into DIR/step-N.tmp, renamed into
// place, and only then is `latest` replaced (written to latest.tmp, then renamed: an atomic switch).
// A crash at any point leaves the previous checkpoint and the `latest` that names it intact. The two
// newest checkpoints are kept.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { configToHf } from "../model/config.js";
import { encodeSafetensors, readSafetensorsHeader, type TensorToWrite } from "../io/safetensors.js";
import { hfTensorName, loadCheckpoint } from "../io/checkpoint.js";
import { Olmo } from "../model/olmo.js";
import type { AnyBackend, Tensor } from "../core/tensor.js";
import type { Trainer } from "../train/trainer.js";
import { fileSource, folderSource } from "./fs.js";

export interface TrainerState {
  /** Updates done (the data position is step * batch size in the visiting order). */
  step: number;
  /** The options the run was started with (schedule, batch, seed, ...). */
  options: Record<string, unknown>;
}

async function writeFileAtomic(path: string, chunks: Uint8Array[]): Promise<void> {
  const out = createWriteStream(`${path}.tmp`);
  for (const chunk of chunks) if (!out.write(chunk)) await once(out, "drain");
  out.end();
  await once(out, "finish");
  await rename(`${path}.tmp`, path);
}

async function f32Tensor(name: string, t: Tensor): Promise<TensorToWrite> {
  const values = (await t.data()) as Float32Array;
  return { name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/**
 * Save the trainer's model, optimizer and position (plus `extraFiles`, e.g. tokenizer.json: name ->
 * contents) as DIR/step-N, then point DIR/latest at it.
 */
export async function saveTrainingCheckpoint(
  dir: string, trainer: Trainer, options: Record<string, unknown>, extraFiles: Record<string, string> = {},
): Promise<string> {
  const name = `step-${trainer.step}`;
  const folder = join(dir, name), tmp = `${folder}.tmp`;
  await mkdir(dir, { recursive: true });
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  const model = trainer.model;
  await writeFile(join(tmp, "config.json"), JSON.stringify(configToHf(model.config), null, 2) + "\n");
  const weights: TensorToWrite[] = [];
  for (const [weight, t] of model.weights) weights.push(await f32Tensor(hfTensorName(weight), t));
  await writeFileAtomic(join(tmp, "model.safetensors"), encodeSafetensors(weights));
  const moments: TensorToWrite[] = [];
  for (const p of trainer.params) {
    moments.push(await f32Tensor(`exp_avg.${hfTensorName(p.name as never)}`, trainer.optimizer.m.get(p.name)!));
    moments.push(await f32Tensor(`exp_avg_sq.${hfTensorName(p.name as never)}`, trainer.optimizer.v.get(p.name)!));
  }
  await writeFileAtomic(join(tmp, "optimizer.safetensors"), encodeSafetensors(moments, { format: "pt", step: String(trainer.optimizer.step) }));
  const state: TrainerState = { step: trainer.step, options };
  await writeFile(join(tmp, "trainer_state.json"), JSON.stringify(state, null, 2) + "\n");
  for (const [name, contents] of Object.entries(extraFiles)) await writeFile(join(tmp, name), contents);
  await rm(folder, { recursive: true, force: true });
  await rename(tmp, folder);
  await writeFileAtomic(join(dir, "latest"), [new TextEncoder().encode(name + "\n")]);
  // Keep the two newest complete checkpoints.
  const steps = (await readdir(dir)).filter((f) => /^step-\d+$/.test(f)).sort((a, b) => Number(b.slice(5)) - Number(a.slice(5)));
  for (const old of steps.slice(2)) await rm(join(dir, old), { recursive: true, force: true });
  return folder;
}

/** The folder DIR/latest names, or DIR itself when it is a plain model folder. */
export async function latestCheckpointFolder(dir: string): Promise<string> {
  try {
    return join(dir, (await readFile(join(dir, "latest"), "utf8")).trim());
  } catch {
    return dir;
  }
}

/** Load a model (f32, for training) from a checkpoint folder or a --save directory. */
export async function loadTrainableModel(dir: string, backend: AnyBackend): Promise<{ model: Olmo; folder: string; tokenizerJson: string | null }> {
  const folder = await latestCheckpointFolder(dir);
  const checkpoint = await loadCheckpoint(folderSource(folder), backend, { weightDType: "f32" });
  return { model: new Olmo(checkpoint.config, checkpoint.weights), folder, tokenizerJson: checkpoint.tokenizerJson };
}

/** Restore optimizer moments and step, and the trainer position, saved with the checkpoint in `folder`. */
export async function restoreTrainerState(folder: string, trainer: Trainer, resetTrainerState: boolean): Promise<TrainerState | null> {
  const file = await fileSource(join(folder, "optimizer.safetensors"));
  if (!file) return null;
  const problems: string[] = [];
  const header = await readSafetensorsHeader(file, problems);
  if (problems.length) throw new Error(`${file.name}: ${problems.join("; ")}`);
  for (const p of trainer.params) {
    for (const [prefix, target] of [["exp_avg", trainer.optimizer.m], ["exp_avg_sq", trainer.optimizer.v]] as const) {
      const entry = header.tensors.get(`${prefix}.${hfTensorName(p.name as never)}`);
      const t = target.get(p.name)!;
      if (!entry || entry.dtype !== "F32" || entry.shape.join() !== t.shape.join()) {
        throw new Error(`${file.name}: ${prefix} of ${hfTensorName(p.name as never)} is missing or has the wrong shape`);
      }
      const bytes = await file.read(entry.begin, entry.end - entry.begin);
      t.backend.upload(t.bufferFor("restore"), "f32", new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    }
  }
  const state = JSON.parse(await readFile(join(folder, "trainer_state.json"), "utf8")) as TrainerState;
  trainer.optimizer.step = Number(header.metadata.step ?? state.step);
  // --reset-trainer-state (OLMo's meaning): keep the weights and the optimizer state (moments and
  // its step count), restart the trainer's step, hence the schedule and the data position.
  trainer.step = resetTrainerState ? 0 : state.step;
  return state;
}
