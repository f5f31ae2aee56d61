// Export a training run's latest checkpoint, or its step STEP, as the default model
// (models/olmo-tiny-shakespeare): config.json, model.safetensors in BF16 (half the bytes; olmo-js widens
// bf16 exactly), tokenizer.json, and the run's metrics.jsonl and loss.svg (the whole run's). The recipe
// (RECIPE.md) is written by hand beside them.
//
// usage: node scripts/export-default-model.mjs RUN_DIR [STEP]
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createJsBackend, encodeSafetensors, hfTensorName, loadCheckpoint, narrowFromF32, configToHf } from "../dist/index.js";
import { folderSource, latestCheckpointFolder } from "../dist/node.js";

const run = process.argv[2];
if (!run) throw new Error("usage: node scripts/export-default-model.mjs RUN_DIR [STEP]");
const step = process.argv[3];
const out = new URL("../models/olmo-tiny-shakespeare", import.meta.url).pathname;
const folder = step === undefined ? await latestCheckpointFolder(run) : join(run, `step-${step}`);
const checkpoint = await loadCheckpoint(folderSource(folder), createJsBackend(), { weightDType: "f32" });
const tensors = [];
for (const [name, t] of checkpoint.weights) {
  const bits = narrowFromF32(await t.data(), "bf16");
  tensors.push({ name: hfTensorName(name), dtype: "BF16", shape: t.shape, bytes: new Uint8Array(bits.buffer) });
}
const chunks = encodeSafetensors(tensors);
const total = chunks.reduce((n, c) => n + c.length, 0);
const file = new Uint8Array(total);
let offset = 0;
for (const c of chunks) (file.set(c, offset), (offset += c.length));
writeFileSync(join(out, "model.safetensors"), file);
writeFileSync(join(out, "config.json"), JSON.stringify({ ...configToHf(checkpoint.config), torch_dtype: "bfloat16" }, null, 2) + "\n");
copyFileSync(join(folder, "tokenizer.json"), join(out, "tokenizer.json"));
copyFileSync(join(run, "metrics.jsonl"), join(out, "metrics.jsonl"));
copyFileSync(join(run, "loss.svg"), join(out, "loss.svg"));
console.log(`exported ${folder} to ${out} (${(total / 1e6).toFixed(1)} MB of weights)`);
