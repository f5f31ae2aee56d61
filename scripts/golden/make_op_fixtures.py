#!/usr/bin/env python3
"""Golden fixtures for every op of the tensor core, computed by PyTorch.

Writes test/fixtures/ops.json (version 1). Regenerate with:

    pip install torch numpy
    python3 scripts/golden/make_op_fixtures.py

Each case holds the inputs (float32-representable values), the upstream gradient, and PyTorch's
forward output and input gradients computed in float64, so the same fixture checks the reference
backend in f64 (tight tolerance) and every f32 backend (f32 rounding tolerance). Where Hugging Face
computes in float32 on purpose (RoPE's inv_freq, cos and sin), the script does the same.

The file also holds dtype conversion vectors (f32 -> bf16 / f16 bits, PyTorch's rounding) and the first
draws of the documented PRNG, from an independent Python implementation of xoshiro128**.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

VERSION = 1
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "ops.json")
rng = np.random.default_rng(1234)


def f32(shape, low=-2.0, high=2.0):
    """Random float32 values, returned as a float64 torch tensor (exactly representable in f32)."""
    return torch.tensor(rng.uniform(low, high, size=shape).astype(np.float32), dtype=torch.float64)


def ids(shape, vocab):
    return torch.tensor(rng.integers(0, vocab, size=shape), dtype=torch.int64)


def enc(t):
    return {"shape": list(t.shape), "values": t.detach().reshape(-1).tolist()}


cases = []


def case(name, op, inputs, fn, params=None, int_inputs=None):
    """inputs: float tensors (differentiated); int_inputs: integer tensors (ids, targets); fn -> output."""
    int_inputs = int_inputs or {}
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves, **int_inputs)
    upstream = torch.tensor(rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32), dtype=torch.float64)
    grads = torch.autograd.grad(out, list(leaves.values()), upstream, allow_unused=True)
    cases.append(
        {
            "name": name,
            "op": op,
            "params": params or {},
            "inputs": {k: enc(v) for k, v in inputs.items()},
            "intInputs": {k: enc(v) for k, v in int_inputs.items()},
            "output": enc(out),
            "upstream": enc(upstream),
            "grads": {k: (enc(g) if g is not None else None) for k, g in zip(leaves, grads)},
        }
    )


# --- matmul: plain, transposed operands, batched, shared (broadcast) operands --------------------
def mm(transA=False, transB=False):
    def fn(a, b):
        A = a.transpose(-1, -2) if transA else a
        B = b.transpose(-1, -2) if transB else b
        return torch.matmul(A, B)

    return fn


case("matmul 3x17 @ 17x5", "matmul", {"a": f32((3, 17)), "b": f32((17, 5))}, mm())
case("matmul 1x33 @ 33x3", "matmul", {"a": f32((1, 33)), "b": f32((33, 3))}, mm())
case("matmul transA", "matmul", {"a": f32((17, 3)), "b": f32((17, 5))}, mm(True, False), {"transA": True})
case("matmul transB", "matmul", {"a": f32((3, 17)), "b": f32((5, 17))}, mm(False, True), {"transB": True})
case("matmul transA transB", "matmul", {"a": f32((17, 3)), "b": f32((5, 17))}, mm(True, True), {"transA": True, "transB": True})
case("matmul batched", "matmul", {"a": f32((2, 3, 4, 5)), "b": f32((2, 3, 5, 3))}, mm())
case("matmul shared b", "matmul", {"a": f32((2, 3, 4)), "b": f32((4, 5))}, mm())
case("matmul shared b transB", "matmul", {"a": f32((2, 3, 4)), "b": f32((5, 4))}, mm(False, True), {"transB": True})
case("matmul shared a transA", "matmul", {"a": f32((4, 3)), "b": f32((2, 4, 5))}, mm(True, False), {"transA": True})
case("matmul batched transA transB", "matmul", {"a": f32((3, 5, 2)), "b": f32((3, 4, 5))}, mm(True, True), {"transA": True, "transB": True})

# bf16 / f16 weights: the weight is rounded by PyTorch, then the product is taken in float64.
for dtype_name, torch_dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
    a, b = f32((3, 17)), f32((5, 17))
    b_rounded = b.to(torch.float32).to(torch_dtype).to(torch.float64)
    cases.append(
        {
            "name": f"matmul {dtype_name} weight transB",
            "op": "matmul",
            "params": {"transB": True, "bDType": dtype_name},
            "inputs": {"a": enc(a), "b": enc(b)},
            "intInputs": {},
            "output": enc(a @ b_rounded.T),
            "upstream": None,
            "grads": None,
        }
    )

# --- elementwise and broadcasting ---------------------------------------------------------------
for opname, fn in (("add", torch.add), ("sub", torch.sub), ("mul", torch.mul)):
    case(f"{opname} same shape", opname, {"a": f32((3, 17)), "b": f32((3, 17))}, lambda a, b, fn=fn: fn(a, b))
    case(f"{opname} broadcast [C]", opname, {"a": f32((2, 3, 5)), "b": f32((5,))}, lambda a, b, fn=fn: fn(a, b))
    case(f"{opname} broadcast first [T,C]", opname, {"a": f32((3, 5)), "b": f32((2, 3, 5))}, lambda a, b, fn=fn: fn(a, b))
case("add broadcast [1,C]", "add", {"a": f32((4, 33)), "b": f32((1, 33))}, lambda a, b: a + b)
case("scale", "scale", {"x": f32((3, 17))}, lambda x: x * -0.37, {"factor": -0.37})
case("silu", "silu", {"x": f32((33,), -6, 6)}, lambda x: F.silu(x))
case("silu [2,17]", "silu", {"x": f32((2, 17), -3, 3)}, lambda x: F.silu(x))
case("clamp", "clamp", {"x": f32((3, 17), -3, 3)}, lambda x: torch.clamp(x, -1.5, 1.25), {"min": -1.5, "max": 1.25})

# --- normalisation --------------------------------------------------------------------------------
case("layerNorm [3,17]", "layerNorm", {"x": f32((3, 17))}, lambda x: F.layer_norm(x, (17,), eps=1e-5))
case("layerNorm [2,3,33] shifted", "layerNorm", {"x": f32((2, 3, 33), 3, 7)}, lambda x: F.layer_norm(x, (33,), eps=1e-5))
case("layerNorm [1,1]", "layerNorm", {"x": f32((1, 1))}, lambda x: F.layer_norm(x, (1,), eps=1e-5))
case("softmax [3,17]", "softmax", {"x": f32((3, 17), -5, 5)}, lambda x: torch.softmax(x, -1))
case("softmax [2,1,33]", "softmax", {"x": f32((2, 1, 33), -5, 5)}, lambda x: torch.softmax(x, -1))
case("logSoftmax [3,17]", "logSoftmax", {"x": f32((3, 17), -5, 5)}, lambda x: torch.log_softmax(x, -1))
case("logSoftmax [5,1]", "logSoftmax", {"x": f32((5, 1), -5, 5)}, lambda x: torch.log_softmax(x, -1))


# --- rotary embedding, as HF OlmoRotaryEmbedding + apply_rotary_pos_emb ----------------------------
def hf_rope(x, theta, offset):
    _, _, T, D = x.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))  # float32, as HF
    positions = torch.arange(offset, offset + T, dtype=torch.float32)
    freqs = positions[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(torch.float64), emb.sin().to(torch.float64)

    def rotate_half(t):
        t1, t2 = t[..., : D // 2], t[..., D // 2 :]
        return torch.cat((-t2, t1), dim=-1)

    return x * cos + rotate_half(x) * sin


case("rope [1,2,5,8]", "rotaryEmbedding", {"x": f32((1, 2, 5, 8))}, lambda x: hf_rope(x, 10000.0, 0), {"theta": 10000, "positionOffset": 0})
case("rope [2,3,3,6] offset 7", "rotaryEmbedding", {"x": f32((2, 3, 3, 6))}, lambda x: hf_rope(x, 10000.0, 7), {"theta": 10000, "positionOffset": 7})
case("rope [1,1,17,2] theta 500", "rotaryEmbedding", {"x": f32((1, 1, 17, 2))}, lambda x: hf_rope(x, 500.0, 0), {"theta": 500, "positionOffset": 0})


# --- attention --------------------------------------------------------------------------------------
def sdpa(causal, scale=None):
    def fn(q, k, v):
        H, G = q.shape[1], k.shape[1]
        k2 = k.repeat_interleave(H // G, dim=1)  # HF repeat_kv: query head h reads kv head h // (H / G)
        v2 = v.repeat_interleave(H // G, dim=1)
        Tq, Tk = q.shape[2], k.shape[2]
        mask = None
        if causal:
            mask = torch.arange(Tk)[None, :] <= (torch.arange(Tq)[:, None] + (Tk - Tq))
        return F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask, scale=scale)

    return fn


case("attention causal [1,2,5,4]", "attention", {"q": f32((1, 2, 5, 4)), "k": f32((1, 2, 5, 4)), "v": f32((1, 2, 5, 4))}, sdpa(True))
case("attention causal [2,3,17,3]", "attention", {"q": f32((2, 3, 17, 3)), "k": f32((2, 3, 17, 3)), "v": f32((2, 3, 17, 3))}, sdpa(True))
case("attention kv cache Tq=2 Tk=6", "attention", {"q": f32((1, 2, 2, 4)), "k": f32((1, 2, 6, 4)), "v": f32((1, 2, 6, 4))}, sdpa(True))
case("attention decode Tq=1 Tk=5", "attention", {"q": f32((2, 2, 1, 4)), "k": f32((2, 2, 5, 4)), "v": f32((2, 2, 5, 4))}, sdpa(True))
case("attention grouped H=6 G=2", "attention", {"q": f32((1, 6, 5, 4)), "k": f32((1, 2, 5, 4)), "v": f32((1, 2, 5, 4))}, sdpa(True))
case("attention non-causal scale 0.3", "attention", {"q": f32((1, 2, 3, 4)), "k": f32((1, 2, 5, 4)), "v": f32((1, 2, 5, 4))}, sdpa(False, 0.3), {"causal": False, "scale": 0.3})

# --- embedding and cross-entropy ---------------------------------------------------------------------
case(
    "embedding repeated ids",
    "embedding",
    {"table": f32((11, 5))},
    lambda table, ids: F.embedding(ids, table),
    int_inputs={"ids": torch.tensor([[3, 0, 3], [10, 3, 7]])},
)
case("embedding [17] ids", "embedding", {"table": f32((33, 3))}, lambda table, ids: F.embedding(ids, table), int_inputs={"ids": ids((17,), 33)})


def ce(normalizer, with_mask):
    def fn(logits, targets, mask=None):
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        if with_mask:
            nll = nll * mask.reshape(-1).to(torch.float64)
        total = nll.sum()
        if normalizer == "sum":
            return total
        return total / (targets.numel() if normalizer == "mean" else normalizer)

    return fn


case("crossEntropy mean", "crossEntropy", {"logits": f32((3, 17), -4, 4)}, ce("mean", False), int_inputs={"targets": ids((3,), 17)})
mask = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]])
case(
    "crossEntropy masked, OLMo normaliser (all B*T)",
    "crossEntropy",
    {"logits": f32((2, 4, 33), -4, 4)},
    ce("mean", True),
    {"masked": True},
    int_inputs={"targets": ids((2, 4), 33), "mask": mask},
)
case(
    "crossEntropy masked, sum",
    "crossEntropy",
    {"logits": f32((2, 4, 33), -4, 4)},
    ce("sum", True),
    {"masked": True, "normalizer": "sum"},
    int_inputs={"targets": ids((2, 4), 33), "mask": mask},
)
case(
    "crossEntropy masked, divide by 5",
    "crossEntropy",
    {"logits": f32((2, 4, 33), -4, 4)},
    ce(5, True),
    {"masked": True, "normalizer": 5},
    int_inputs={"targets": ids((2, 4), 33), "mask": mask},
)

# --- reductions and layout --------------------------------------------------------------------------
case("sum all", "sum", {"x": f32((3, 17))}, lambda x: x.sum(), {})
case("sum axis 1", "sum", {"x": f32((2, 3, 5))}, lambda x: x.sum(1), {"axes": [1]})
case("sum axes 0,2 keepDims", "sum", {"x": f32((2, 3, 5))}, lambda x: x.sum((0, 2), keepdim=True), {"axes": [0, 2], "keepDims": True})
case("mean axis -1", "mean", {"x": f32((3, 17))}, lambda x: x.mean(-1), {"axes": [-1]})
case("reshape", "reshape", {"x": f32((2, 3, 4))}, lambda x: x.reshape(6, 4), {"shape": [6, -1]})
case("permute 0,2,1,3", "permute", {"x": f32((2, 3, 4, 5))}, lambda x: x.permute(0, 2, 1, 3), {"perm": [0, 2, 1, 3]})
case("permute 2,0,1", "permute", {"x": f32((3, 1, 17))}, lambda x: x.permute(2, 0, 1), {"perm": [2, 0, 1]})
case("transpose", "transpose", {"x": f32((3, 17))}, lambda x: x.transpose(0, 1), {"axis0": 0, "axis1": 1})
case("slice middle", "slice", {"x": f32((4, 17))}, lambda x: x[1:3, 5:16], {"start": [1, 5], "size": [2, 11]})
case("slice last axis of 3d", "slice", {"x": f32((2, 3, 12))}, lambda x: x[:, :, 4:8], {"start": [0, 0, 4], "size": [-1, -1, 4]})
case("concat axis 0", "concat", {"a": f32((2, 3)), "b": f32((1, 3)), "c": f32((3, 3))}, lambda a, b, c: torch.cat([a, b, c], 0), {"axis": 0})
case("concat axis -1", "concat", {"a": f32((2, 3, 4)), "b": f32((2, 3, 1))}, lambda a, b: torch.cat([a, b], -1), {"axis": -1})

# --- dtype conversions --------------------------------------------------------------------------------
special = [0.0, -0.0, 1.0, -1.0, 3.140625, 1e-8, -2.5e-7, 65504.0, 65520.0, 70000.0, 1e30, -1e-40, 6e-8, 3e-8, 2.98e-8,
           float("inf"), float("-inf"), 1.00390625, 1.01171875, 1.0009765625, 1.0029296875, 5.960464477539063e-08, 0.1, 3.3895e38]
conversion_inputs = np.concatenate(
    [np.array(special, dtype=np.float32), rng.normal(0, 1, 200).astype(np.float32), (rng.normal(0, 1, 100) * 1e-5).astype(np.float32),
     (rng.normal(0, 1, 100) * 1e4).astype(np.float32)]
)
values = torch.tensor(conversion_inputs)
conversions = {
    # f32 inputs as their bit patterns: exact, and JSON has no infinities.
    "f32Bits": conversion_inputs.view(np.uint32).tolist(),
    "bf16Bits": values.to(torch.bfloat16).view(torch.int16).to(torch.int32).bitwise_and(0xFFFF).tolist(),
    "f16Bits": values.to(torch.float16).view(torch.int16).to(torch.int32).bitwise_and(0xFFFF).tolist(),
}


# --- PRNG: an independent implementation of SplitMix32 seeding + xoshiro128** ------------------------
def prng_draws(seed, count):
    M = 0xFFFFFFFF
    x = seed & M

    def splitmix():
        nonlocal x
        x = (x + 0x9E3779B9) & M
        z = x
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M
        return (z ^ (z >> 16)) & M

    s = [splitmix() for _ in range(4)]
    rotl = lambda v, k: ((v << k) | (v >> (32 - k))) & M
    out = []
    for _ in range(count):
        out.append((rotl((s[1] * 5) & M, 7) * 9) & M)
        t = (s[1] << 9) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
    return out


def polar_normals(seed, count):
    draws = iter(prng_draws(seed, count * 8 + 64))
    uniform = lambda: (next(draws) >> 8) / 16777216
    out = []
    while len(out) < count:
        u, v = 2 * uniform() - 1, 2 * uniform() - 1
        s = u * u + v * v
        if s == 0 or s >= 1:
            continue
        factor = math.sqrt(-2 * math.log(s) / s)
        out += [u * factor, v * factor]
    return out[:count]


prng = {
    "seeds": [0, 1, 42, 4294967295],
    "uint32": [prng_draws(s, 8) for s in [0, 1, 42, 4294967295]],
    "normal": [polar_normals(s, 8) for s in [0, 1, 42, 4294967295]],
}

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(
        {
            "version": VERSION,
            "generator": "scripts/golden/make_op_fixtures.py",
            "torch": torch.__version__,
            "cases": cases,
            "conversions": conversions,
            "prng": prng,
        },
        f,
        allow_nan=False,
    )
print(f"wrote {len(cases)} op cases to {os.path.relpath(OUT)}")
