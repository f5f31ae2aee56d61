// The WASM backend against the reference backend: every op forward and backward on random inputs with
// odd sizes and sizes that cross the matmul tiles (MR 4, NR 8, KC 256, MC 128, NC 512), on 1 and 2
// threads; plus its memory limit, kernel argument checks and clean shutdown.

import { spawnSync } from "node:child_process";
import { test } from "uvu";
import * as ops from "../src/index.js";
import {
  backward, createJsBackend, createWasmBackend, randn, requireGrad, scope, tensor, type AnyBackend, type Tensor, type WasmBuffer,
} from "../src/index.js";
import { assertClose, repoRoot, wasmBackendsUnderTest } from "./helpers.js";

const reference = createJsBackend();
const [wasm1, wasm2] = await wasmBackendsUnderTest();

interface Input {
  shape: number[];
  dtype?: "f32" | "bf16" | "i32";
  /** For i32 inputs: ids in [0, max). */
  max?: number;
  grad?: boolean;
  low?: number;
  high?: number;
}
interface Case {
  name: string;
  inputs: Input[];
  fn: (...xs: Tensor[]) => Tensor;
  /** Relative tolerance override (long f32 sums). */
  rtol?: number;
}

const cases: Case[] = [
  { name: "matmul 129x257 @ 257x521 (crosses MC, KC, NC)", inputs: [{ shape: [129, 257] }, { shape: [257, 521] }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul transA transB 5x3^T @ 17x5^T", inputs: [{ shape: [5, 3] }, { shape: [17, 5] }], fn: (a, b) => ops.matmul(a!, b!, { transA: true, transB: true }) },
  { name: "matmul batched [3,7,9] @ [3,9,13]", inputs: [{ shape: [3, 7, 9] }, { shape: [3, 9, 13] }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul shared weight transB [2,5,33] @ [31,33]^T", inputs: [{ shape: [2, 5, 33] }, { shape: [31, 33] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul GEMV rows [1,300] @ [67,300]^T", inputs: [{ shape: [1, 300] }, { shape: [67, 300] }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul GEMV columns [1,37] @ [37,45]", inputs: [{ shape: [1, 37] }, { shape: [37, 45] }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul bf16 weight GEMV [1,70] @ [23,70]^T", inputs: [{ shape: [1, 70] }, { shape: [23, 70], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul bf16 weight GEMV columns [1,19] @ [19,29]", inputs: [{ shape: [1, 19] }, { shape: [19, 29], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul bf16 weight GEMM [9,70] @ [23,70]^T", inputs: [{ shape: [9, 70] }, { shape: [23, 70], dtype: "bf16", grad: false }], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "add broadcast [3,17,33] + [33]", inputs: [{ shape: [3, 17, 33] }, { shape: [33] }], fn: (a, b) => ops.add(a!, b!) },
  { name: "sub same shape [1001]", inputs: [{ shape: [1001] }, { shape: [1001] }], fn: (a, b) => ops.sub(a!, b!) },
  { name: "mul broadcast [17] * [5,17]", inputs: [{ shape: [17] }, { shape: [5, 17] }], fn: (a, b) => ops.mul(a!, b!) },
  { name: "scale [1003]", inputs: [{ shape: [1003] }], fn: (x) => ops.scale(x!, 0.3) },
  { name: "silu [3,333]", inputs: [{ shape: [3, 333], low: -6, high: 6 }], fn: (x) => ops.silu(x!) },
  { name: "clamp [999]", inputs: [{ shape: [999], low: -3, high: 3 }], fn: (x) => ops.clamp(x!, -1, 1.5) },
  { name: "layerNorm [17,257]", inputs: [{ shape: [17, 257], low: 2, high: 5 }], fn: (x) => ops.layerNorm(x!) },
  { name: "softmax [5,1001]", inputs: [{ shape: [5, 1001], low: -8, high: 8 }], fn: (x) => ops.softmax(x!) },
  { name: "logSoftmax [3,33]", inputs: [{ shape: [3, 33], low: -8, high: 8 }], fn: (x) => ops.logSoftmax(x!) },
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
  { name: "sum axes 0,2 [5,3,17]", inputs: [{ shape: [5, 3, 17] }], fn: (x) => ops.sum(x!, [0, 2]) },
  { name: "mean all [33,33]", inputs: [{ shape: [33, 33] }], fn: (x) => ops.mean(x!) },
  { name: "permute [2,3,5,7] -> 3,1,0,2", inputs: [{ shape: [2, 3, 5, 7] }], fn: (x) => ops.permute(x!, [3, 1, 0, 2]) },
  { name: "slice [7,33] rows 2..5, cols 9..30", inputs: [{ shape: [7, 33] }], fn: (x) => ops.slice(x!, [2, 9], [3, 21]) },
  { name: "concat axis 1 of [3,5] [3,1] [3,17]", inputs: [{ shape: [3, 5] }, { shape: [3, 1] }, { shape: [3, 17] }], fn: (a, b, c) => ops.concat([a!, b!, c!], 1) },
  { name: "cast f32 -> bf16 -> f32", inputs: [{ shape: [1001], grad: false }], fn: (x) => ops.cast(ops.cast(x!, "bf16"), "f32") },
  { name: "permute bf16 [3,5,7]", inputs: [{ shape: [3, 5, 7], dtype: "bf16", grad: false }], fn: (x) => ops.cast(ops.permute(x!, [2, 0, 1]), "f32") },
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
    return input.grad === false || input.dtype === "bf16" ? t : requireGrad(t);
  });
}

async function run(c: Case, backend: AnyBackend): Promise<{ out: Float32Array; grads: (Float32Array | null)[] }> {
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

for (const c of cases) {
  test(`wasm = js: ${c.name}`, async () => {
    const want = await run(c, reference);
    for (const backend of [wasm1!, wasm2!]) {
      const got = await run(c, backend);
      // f32 results computed in other orders (blocked sums, f32 exp): ~1e-6 relative, 1e-4 is ample and
      // still far below what a wrong index or a missed tile edge produces (O(1) errors).
      const tol = { atol: 1e-4, rtol: c.rtol ?? 1e-4 };
      const label = `${backend.name} ${backend === wasm2 ? "2 threads" : "1 thread"}`;
      assertClose(got.out, want.out, tol, `${label} output`);
      want.grads.forEach((g, k) => {
        if (!g) return;
        if (!got.grads[k]) throw new Error(`${label}: no gradient for input ${k}`);
        assertClose(got.grads[k]!, g, tol, `${label} d input ${k}`);
      });
    }
  });
}

test("an allocation past the memory limit fails with the numbers", async () => {
  const small = await createWasmBackend({ maxMemoryBytes: 64 * 2 ** 20 });
  let message = "";
  try {
    tensor(new Float32Array(1), [1], { backend: small }); // fine
    ops.full([8192, 4096], 0, { backend: small }); // 128 MiB
  } catch (e) {
    message = (e as Error).message;
  }
  for (const fragment of ["cannot allocate 128.0 MiB", "f32 tensor of 33554432 elements", "64.0 MiB WebAssembly memory limit"]) {
    if (!message.includes(fragment)) throw new Error(`"${message}" lacks "${fragment}"`);
  }
});

test("a kernel called with buffers too small for its shapes is refused before it runs", () => {
  const a = wasm1!.allocate("f32", 6), b = wasm1!.allocate("f32", 6), out = wasm1!.allocate("f32", 4);
  let message = "";
  try {
    wasm1!.kernels.matmul({ a, b, out, bDType: "f32", batch: 1, m: 2, k: 4, n: 2, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes('matmul: buffer "a" holds 24 bytes but the call needs 32')) throw new Error(message);
  for (const buffer of [a, b, out] as WasmBuffer[]) wasm1!.free(buffer);
});

test("freed memory is reused: a loop of allocations stays flat", () => {
  const before = wasm1!.memoryUsage();
  for (let i = 0; i < 50; i++) scope(() => void ops.matmul(randn([64, 64], { backend: wasm1! }), randn([64, 64], { backend: wasm1! })));
  const after = wasm1!.memoryUsage();
  if (after.inUse !== before.inUse) throw new Error(`in use ${before.inUse} -> ${after.inUse}`);
  if (after.reserved > before.reserved + 3 * 64 * 64 * 4 + 1024) throw new Error(`heap grew ${before.reserved} -> ${after.reserved}`);
});

test("a Node program that used the 2-thread pool exits on its own", () => {
  const script = `
    import { createNodeWasmBackend } from ${JSON.stringify(`${repoRoot}dist/node.js`)};
    import { tensor, matmul } from ${JSON.stringify(`${repoRoot}dist/index.js`)};
    const backend = await createNodeWasmBackend({ threads: 2 });
    const a = tensor(new Float32Array(256 * 256).fill(1), [256, 256], { backend });
    process.stdout.write(String((await matmul(a, a).data())[0]));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
  if (r.status !== 0 || r.stdout.trim() !== "256") throw new Error(`status ${r.status} signal ${r.signal}: ${r.stdout} ${r.stderr}`);
});

test.run();
