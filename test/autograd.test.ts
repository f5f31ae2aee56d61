// Autograd semantics: accumulation, scopes, graph release, micro-batch equivalence.

import { test } from "uvu";
import {
  add, backward, createJsBackend, crossEntropy, keep, matmul, memory, mul, randn, requireGrad, scope, setBackend, slice, sum, tensor,
} from "../src/index.js";
import { assertClose } from "./helpers.js";

setBackend(createJsBackend());

test("backward accumulates into .grad, as PyTorch does", async () => {
  const x = requireGrad(tensor([1, 2, 3]));
  scope(() => backward(sum(mul(x, x))));
  scope(() => backward(sum(mul(x, x))));
  assertClose(await x.grad!.data(), [4, 8, 12], { atol: 0, rtol: 0 }, "twice 2x");
  x.dispose();
});

test("gradient flows through a tensor used by several ops", async () => {
  const x = requireGrad(tensor([1, -2]));
  scope(() => backward(sum(add(mul(x, x), x)))); // d/dx (x^2 + x) = 2x + 1
  assertClose(await x.grad!.data(), [3, -3], { atol: 0, rtol: 0 }, "2x + 1");
  x.dispose();
});

test("backward releases the graph unless retainGraph is set", () => {
  const x = requireGrad(tensor([1, 2]));
  scope(() => {
    const y = sum(mul(x, x));
    backward(y, { retainGraph: true });
    if (!y.gradFn) throw new Error("retainGraph dropped the graph");
    backward(y);
    if (y.gradFn) throw new Error("graph kept after backward");
    let message = "";
    try {
      backward(y);
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes("already freed")) throw new Error(`a third backward should fail clearly, got "${message}"`);
  });
  x.dispose();
});

test("scope frees what it created and keeps what it returns (nested)", async () => {
  const start = memory();
  const kept = scope(() => {
    const a = tensor([1, 2]);
    const inner = scope(() => {
      const b = add(a, a);
      add(b, b); // dropped
      return b;
    });
    return { inner, other: mul(inner, a) };
  });
  if (memory().tensors !== start.tensors + 2) throw new Error(`expected 2 live tensors, got ${memory().tensors - start.tensors}`);
  assertClose(await kept.other.data(), [2, 8], { atol: 0, rtol: 0 }, "value");
  kept.inner.dispose();
  kept.other.dispose();
  const escaped = scope(() => keep(tensor([1])));
  if (escaped.disposed) throw new Error("keep() did not take the tensor out of the scope");
  escaped.dispose();
  if (memory().tensors !== start.tensors || memory().bytes !== start.bytes) throw new Error("scope leaked");
});

test("a scope whose function throws frees what it made, and the error reaches the caller", () => {
  const start = memory();
  let message = "";
  try {
    scope(() => {
      const a = tensor([1, 2, 3]);
      scope(() => add(a, a)); // returned to the outer scope, which then throws
      mul(a, a);
      throw new Error("halfway");
    });
  } catch (e) {
    message = (e as Error).message;
  }
  if (message !== "halfway") throw new Error(`the error was "${message}"`);
  if (memory().tensors !== start.tensors || memory().bytes !== start.bytes) throw new Error(`${memory().tensors - start.tensors} tensors leaked`);
});

test("gradient accumulation over micro-batches equals the whole batch", async () => {
  // The loss normalises by the whole batch's token count, so summing micro-batch gradients is exact.
  const w = requireGrad(randn([5, 7], { seed: 1 }));
  const x = randn([4, 5], { seed: 2 });
  const targets = tensor(Int32Array.from([1, 6, 0, 3]), [4]);
  scope(() => backward(crossEntropy(matmul(x, w), targets, { normalizer: 4 })));
  const whole = await w.grad!.data();
  w.grad!.dispose();
  w.grad = null;
  for (const start of [0, 2]) {
    scope(() => {
      const logits = matmul(slice(x, [start], [2]), w);
      backward(crossEntropy(logits, slice(targets, [start], [2]), { normalizer: 4 }));
    });
  }
  assertClose(await w.grad!.data(), whole, { atol: 1e-7, rtol: 1e-6 }, "accumulated");
  w.dispose();
  x.dispose();
  targets.dispose();
});

test("a tensor that needs no gradient gets none", () => {
  const a = tensor([1, 2]);
  const b = requireGrad(tensor([3, 4]));
  scope(() => backward(sum(mul(a, b))));
  if (a.grad) throw new Error("a got a gradient");
  if (!b.grad) throw new Error("b got no gradient");
  a.dispose();
  b.dispose();
});

test.run();
