// Reverse-mode automatic differentiation.
//
// Every op that sees an input with requiresGrad records a GradNode on its output: the inputs, a
// backward function written next to the op's forward, and any tensors saved for it. The recorded
// nodes form the tape. backward(loss) walks it from the loss back to the leaves in reverse
// topological order, summing gradients where a tensor feeds several ops, and leaves each
// parameter's gradient in `param.grad` (accumulating, as PyTorch does, so micro-batches add up).
//
// Memory: each node's backward runs in its own scope, so its temporaries are freed at once; each
// intermediate gradient is freed as soon as its node has used it; the graph (and what it saved) is
// released when backward finishes.

import { keep, scope, Tensor } from "./tensor.js";
import type { GradNode } from "./tensor.js";
import { fullLike } from "./creation.js";

let gradEnabled = true;

/** Run fn without recording the tape (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** True when an op on these inputs must record itself (and save what its backward needs). */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad === true);
}

/**
 * Record how `output` was computed from `inputs`. Call after the forward kernel; `saved` are tensors
 * made only for the backward pass (freed with the node). Does nothing when no gradient is needed.
 */
export function record(
  op: string,
  output: Tensor,
  inputs: readonly Tensor[],
  backward: GradNode["backward"],
  saved: readonly Tensor[] = [],
): Tensor {
  if (!needsGrad(...inputs)) {
    for (const t of saved) t.dispose();
    return output;
  }
  for (const t of saved) keep(t); // owned by the node, not by the scope
  output.requiresGrad = true;
  output.gradFn = { op, inputs, backward, saved };
  return output;
}

/** Mark a tensor as a leaf whose gradient is wanted (a parameter). */
export function requireGrad<T extends Tensor>(t: T): T {
  if (t.dtype !== "f32") throw new Error(`requireGrad: ${t.describe()} must be f32 to be trained (storage dtypes are frozen)`);
  t.requiresGrad = true;
  return t;
}

/** Tensors reachable from `root` through recorded nodes, inputs before the tensors computed from them. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative depth-first search: deep models would overflow the call stack with recursion.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (visited.has(t)) continue;
    if (t.graphReleased) {
      throw new Error(
        `backward: the graph through ${t.describe()} was already freed by an earlier backward(); ` +
          "pass { retainGraph: true } to the first call to run backward twice",
      );
    }
    visited.add(t);
    stack.push([t, true]);
    for (const input of t.gradFn?.inputs ?? []) if (input.requiresGrad && !visited.has(input)) stack.push([input, false]);
  }
  return order;
}

export interface BackwardOptions {
  /** Gradient of the output; defaults to ones (the output is usually a scalar loss). */
  gradOutput?: Tensor;
  /** Keep the graph for another backward pass (default false: it is freed). */
  retainGraph?: boolean;
}

/**
 * a + b for two gradients of one tensor (same shape, f32), into a new tensor. The core sits below the
 * ops (src/ops imports the core, never the reverse), so the tape calls the backend's `binary` kernel
 * itself rather than ops' `add`: gradients of one tensor never broadcast and are summed under noGrad,
 * so add's broadcasting and recording have nothing to do here.
 */
function addGradients(a: Tensor, b: Tensor): Tensor {
  if (a.shape.join() !== b.shape.join() || a.dtype !== "f32" || b.dtype !== "f32" || a.backend !== b.backend) {
    throw new Error(`backward: cannot add gradients ${a.describe()} and ${b.describe()}: they must be f32 of one shape on one backend`);
  }
  const out = Tensor.empty(a.shape, "f32", a.backend);
  a.backend.kernels.binary({
    op: "add", a: a.bufferFor("backward"), b: b.bufferFor("backward"), out: out.bufferFor("backward"), size: out.size, aSize: a.size, bSize: b.size,
  });
  return out;
}

/** Accumulate d(output)/d(leaf) into `leaf.grad` for every leaf with requiresGrad that output depends on. */
export function backward(output: Tensor, options: BackwardOptions = {}): void {
  if (!output.requiresGrad) {
    throw new Error(`backward: ${output.describe()} does not depend on any tensor with requiresGrad`);
  }
  const seed = options.gradOutput ?? fullLike(output, 1);
  if (seed.shape.join() !== output.shape.join()) {
    throw new Error(`backward: gradOutput ${seed.describe()} does not match output ${output.describe()}`);
  }
  const order = topologicalOrder(output);
  const grads = new Map<Tensor, Tensor>([[output, seed.view(output.shape)]]);
  if (!options.gradOutput) seed.dispose();

  noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const gradient = grads.get(t);
      if (!gradient) continue; // t does not influence the output along recorded paths
      grads.delete(t);
      const node = t.gradFn;
      if (!node) {
        // A leaf: accumulate into .grad, which the leaf owns.
        if (t.grad) {
          const sum = addGradients(t.grad, gradient);
          t.grad.dispose();
          gradient.dispose();
          t.grad = keep(sum);
        } else {
          t.grad = keep(gradient);
        }
        continue;
      }
      const inputGrads = scope(() =>
        node.backward(gradient).map((g, k) => {
          const input = node.inputs[k]!;
          if (!g || !input.requiresGrad) return null;
          if (g.shape.join() !== input.shape.join()) {
            throw new Error(`${node.op} backward: gradient ${g.describe()} does not match input ${input.describe()}`);
          }
          // A view per input: one backward may hand the same tensor to two inputs.
          return g.view(input.shape);
        }),
      );
      gradient.dispose();
      node.inputs.forEach((input, k) => {
        const g = inputGrads[k];
        if (!g) return;
        const previous = grads.get(input);
        if (previous) {
          grads.set(input, addGradients(previous, g));
          previous.dispose();
          g.dispose();
        } else {
          grads.set(input, g);
        }
      });
    }
  });
  if (!options.retainGraph) for (const t of order) t.releaseGraph();
}

/**
 * valueAndGrad(fn)(...inputs) evaluates fn (which must return a scalar) and its gradient with respect to
 * each input, all inside a scope: intermediates are freed; the value and gradients belong to the caller.
 */
export function valueAndGrad<Args extends Tensor[]>(fn: (...inputs: Args) => Tensor) {
  return (...inputs: Args): { value: Tensor; grads: Tensor[] } => {
    const saved = inputs.map((t) => ({ requiresGrad: t.requiresGrad, grad: t.grad }));
    for (const t of inputs) {
      t.requiresGrad = true;
      t.grad = null;
    }
    try {
      return scope(() => {
        const value = fn(...inputs);
        if (value.size !== 1) throw new Error(`valueAndGrad: fn must return one value, got ${value.describe()}`);
        backward(value);
        // An input fn did not use gets a zero gradient.
        const grads = inputs.map((t) => t.grad ?? keep(fullLike(t, 0)));
        return { value, grads };
      });
    } finally {
      inputs.forEach((t, k) => {
        t.requiresGrad = saved[k]!.requiresGrad;
        t.grad = saved[k]!.grad;
      });
    }
  };
}

/** grad(fn)(...inputs): the gradients of valueAndGrad, with the value freed. */
export function grad<Args extends Tensor[]>(fn: (...inputs: Args) => Tensor) {
  return (...inputs: Args): Tensor[] => {
    const { value, grads } = valueAndGrad(fn)(...inputs);
    value.dispose();
    return grads;
  };
}

/** Run fn with the tape recording, even inside noGrad (a recomputed segment's backward needs its graph). */
function withGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Activation checkpointing (torch.utils.checkpoint): out = fn(...inputs), recorded as ONE node that
 * saves nothing but its inputs. The forward pass runs fn without the tape, in its own scope, so fn's
 * intermediates are freed at once; the backward pass runs fn again, this time recording, and
 * backpropagates through that fresh graph:
 *
 *   forward:   out = fn(x)                       (no tape; memory: x and out only)
 *   backward:  x' = x detached, out' = fn(x')    (recomputed, with tape)
 *              backward(out', gradOutput = dOut) -> dx = x'.grad; each param's .grad accumulates
 *
 * `params` are the leaves with requiresGrad that fn reads (weights, adapters): they get their gradients
 * from the recomputed graph directly. They are also the node's inputs, so a segment whose inputs need
 * no gradient (the first block of a frozen model) is still recorded when its parameters do. fn must be
 * deterministic (the same result when run twice: random masks must be drawn once and reused) and must
 * read no other tensor that requires a gradient. Memory for a stack of n segments: their n inputs,
 * plus one segment's intermediates at a time during backward, instead of every intermediate.
 */
export function checkpoint(op: string, fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], params: readonly Tensor[]): Tensor {
  if (!needsGrad(...inputs, ...params)) return fn(...inputs);
  const output = noGrad(() => scope(() => fn(...inputs)));
  const recompute = (gradOutput: Tensor) => {
    // Leaves sharing the inputs' storage, so the recomputed graph stops at them.
    const leaves = inputs.map((t) => {
      const leaf = t.view(t.shape);
      leaf.requiresGrad = t.requiresGrad;
      return leaf;
    });
    const again = withGrad(() => fn(...leaves));
    if (again.requiresGrad) backward(again, { gradOutput });
    // A view of each gradient: the leaf (and the .grad it owns) is freed with the caller's scope.
    return [...leaves.map((leaf) => leaf.grad?.view(leaf.shape) ?? null), ...params.map(() => null)];
  };
  return record(op, output, [...inputs, ...params], recompute);
}
