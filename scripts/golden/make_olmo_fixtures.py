#!/usr/bin/env python3
"""Tiny random OLMo checkpoints and what Hugging Face transformers computes from them.

Writes test/fixtures/olmo/<name>/ (config.json + safetensors, as `save_pretrained` writes them) and
test/fixtures/olmo/expected.json (version 1): logits of OlmoForCausalLM for fixed ids, and 32 greedily
generated ids. Regenerate with:

    pip install torch transformers safetensors
    python3 scripts/golden/make_olmo_fixtures.py

Checkpoints:
  f32-untied-clip   F32, untied lm_head, clip_qkv 0.5 with weights scaled up so clamping really happens,
                    3 heads (odd), head dim 8
  bf16-tied         BF16 on disk, tied embeddings (as OLMo-1B); HF runs it upcast to float32, which is
                    exactly what olmo-js computes from bf16 storage
  gqa-sharded       F32, 4 query heads sharing 2 key/value heads, saved in 3 shards with an index
  native-layout     the f32-untied-clip weights in OLMo's own layout (transformer.blocks.N.att_proj fused
                    q|k|v, ff_proj fused up|gate, transformer.wte, transformer.ff_out)
Greedy generation is checked for a margin between the best and second-best logit at every step, so
that float rounding cannot flip a choice; a seed without margin is replaced by the next one.
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import OlmoConfig, OlmoForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "olmo")
PROMPT = [3, 17, 42, 5, 88, 1, 60]  # id 1 (pad) on purpose: inference must not treat it specially
MARGIN = 2e-3


def base_config(**overrides):
    cfg = dict(
        vocab_size=96, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
        num_key_value_heads=3, max_position_embeddings=64, rope_theta=10000.0, attention_bias=False,
        pad_token_id=1, eos_token_id=95, bos_token_id=None, tie_word_embeddings=False, clip_qkv=None,
    )
    cfg.update(overrides)
    return OlmoConfig(**cfg)


def make_model(config, seed, scale=1.0):
    torch.manual_seed(seed)
    model = OlmoForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.3 * scale if "embed" not in name else 1.0)
    return model


def greedy_with_margin(model, prompt, steps):
    """HF's greedy generation, plus the smallest top-1 / top-2 logit gap seen on the way."""
    with torch.no_grad():
        input_ids = torch.tensor([prompt])
        # An explicit all-ones mask: otherwise generate() masks out the pad id (1) in the prompt.
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=steps, do_sample=False,
                             eos_token_id=None, pad_token_id=1)
        ids = out[0].tolist()
        logits = model(torch.tensor([ids[:-1]])).logits[0, len(prompt) - 1 :]
        top2 = logits.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
        assert logits.argmax(-1).tolist() == ids[len(prompt) :], "generate() disagrees with the forward pass"
    return ids[len(prompt) :], margin


def native_state_dict(model, config):
    """The same weights in OLMo's own layout."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": sd["model.embed_tokens.weight"]}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        out[f"transformer.blocks.{i}.att_proj.weight"] = torch.cat(
            [sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.v_proj.weight"]], 0)
        out[f"transformer.blocks.{i}.attn_out.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[f"transformer.blocks.{i}.ff_proj.weight"] = torch.cat([sd[p + "mlp.up_proj.weight"], sd[p + "mlp.gate_proj.weight"]], 0)
        out[f"transformer.blocks.{i}.ff_out.weight"] = sd[p + "mlp.down_proj.weight"]
    if not config.tie_word_embeddings:
        out["transformer.ff_out.weight"] = sd["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


def processor_cases():
    """transformers' logits processors and warpers on random scores (with ties and -inf)."""
    from transformers.generation.logits_process import (
        NoRepeatNGramLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)
    g = torch.Generator().manual_seed(5)
    cases = []
    for k, p, temperature, n in [(5, 1.0, 1.0, 0), (1, 1.0, 1.0, 0), (50, 0.9, 0.7, 2), (3, 0.5, 1.3, 3), (0, 0.3, 1.0, 0), (12, 0.95, 2.0, 1)]:
        scores = torch.randn(1, 40, generator=g) * 3
        scores[0, 7] = scores[0, 8]  # a tie
        ids = torch.randint(0, 40, (1, 25), generator=g)
        out = scores.clone()
        if n:
            out = NoRepeatNGramLogitsProcessor(n)(ids, out)
        if temperature != 1.0:
            out = TemperatureLogitsWarper(temperature)(ids, out)
        if k:
            out = TopKLogitsWarper(k)(ids, out)
        if p < 1.0:
            out = TopPLogitsWarper(p)(ids, out)
        kept = [i for i, v in enumerate(out[0].tolist()) if v != float("-inf")]
        cases.append({"scores": scores[0].tolist(), "ids": ids[0].tolist(), "topK": k, "topP": p, "temperature": temperature,
                      "noRepeatNgramSize": n, "kept": kept})
    return cases


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    specs = [
        ("f32-untied-clip", base_config(clip_qkv=0.5), torch.float32, 3.0, None),
        ("bf16-tied", base_config(tie_word_embeddings=True), torch.bfloat16, 1.0, None),
        ("gqa-sharded", base_config(num_attention_heads=4, num_key_value_heads=2, hidden_size=32), torch.float32, 1.0, "20KB"),
    ]
    expected = {"version": 1, "generator": "scripts/golden/make_olmo_fixtures.py", "prompt": PROMPT, "models": {}}
    for name, config, dtype, scale, shard in specs:
        folder = os.path.join(OUT, name)
        seed = 0
        while True:
            make_model(config, seed, scale).to(dtype).save_pretrained(folder, max_shard_size=shard or "1GB", safe_serialization=True)
            # Expected values come from the checkpoint as saved, read back in float32 (bf16 widens exactly).
            model = OlmoForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            generated, margin = greedy_with_margin(model, PROMPT, 32)
            if margin > MARGIN:
                break
            shutil.rmtree(folder)
            seed += 1
        with torch.no_grad():
            logits = model(torch.tensor([PROMPT])).logits[0]
            q = model.model.layers[0].self_attn.q_proj(model.model.layers[0].input_layernorm(model.model.embed_tokens(torch.tensor([PROMPT]))))
        clipped = float((q.abs() > config.clip_qkv).float().mean()) if config.clip_qkv else 0.0
        expected["models"][name] = {
            "logits": logits.reshape(-1).tolist(), "shape": list(logits.shape), "greedy": generated, "seed": seed,
            "fractionOfQueriesClipped": clipped, "minGreedyMargin": margin,
        }
        if name == "f32-untied-clip":
            native = os.path.join(OUT, "native-layout")
            os.makedirs(native)
            save_file(native_state_dict(model, config), os.path.join(native, "model.safetensors"), metadata={"format": "pt"})
            shutil.copy(os.path.join(folder, "config.json"), os.path.join(native, "config.json"))
            expected["models"]["native-layout"] = expected["models"][name]
    expected["processors"] = processor_cases()
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)
    for name in expected["models"]:
        print(name, "clipped fraction", expected["models"][name]["fractionOfQueriesClipped"], "margin", expected["models"][name]["minGreedyMargin"])


if __name__ == "__main__":
    main()
