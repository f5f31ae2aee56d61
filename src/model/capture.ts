// Looking inside a forward pass: what `Olmo.forward` computes on the way, captured on request (for a
// learner's view of the model, notebooks, `olmo logits --capture`).
//
// Shape legend (as olmo.ts): B = batch, T = new tokens, P = tokens already in the KV cache, Tk = P + T
// keys, L = layers, H = query heads, G = key/value heads, D = head dim, I = MLP size, V = vocabulary,
// n = heads asked for.
//
//   attention     per asked layer: softmax(q k^T / sqrt(D) + causal mask), q and k after clip_qkv and
//                 RoPE; query head h uses key head h / (H / G)                        [B, n, T, Tk]
//                 = HF OlmoAttention's attn_weights (eager, output_attentions=True)
//   residualNorm  per layer: ||x||_2 over C of the residual stream after the block    [L, B, T]
//   mlpSparsity   per layer: the fraction of |silu(h Wgate^T) * (h Wup^T)| < threshold over I   [L, B, T]
//   nextToken     softmax(logits), the next-token distribution at each position     [B, T, V]
//
// The attention kernel is fused (src/ops/attention.ts): it never stores the probabilities. They are
// computed again here, only on request, from the same q and k with ops every backend has (slice,
// concat, matmul, add, softmax). Each capture runs in its own scope under noGrad (its intermediates
// are freed at once, in training as in inference) and its result is kept out of Olmo.forward's
// per-layer scopes (`keep`): the Capture owns the tensors until read() or dispose() frees them.

import { noGrad } from "../core/autograd.js";
import { full, tensor } from "../core/creation.js";
import { keep, scope, type AnyBackend, type Tensor } from "../core/tensor.js";
import { add, clamp, concat, matmul, mean, mul, scale, slice, softmax, sub, sum } from "../ops/index.js";
import type { OlmoConfig } from "./config.js";

/** What to capture; everything is off unless asked for. */
export interface CaptureRequest {
  /**
   * Attention probabilities of these layers and query heads (each default: all of them); `true` asks
   * for every layer and head.
   */
  attention?: boolean | { layers?: readonly number[]; heads?: readonly number[] };
  /** The residual stream's L2 norm per position after each layer's block. */
  residualNorm?: boolean;
  /**
   * The MLP activation's sparsity per position and layer: the fraction of |silu(gate) * up| below
   * `threshold` (default DEFAULT_MLP_THRESHOLD). SwiGLU has no exact zeros, so "sparse" means "small".
   */
  mlpSparsity?: boolean | { threshold?: number };
  /** softmax(logits): the next-token distribution (the logits give it too; this saves a caller the softmax). */
  nextToken?: boolean;
}

/** A captured array, row-major, as numpy reads it. */
export interface CapturedArray {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** What read() returns: plain host data, each array with its shape. */
export interface CapturedValues {
  /** Position of the first of the T rows (P: the KV cache's length before the pass). */
  readonly position: number;
  /** One entry per asked layer, in the order asked: probabilities [B, n, T, Tk] of `heads`. */
  readonly attention: readonly { layer: number; heads: readonly number[]; probabilities: CapturedArray }[];
  /** [L, B, T] */
  readonly residualNorm?: CapturedArray;
  /** [L, B, T], with the threshold used. */
  readonly mlpSparsity?: CapturedArray & { threshold: number };
  /** [B, T, V] ([B, 1, V] with lastOnly) */
  readonly nextToken?: CapturedArray;
}

/**
 * |a| below this counts as "off" for mlpSparsity: 1% of a unit-scale activation (OLMo's layer norm
 * makes h unit-scale, so silu(gate) * up is O(1) where a unit is on). Small enough that the units it
 * counts contribute little to down_proj's output; a caller studying another scale passes its own.
 */
export const DEFAULT_MLP_THRESHOLD = 0.01;
/**
 * The thresholds mlpSparsity accepts: the squared threshold and its spacing to the next float below
 * must be normal f32 numbers (a GPU may flush subnormals to zero, see fractionBelow).
 */
const THRESHOLD_RANGE = [1e-12, 1e12] as const;

/**
 * Pass one to `Olmo.forward(ids, { capture })`; after the pass, `await capture.read()` gives the
 * captured values as host arrays and frees their tensors (or `dispose()` frees them unread). One
 * Capture holds one pass at a time: read it before passing it to the next forward.
 */
export class Capture {
  private readonly attentionLayers: readonly number[] | null;
  private readonly attentionHeads: readonly number[] | null;
  private readonly threshold: number | null;
  private layers: number[] = [];
  private heads: number[] = [];
  private position = 0;
  private pass: {
    attention: Map<number, Tensor>;
    /** Per layer: the sum of squares over C, [B, T]; read() takes the square root on the host (there is no sqrt op). */
    squaredNorm: Tensor[];
    sparsity: Tensor[];
    nextToken: Tensor | null;
  } | null = null;

  constructor(readonly request: CaptureRequest = {}) {
    const { attention, mlpSparsity } = request;
    const list = (name: string, v: unknown): readonly number[] | null => {
      if (v === undefined) return null;
      const ok = Array.isArray(v) && v.length > 0 && v.every((n) => Number.isInteger(n) && n >= 0) && new Set(v).size === v.length;
      if (!ok) throw new Error(`Capture: attention.${name} must be a non-empty list of distinct non-negative integers, got ${JSON.stringify(v)}`);
      return v as number[];
    };
    const spec = typeof attention === "object" ? attention : {};
    this.attentionLayers = attention ? list("layers", spec.layers) : null;
    this.attentionHeads = attention ? list("heads", spec.heads) : null;
    const threshold = typeof mlpSparsity === "object" ? mlpSparsity.threshold ?? DEFAULT_MLP_THRESHOLD : DEFAULT_MLP_THRESHOLD;
    if (!(threshold >= THRESHOLD_RANGE[0] && threshold <= THRESHOLD_RANGE[1])) {
      throw new Error(`Capture: mlpSparsity.threshold must be a number in [${THRESHOLD_RANGE.join(", ")}], got ${threshold}`);
    }
    this.threshold = mlpSparsity ? threshold : null;
  }

  /** Called by Olmo.forward before the first layer: checks the request against the model. */
  begin(config: OlmoConfig, position: number): void {
    if (this.pass) {
      throw new Error("Olmo.forward: this Capture still holds a previous pass; read() or dispose() it first, or pass a new Capture");
    }
    const { numLayers: L, numHeads: H } = config;
    if (this.request.attention) {
      this.layers = [...(this.attentionLayers ?? Array.from({ length: L }, (_, i) => i))];
      this.heads = [...(this.attentionHeads ?? Array.from({ length: H }, (_, h) => h))];
      const layer = this.layers.find((i) => i >= L), head = this.heads.find((h) => h >= H);
      if (layer !== undefined) throw new Error(`Olmo.forward: capture.attention.layers has layer ${layer}; the model's layers are 0 to ${L - 1}`);
      if (head !== undefined) throw new Error(`Olmo.forward: capture.attention.heads has head ${head}; the model's heads are 0 to ${H - 1}`);
    }
    this.position = position;
    this.pass = { attention: new Map(), squaredNorm: [], sparsity: [], nextToken: null };
  }

  /** Called by Olmo.forward with layer i's q [B, H, T, D] and keys [B, G, >= Tk, D] (the cache's, with one). */
  attention(i: number, q: Tensor, keys: Tensor, keyLength: number): void {
    if (!this.layers.includes(i)) return;
    this.pass!.attention.set(i, captured(() => attentionProbabilities(q, keys, keyLength, this.heads, this.position)));
  }

  /** Called by Olmo.forward with layer i's MLP activation silu(gate) * up, [B, T, I]. */
  mlp(i: number, activation: Tensor): void {
    if (this.threshold === null) return;
    this.pass!.sparsity[i] = captured(() => fractionBelow(activation, this.threshold!));
  }

  /** Called by Olmo.forward with the residual stream after layer i's block, [B, T, C]. */
  residual(i: number, x: Tensor): void {
    if (!this.request.residualNorm) return;
    this.pass!.squaredNorm[i] = captured(() => sum(mul(x, x), -1));
  }

  /** Called by Olmo.forward with the logits [B, T, V]. */
  logits(logits: Tensor): void {
    if (!this.request.nextToken) return;
    this.pass!.nextToken = captured(() => softmax(logits));
  }

  /** The captured values as host arrays; frees the tensors, so the Capture can serve another pass. */
  async read(): Promise<CapturedValues> {
    const pass = this.pass;
    if (!pass) throw new Error("Capture.read: nothing captured; pass this Capture to Olmo.forward first");
    try {
      const host = async (t: Tensor): Promise<CapturedArray> => ({ shape: [...t.shape], data: (await t.data()) as Float32Array });
      const attention = [];
      for (const layer of this.layers) attention.push({ layer, heads: [...this.heads], probabilities: await host(pass.attention.get(layer)!) });
      const stack = async (ts: Tensor[], f: (v: number) => number = (v) => v): Promise<CapturedArray> => {
        const parts = await Promise.all(ts.map((t) => t.data()));
        const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
        parts.forEach((p, i) => data.set(p.map(f), i * p.length));
        return { shape: [ts.length, ...ts[0]!.shape], data };
      };
      return {
        position: this.position,
        attention,
        ...(this.request.residualNorm ? { residualNorm: await stack(pass.squaredNorm, Math.sqrt) } : {}),
        ...(this.threshold !== null ? { mlpSparsity: { ...(await stack(pass.sparsity)), threshold: this.threshold } } : {}),
        ...(pass.nextToken ? { nextToken: await host(pass.nextToken) } : {}),
      };
    } finally {
      this.dispose();
    }
  }

  /** Free the captured tensors without reading them. */
  dispose(): void {
    if (!this.pass) return;
    for (const t of [...this.pass.attention.values(), ...this.pass.squaredNorm, ...this.pass.sparsity]) t.dispose();
    this.pass.nextToken?.dispose();
    this.pass = null;
  }
}

/** fn's result, computed without gradients, its intermediates freed, owned by the caller (out of every scope). */
function captured(fn: () => Tensor): Tensor {
  return keep(scope(() => noGrad(fn)));
}

/**
 * Attention probabilities of the chosen query heads, as HF's eager attention computes them:
 * `softmax(q @ repeat_kv(k)^T * D^-0.5 + causal_mask)`. The queries are positions P .. P+T-1 and the
 * keys 0 .. Tk-1 (Tk = P + T); query t sees key j when j <= P + t.
 *   q: [B, H, T, D], keys: [B, G, >= Tk, D] -> [B, n, T, Tk]
 */
export function attentionProbabilities(q: Tensor, keys: Tensor, keyLength: number, heads: readonly number[], position: number): Tensor {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const G = keys.shape[1]!;
  const head = (t: Tensor, index: number, rows: number) => slice(t, [0, index, 0, 0], [B, 1, rows, D]);
  const qs = concat(heads.map((h) => head(q, h, T)), 1); //                                  [B, n, T, D]
  const ks = concat(heads.map((h) => head(keys, Math.floor(h / (H / G)), keyLength)), 1); // [B, n, Tk, D]
  const scores = scale(matmul(qs, ks, { transB: true }), 1 / Math.sqrt(D)); //                [B, n, T, Tk]
  return softmax(add(scores, causalMask(T, keyLength, position, q.backend)));
}

/**
 * [T, Tk]: 0 where query t may see key j (j <= position + t), -1e30 elsewhere. HF adds the dtype's
 * minimum; any number this negative makes exp() exactly 0 on every backend (the WASM exp returns 0
 * below -87.3, JS's and WGSL's underflow), and -1e30 keeps score + mask - rowMax finite in f32.
 */
function causalMask(T: number, keyLength: number, position: number, backend: AnyBackend): Tensor {
  const mask = new Float32Array(T * keyLength);
  for (let t = 0; t < T; t++) mask.fill(-1e30, t * keyLength + position + t + 1, (t + 1) * keyLength);
  return tensor(mask, [T, keyLength], { backend });
}

/**
 * Per row of a: [..., I], the fraction of elements with |a| < threshold, as [...]. Built from clamp,
 * sub and scale, since there is no comparison op; each step is exact in f32:
 *   s = a * a, t2 = threshold^2 rounded to f32, lo = the f32 just below t2
 *   c = clamp(s, lo, t2)       lo where s < t2, t2 where s >= t2: no f32 lies between lo and t2
 *   (t2 - c) / (t2 - lo)       exactly 1 or 0: t2 - c is exact (Sterbenz), t2 - lo is a power of two
 *   mean over the row          a sum of ones and zeros (exact below 2^24 elements), times 1 / I
 * So it counts a * a < t2 in f32, which is |a| < threshold except for |a| within an ulp of it.
 * THRESHOLD_RANGE keeps t2 - lo a normal number.
 */
export function fractionBelow(a: Tensor, threshold: number): Tensor {
  const t2 = Math.fround(threshold * threshold);
  const bits = new Float32Array([t2]), asInt = new Int32Array(bits.buffer);
  asInt[0] = asInt[0]! - 1; // the next f32 down (t2 is positive and normal)
  const lo = bits[0]!;
  const c = clamp(mul(a, a), lo, t2);
  return mean(scale(sub(full([1], t2, { backend: a.backend }), c), 1 / (t2 - lo)), -1);
}
