#!/usr/bin/env python3
"""What Hugging Face transformers computes inside the fixture checkpoints, for `Olmo.forward`'s capture.

Reads the committed checkpoints of test/fixtures/olmo/ (written by make_olmo_fixtures.py; they are
not regenerated here, so the other fixtures stay as they are) and writes
test/fixtures/olmo/capture.json (version 1) with, per checkpoint, for the ids of expected.json:
  attentions   per layer, OlmoForCausalLM's `output_attentions=True` with `attn_implementation="eager"`:
               softmax of the scaled, causally masked q k^T after clip_qkv and RoPE, [1, H, T, T]
               (with grouped-query attention each query head's probabilities, using its kv head)
  residual     per layer, the residual stream after the block (a forward hook on the decoder layer):
               [1, T, C]
  mlp          per layer, the MLP activation silu(gate) * up (the input of down_proj, by a forward
               pre-hook): [1, T, I]
Arrays are nested lists in float32 values. Small on purpose: 2 layers, 3 or 4 heads, 7 tokens.
Regenerate with:

    pip install torch transformers safetensors
    python3 scripts/golden/make_capture_fixtures.py
"""
import json
import os

import torch
from transformers import OlmoForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "test", "fixtures", "olmo")
MODELS = ["bf16-tied", "f32-untied-clip", "gqa-sharded"]


def capture(name, ids):
    # float32 as in make_olmo_fixtures.py (bf16 widens exactly); eager attention, the only
    # implementation that materialises the probabilities.
    model = OlmoForCausalLM.from_pretrained(os.path.join(FIXTURES, name), dtype=torch.float32, attn_implementation="eager").eval()
    residual, mlp = {}, {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(lambda _m, _args, out, i=i: residual.__setitem__(i, out[0] if isinstance(out, tuple) else out)))
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(lambda _m, args, i=i: mlp.__setitem__(i, args[0])))
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True)
    for h in hooks:
        h.remove()
    layers = model.config.num_hidden_layers
    return {
        "attentions": [out.attentions[i].tolist() for i in range(layers)],
        "residual": [residual[i].tolist() for i in range(layers)],
        "mlp": [mlp[i].tolist() for i in range(layers)],
        "numHeads": model.config.num_attention_heads,
        "numKvHeads": model.config.num_key_value_heads,
    }


def main():
    with open(os.path.join(FIXTURES, "expected.json")) as f:
        ids = json.load(f)["prompt"]
    result = {"version": 1, "generator": "scripts/golden/make_capture_fixtures.py", "transformers": __import__("transformers").__version__,
              "ids": ids, "models": {name: capture(name, ids) for name in MODELS}}
    with open(os.path.join(FIXTURES, "capture.json"), "w") as f:
        json.dump(result, f)
    for name, m in result["models"].items():
        print(name, "layers", len(m["attentions"]), "heads", m["numHeads"], "kv heads", m["numKvHeads"])


if __name__ == "__main__":
    main()
