// Gradient checks: every op's backward against central finite differences, all in float64.
//
// The reference backend in "f64" precision runs the same kernels in double precision. For an op f and a
// fixed random upstream gradient R, the loss L = sum(f(x) * R) has dL/dx = backward(f, R). Numerically,
// dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / 2h with h = 1e-6: the truncation error is O(h^2 f''') ~ 1e-12
// and the rounding error ~ 1e-16 * |L| / h ~ 1e-9 for |L| ~ 10, so a tolerance of 1e-6 (abs + rel)
// passes every correct backward and fails any wrong one (errors there are O(0.1)).

import { test } from "uvu";
import * as ops from "../src/index.js";
import { backward, createJsBackend, noGrad, Random, requireGrad, scope, tensor, type JsBuffer, type Tensor } from "../src/index.js";
import { record } from "../src/core/autograd.js";
import { assertClose } from "./helpers.js";

const backend = createJsBackend({ precision: "f64" });
const random = new Random(7);
const H = 1e-6;

/** Random values in [low, high) at full f64 precision. */
function f64(shape: number[], low = -2, high = 2): Tensor {
  const t = tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, { backend });
  const data = dataOf(t);
  for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * random.uniform() + random.uniform() * 1e-9;
  return t;
}

/** Moves values within 0.05 of any of `points` 0.1 further up. */
function awayFrom(t: Tensor, points: number[]): Tensor {
  const data = dataOf(t);
  for (let i = 0; i < data.length; i++) if (points.some((p) => Math.abs(data[i]! - p) < 0.05)) data[i] += 0.1;
  return t;
}

function ids(values: number[], shape = [values.length]): Tensor {
  return tensor(Int32Array.from(values), shape, { backend, dtype: "i32" });
}

const LORA_W = f64([4, 5]);
const LORA_MASK = tensor(Array.from({ length: 15 }, (_, i) => (i % 4 === 1 ? 0 : 1.25)), [3, 5], { backend });

interface Check {
  name: string;
  /** Differentiable inputs. */
  inputs: () => Tensor[];
  fn: (...xs: Tensor[]) => Tensor;
}

const checks: Check[] = [
  { name: "matmul [3,17] @ [17,1]", inputs: () => [f64([3, 17]), f64([17, 1])], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul transA [17,3]^T @ [17,33]", inputs: () => [f64([17, 3]), f64([17, 33])], fn: (a, b) => ops.matmul(a!, b!, { transA: true }) },
  { name: "matmul transB [3,5] @ [17,5]^T", inputs: () => [f64([3, 5]), f64([17, 5])], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul transA transB", inputs: () => [f64([5, 3]), f64([1, 5])], fn: (a, b) => ops.matmul(a!, b!, { transA: true, transB: true }) },
  { name: "matmul batched [2,3,4] @ [2,4,3]", inputs: () => [f64([2, 3, 4]), f64([2, 4, 3])], fn: (a, b) => ops.matmul(a!, b!) },
  { name: "matmul shared b [2,3,4] @ [5,4]^T", inputs: () => [f64([2, 3, 4]), f64([5, 4])], fn: (a, b) => ops.matmul(a!, b!, { transB: true }) },
  { name: "matmul shared a [4,3]^T @ [2,4,5]", inputs: () => [f64([4, 3]), f64([2, 4, 5])], fn: (a, b) => ops.matmul(a!, b!, { transA: true }) },
  { name: "add same shape", inputs: () => [f64([3, 17]), f64([3, 17])], fn: (a, b) => ops.add(a!, b!) },
  { name: "add broadcast [3,17] + [17]", inputs: () => [f64([3, 17]), f64([17])], fn: (a, b) => ops.add(a!, b!) },
  { name: "sub broadcast [1,3] - [2,33,3]", inputs: () => [f64([1, 3]), f64([2, 33, 3])], fn: (a, b) => ops.sub(a!, b!) },
  { name: "mul broadcast [2,3,17] * [3,17]", inputs: () => [f64([2, 3, 17]), f64([3, 17])], fn: (a, b) => ops.mul(a!, b!) },
  { name: "mul same tensor twice", inputs: () => [f64([17])], fn: (a) => ops.mul(a!, a!) },
  { name: "scale", inputs: () => [f64([33])], fn: (x) => ops.scale(x!, -1.7) },
  { name: "silu", inputs: () => [f64([3, 17], -6, 6)], fn: (x) => ops.silu(x!) },
  // Values are kept at least 0.05 from the bounds, where the clamp is not differentiable.
  { name: "clamp", inputs: () => [awayFrom(f64([33], -3, 3), [-1.5, 1.25])], fn: (x) => ops.clamp(x!, -1.5, 1.25) },
  { name: "layerNorm [3,17]", inputs: () => [f64([3, 17])], fn: (x) => ops.layerNorm(x!) },
  { name: "layerNorm [1,33]", inputs: () => [f64([1, 33], 1, 3)], fn: (x) => ops.layerNorm(x!) },
  { name: "softmax [3,17]", inputs: () => [f64([3, 17], -4, 4)], fn: (x) => ops.softmax(x!) },
  { name: "logSoftmax [2,1,17]", inputs: () => [f64([2, 1, 17], -4, 4)], fn: (x) => ops.logSoftmax(x!) },
  { name: "rotaryEmbedding [1,3,17,4] offset 5", inputs: () => [f64([1, 3, 17, 4])], fn: (x) => ops.rotaryEmbedding(x!, { positionOffset: 5 }) },
  { name: "rotaryEmbedding [2,1,3,2] theta 100", inputs: () => [f64([2, 1, 3, 2])], fn: (x) => ops.rotaryEmbedding(x!, { theta: 100 }) },
  {
    name: "attention causal [1,2,17,3]",
    inputs: () => [f64([1, 2, 17, 3]), f64([1, 2, 17, 3]), f64([1, 2, 17, 3])],
    fn: (q, k, v) => ops.attention(q!, k!, v!),
  },
  {
    name: "attention kv cache, grouped: q [1,4,3,2], kv [1,2,17,2]",
    inputs: () => [f64([1, 4, 3, 2]), f64([1, 2, 17, 2]), f64([1, 2, 17, 2])],
    fn: (q, k, v) => ops.attention(q!, k!, v!),
  },
  {
    name: "attention non-causal [2,1,3,5] x [2,1,1,5]",
    inputs: () => [f64([2, 1, 3, 5]), f64([2, 1, 1, 5]), f64([2, 1, 1, 5])],
    fn: (q, k, v) => ops.attention(q!, k!, v!, { causal: false, scale: 0.7 }),
  },
  {
    name: "attention over the first 5 of 7 cache rows",
    inputs: () => [f64([1, 2, 2, 3]), f64([1, 2, 7, 3]), f64([1, 2, 7, 3])],
    fn: (q, k, v) => ops.attention(q!, k!, v!, { keyLength: 5 }),
  },
  { name: "embedding with repeated ids", inputs: () => [f64([17, 3])], fn: (t) => ops.embedding(t!, ids([4, 0, 4, 16, 4, 1], [2, 3])) },
  {
    name: "crossEntropy masked, normaliser 3",
    inputs: () => [f64([2, 3, 17], -3, 3)],
    fn: (x) => ops.crossEntropy(x!, ids([1, 16, 0, 5, 5, 9], [2, 3]), { mask: ids([1, 0, 1, 1, 1, 0], [2, 3]), normalizer: 3 }),
  },
  { name: "crossEntropy mean [1,33]", inputs: () => [f64([1, 33], -3, 3)], fn: (x) => ops.crossEntropy(x!, ids([32])) },
  { name: "sum all", inputs: () => [f64([3, 17])], fn: (x) => ops.sum(x!) },
  { name: "sum axes 0,2 keepDims", inputs: () => [f64([3, 1, 17])], fn: (x) => ops.sum(x!, [0, 2], { keepDims: true }) },
  { name: "mean axis -1", inputs: () => [f64([3, 17])], fn: (x) => ops.mean(x!, -1) },
  { name: "reshape", inputs: () => [f64([3, 17])], fn: (x) => ops.reshape(x!, [17, 3]) },
  { name: "permute", inputs: () => [f64([3, 1, 17, 2])], fn: (x) => ops.permute(x!, [2, 0, 3, 1]) },
  { name: "permute moving only a length-1 axis (a reshape)", inputs: () => [f64([3, 1, 17, 2])], fn: (x) => ops.permute(x!, [1, 0, 2, 3]) },
  { name: "transpose", inputs: () => [f64([3, 17])], fn: (x) => ops.transpose(x!) },
  { name: "slice", inputs: () => [f64([3, 17])], fn: (x) => ops.slice(x!, [1, 4], [2, 13]) },
  { name: "concat axis 1", inputs: () => [f64([3, 1]), f64([3, 17])], fn: (a, b) => ops.concat([a!, b!, a!], 1) },
  // The frozen weight and the dropout mask (0 or 1 / (1 - p)) are fixed; x, A and B get gradients.
  { name: "loraLinear [2,3,5] W [4,5] r 2", inputs: () => [f64([2, 3, 5]), f64([2, 5]), f64([4, 2])], fn: (x, a, b) => ops.loraLinear(x!, LORA_W, a!, b!, 1.5) },
  {
    name: "loraLinear with a dropout mask",
    inputs: () => [f64([3, 5]), f64([3, 5]), f64([4, 3])],
    fn: (x, a, b) => ops.loraLinear(x!, LORA_W, a!, b!, 0.5, LORA_MASK),
  },
  { name: "cast f32 -> f32 (identity)", inputs: () => [f64([3])], fn: (x) => ops.cast(x!, "f32") },
];

function dataOf(t: Tensor): Float64Array {
  return (t.bufferFor("test") as JsBuffer).data as Float64Array;
}

/**
 * The harness: runs check.fn, backpropagates a random upstream gradient R through it, and compares every
 * input's gradient with the central difference of L = sum(f(x) * R). Throws (from assertClose, naming
 * the worst element) when they differ.
 */
function gradcheck(check: Check): void {
  scope(() => {
    const inputs = check.inputs().map((t) => requireGrad(t));
    try {
      const out = check.fn(...inputs);
      const upstream = f64([...out.shape]);
      backward(out, { gradOutput: upstream });
      const R = dataOf(upstream);
      const loss = () =>
        noGrad(() =>
          scope(() => {
            const y = dataOf(check.fn(...inputs));
            let total = 0;
            for (let i = 0; i < y.length; i++) total += y[i]! * R[i]!;
            return total;
          }),
        );
      // A tensor passed twice (mul(a, a)) is one input: dedupe so its gradient is checked once.
      for (const [k, x] of [...new Set(inputs)].entries()) {
        const xs = dataOf(x);
        const numeric = new Float64Array(xs.length);
        for (let i = 0; i < xs.length; i++) {
          const saved = xs[i]!;
          xs[i] = saved + H;
          const plus = loss();
          xs[i] = saved - H;
          const minus = loss();
          xs[i] = saved;
          numeric[i] = (plus - minus) / (2 * H);
        }
        if (!x.grad) throw new Error(`input ${k} got no gradient`);
        assertClose(dataOf(x.grad), numeric, { atol: 1e-6, rtol: 1e-6 }, `d input ${k}`);
      }
    } finally {
      for (const x of inputs) x.dispose();
    }
  });
}

for (const check of checks) test(`gradcheck: ${check.name}`, () => gradcheck(check));

// Guard against a harness that cannot fail: the same harness on an op whose backward is deliberately
// wrong must report failure, and on the same op with the right backward must pass. The op is
// square(x) = x * x, recorded with the autograd API as every library op is; its backward should be
// 2 * x * g.
function squareWithBackwardFactor(factor: number): (x: Tensor) => Tensor {
  return (x) => {
    const out = noGrad(() => ops.mul(x, x)); // the forward, not recorded by mul itself
    return record("square", out, [x], (g) => [ops.scale(ops.mul(g, x), factor)]);
  };
}

/** The harness's verdict on `fn`: the error it threw, or null when it passed. */
function verdict(fn: (x: Tensor) => Tensor): Error | null {
  try {
    gradcheck({ name: "square", inputs: () => [f64([3, 17])], fn: (x) => fn(x!) });
    return null;
  } catch (e) {
    return e as Error;
  }
}

test("gradcheck harness passes a right backward and catches wrong ones (off by a factor, a sign, a small slip)", () => {
  const right = verdict(squareWithBackwardFactor(2));
  if (right) throw new Error(`the harness rejected the right backward of square: ${right.message}`);
  // 3x and -2x are the gross mistakes (a wrong factor, a wrong sign); 2.001x is a slip of 5e-4 relative,
  // hundreds of times the harness's 1e-6 tolerance, and still caught: the tolerance is tight because a
  // correct backward differs from the central difference by only about 1e-9 (see the top of the file).
  for (const factor of [3, -2, 2.001]) {
    const error = verdict(squareWithBackwardFactor(factor));
    if (!error) throw new Error(`the harness accepted a backward of ${factor} * x * g for square(x) = x * x`);
    if (!error.message.includes("d input 0")) throw new Error(`the harness failed for another reason than the gradient: ${error.message}`);
  }
  // And a backward that forgets an input altogether.
  const none = verdict((x) => record("square", noGrad(() => ops.mul(x, x)), [x], () => [null]));
  if (!none?.message.includes("got no gradient")) throw new Error(`a missing gradient was not reported: ${none?.message}`);
});

test.run();
