// `olmo demo`: a one-block, OLMo-style causal language model over characters, trained for a few dozen
// steps with the reference backend. It touches every op of the core (embedding, non-parametric layer
// norm, q/k/v projections, clip_qkv's clamp, RoPE, causal attention, a SwiGLU MLP, the tied LM head,
// cross-entropy) and shows the memory counter staying flat while it trains.
//
// Shape legend: B = batch, T = time, C = channels, H = heads, D = head dim, F = MLP hidden, V = vocab.

import {
  add, attention, backward, clamp, createJsBackend, crossEntropy, embedding, layerNorm, matmul, memory, mul, noGrad,
  permute, randn, Random, requireGrad, reshape, rotaryEmbedding, scale, scope, setBackend, silu, slice, sub, tensor,
  type Tensor,
} from "../index.js";

export interface TinyConfig {
  vocab: number;
  channels: number;
  heads: number;
  hidden: number;
  clipQkv: number;
}

export interface TinyModel {
  config: TinyConfig;
  /** wte [V, C] (also the LM head: tied), attnQkv [3C, C], attnOut [C, C], ffUpGate [2F, C], ffDown [C, F]. */
  params: Record<"wte" | "attnQkv" | "attnOut" | "ffUpGate" | "ffDown", Tensor>;
}

export function createTinyModel(config: TinyConfig, seed: number): TinyModel {
  const random = new Random(seed);
  const { vocab: V, channels: C, hidden: F } = config;
  const init = (shape: number[]) => requireGrad(randn(shape, { seed: random, std: 0.02 * Math.sqrt(64 / C) }));
  return {
    config,
    params: { wte: init([V, C]), attnQkv: init([3 * C, C]), attnOut: init([C, C]), ffUpGate: init([2 * F, C]), ffDown: init([C, F]) },
  };
}

/** x [B, T, C] @ W^T for W [out, C]: a bias-free linear layer as in OLMo. */
const linear = (x: Tensor, w: Tensor) => matmul(x, w, { transB: true });

/** [B, T, H*D] -> [B, H, T, D] */
function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, C] = x.shape as [number, number, number];
  return permute(reshape(x, [B, T, heads, C / heads]), [0, 2, 1, 3]);
}

/** Logits [B, T, V] for token ids [B, T]. */
export function tinyForward(model: TinyModel, ids: Tensor): Tensor {
  const { params: p, config } = model;
  const [B, T] = ids.shape as [number, number];
  const C = config.channels;
  const x = embedding(p.wte, ids); // [B, T, C]

  // Attention: x + W_o attn(rope(clamp(q)), rope(clamp(k)), clamp(v))
  const qkv = clamp(linear(layerNorm(x), p.attnQkv), -config.clipQkv, config.clipQkv); // [B, T, 3C]
  const q = rotaryEmbedding(splitHeads(slice(qkv, [0, 0, 0], [B, T, C]), config.heads));
  const k = rotaryEmbedding(splitHeads(slice(qkv, [0, 0, C], [B, T, C]), config.heads));
  const v = splitHeads(slice(qkv, [0, 0, 2 * C], [B, T, C]), config.heads);
  const attended = reshape(permute(attention(q, k, v), [0, 2, 1, 3]), [B, T, C]);
  const h = add(x, linear(attended, p.attnOut));

  // SwiGLU MLP: h + W_down (silu(gate) * up), with up | gate fused as in OLMo's ff_proj.
  const upGate = linear(layerNorm(h), p.ffUpGate); // [B, T, 2F]
  const F = config.hidden;
  const up = slice(upGate, [0, 0, 0], [B, T, F]);
  const gate = slice(upGate, [0, 0, F], [B, T, F]);
  const out = add(h, linear(mul(silu(gate), up), p.ffDown));

  return linear(layerNorm(out), p.wte); // tied LM head: [B, T, V]
}

/** Mean next-token cross-entropy of ids [B, T+1]. */
export function tinyLoss(model: TinyModel, ids: Tensor): Tensor {
  const [B, T1] = ids.shape as [number, number];
  const inputs = slice(ids, [0, 0], [B, T1 - 1]);
  const targets = slice(ids, [0, 1], [B, T1 - 1]);
  return crossEntropy(tinyForward(model, inputs), targets);
}

/** p -= lr * p.grad for every parameter, then clear the gradients. */
export function sgdStep(model: TinyModel, lr: number): void {
  noGrad(() =>
    scope(() => {
      for (const p of Object.values(model.params)) {
        if (p.grad) p.assign(sub(p, scale(p.grad, lr)));
        p.grad?.dispose();
        p.grad = null;
      }
    }),
  );
}

const TEXT =
  "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and arrows " +
  "of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. To die, to sleep; " +
  "no more; and by a sleep to say we end the heart-ache and the thousand natural shocks that flesh is heir to.";

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isFinite(value)) throw new Error(`${name} expects a number, got ${args[i + 1] ?? "nothing"}`);
  return value;
}

export async function runDemo(args: string[]): Promise<void> {
  if (args.includes("--help")) {
    console.log("usage: olmo demo [--steps N] [--seed S] [--lr LR]\n\nTrains a one-block character model with the reference backend.");
    return;
  }
  const steps = option(args, "--steps", 150), seed = option(args, "--seed", 0), lr = option(args, "--lr", 0.5);
  setBackend(createJsBackend());
  const chars = [...new Set(TEXT)].sort();
  const encode = (s: string) => [...s].map((c) => chars.indexOf(c));
  const model = createTinyModel({ vocab: chars.length, channels: 32, heads: 4, hidden: 64, clipQkv: 8 }, seed);
  const random = new Random(seed + 1);
  const [B, T] = [8, 24];
  console.log(`olmo demo: ${chars.length} characters, B=${B} T=${T}, ${steps} SGD steps (lr ${lr}), js backend`);
  const started = performance.now();
  for (let step = 1; step <= steps; step++) {
    const batch: number[] = [];
    for (let b = 0; b < B; b++) {
      const start = Math.floor(random.uniform() * (TEXT.length - T - 1));
      batch.push(...encode(TEXT.slice(start, start + T + 1)));
    }
    const loss = scope(() => {
      const l = tinyLoss(model, tensor(Int32Array.from(batch), [B, T + 1]));
      backward(l);
      return l;
    });
    const value = await loss.item();
    loss.dispose();
    sgdStep(model, lr);
    if (step === 1 || step % 25 === 0 || step === steps) {
      const { tensors, bytes } = memory();
      console.log(`step ${String(step).padStart(4)}  loss ${value.toFixed(4)}  live tensors ${tensors}  live bytes ${bytes}`);
    }
  }
  // Greedy continuation of a prompt, recomputing the whole context each step (no KV cache here).
  let text = "To be, or not";
  for (let i = 0; i < 40; i++) {
    const lastLogits = noGrad(() =>
      scope(() => {
        const ids = encode(text.slice(-T));
        const logits = tinyForward(model, tensor(Int32Array.from(ids), [1, ids.length]));
        return slice(logits, [0, ids.length - 1, 0], [1, 1, chars.length]);
      }),
    );
    const next = await lastLogits.data();
    lastLogits.dispose();
    text += chars[next.indexOf(Math.max(...next))];
  }
  console.log(`sample: ${JSON.stringify(text)}`);
  console.log(`${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
