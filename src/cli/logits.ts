// `olmo logits`: the logits of token ids as a .npy file; with --capture, a folder of .npy files of what
// the model computes on the way (src/model/capture.ts) and an index.json describing them, for notebooks.

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Capture, noGrad, scope, tensor, type CapturedArray, type CapturedValues, type CaptureRequest, type OlmoConfig } from "../index.js";
import { writeFileAtomic, writeFolderAtomic } from "../node/index.js";
import { parseArgs, UsageError, usage, parseIdList, type CommandSpec } from "./args.js";
import { locate, modelOptions, openModel } from "./generate.js";

/** A .npy (format 1.0) file of float32 values with the given shape. */
export function encodeNpy(values: Float32Array, shape: readonly number[]): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  // Magic (6) + version (2) + length (2) + header + "\n" is padded to a multiple of 64 bytes.
  header += " ".repeat(64 - ((10 + header.length + 1) % 64)) + "\n";
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}

/** What --capture accepts, and the request each kind adds. */
const CAPTURE_KINDS = ["attention", "residual", "mlp", "next-token"] as const;
type CaptureKind = (typeof CAPTURE_KINDS)[number];

const logitsSpec: CommandSpec = {
  ...modelOptions,
  ids: { kind: "value", required: true, placeholder: "1,2,3", help: "token ids, comma-separated" },
  out: {
    kind: "value", required: true, placeholder: "FILE.npy|DIR",
    help: "output .npy file: float32 logits [T, vocab_size]; with --capture, a new folder of .npy files and index.json",
  },
  capture: {
    kind: "value", placeholder: "KINDS",
    help: `also write what the model computes, comma-separated: ${CAPTURE_KINDS.join(", ")} (needs --out DIR)`,
  },
  "capture-layers": { kind: "value", placeholder: "0,3", help: "layers whose attention --capture attention writes (default all)" },
  "capture-heads": { kind: "value", placeholder: "0,1", help: "query heads whose attention --capture attention writes (default all)" },
  "mlp-threshold": {
    kind: "value", number: { min: 1e-12, max: 1e12 },
    help: "--capture mlp counts |silu(gate) * up| below this as off (default 0.01)",
  },
};

/** The parts of --capture, checked: known kinds, once each. */
function parseCaptureKinds(raw: string): Set<CaptureKind> {
  const kinds = raw.split(",").map((s) => s.trim());
  const unknown = kinds.filter((k) => !(CAPTURE_KINDS as readonly string[]).includes(k));
  if (unknown.length) throw new UsageError(`--capture: unknown kind ${unknown.map((k) => `"${k}"`).join(", ")}; the kinds are ${CAPTURE_KINDS.join(", ")}`);
  return new Set(kinds as CaptureKind[]);
}

/** A comma-separated list of distinct indices in [0, count) for `flag`, naming the allowed range otherwise. */
function parseIndexList(flag: string, raw: string, count: number, what: string): number[] {
  const items = raw.split(",").map((s) => s.trim());
  const values = items.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  const bad = items.find((_, i) => !(values[i]! < count));
  if (bad !== undefined) throw new UsageError(`${flag}: "${bad}" is not a ${what} of this model; give ${what}s from 0 to ${count - 1}, comma-separated`);
  if (new Set(values).size !== values.length) throw new UsageError(`${flag}: ${raw} names a ${what} twice`);
  return values;
}

export async function runLogits(args: string[]): Promise<void> {
  const parsed = parseArgs("logits", args, logitsSpec);
  if (parsed.help) return void console.log(usage("logits", logitsSpec));
  const { values, numbers } = parsed;
  const ids = parseIdList("--ids", values.get("ids")!);
  const out = values.get("out")!;
  // Everything the command line alone can get wrong, before the model loads.
  const kinds = values.has("capture") ? parseCaptureKinds(values.get("capture")!) : null;
  for (const flag of ["capture-layers", "capture-heads"]) {
    if (values.has(flag) && !kinds?.has("attention")) throw new UsageError(`--${flag} selects attention: give it with --capture attention`);
  }
  if (numbers.has("mlp-threshold") && !kinds?.has("mlp")) throw new UsageError("--mlp-threshold is for --capture mlp: give it with --capture mlp");
  if (kinds && (out.endsWith(".npy") || (existsSync(out) && !statSync(out).isDirectory()))) {
    throw new UsageError(`--out must be a folder with --capture (logits.npy and one .npy per captured array go in it), got ${out}`);
  }
  const location = await locate(parsed);
  const { model, backend, name } = await openModel(parsed, location);
  try {
    const { vocabSize, maxPositionEmbeddings } = model.config;
    if (ids.length > maxPositionEmbeddings) throw new UsageError(`--ids has ${ids.length} tokens, more than the context length ${maxPositionEmbeddings}`);
    const bad = ids.find((id) => id >= vocabSize);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the model's vocabulary [0, ${vocabSize})`);
    const capture = kinds && new Capture(captureRequest(kinds, parsed.values, numbers.get("mlp-threshold"), model.config));
    const logits = noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend }), { capture: capture ?? undefined })));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    const shape = [ids.length, vocabSize];
    if (!capture) {
      // Written beside the target, then renamed: a crash never leaves a half-written file.
      await writeFileAtomic(out, encodeNpy(data, shape));
      return void console.error(`wrote ${out}: float32 [${shape.join(", ")}]`);
    }
    const files = captureFiles({ data, shape }, await capture.read());
    await writeFolderAtomic(out, "olmo logits", async (staging) => {
      for (const [file, { array }] of files) await writeFileAtomic(join(staging, file), encodeNpy(array.data, array.shape));
      const index = {
        version: 1,
        generator: "olmo logits --capture",
        model: name,
        ids,
        files: Object.fromEntries([...files].map(([file, { array, meaning }]) => [file, { dtype: "float32", shape: array.shape, meaning }])),
      };
      await writeFileAtomic(join(staging, "index.json"), JSON.stringify(index, null, 2) + "\n");
    });
    console.error(`wrote ${out}: ${[...files.keys(), "index.json"].join(", ")}`);
  } finally {
    model.dispose();
    backend.dispose();
  }
}

/** The Capture's request for --capture's kinds, with --capture-layers / --capture-heads checked against the model. */
function captureRequest(kinds: Set<CaptureKind>, values: Map<string, string>, threshold: number | undefined, config: OlmoConfig): CaptureRequest {
  const layers = values.get("capture-layers"), heads = values.get("capture-heads");
  return {
    attention: kinds.has("attention") && {
      layers: layers === undefined ? undefined : parseIndexList("--capture-layers", layers, config.numLayers, "layer"),
      heads: heads === undefined ? undefined : parseIndexList("--capture-heads", heads, config.numHeads, "head"),
    },
    residualNorm: kinds.has("residual"),
    mlpSparsity: kinds.has("mlp") && { threshold },
    nextToken: kinds.has("next-token"),
  };
}

/** File name -> array and what it means, for the folder and its index.json. */
function captureFiles(logits: CapturedArray, captured: CapturedValues): Map<string, { array: CapturedArray; meaning: string }> {
  const files = new Map<string, { array: CapturedArray; meaning: string }>();
  files.set("logits.npy", { array: logits, meaning: "logits [T, vocab]: row t scores the token after ids[t]" });
  for (const { layer, heads, probabilities } of captured.attention) {
    files.set(`attention.layer${layer}.npy`, {
      array: probabilities,
      meaning:
        `attention probabilities of layer ${layer} [batch, head, query, key] for heads [${heads.join(", ")}] (in that order): ` +
        "softmax of the scaled, causally masked q k^T after clip_qkv and RoPE, as transformers' output_attentions; rows sum to 1, zero above the diagonal",
    });
  }
  if (captured.residualNorm) {
    files.set("residual_norm.npy", { array: captured.residualNorm, meaning: "L2 norm of the residual stream after each layer's block [layer, batch, position]" });
  }
  if (captured.mlpSparsity) {
    files.set("mlp_sparsity.npy", {
      array: captured.mlpSparsity,
      meaning: `fraction of the MLP activation silu(gate) * up with |a| < ${captured.mlpSparsity.threshold} [layer, batch, position]`,
    });
  }
  if (captured.nextToken) {
    files.set("next_token.npy", { array: captured.nextToken, meaning: "softmax of the logits: the next-token distribution [batch, position, vocab]" });
  }
  return files;
}
