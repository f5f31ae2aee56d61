// The op cases every faster backend is checked on against the reference backend: each op forward and
// backward on random inputs with odd sizes and sizes that cross kernel tiles (the WASM matmul's MR x NR
// 3 x 12 and 4 x 8, KC 256, MC 120, NC 1920, its four-lane loops with scalar tails; the WebGPU matmul's
// 64x64 tiles and 16-deep k steps; 64- and 256-wide workgroups), plus the helpers that run one case,
// or three AdamW steps, on a backend.

import * as ops from "../src/index.js";
import { AdamW, backward, createJsBackend, randn, requireGrad, scope, tensor, type AnyBackend, type Tensor } from "../src/index.js";
import { assertClose } from "./assert.js";

const reference = createJsBackend();

export interface Input {
  shape: number[];
  dtype?: "f32" | "bf16" | "f16" | "i32";
  /** For i32 inputs: ids in [0, max). */
  max?: number;
  grad?: boolean;
  low?: number;
  high?: number;
}
export interface Case {
  name: string;
  inputs: Input[];
  fn: (...xs: Tensor[]) => Tensor;
  /** Relative tolerance override (long f32 sums). */
  rtol?: number;
}

export const opCases: Case[] = [
  { name: "matmul 129x257 @ 257x521 (crosses MC, KC)", inputs: [{ shape: [129, 257] }, { shape: [257, 521] }], fn: (a, b) => ops.matmul(a!, b!) },
  // Over 1920 columns per thread: equal column blocks, each packing its own B block, on 1 and 2 threads.
  { name: "matmul 5x20 @ 20x3900 (crosses NC)", inputs: [{ shape: [5, 20] }, { shape: [20, 3900] }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul transA transB 5x3^T @ 17x5^T", inputs: [{ shape: [5, 3] }, { shape: [17, 5] }], fn: (a, b) => ops.matmul(a!, b!, { transA: true, transB: true }) },
  { name: "matmul batched [3,7,9] @ [3,9,13]", inputs: [{ shape: [3, 7, 9] }, { shape: [3, 9, 13] }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul shared weight transB [2,5,33] @ [31,33]^T", inputs: [{ shape: [2, 5, 33] }, { shape: [31, 33] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul GEMV rows, K not a multiple of 4: [1,303] @ [67,303]^T", inputs: [{ shape: [1, 303] }, { shape: [67, 303] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul GEMV rows [1,300] @ [67,300]^T", inputs: [{ shape: [1, 300] }, { shape: [67, 300] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul GEMV columns [1,37] @ [37,45]", inputs: [{ shape: [1, 37] }, { shape: [37, 45] }], fn: (a, b) => ops.matmul(a!, b!) },
  // Long rows (7B-like K) whose count splits unevenly between threads and the GEMV's four-row loop.
  { name: "matmul GEMV long rows [1,4100] @ [67,4100]^T", inputs: [{ shape: [1, 4100] }, { shape: [67, 4100] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul bf16 weight GEMV long rows [1,8200] @ [53,8200]^T", inputs: [{ shape: [1, 8200] }, { shape: [53, 8200], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul bf16 weight GEMV [1,70] @ [23,70]^T", inputs: [{ shape: [1, 70] }, { shape: [23, 70], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul bf16 weight GEMV columns [1,19] @ [19,29]", inputs: [{ shape: [1, 19] }, { shape: [19, 29], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul bf16 weight GEMM [9,70] @ [23,70]^T", inputs: [{ shape: [9, 70] }, { shape: [23, 70], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "add broadcast [3,17,33] + [33]", inputs: [{ shape: [3, 17, 33] }, { shape: [33] }], fn: (a, b) => ops.add(a!, b!) },
  { name: "sub same shape [1001]", inputs: [{ shape: [1001] }, { shape: [1001] }], fn: (a, b) => ops.sub(a!, b!) },
  { name: "mul broadcast [17] * [5,17]", inputs: [{ shape: [17] }, { shape: [5, 17] }], fn: (a, b) => ops.mul(a!, b!) },
  { name: "scale [1003]", inputs: [{ shape: [1003] }], fn: (x) => ops.scale(x!, 0.3) },
  { name: "silu [3,333]", inputs: [{ shape: [3, 333], low: -6, high: 6 }], fn: (x) => ops.silu(x!) },
  // Inputs across the whole range of f32's exp (the WASM kernels' vector exp clamps below -87.3 and above 88.3).
  { name: "silu wide range [2,101]", inputs: [{ shape: [2, 101], low: -120, high: 120 }], fn: (x) => ops.silu(x!) },
  { name: "clamp [999]", inputs: [{ shape: [999], low: -3, high: 3 }], fn: (x) => ops.clamp(x!, -1, 1.5) },
  { name: "layerNorm [17,257]", inputs: [{ shape: [17, 257], low: 2, high: 5 }], fn: (x) => ops.layerNorm(x!) },
  { name: "softmax [5,1001]", inputs: [{ shape: [5, 1001], low: -8, high: 8 }], fn: (x) => ops.softmax(x!) },
  { name: "softmax wide range [3,203]", inputs: [{ shape: [3, 203], low: -150, high: 150 }], fn: (x) => ops.softmax(x!) },
  { name: "logSoftmax [3,33]", inputs: [{ shape: [3, 33], low: -8, high: 8 }], fn: (x) => ops.logSoftmax(x!) },
  { name: "rope one position (decode) [1,5,1,12] offset 100", inputs: [{ shape: [1, 5, 1, 12] }], fn: (x) => ops.rotaryEmbedding(x!, { positionOffset: 100 }) },
  { name: "rope [2,3,17,10] offset 9", inputs: [{ shape: [2, 3, 17, 10] }], fn: (x) => ops.rotaryEmbedding(x!, { positionOffset: 9 }) },
  {
    name: "attention causal [2,3,33,7]",
    inputs: [{ shape: [2, 3, 33, 7] }, { shape: [2, 3, 33, 7] }, { shape: [2, 3, 33, 7] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!),
  },
  {
    name: "attention grouped, kv cache: q [1,4,5,8], kv [1,2,17,8]",
    inputs: [{ shape: [1, 4, 5, 8] }, { shape: [1, 2, 17, 8] }, { shape: [1, 2, 17, 8] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!),
  },
  {
    name: "attention over 19 of 40 cache rows, q [1,4,3,8], kv [1,2,40,8]",
    inputs: [{ shape: [1, 4, 3, 8] }, { shape: [1, 2, 40, 8] }, { shape: [1, 2, 40, 8] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!, { keyLength: 19 }),
  },
  { name: "embedding [33,7] ids [3,11]", inputs: [{ shape: [33, 7] }, { shape: [3, 11], dtype: "i32", max: 33 }], fn: (t, ids) => ops.embedding(t!, ids!) },
  { name: "embedding bf16 table", inputs: [{ shape: [33, 9], dtype: "bf16", grad: false }, { shape: [17], dtype: "i32", max: 33 }], fn: (t, ids) => ops.embedding(t!, ids!) },
  {
    name: "crossEntropy masked [3,5,257]",
    inputs: [{ shape: [3, 5, 257], low: -4, high: 4 }, { shape: [3, 5], dtype: "i32", max: 257 }, { shape: [3, 5], dtype: "i32", max: 2 }],
    fn: (x, t, m) => ops.crossEntropy(x!, t!, { mask: m! }),
  },
  {
    name: "crossEntropy wide range [2,3,131]",
    inputs: [{ shape: [2, 3, 131], low: -90, high: 90 }, { shape: [2, 3], dtype: "i32", max: 131 }],
    fn: (x, t) => ops.crossEntropy(x!, t!),
  },
  { name: "sum axes 0,2 [5,3,17]", inputs: [{ shape: [5, 3, 17] }], fn: (x) => ops.sum(x!, [0, 2]) },
  { name: "mean all [33,33]", inputs: [{ shape: [33, 33] }], fn: (x) => ops.mean(x!) },
  { name: "permute moving only length-1 axes [2,1,3,4] -> 0,2,1,3 (no copy)", inputs: [{ shape: [2, 1, 3, 4] }], fn: (x) => ops.mul(ops.permute(x!, [0, 2, 1, 3]), ops.permute(x!, [0, 2, 1, 3])) },
  { name: "permute [2,3,5,7] -> 3,1,0,2", inputs: [{ shape: [2, 3, 5, 7] }], fn: (x) => ops.permute(x!, [3, 1, 0, 2]) },
  { name: "slice [7,33] rows 2..5, cols 9..30", inputs: [{ shape: [7, 33] }], fn: (x) => ops.slice(x!, [2, 9], [3, 21]) },
  { name: "concat axis 1 of [3,5] [3,1] [3,17]", inputs: [{ shape: [3, 5] }, { shape: [3, 1] }, { shape: [3, 17] }], fn: (a, b, c) => ops.concat([a!, b!, c!], 1) },
  { name: "cast f32 -> bf16 -> f32", inputs: [{ shape: [1001], grad: false }], fn: (x) => ops.cast(ops.cast(x!, "bf16"), "f32") },
  { name: "permute bf16 [3,5,7]", inputs: [{ shape: [3, 5, 7], dtype: "bf16", grad: false }], fn: (x) => ops.cast(ops.permute(x!, [2, 0, 1]), "f32") },
  { name: "matmul f16 weight GEMM [9,70] @ [23,70]^T", inputs: [{ shape: [9, 70] }, { shape: [23, 70], dtype: "f16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul transA [3,70,65] ^T @ [3,70,66] (crosses 64-wide tiles)", inputs: [{ shape: [3, 70, 65] }, { shape: [3, 70, 66] }], fn: (a, b) => ops.matmul(a!, b!, { transA: true }) },
  { name: "cast f32 -> f16 -> f32 (subnormals, overflow)", inputs: [{ shape: [1001], grad: false, low: -70000, high: 70000 }], fn: (x) => ops.cast(ops.cast(ops.scale(x!, 1e-9), "f16"), "f32") },
  { name: "cast f32 -> f16 -> f32 (normal range)", inputs: [{ shape: [999], grad: false, low: -70000, high: 70000 }], fn: (x) => ops.cast(ops.cast(x!, "f16"), "f32") },
  { name: "concat bf16 axis 1 of [3,5] [3,2]", inputs: [{ shape: [3, 5], dtype: "bf16", grad: false }, { shape: [3, 2], dtype: "bf16", grad: false }], fn: (a, b) => ops.cast(ops.concat([a!, b!], 1), "f32") },
  { name: "slice bf16 [7,33] rows 1..4, cols 3..20", inputs: [{ shape: [7, 33], dtype: "bf16", grad: false }], fn: (x) => ops.cast(ops.slice(x!, [1, 3], [3, 17]), "f32") },
  { name: "embedding f16 table", inputs: [{ shape: [40, 5], dtype: "f16", grad: false }, { shape: [9], dtype: "i32", max: 40 }], fn: (t, ids) => ops.embedding(t!, ids!) },
  { name: "layerNorm wide rows [3,4099]", inputs: [{ shape: [3, 4099] }], fn: (x) => ops.layerNorm(x!) },
  { name: "sum keep middle axis [4,300,3] over 0,2", inputs: [{ shape: [4, 300, 3] }], fn: (x) => ops.sum(x!, [0, 2]) },
  {
    name: "attention head dim 130 over 70 keys (two key blocks), q [1,2,70,130]",
    inputs: [{ shape: [1, 2, 70, 130] }, { shape: [1, 2, 70, 130] }, { shape: [1, 2, 70, 130] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!),
  },
  {
    name: "attention decode over 151 of 160 cache rows (three of WebGPU's 64-key blocks; odd: WASM's last key alone), q [1,4,1,40], kv [1,2,160,40]",
    inputs: [{ shape: [1, 4, 1, 40] }, { shape: [1, 2, 160, 40] }, { shape: [1, 2, 160, 40] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!, { keyLength: 151 }),
  },
  {
    name: "attention not causal, q [2,2,3,8], kv [2,1,9,8]",
    inputs: [{ shape: [2, 2, 3, 8] }, { shape: [2, 1, 9, 8] }, { shape: [2, 1, 9, 8] }],
    fn: (q, k, v) => ops.attention(q!, k!, v!, { causal: false }),
  },
];

/** The same random values as tensors on `backend`. */
function makeInputs(c: Case, backend: AnyBackend, seed: number): Tensor[] {
  return c.inputs.map((input, k) => {
    if (input.dtype === "i32") {
      const values = Int32Array.from({ length: input.shape.reduce((a, b) => a * b, 1) }, (_, i) => (i * 7919 + k * 104729 + seed) % input.max!);
      return tensor(values, input.shape, { backend, dtype: "i32" });
    }
    const base = randn(input.shape, { seed: seed + k, backend: reference });
    const low = input.low ?? -2, high = input.high ?? 2;
    const values = Array.from(base.dataSync(), (v) => low + ((Math.tanh(v) + 1) / 2) * (high - low));
    base.dispose();
    const t = tensor(values, input.shape, { backend, dtype: input.dtype ?? "f32" });
    return input.grad === false || input.dtype === "bf16" || input.dtype === "f16" ? t : requireGrad(t);
  });
}

export async function runCase(c: Case, backend: AnyBackend): Promise<{ out: Float32Array; grads: (Float32Array | null)[] }> {
  const { out, inputs } = scope(() => {
    const inputs = makeInputs(c, backend, 11);
    const out = c.fn(...inputs);
    if (out.requiresGrad) {
      const upstream = makeInputs({ ...c, inputs: [{ shape: [...out.shape], grad: false }] }, backend, 99)[0]!;
      backward(out, { gradOutput: upstream });
    }
    return { out, inputs };
  });
  const result = {
    out: (await out.data()) as Float32Array,
    grads: await Promise.all(inputs.map(async (t) => (t.grad ? ((await t.grad.data()) as Float32Array) : null))),
  };
  out.dispose();
  inputs.forEach((t) => t.dispose());
  return result;
}

/** Run `c` on the reference backend and on each of `backends`; outputs and input gradients must agree. */
export async function expectSameAsReference(c: Case, backends: [string, AnyBackend][]): Promise<void> {
  const want = await runCase(c, reference);
  for (const [label, backend] of backends) {
    const got = await runCase(c, backend);
    // f32 results computed in other orders (blocked sums, f32 exp): ~1e-6 relative, 1e-4 is ample and
    // still far below what a wrong index or a missed tile edge produces (O(1) errors).
    const tol = { atol: 1e-4, rtol: c.rtol ?? 1e-4 };
    assertClose(got.out, want.out, tol, `${label} output`);
    want.grads.forEach((g, k) => {
      if (!g) return;
      if (!got.grads[k]) throw new Error(`${label}: no gradient for input ${k}`);
      assertClose(got.grads[k]!, g, tol, `${label} d input ${k}`);
    });
  }
}

/** Values in [-1, 1) from a seed, as a plain array (the same on every backend). */
function values(size: number, seed: number): number[] {
  return Array.from(randn([size], { seed, backend: reference }).dataSync(), (v) => Math.tanh(v));
}

/** A parameter of `size` after three AdamW steps with weight decay, on `backend`. */
export async function adamwSteps(backend: AnyBackend, size: number): Promise<Float32Array> {
  const param = requireGrad(tensor(values(size, 1), [size], { backend }));
  const optimizer = new AdamW([{ name: "w", tensor: param, decay: true }], { weightDecay: 0.1 });
  for (let step = 0; step < 3; step++) {
    param.grad?.dispose();
    param.grad = tensor(values(size, 10 + step), [size], { backend });
    optimizer.update(0.01);
  }
  const result = (await param.data()) as Float32Array;
  optimizer.dispose();
  param.dispose();
  return result;
}
