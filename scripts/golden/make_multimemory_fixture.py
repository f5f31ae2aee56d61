#!/usr/bin/env python3
"""What Hugging Face transformers computes from the model of the multi-memory tests.

test/hosts/multimemory-model.ts defines that model's weights as a 32-bit hash of (tensor, element), so
this script builds the very same bf16 bits here (hash_weights) without a checkpoint being committed, and
writes test/fixtures/multimemory.json (version 1): the logits of the prompt's last position and the
greedy ids after the prompt, from OlmoForCausalLM run in float32 on the bf16 weights (what olmo-js
computes from bf16 storage). Regenerate with:

    pip install torch transformers numpy
    python3 scripts/golden/make_multimemory_fixture.py

The greedy ids are checked for a margin between the best and second-best logit at every step, so that
float rounding cannot flip a choice.
"""
import json
import os

import numpy as np
import torch
from transformers import OlmoConfig, OlmoForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "multimemory.json")
# As in multimemory-model.ts.
PROMPT = [5, 17, 300, 42, 8, 99, 511, 3]
NEW_TOKENS = 16
MARGIN = 1e-3


def hash_weights(k, count):
    """multimemory-model.ts `hashWeights`: the same integer steps in uint32, then float64, then f32."""
    # The embedding (k = 1) wider than the blocks: with every weight as small, the tied LM head would
    # repeat the last token, and greedy ids would check little.
    scale = 0.5 if k == 1 else 0.15
    i = np.arange(count, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64((k * 0x85EBCA77) & 0xFFFFFFFF)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0xC2B2AE3D)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    return ((h.astype(np.float64) / 2**32 - 0.5) * 2 * scale).astype(np.float32)


def main():
    config = OlmoConfig(
        vocab_size=512, hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=64, rope_theta=10000.0, attention_bias=False, clip_qkv=None,
        tie_word_embeddings=True, eos_token_id=0, pad_token_id=1, bos_token_id=None,
    )
    model = OlmoForCausalLM(config).eval()
    C, I = config.hidden_size, config.intermediate_size
    shapes = [("model.embed_tokens.weight", (config.vocab_size, C))]
    for layer in range(config.num_hidden_layers):
        p = f"model.layers.{layer}."
        shapes += [(f"{p}self_attn.{n}.weight", (C, C)) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        shapes += [(f"{p}mlp.gate_proj.weight", (I, C)), (f"{p}mlp.up_proj.weight", (I, C)), (f"{p}mlp.down_proj.weight", (C, I))]
    state = {}
    for k, (name, shape) in enumerate(shapes, start=1):
        values = torch.from_numpy(hash_weights(k, shape[0] * shape[1]).reshape(shape))
        # Stored as bf16 (round to nearest even), computed in float32: bf16 widens exactly.
        state[name] = values.to(torch.bfloat16).to(torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
    model.tie_weights()

    ids = list(PROMPT)
    margin = float("inf")
    with torch.no_grad():
        prompt_logits = model(torch.tensor([PROMPT])).logits[0]
        for _ in range(NEW_TOKENS):
            last = model(torch.tensor([ids])).logits[0, -1]
            top2 = last.topk(2).values
            margin = min(margin, (top2[0] - top2[1]).item())
            ids.append(int(last.argmax()))
    assert margin > MARGIN, f"greedy margin {margin} is too small to compare ids"
    expected = {
        "version": 1,
        "generator": "scripts/golden/make_multimemory_fixture.py",
        "prompt": PROMPT,
        "lastLogits": prompt_logits[-1].tolist(),
        "greedy": ids[len(PROMPT):],
        "minGreedyMargin": margin,
        "firstWeights": state["model.embed_tokens.weight"].reshape(-1)[:8].tolist(),
    }
    with open(OUT, "w") as f:
        json.dump(expected, f)
    print(f"wrote {OUT}: greedy {expected['greedy']}, min margin {margin:.4f}")


if __name__ == "__main__":
    main()
