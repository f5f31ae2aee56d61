// `olmo quantize --model DIR --to int8|int4 --out DIR`: write a quantized copy of a model folder
// (int8 in the layout transformers saves for load_in_8bit; int4 in olmo-js's own; src/io/quantized.ts).

import { availableParallelism } from "node:os";
import { loadOlmo, type QuantScheme } from "../index.js";
import { checkNewFolder } from "../node/fs.js";
import { saveModelFolder } from "../node/model-folder.js";
import { parseArgs, usage, UsageError, type CommandSpec } from "./args.js";
import { backendByName } from "./backends.js";
import { DEFAULT_MODEL, locateModel, modelSource } from "./model.js";

const spec: CommandSpec = {
  model: { kind: "value", placeholder: "DIR_OR_REPO", help: "model folder, a training run's --save folder (its latest step), or a Hub repo owner/name (default: the bundled tiny Shakespeare model)" },
  revision: { kind: "value", help: "Hub revision: branch, tag or commit (default main)" },
  to: { kind: "value", required: true, choices: ["int8", "int4"], help: "int8 (per-row scales, bitsandbytes' layout) or int4 (groups of 32, f16 scales)" },
  out: { kind: "value", required: true, placeholder: "DIR", help: "the new model folder (must not exist, or be empty)" },
  embedding: {
    kind: "value", choices: ["float", "int8", "int4"],
    help: "the embedding and LM head: float (--to int8's default: bitsandbytes' layout, which transformers reads), int8 (more precise logits under int4, a little slower; under --to int8, a folder only olmo-js reads), or int4 (--to int4's default)",
  },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads of the wasm backend that quantizes (default: cores, at most 8)" },
};

export async function runQuantize(args: string[]): Promise<void> {
  const parsed = parseArgs("quantize", args, spec);
  if (parsed.help) return void console.log(usage("quantize", spec));
  const { values, numbers } = parsed;
  const scheme = values.get("to") as QuantScheme, out = values.get("out")!;
  const embedding = values.get("embedding") ?? (scheme === "int8" ? "float" : scheme);
  if (scheme === "int8" && embedding === "int4") {
    throw new UsageError("--embedding int4 goes with --to int4: an 8-bit folder's layers are more precise than a 4-bit LM head would be");
  }
  // Before minutes of loading and quantizing: --out must be able to become the new folder.
  checkNewFolder(out, "olmo quantize");
  const location = await locateModel(values.get("model") ?? DEFAULT_MODEL, values.get("revision"));
  const source = modelSource(location, values.get("revision"));
  const backend = await backendByName("wasm", numbers.get("threads") ?? Math.min(8, availableParallelism()));
  try {
    const started = performance.now();
    // int8 keeps the embedding and LM head float by default, as bitsandbytes does, so transformers reads
    // the folder; float weights are kept in bf16 (f16 stays f16), as a quantized checkpoint's are.
    const quantizeEmbedding = embedding === "float" ? false : (embedding as QuantScheme);
    const { model } = await loadOlmo(source, backend, { quantize: scheme, quantizeEmbedding, weightDType: "bf16" });
    // A folder whose weights are already quantized in another scheme than asked (--embedding included) is
    // refused by the loader (quantized weights cannot be quantized again); one in this scheme is copied
    // as it is, its float weights quantized.
    const bytes = await saveModelFolder(model.weights, source, out, { what: "olmo quantize" });
    console.error(`wrote ${out}: ${scheme} (embedding and LM head ${embedding}), ${(bytes / 1e9).toFixed(3)} GB of weights in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    backend.dispose();
  }
}
