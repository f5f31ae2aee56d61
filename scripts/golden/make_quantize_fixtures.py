#!/usr/bin/env python3
"""Golden fixtures for the quantization schemes of src/core/quantize.ts, from an independent numpy
implementation, and a tiny OLMo checkpoint in the layout transformers saves for load_in_8bit=True.

Writes (quantize.json version 2, olmo-8bit version 1):
  test/fixtures/quantize.json        the int8 and int4 weight schemes, activation quantization and the
                                     quantized matmul on small inputs chosen for their edge cases
  test/fixtures/olmo-8bit/           config.json, generation_config.json, model.safetensors as
                                     `save_pretrained` writes a model loaded with load_in_8bit=True,
                                     and expected_logits.json (what the engine should compute from it)
Regenerate with:

    pip install numpy torch transformers safetensors
    python3 scripts/golden/make_quantize_fixtures.py

The numpy code below is written from the definitions at the top of src/core/quantize.ts, not from the
TypeScript: every step is float32 (np.float32 division and multiplication round once, like Math.fround),
np.rint rounds half to even, np.float16 rounds the int4 scale to nearest even. Floats are stored as
the base64 of their little-endian bytes (f32 or f16) so the test compares bits; integers as lists
(int8 q, int4 packed bytes as 0..255).

The 8-bit folder is written by hand: bitsandbytes needs a GPU for load_in_8bit and is not installed
here. What transformers 5.x and bitsandbytes write, as read in their sources:
  - bitsandbytes Int8Params._quantize casts the weight to float16, then int8_vectorwise_quant gives
    CB (int8 [out, in], row-major) and SCB (float32 [out], the row's absmax of the f16 weight), with
    q = round-half-even(f32(w * factor)). The default (CPU) backend computes the factor as torch's
    `127.0 / row_stats`, which Tensor.__rtruediv__ evaluates as reciprocal(row_stats) * 127: two f32
    roundings, f32(127 * f32(1 / absmax)); the CUDA kernel kInt8VectorQuant uses __fdividef(127.0f,
    absmax), also 127 times an (approximate) reciprocal. quantize.ts defines f32(127 / absmax), correctly
    rounded; the two factors differ by an ulp for about a quarter of absmax values, which moves q by one
    where w * factor lands within that ulp of k + 0.5. The checkpoint stores bitsandbytes' q
    (quantize_int8_bitsandbytes); quantize.json pins quantize.ts's definition.
  - Linear8bitLt._save_to_state_dict writes `<prefix>weight` (the int8 CB), `<prefix>SCB` and
    `<prefix>weight_format`, a 0-dim uint8 tensor holding 0 ("row", kept for backward compatibility);
    transformers' Bnb8bitDeserialize reads the three back (source patterns SCB, weight_format, weight).
  - transformers replaces every nn.Linear except `modules_to_not_convert`: get_keys_to_not_convert
    keeps the output embeddings (lm_head), the last parameter's module and tied weights unquantized;
    the embedding is an nn.Embedding and is never converted. OLMo's layer norms have no weights.
  - The rest keeps the load dtype: transformers 4.x forced float16 when none was given; 5.x loads with
    dtype="auto". This fixture uses float16 (what load_in_8bit checkpoints on the Hub mostly hold).
  - config.json gains "quantization_config": BitsAndBytesConfig(load_in_8bit=True).to_dict(), taken
    from the installed transformers.
"""
import base64
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_olmo_fixtures import base_config, make_model  # noqa: E402  (the same tiny-model generator)

VERSION = 1
# quantize.json's version: 2 since int4 interleaves its rows four at a time.
QUANTIZE_JSON_VERSION = 2
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "quantize.json")
OUT_8BIT = os.path.join(ROOT, "test", "fixtures", "olmo-8bit")
GROUP = 32
F32 = np.float32
rng = np.random.default_rng(2024)


# --- the schemes, from their definitions ----------------------------------------------------------
def quantize_int8(w):
    """SCB[n] = max|W[n]|; q = rint(f32(W * f32(127 / SCB))), clamped to [-127, 127]; 0 where SCB = 0."""
    w = np.asarray(w, F32)
    scb = np.abs(w).max(axis=1).astype(F32)
    q = np.zeros(w.shape, np.int8)
    for n in range(w.shape[0]):
        if scb[n] == 0:
            continue
        inverse = F32(127) / scb[n]
        q[n] = np.clip(np.rint(w[n] * inverse), -127, 127).astype(np.int8)
    return q, scb


def quantize_int8_bitsandbytes(w):
    """bitsandbytes' int8_vectorwise_quant as it really rounds: the factor is 127 times the f32 reciprocal
    of the absmax (two roundings), not the correctly rounded f32(127 / absmax) of quantize.ts."""
    w = np.asarray(w, F32)
    scb = np.abs(w).max(axis=1).astype(F32)
    q = np.zeros(w.shape, np.int8)
    for n in range(w.shape[0]):
        if scb[n] != 0:
            q[n] = np.clip(np.rint(w[n] * ((F32(1) / scb[n]) * F32(127))), -127, 127).astype(np.int8)
    return q, scb


def dequantize_int8(q, scb):
    return q.astype(F32) * (scb / F32(127))[:, None]


def quantize_int4(w):
    """Per group of 32: m = first element of largest |x|; d = f16(m / -8); q = clamp(rint(f32(x / d)), -8, 7)."""
    w = np.asarray(w, F32)
    rows, cols = w.shape
    assert cols % GROUP == 0
    q = np.zeros((rows, cols), np.int8)
    d = np.zeros((rows, cols // GROUP), np.float16)
    for n in range(rows):
        for g in range(cols // GROUP):
            x = w[n, g * GROUP:(g + 1) * GROUP]
            m = x[int(np.argmax(np.abs(x)))]  # argmax returns the first of equal magnitudes
            d[n, g] = np.float16(m / F32(-8))
            scale = F32(d[n, g])
            if scale != 0:
                q[n, g * GROUP:(g + 1) * GROUP] = np.clip(np.rint(x / scale), -8, 7).astype(np.int8)
    return q, d


def pack_int4(q):
    """Byte i of a group's 16 holds element i (low nibble) and element i + 16 (high nibble), as q + 8."""
    rows, cols = q.shape
    u = (q.astype(np.int16) + 8).astype(np.uint8).reshape(rows, cols // GROUP, GROUP)
    return (u[:, :, :16] | (u[:, :, 16:] << 4)).reshape(rows, cols // 2)


def unpack_int4(packed, cols):
    rows = packed.shape[0]
    b = packed.reshape(rows, cols // GROUP, 16)
    q = np.concatenate([b & 0x0F, b >> 4], axis=2).astype(np.int16) - 8
    return q.reshape(rows, cols).astype(np.int8)


def interleave_rows4(a, word):
    """The int4 storage order of a [rows, groups, units] array: rows in quads of four (the last quad
    holds what is left), and in each quad, group by group, the rows' `word`-unit words side by side:
    row 0's word 0, row 1's word 0, ..., row 0's word 1, ... (bytes: word = 4; scales: word = 1)."""
    rows, groups, units = a.shape
    parts = []
    for first in range(0, rows, 4):
        quad = a[first:first + 4]
        parts.append(quad.reshape(quad.shape[0], groups, units // word, word).transpose(1, 2, 0, 3).reshape(-1))
    return np.concatenate(parts)


def deinterleave_rows4(flat, rows, groups, units, word):
    out = np.zeros((rows, groups, units), flat.dtype)
    at = 0
    for first in range(0, rows, 4):
        r = min(4, rows - first)
        size = r * groups * units
        out[first:first + r] = flat[at:at + size].reshape(groups, units // word, r, word).transpose(2, 0, 1, 3).reshape(r, groups, units)
        at += size
    return out


def dequantize_int4(q, d):
    return q.astype(F32) * np.repeat(d.astype(F32), GROUP, axis=1)


def quantize_activations(x):
    """Per block of 32 of each row (the last may be shorter): s = f32(max|x| / 127), qx = rint(f32(x * f32(127 / max|x|)))."""
    x = np.asarray(x, F32)
    rows, cols = x.shape
    blocks = -(-cols // GROUP)
    q = np.zeros((rows, cols), np.int8)
    s = np.zeros((rows, blocks), F32)
    for r in range(rows):
        for b in range(blocks):
            xb = x[r, b * GROUP:(b + 1) * GROUP]
            absmax = np.abs(xb).max()
            if absmax == 0:
                continue
            s[r, b] = absmax / F32(127)
            q[r, b * GROUP:(b + 1) * GROUP] = np.clip(np.rint(xb * (F32(127) / absmax)), -127, 127)
    return q, s


def matmul_quantized(a, scheme, qw, scales):
    """out[m, n] = sum over blocks of s[m, b] * w_scale[n, b] * (exact integer dot), in float64; also the
    sum of the terms' magnitudes (the scale of the f32 rounding error a kernel may add)."""
    qa, s = quantize_activations(a)
    m_rows, k = qa.shape
    n_rows = qw.shape[0]
    blocks = s.shape[1]
    if scheme == "int8":
        w_scale = np.repeat((scales / F32(127)).astype(np.float64)[:, None], blocks, axis=1)
    else:
        w_scale = scales.astype(np.float64)
    out, abs_sum = np.zeros((m_rows, n_rows)), np.zeros((m_rows, n_rows))
    for b in range(blocks):
        lo, hi = b * GROUP, min(k, (b + 1) * GROUP)
        dot = qa[:, lo:hi].astype(np.int64) @ qw[:, lo:hi].astype(np.int64).T  # exact
        term = s[:, b].astype(np.float64)[:, None] * w_scale[None, :, b] * dot
        out += term
        abs_sum += np.abs(term)
    return out, abs_sum


# --- encoding ---------------------------------------------------------------------------------------
def f32_bits(x):
    """The little-endian bytes of float32 values, base64."""
    return base64.b64encode(np.asarray(x, "<f4").tobytes()).decode()


def f16_bits(x):
    """The little-endian bytes of float16 values, base64."""
    return base64.b64encode(np.asarray(x, "<f2").tobytes()).decode()


def ints(x):
    return np.asarray(x).reshape(-1).astype(np.int64).tolist()


def bf16_round(x):
    """float32 values rounded to bfloat16 (nearest even), still float32."""
    return torch.tensor(np.asarray(x, F32)).to(torch.bfloat16).to(torch.float32).numpy()


# --- inputs -----------------------------------------------------------------------------------------
def tie_row(cols, absmax, count):
    """A row whose absmax is `absmax` and whose other elements land exactly on k + 0.5 after f32(x * f32(127 / absmax))."""
    inverse = F32(127) / F32(absmax)
    row = [F32(absmax)]
    for k in range(-count, 126):
        if len(row) == count + 1:
            break
        target = F32(k + 0.5)
        x = target / inverse
        for candidate in (x, np.nextafter(x, F32(-np.inf)), np.nextafter(x, F32(np.inf))):
            if abs(candidate) <= absmax and candidate * inverse == target:
                row.append(candidate)
                break
    assert len(row) == count + 1, f"only {len(row) - 1} ties found for absmax {absmax}"
    row += list(rng.uniform(-absmax, absmax, cols - len(row)).astype(F32) * F32(0.5))
    return np.array(row[:cols], F32)


def weight_cases():
    cases = []

    def add(name, w, int4=True):
        cases.append((name, np.asarray(w, F32), int4 and np.asarray(w).shape[1] % GROUP == 0))

    # Ties exactly at .5: absmax 127 makes the int8 factor exactly 1, and a group whose largest element
    # is -8 (or +8) makes the int4 scale exactly 1 (or -1); then searched ties for awkward absmaxes.
    ones = np.array([127] + [k + 0.5 for k in range(-8, 7)] + [2.5, -2.5, 126.5, -126.5, 0.5, -0.5] + [0] * 10, F32)[:32]
    eights = np.array([-8] + [k + 0.5 for k in range(-8, 7)] + [1.5, -1.5, 2.5, -2.5, 7.5] + [0] * 11, F32)[:32]
    add("ties at .5 (int8 factor 1, int4 scale 1)", np.stack([ones, eights, -eights]))
    add("ties at .5 after f32(x * f32(127 / absmax)), awkward absmaxes", np.stack([tie_row(64, a, 24) for a in (0.7310585, 3.3, 1e-3, 250.0)]))
    # Zeros, signs, ties in magnitude (the first wins), tiny and large values.
    signs = np.zeros((6, 64), F32)
    signs[0] = rng.uniform(-1, 1, 64)
    signs[0, 5], signs[0, 40] = 1.75, -3.0          # max magnitude positive in group 0, negative in group 1
    signs[1] = -signs[0]
    signs[2, :32] = rng.uniform(-1, 1, 32)
    signs[2, 3], signs[2, 20] = 2.0, -2.0           # +m before -m
    signs[2, 32:] = rng.uniform(-1, 1, 32)
    signs[2, 33], signs[2, 50] = -2.0, 2.0          # -m before +m
    signs[4] = np.float32(-0.0)                     # -0 after a +0: the first zero is m, so d = f16(+0 / -8) = -0
    signs[4, 0] = signs[4, 32] = 0                  # (row 3 is all +0)
    signs[5, 7] = -0.25                             # one nonzero element
    add("zero rows, sign of the largest element, ties in magnitude", signs)
    tiny = np.zeros((4, 64), F32)
    tiny[0] = rng.uniform(-1, 1, 64) * F32(1e-30)   # f32 normal, tiny; int4 scale underflows f16 to 0
    tiny[0, 10] = F32(1e-40)                        # f32 subnormal inside
    tiny[1] = rng.uniform(-1, 1, 64) * F32(6e-6)    # int4 scale is an f16 subnormal
    tiny[2] = rng.integers(-1024, 1024, 64).astype(F32) * F32(2.0 ** -24)  # f16 subnormals (as bitsandbytes sees them)
    tiny[3] = rng.uniform(-1, 1, 64) * F32(1e-3)
    tiny[3, 0] = F32(1e-41)
    add("tiny and subnormal values", tiny)
    large = rng.uniform(-1, 1, (3, 64)).astype(F32)
    large[0] *= F32(60000)                          # f16 range: int4 scale ~ 7500
    large[1] *= F32(5e5)                            # int4 scale just inside f16 (|m| / 8 < 65504)
    large[2] *= F32(3e38)                           # int8 only would be fine; int4 scale overflows f16
    # f32(127 / 0.7890625) = 160.95050 but f32(127 * f32(1 / 0.7890625)) = 160.95049: 0.39453125 times the
    # first is 63.500004 (q = 64, the definition), times the second 63.499996 (q = 63, bitsandbytes).
    add("an absmax whose f32(127 / a) is not f32(127 * f32(1 / a))", np.array([[0.7890625, 0.39453125, -0.39453125, 0.1]], F32), int4=False)
    add("large values", large[:2])
    add("large values (int8 only: |m| / 8 overflows f16)", large[2:], int4=False)
    add("bf16-valued inputs", bf16_round(rng.normal(0, 0.3, (3, 64))))
    add("f16-valued inputs (what bitsandbytes quantizes)", rng.normal(0, 0.3, (4, 64)).astype(np.float16).astype(F32))
    add("two quads of four rows and a partial one (int4 interleaving)", rng.normal(0, 1, (11, 96)))
    add("K = 45, not a multiple of 32 (int8 only)", rng.uniform(-2, 2, (3, 45)))
    add("K = 1 (int8 only)", rng.uniform(-2, 2, (3, 1)))
    return cases


def activation_cases():
    cases = []
    ties = np.zeros((3, 70), F32)
    ties[0, :32] = np.array([127] + [k + 0.5 for k in range(-15, 16)], F32)[:32]  # block factor exactly 1
    ties[0, 32:64] = tie_row(32, 5.5, 20)
    ties[0, 64:] = [-127, 0.5, 1.5, -2.5, 3.5, 126.5]                               # partial last block
    ties[1] = rng.uniform(-3, 3, 70)
    ties[1, 32:64] = 0                                                               # an all-zero block
    ties[2, :32] = rng.uniform(-1, 1, 32) * F32(1e-20)
    ties[2, 32:] = rng.uniform(-1, 1, 38) * F32(1e20)
    cases.append(("ties, a zero block, partial last block (K = 70)", ties))
    cases.append(("bf16-valued rows (K = 96)", bf16_round(rng.normal(0, 2, (4, 96)))))
    cases.append(("K = 45", rng.uniform(-5, 5, (2, 45)).astype(F32)))
    cases.append(("K = 7 (one short block)", rng.uniform(-5, 5, (2, 7)).astype(F32)))
    return cases


def matmul_cases():
    a45 = rng.uniform(-2, 2, (3, 45)).astype(F32)
    a45[1] = 0                                               # an all-zero activation row
    w45 = rng.uniform(-1, 1, (5, 45)).astype(F32)
    w45[2] = 0                                               # an all-zero weight row
    a64 = rng.normal(0, 1, (4, 64)).astype(F32)
    a64[0, :32] = np.array([127] + [k + 0.5 for k in range(-15, 16)], F32)[:32]
    w64 = rng.normal(0, 0.3, (6, 64)).astype(F32)
    a96 = bf16_round(rng.normal(0, 1, (2, 96)))
    w96 = bf16_round(rng.normal(0, 0.3, (3, 96)))
    return [
        ("int8, K = 45 (partial activation block), zero rows", "int8", a45, w45),
        ("int8, K = 64", "int8", a64, w64),
        ("int4, K = 64", "int4", a64, w64),
        ("int4, K = 96, bf16 values", "int4", a96, w96),
        ("int8, K = 96, bf16 values", "int8", a96, w96),
    ]


def quantize(scheme, w):
    if scheme == "int8":
        q, scb = quantize_int8(w)
        return q, scb, q
    q, d = quantize_int4(w)
    packed = pack_int4(q)
    assert (unpack_int4(packed, w.shape[1]) == q).all()
    rows, groups = d.shape
    stored_values = interleave_rows4(packed.reshape(rows, groups, 16), 4)
    stored_scales = interleave_rows4(d.reshape(rows, groups, 1), 1)
    assert (deinterleave_rows4(stored_values, rows, groups, 16, 4).reshape(rows, -1) == packed).all()
    assert (deinterleave_rows4(stored_scales, rows, groups, 1, 1).reshape(rows, -1) == d).all()
    return q, d, (stored_values, stored_scales)


def encode_scheme(scheme, w):
    q, scales, stored = quantize(scheme, w)
    deq = dequantize_int8(q, scales) if scheme == "int8" else dequantize_int4(q, scales)
    return {
        "values": ints(stored if scheme == "int8" else stored[0]),  # int8: q; int4: the packed bytes 0..255, rows interleaved
        "scaleBits": f32_bits(scales) if scheme == "int8" else f16_bits(stored[1]),
        "dequantizedBits": f32_bits(deq),
    }


def check_ties():
    """Every tie the inputs were built for really lands on k + 0.5 in float32."""
    for absmax in (0.7310585, 3.3, 1e-3, 250.0, 5.5):
        row = tie_row(64, absmax, 20)
        y = row[1:21] * (F32(127) / F32(absmax))
        assert ((y - np.floor(y)) == F32(0.5)).all(), (absmax, y)


def golden_quantize():
    check_ties()
    out = {"version": QUANTIZE_JSON_VERSION, "generator": "scripts/golden/make_quantize_fixtures.py", "group": GROUP,
           "weights": [], "activations": [], "matmul": []}
    for name, w, with_int4 in weight_cases():
        case = {"name": name, "rows": w.shape[0], "cols": w.shape[1], "xBits": f32_bits(w), "int8": encode_scheme("int8", w)}
        if with_int4:
            case["int4"] = encode_scheme("int4", w)
        out["weights"].append(case)
    for name, x in activation_cases():
        q, s = quantize_activations(x)
        out["activations"].append({"name": name, "rows": x.shape[0], "cols": x.shape[1], "xBits": f32_bits(x),
                                   "q": ints(q), "scaleBits": f32_bits(s)})
    for name, scheme, a, w in matmul_cases():
        q, scales, stored = quantize(scheme, w)
        expected, abs_sum = matmul_quantized(a, scheme, q, scales)
        out["matmul"].append({"name": name, "scheme": scheme, "m": a.shape[0], "k": a.shape[1], "n": w.shape[0],
                              "aBits": f32_bits(a), "wBits": f32_bits(w), "expected": expected.reshape(-1).tolist(),
                              "absSum": abs_sum.reshape(-1).tolist()})
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("quantize.json:", os.path.getsize(OUT), "bytes,", len(out["weights"]), "weight cases")


# --- the load_in_8bit checkpoint -----------------------------------------------------------------------
PROMPT = [3, 17, 42, 5, 88, 1, 60, 150, 199]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


class ActivationQuantizedLinear(torch.nn.Module):
    """y = x dequant(W)^T with x quantized per block of 32 as quantize.ts defines (x rounded to f32 first);
    the products and sums in float64 (every product of the integers and f32 scales is exact there)."""

    def __init__(self, q, scb):
        super().__init__()
        self.weight_scaled = torch.tensor(q.astype(np.float64) * (scb / F32(127)).astype(np.float64)[:, None])

    def forward(self, x):
        shape = x.shape
        qx, s = quantize_activations(x.reshape(-1, shape[-1]).to(torch.float32).numpy())
        xs = qx.astype(np.float64) * np.repeat(s.astype(np.float64), GROUP, axis=1)[:, : shape[-1]]
        return (torch.tensor(xs) @ self.weight_scaled.T).reshape(*shape[:-1], -1)


def golden_8bit():
    from transformers import BitsAndBytesConfig, OlmoForCausalLM

    shutil.rmtree(OUT_8BIT, ignore_errors=True)
    config = base_config(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, eos_token_id=199)
    model = make_model(config, seed=0).to(torch.float16)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[5] = 0  # an all-zero row: SCB 0
    model.save_pretrained(OUT_8BIT, safe_serialization=True)  # config.json, generation_config.json (and f16 weights, replaced below)

    f16_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tensors, quantized, differences = {}, {}, []
    for name, value in f16_state.items():
        module = name.removesuffix(".weight")
        if any(module.endswith(linear) for linear in LINEARS):
            w = value.to(torch.float32).numpy()  # bitsandbytes quantizes the f16 weight
            q, scb = quantize_int8_bitsandbytes(w)
            # The same through torch, as bitsandbytes' default backend writes it: `127.0 / row_stats` is
            # Tensor.__rtruediv__ (reciprocal, then times 127), f16 times f32 is computed in f32, torch.round
            # rounds half to even.
            absmax = value.abs().amax(dim=1).float()
            q_torch = torch.round(value * (127.0 / absmax.clamp(min=1e-30)[:, None])).to(torch.int8)
            assert (q_torch.numpy() == q).all() and (absmax.numpy() == scb).all(), module
            for n, k in np.argwhere(q != quantize_int8(w)[0]):
                differences.append({"tensor": name, "row": int(n), "col": int(k), "stored": int(q[n, k]), "quantizeTs": int(quantize_int8(w)[0][n, k])})
            tensors[name] = torch.from_numpy(q)
            tensors[module + ".SCB"] = torch.from_numpy(scb)
            tensors[module + ".weight_format"] = torch.tensor(0, dtype=torch.uint8)
            quantized[module] = (q, scb)
        else:  # model.embed_tokens, lm_head: kept in float16
            tensors[name] = value
    os.remove(os.path.join(OUT_8BIT, "model.safetensors"))
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT_8BIT, "model.safetensors"), metadata={"format": "pt"})

    config_path = os.path.join(OUT_8BIT, "config.json")
    with open(config_path) as f:
        config_json = json.load(f)
    config_json["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True).to_dict()
    with open(config_path, "w") as f:
        f.write(json.dumps(config_json, indent=2, sort_keys=True) + "\n")

    # Logits in float64: the f16 weights as saved (unquantized), then the 8-bit linears.
    reference = OlmoForCausalLM(config).to(torch.float64).eval()
    reference.load_state_dict({k: v.to(torch.float64) for k, v in f16_state.items()})
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        plain = reference(ids).logits[0]
        for module, (q, scb) in quantized.items():
            reference.set_submodule(module, ActivationQuantizedLinear(q, scb))
        quant = reference(ids).logits[0]
    difference = (quant - plain).abs().max().item()
    expected = {
        "version": VERSION,
        "generator": "scripts/golden/make_quantize_fixtures.py",
        "what": "A tiny OLMo saved as transformers saves a model loaded with BitsAndBytesConfig(load_in_8bit=True) "
                "(written by hand, without bitsandbytes). Each nn.Linear of the decoder layers is int8: <module>.weight "
                "int8 [out, in], <module>.SCB float32 [out] (row absmax of the f16 weight), <module>.weight_format "
                "uint8 [] = 0 (row-major). model.embed_tokens.weight and lm_head.weight stay float16 (unquantized). "
                "model.layers.1.mlp.down_proj row 5 is all zeros (SCB 0).",
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)} for k, v in sorted(tensors.items())},
        "prompt": PROMPT,
        "shape": list(quant.shape),
        "logitsInt8": quant.reshape(-1).tolist(),
        "logitsInt8Note": "float64 forward of transformers' OlmoForCausalLM from the checkpoint, each quantized linear "
                          "computing x dequant(W)^T with x (rounded to f32) quantized per block of 32 as src/core/quantize.ts "
                          "defines, dequant(W) = q * f32(SCB / 127); lm_head and the embedding from the f16 weights",
        "logitsF16": plain.reshape(-1).tolist(),
        "logitsF16Note": "the same forward from the f16 weights before quantization (float64 arithmetic)",
        "maxAbsDifference": difference,
        "int8Arithmetic": "the stored q is bitsandbytes' arithmetic, q = rint(f32(w * f32(127 * f32(1 / SCB)))) (its default "
                          "backend; CUDA's __fdividef also multiplies by an approximate reciprocal), which is not always "
                          "quantize.ts's f32(127 / SCB): the elements where quantizeHost('int8') of the f16 weights differs are "
                          "listed in differsFromQuantizeTs. A loader must use the stored q and SCB, never re-quantize.",
        "differsFromQuantizeTs": differences,
    }
    with open(os.path.join(OUT_8BIT, "expected_logits.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    with open(os.path.join(OUT_8BIT, "README.md"), "w") as f:
        f.write("A tiny OLMo in the layout transformers saves for `load_in_8bit=True` (int8 `weight`, f32 `SCB` and uint8\n"
                "`weight_format` per decoder linear; f16 embedding and lm_head), written by hand by\n"
                "scripts/golden/make_quantize_fixtures.py, which says what it follows. expected_logits.json lists the tensors\n"
                "and holds float64 logits for `prompt`, with and without the int8 weights.\n")
    total = sum(os.path.getsize(os.path.join(OUT_8BIT, n)) for n in os.listdir(OUT_8BIT))
    print("olmo-8bit:", total, "bytes; max |int8 - f16| logit", difference, "of max |logit|", plain.abs().max().item())


if __name__ == "__main__":
    golden_quantize()
    golden_8bit()
