// Bad input gets a clear error that names the op, the shapes and the dtypes, before any kernel runs.

import { test } from "uvu";
import * as ops from "../src/index.js";
import { createJsBackend, crossEntropy, embedding, setBackend, tensor, zeros } from "../src/index.js";

setBackend(createJsBackend());

/** Throws unless fn throws an error whose message contains every fragment. */
function expectError(fn: () => unknown, ...fragments: string[]): void {
  let message: string | null = null;
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  if (message === null) throw new Error(`expected an error mentioning ${fragments.join(", ")}; none was thrown`);
  for (const f of fragments) if (!message.includes(f)) throw new Error(`error "${message}" does not mention "${f}"`);
}

const f32 = (shape: number[]) => zeros(shape);
const i32 = (values: number[]) => tensor(Int32Array.from(values), [values.length]);

test("shape mismatches name the op and both shapes", () => {
  expectError(() => ops.matmul(f32([2, 3]), f32([4, 5])), "matmul", "[2, 3] f32", "[4, 5] f32", "inner sizes 3 and 4");
  expectError(() => ops.matmul(f32([2, 2, 3]), f32([3, 3, 4])), "matmul", "batch axes");
  expectError(() => ops.matmul(f32([3]), f32([3, 4])), "matmul", "at least 2 axes");
  expectError(() => ops.add(f32([2, 3]), f32([2])), "add", "[2, 3] f32", "[2] f32", "do not broadcast");
  expectError(() => ops.mul(f32([4, 5]), f32([5, 4])), "mul", "do not broadcast");
  expectError(() => ops.reshape(f32([2, 3]), [4, 2]), "reshape", "[2, 3]", "[4, 2]");
  expectError(() => ops.permute(f32([2, 3]), [0, 0]), "permute", "not a permutation");
  expectError(() => ops.slice(f32([2, 3]), [1, 2], [1, 2]), "slice", "axis 1", "[2, 4)");
  expectError(() => ops.concat([f32([2, 3]), f32([2, 4])], 0), "concat", "differ outside axis 0");
  expectError(() => ops.sum(f32([2, 3]), 2), "sum", "axis 2");
  expectError(() => ops.rotaryEmbedding(f32([1, 2, 3, 5])), "rotaryEmbedding", "even", "5");
  expectError(() => ops.rotaryEmbedding(f32([2, 3, 4])), "rotaryEmbedding", "[batch, heads, time, headDim]", "[2, 3, 4]");
  expectError(() => ops.attention(f32([1, 3, 4, 8]), f32([1, 2, 4, 8]), f32([1, 2, 4, 8])), "attention", "3 % G == 0");
  expectError(() => ops.attention(f32([1, 2, 4, 8]), f32([1, 2, 3, 8]), f32([1, 2, 3, 8])), "attention", "at least as many keys (3) as queries (4)");
  expectError(() => crossEntropy(f32([3, 5]), i32([1, 2])), "crossEntropy", "targets [2] i32", "logits [3, 5] f32");
  expectError(() => crossEntropy(f32([2, 5]), i32([1, 2]), { mask: f32([3]) }), "crossEntropy", "mask [3] f32");
  expectError(() => tensor([1, 2, 3], [2, 2]), "tensor", "3 values", "[2, 2]");
});

test("wrong dtypes name the argument and the dtype", () => {
  expectError(() => ops.silu(i32([1, 2])), "silu", "x must be f32", "i32");
  expectError(() => embedding(f32([4, 2]), f32([3])), "embedding", "ids must be i32", "[3] f32");
  expectError(() => crossEntropy(f32([2, 5]), f32([2])), "crossEntropy", "targets must be i32");
  expectError(() => ops.add(f32([2]), tensor([1, 2], [2], { dtype: "bf16" })), "add", "second operand must be f32", "bf16");
  expectError(() => tensor([1.5], [1], { dtype: "i32" }), "tensor", "1.5", "not an integer");
  expectError(() => ops.clamp(f32([2]), 1, -1), "clamp", "min (1) must not exceed max (-1)");
});

test("a disposed tensor cannot be used", () => {
  const t = f32([2, 2]);
  t.dispose();
  expectError(() => ops.add(t, t), "add", `tensor #${t.id} [2, 2] f32 was disposed`);
  expectError(() => t.dataSync(), "was disposed");
});

test("an embedding index out of range names the id, its position and the table size", () => {
  expectError(() => embedding(f32([11, 4]), i32([3, 11, 0])), "embedding", "token id 11 at position 1", "[0, 11)");
  expectError(() => embedding(f32([11, 4]), i32([-1])), "embedding", "token id -1 at position 0");
  expectError(() => crossEntropy(f32([2, 5]), i32([1, 7])), "crossEntropy", "target id 7 at position 1", "[0, 5)");
});

test("tensors from different backends cannot be mixed", () => {
  const other = tensor([1, 2], [2], { backend: createJsBackend() });
  expectError(() => ops.add(f32([2]), other), "add", "different backends");
});

test.run();
