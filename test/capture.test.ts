// Olmo.forward's capture (src/model/capture.ts) on every backend: attention probabilities against
// transformers' OlmoForCausalLM (eager attention, output_attentions=True; written by
// scripts/golden/make_capture_fixtures.py), with and without a KV cache; residual norms and MLP
// sparsity against values computed here from transformers' hidden states; the capture changes no
// logit; and `olmo logits --capture` writes .npy files and an index.json that read back.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { Capture, createJsBackend, loadOlmo, memory, noGrad, scope, tensor, type AnyBackend, type CapturedValues, type Olmo } from "../src/index.js";
import { fractionBelow } from "../src/model/capture.js";
import { folderSource } from "../src/node/index.js";
import { assertClose, readJson, repoRoot, testIf, wasmBackendsUnderTest, webGpuBackendUnderTest } from "./helpers.js";

const FIXTURES = `${repoRoot}test/fixtures/olmo`;
type Nested = number | Nested[];
interface ModelCapture { attentions: Nested[]; residual: Nested[]; mlp: Nested[]; numHeads: number; numKvHeads: number }
const fixture = readJson<{ version: number; ids: number[]; models: Record<string, ModelCapture> }>("test/fixtures/olmo/capture.json");
const expected = readJson<{ models: Record<string, { logits: number[] }> }>("test/fixtures/olmo/expected.json");
const IDS = fixture.ids;
const T = IDS.length;

const [wasm1, wasm2] = await wasmBackendsUnderTest();
const webgpu = await webGpuBackendUnderTest("the webgpu cases of capture.test"); // null without a Vulkan driver
const backends: [string, AnyBackend][] = [
  ["js", createJsBackend()], ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!],
  ...(webgpu ? ([["webgpu", webgpu]] as [string, AnyBackend][]) : []),
];

const flat = (v: Nested): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v]);
/** transformers' attention of `layer`, heads `heads`, query rows [from, to), keys [0, keys): [1, n, rows, keys] flattened. */
function hfAttention(m: ModelCapture, layer: number, heads: readonly number[], from = 0, to = T, keys = T): number[] {
  const a = (m.attentions[layer] as Nested[][][][])[0]!;
  return heads.flatMap((h) => a[h]!.slice(from, to).flatMap((row) => (row as number[]).slice(0, keys)));
}

async function load(name: string, backend: AnyBackend): Promise<Olmo> {
  return (await loadOlmo(folderSource(`${FIXTURES}/${name}`), backend)).model;
}

function forward(model: Olmo, ids: number[], options: Parameters<Olmo["forward"]>[1] = {}) {
  const backend = model.backend;
  return noGrad(() => scope(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { backend }), options)));
}

// Tolerances, from f32 rounding: olmo-js and PyTorch compute the same f32 operations, summed in other
// orders. The residual stream before a layer's q and k has norms of 13 to 650 here, so its f32 rounding
// (6e-8 relative per operation, a few operations deep) reaches the scores q k^T / sqrt(D) as absolute
// errors of ~1e-7 to 1e-6, and a probability p moves by p * (ds - sum p' ds'), at most about 2 |ds|.
// Measured: at most 1.6e-6 (webgpu, gqa-sharded, layer 1), 1e-7 to 9e-7 elsewhere, on every backend.
// 2e-5 is over 10 times that; a wrong mask, scale, head or RoPE position moves probabilities by 1e-2 or more.
const PROBABILITY_TOLERANCE = { atol: 2e-5, rtol: 0 };
// Norms: the residual's relative error (~1e-7, as in olmo.test.ts's logits) plus the f32 sum of squares
// over C (24 or 32 terms, ~1e-7). Measured: within 1e-6 relative on every backend; 1e-5 relative.
const NORM_TOLERANCE = { atol: 0, rtol: 1e-5 };
// |a| < 0.1 splits these random models' activations (O(1)) into about 20% off and 80% on.
const THRESHOLD = 0.1;

/** Rows sum to 1 (each row of Tk probabilities, f32) and keys after the query's position are exactly 0. */
function checkRows(probabilities: Float32Array, rows: number, keys: number, position: number, label: string): void {
  for (let r = 0; r < probabilities.length / keys; r++) {
    const row = probabilities.subarray(r * keys, (r + 1) * keys);
    const total = row.reduce((s, p) => s + p, 0);
    // Tk <= 7 f32 values that each carry a rounding of 6e-8 relative: the sum is 1 to a few 1e-7.
    if (Math.abs(total - 1) > 1e-6) throw new Error(`${label}: row ${r} sums to ${total}`);
    const t = r % rows;
    for (let j = position + t + 1; j < keys; j++) if (row[j] !== 0) throw new Error(`${label}: row ${r} sees key ${j} after its position ${position + t}: ${row[j]}`);
  }
}

/** transformers' residual norms [L, 1, T] and the fraction of |a| < threshold [L, 1, T], with the borderline count per position. */
function hfNormsAndSparsity(m: ModelCapture, threshold: number) {
  const norms: number[] = [], sparsity: number[] = [], borderline: number[] = [];
  for (const layer of m.residual) for (const row of (layer as number[][][])[0]!) norms.push(Math.hypot(...row));
  for (const layer of m.mlp) {
    for (const row of (layer as number[][][])[0]!) {
      sparsity.push(row.filter((a) => Math.abs(a) < threshold).length / row.length);
      // Activations olmo-js computes within 1e-4 of the threshold could fall on the other side
      // (their errors are ~1e-6 of an O(1) scale): each may move the fraction by 1 / I.
      borderline.push(row.filter((a) => Math.abs(Math.abs(a) - threshold) < 1e-4).length / row.length);
    }
  }
  return { norms, sparsity, borderline };
}

for (const [backendName, backend] of backends) {
  for (const [name, m] of Object.entries(fixture.models)) {
    test(`${backendName}: ${name} attention probabilities, residual norms and MLP sparsity equal transformers'`, async () => {
      const before = memory();
      const model = await load(name, backend);
      const capture = new Capture({ attention: true, residualNorm: true, mlpSparsity: { threshold: THRESHOLD }, nextToken: true });
      const logits = forward(model, IDS, { capture });
      const got = await capture.read();
      const allHeads = Array.from({ length: m.numHeads }, (_, h) => h);
      if (got.attention.map((a) => a.layer).join() !== "0,1") throw new Error(`layers ${got.attention.map((a) => a.layer)}`);
      for (const { layer, heads, probabilities } of got.attention) {
        if (probabilities.shape.join() !== [1, m.numHeads, T, T].join() || heads.join() !== allHeads.join()) throw new Error(`layer ${layer}: shape [${probabilities.shape}], heads ${heads}`);
        assertClose(probabilities.data, hfAttention(m, layer, allHeads), PROBABILITY_TOLERANCE, `layer ${layer} attention`);
        checkRows(probabilities.data, T, T, 0, `layer ${layer}`);
      }
      const hf = hfNormsAndSparsity(m, THRESHOLD);
      if (got.residualNorm!.shape.join() !== `2,1,${T}` || got.mlpSparsity!.shape.join() !== `2,1,${T}`) throw new Error("norm / sparsity shapes");
      assertClose(got.residualNorm!.data, hf.norms, NORM_TOLERANCE, "residual norms");
      if (got.mlpSparsity!.threshold !== THRESHOLD) throw new Error(`threshold ${got.mlpSparsity!.threshold}`);
      got.mlpSparsity!.data.forEach((s, i) => {
        // 1 / I is one activation; f32's 1 / I scaling leaves ~1e-7.
        if (Math.abs(s - hf.sparsity[i]!) > hf.borderline[i]! + 1e-6) throw new Error(`sparsity ${i}: ${s}, transformers ${hf.sparsity[i]} (borderline ${hf.borderline[i]})`);
      });
      const someOff = hf.sparsity.some((s) => s > 0.05) && hf.sparsity.every((s) => s < 0.95);
      if (!someOff) throw new Error(`the threshold does not split the activations: ${hf.sparsity}`);
      // The next-token distribution is softmax(logits) (computed here in f64).
      const values = await logits.data();
      const softmax = Array.from({ length: T }, (_, t) => {
        const row = Array.from(values.subarray(t * 96, (t + 1) * 96)), max = Math.max(...row);
        const e = row.map((v) => Math.exp(v - max)), s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      }).flat();
      assertClose(got.nextToken!.data, softmax, { atol: 1e-6, rtol: 1e-5 }, "next-token distribution");
      logits.dispose();
      model.dispose();
      const after = memory();
      if (after.tensors !== before.tensors || after.bytes !== before.bytes) throw new Error(`leak: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    });

    test(`${backendName}: ${name} with a KV cache, prefill then one decode step give transformers' rows`, async () => {
      const model = await load(name, backend);
      // Chosen layers and heads, in an order of their own: with grouped-query attention head 3 uses kv
      // head 1 and head 0 kv head 0.
      const layers = [1, 0], heads = m.numHeads === 4 ? [3, 0] : [2, 0];
      const cache = model.createCache(1, 16);
      const prefill = new Capture({ attention: { layers, heads } });
      forward(model, IDS.slice(0, T - 1), { cache, capture: prefill }).dispose();
      const first = await prefill.read();
      const step = forward(model, IDS.slice(T - 1), { cache, capture: prefill }); // read() freed it for reuse
      const decode = await prefill.read();
      step.dispose();
      cache.dispose();
      if (first.position !== 0 || decode.position !== T - 1) throw new Error(`positions ${first.position}, ${decode.position}`);
      for (const [k, layer] of layers.entries()) {
        const [p, d] = [first.attention[k]!, decode.attention[k]!];
        if (p.layer !== layer || d.layer !== layer || p.heads.join() !== heads.join()) throw new Error(`layer order ${p.layer}, ${d.layer}`);
        if (p.probabilities.shape.join() !== `1,2,${T - 1},${T - 1}` || d.probabilities.shape.join() !== `1,2,1,${T}`) {
          throw new Error(`shapes [${p.probabilities.shape}], [${d.probabilities.shape}]`);
        }
        assertClose(p.probabilities.data, hfAttention(m, layer, heads, 0, T - 1, T - 1), PROBABILITY_TOLERANCE, `layer ${layer} prefill`);
        assertClose(d.probabilities.data, hfAttention(m, layer, heads, T - 1, T), PROBABILITY_TOLERANCE, `layer ${layer} decode`);
        checkRows(p.probabilities.data, T - 1, T - 1, 0, `layer ${layer} prefill`);
        checkRows(d.probabilities.data, 1, T, T - 1, `layer ${layer} decode`);
      }
      model.dispose();
    });
  }

  test(`${backendName}: capture off gives bit-identical logits to capture on`, async () => {
    const model = await load("gqa-sharded", backend);
    const plain = forward(model, IDS);
    const capture = new Capture({ attention: true, residualNorm: true, mlpSparsity: true, nextToken: true });
    const captured = forward(model, IDS, { capture });
    const [a, b] = [await plain.data(), await captured.data()];
    capture.dispose();
    if (a.some((v, i) => !Object.is(v, b[i]))) throw new Error("logits differ with capture on");
    plain.dispose();
    captured.dispose();
    model.dispose();
  });

  test(`${backendName}: a batch of two sequences captures each as it would alone`, async () => {
    const model = await load("gqa-sharded", backend);
    const request = { attention: { layers: [1], heads: [3, 0] }, residualNorm: true, mlpSparsity: { threshold: THRESHOLD } };
    const other = [...IDS].reverse();
    const run = async (rows: number[][]) => {
      const capture = new Capture(request);
      const ids = tensor(Int32Array.from(rows.flat()), [rows.length, T], { backend });
      noGrad(() => scope(() => model.forward(ids, { capture }))).dispose();
      ids.dispose();
      return capture.read();
    };
    const [both, first, second] = [await run([IDS, other]), await run([IDS]), await run([other])];
    // [1, n, T, T] / [L, 1, T] of one sequence, or of row b of the batch.
    const alone = (v: CapturedValues) => [v.attention[0]!.probabilities.data, v.residualNorm!.data, v.mlpSparsity!.data];
    const row = (v: CapturedValues, b: number) => [
      v.attention[0]!.probabilities.data.subarray(b * 2 * T * T, (b + 1) * 2 * T * T),
      ...[v.residualNorm!, v.mlpSparsity!].map((a) => Float32Array.from({ length: 2 * T }, (_, k) => a.data[Math.floor(k / T) * 2 * T + b * T + (k % T)]!)),
    ];
    if (both.attention[0]!.probabilities.shape.join() !== `2,2,${T},${T}` || both.residualNorm!.shape.join() !== `2,2,${T}`) throw new Error("batch shapes");
    // Same arithmetic per row whatever the batch (a batched matmul may block rows differently: f32 rounding).
    for (const [b, single] of [first, second].entries()) {
      alone(single).forEach((want, k) => assertClose(row(both, b)[k]!, want, { atol: 1e-6, rtol: 1e-6 }, `row ${b}, array ${k}`));
    }
    model.dispose();
  });

  test(`${backendName}: MLP sparsity counts a * a < threshold^2 exactly, at the threshold's edges`, async () => {
    const threshold = 0.1, t2 = Math.fround(threshold * threshold);
    // Values around the threshold: its f32, the f32 neighbours of sqrt(t2), zero, signs, large values.
    const near = Math.fround(Math.sqrt(t2));
    const bits = new Float32Array([near, near, near]), asInt = new Int32Array(bits.buffer);
    asInt[0] = asInt[0]! - 1;
    asInt[2] = asInt[2]! + 1;
    const row = [0, -0, threshold, -threshold, ...bits, -bits[0]!, 1e-20, 5, -1e10, 0.05, 1e6, 0.0999, -0.1001, 3e-3];
    const x = tensor(Float32Array.from([...row, ...row.map((v) => v * 2)]), [2, row.length], { backend });
    const got = await noGrad(() => scope(() => fractionBelow(x, threshold))).data();
    x.dispose();
    // The definition in f64: a f32 product of f32 values is the f64 product rounded once.
    const want = [row, row.map((v) => v * 2)].map((r) => r.filter((v) => Math.fround(Math.fround(v) * Math.fround(v)) < t2).length / r.length);
    assertClose(got, want, { atol: 1e-7, rtol: 0 }, "fraction below");
    if (!(want[0]! > 0.3 && want[0]! < 0.7)) throw new Error(`the cases do not straddle the threshold: ${want}`);
  });
}

test("capture requests are checked against the model, with errors naming what was asked and what exists", async () => {
  const backend = createJsBackend();
  const model = await load("gqa-sharded", backend);
  const expectError = (fn: () => unknown, fragment: string) => {
    try {
      fn();
    } catch (e) {
      if ((e as Error).message.includes(fragment)) return;
      throw new Error(`expected "${fragment}", got: ${(e as Error).message}`);
    }
    throw new Error(`expected an error with "${fragment}"`);
  };
  // Requests are checked before the pass makes any tensor: a refused one leaves nothing behind.
  const ids = tensor(Int32Array.from(IDS), [1, T], { backend });
  const before = memory();
  const run = (capture: Capture, more = {}) => noGrad(() => scope(() => model.forward(ids, { capture, ...more })));
  expectError(() => run(new Capture({ attention: { layers: [2] } })), "capture.attention.layers has layer 2; the model's layers are 0 to 1");
  expectError(() => run(new Capture({ attention: { heads: [0, 4] } })), "capture.attention.heads has head 4; the model's heads are 0 to 3");
  expectError(() => new Capture({ attention: { layers: [0, 0] } }), "attention.layers must be a non-empty list of distinct non-negative integers, got [0,0]");
  expectError(() => new Capture({ attention: { heads: [] } }), "attention.heads must be a non-empty list");
  expectError(() => new Capture({ mlpSparsity: { threshold: 0 } }), "mlpSparsity.threshold must be a number in [1e-12, 1000000000000], got 0");
  expectError(() => run(new Capture({ residualNorm: true }), { checkpointActivations: true }), "capture and checkpointActivations cannot be combined");
  const capture = new Capture({ residualNorm: true });
  run(capture).dispose();
  expectError(() => run(capture), "this Capture still holds a previous pass; read() or dispose() it first");
  capture.dispose();
  await capture.read().then(
    () => { throw new Error("read() of an empty capture succeeded"); },
    (e: Error) => { if (!e.message.includes("nothing captured")) throw e; },
  );
  const after = memory();
  if (after.tensors !== before.tensors || after.bytes !== before.bytes) throw new Error(`leak: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  ids.dispose();
  model.dispose();
});

/** A float32 .npy file: its shape and values (numpy's format 1.0, as olmo writes it). */
function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString("latin1");
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (bytes.subarray(1, 6).toString() !== "NUMPY" || !header.includes("'descr': '<f4'") || (10 + headerLength) % 64 !== 0) throw new Error(`${path}: ${header}`);
  return { shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length)) };
}

function olmo(...args: string[]) {
  return spawnSync(process.execPath, [`${repoRoot}dist/cli.js`, ...args], { encoding: "utf8" });
}

test("olmo logits --capture writes logits.npy, one .npy per captured array and index.json, which read back", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-capture-"));
  const out = join(dir, "run");
  const m = fixture.models["gqa-sharded"]!;
  const r = olmo(
    "logits", "--model", `${FIXTURES}/gqa-sharded`, "--backend", "js", "--ids", IDS.join(","), "--out", out,
    "--capture", "attention,residual,mlp", "--capture-layers", "1", "--capture-heads", "3,1", "--mlp-threshold", String(THRESHOLD),
  );
  if (r.status !== 0) throw new Error(r.stderr);
  const index = JSON.parse(readFileSync(join(out, "index.json"), "utf8")) as { ids: number[]; files: Record<string, { shape: number[]; dtype: string; meaning: string }> };
  const names = Object.keys(index.files).sort().join();
  if (names !== "attention.layer1.npy,logits.npy,mlp_sparsity.npy,residual_norm.npy" || index.ids.join() !== IDS.join()) throw new Error(JSON.stringify(index));
  for (const [file, { shape, dtype }] of Object.entries(index.files)) {
    if (readNpy(join(out, file)).shape.join() !== shape.join() || dtype !== "float32") throw new Error(`${file}: index says [${shape}] ${dtype}`);
  }
  const logits = readNpy(join(out, "logits.npy"));
  const want = expected.models["gqa-sharded"]!.logits;
  // The library test's tolerances (olmo.test.ts for the logits, the ones above for the rest), on --backend js.
  assertClose(logits.data, want, { atol: 1e-4 * Math.max(...want.map(Math.abs)), rtol: 0 }, "logits.npy");
  const attention = readNpy(join(out, "attention.layer1.npy"));
  if (attention.shape.join() !== `1,2,${T},${T}`) throw new Error(`attention shape [${attention.shape}]`);
  assertClose(attention.data, hfAttention(m, 1, [3, 1]), PROBABILITY_TOLERANCE, "attention.layer1.npy");
  const hf = hfNormsAndSparsity(m, THRESHOLD);
  assertClose(readNpy(join(out, "residual_norm.npy")).data, hf.norms, NORM_TOLERANCE, "residual_norm.npy");
  readNpy(join(out, "mlp_sparsity.npy")).data.forEach((s, i) => {
    if (Math.abs(s - hf.sparsity[i]!) > hf.borderline[i]! + 1e-6) throw new Error(`mlp_sparsity.npy ${i}: ${s}, transformers ${hf.sparsity[i]}`);
  });
  if (!index.files["attention.layer1.npy"]!.meaning.includes("heads [3, 1]")) throw new Error(index.files["attention.layer1.npy"]!.meaning);
  // Without --capture, --out FILE.npy is what it was: the logits [T, V].
  const single = join(dir, "l.npy");
  const plain = olmo("logits", "--model", `${FIXTURES}/gqa-sharded`, "--backend", "js", "--ids", IDS.join(","), "--out", single);
  if (plain.status !== 0 || readNpy(single).shape.join() !== `${T},96`) throw new Error(plain.stderr);
  assertClose(readNpy(single).data, logits.data, { atol: 0, rtol: 0 }, "plain logits");
  rmSync(dir, { recursive: true });
});

test("olmo logits --capture: bad flags name the flag and what is allowed", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-capture-"));
  writeFileSync(join(dir, "file"), "x");
  const model = ["--model", `${FIXTURES}/gqa-sharded`, "--backend", "js", "--ids", IDS.join(",")];
  const cases: [string[], string][] = [
    [["--capture", "attention,weights", "--out", join(dir, "a")], `--capture: unknown kind "weights"; the kinds are attention, residual, mlp, next-token`],
    [["--capture", "attention", "--capture-layers", "0,2", "--out", join(dir, "b")], `--capture-layers: "2" is not a layer of this model; give layers from 0 to 1`],
    [["--capture", "attention", "--capture-heads", "4", "--out", join(dir, "c")], `--capture-heads: "4" is not a head of this model; give heads from 0 to 3`],
    [["--capture", "attention", "--capture-heads", "1,x", "--out", join(dir, "c")], `--capture-heads: "x" is not a head of this model`],
    [["--capture", "attention", "--out", join(dir, "x.npy")], "--out must be a folder with --capture"],
    [["--capture", "residual", "--out", join(dir, "file")], "--out must be a folder with --capture"],
    [["--capture-layers", "0", "--out", join(dir, "d.npy")], "--capture-layers selects attention: give it with --capture attention"],
    [["--capture", "mlp", "--mlp-threshold", "0", "--out", join(dir, "e")], "--mlp-threshold must be a number in [1e-12, 1000000000000], got 0"],
  ];
  for (const [args, fragment] of cases) {
    const r = olmo("logits", ...model, ...args);
    if (r.status !== 2 || !r.stderr.includes(fragment)) throw new Error(`olmo logits ${args.join(" ")}: status ${r.status}, stderr lacks ${JSON.stringify(fragment)}:\n${r.stderr}`);
  }
  rmSync(dir, { recursive: true });
});

test.run();
