#!/usr/bin/env python3
"""Ten training steps of a tiny random OLMo in PyTorch + transformers, with OLMo's trainer semantics.

Writes test/fixtures/train/ (version 1): init/ (the starting checkpoint, config.json + model.safetensors
in float32) and expected.json (the data, the options, and per step the loss, the gradient norm before
clipping and the learning rate, plus the final weights). Regenerate with:

    pip install torch transformers safetensors
    python3 scripts/golden/make_training_fixtures.py

Semantics (olmo/train.py, olmo/optim.py): loss = sum of masked next-token cross-entropies / (B * T);
AdamW (torch.optim.AdamW) with the embedding in a group without weight decay; warmup from 0.1 lr to lr
over W steps, then cosine down to alpha_f lr at t_max; clip_grad_norm_ to max_norm before the update;
no shuffling: step k uses instances (k-1)B .. kB-1 modulo the instance count. Token id 1 (pad) never
occurs: transformers' embedding freezes that row and OLMo's does not.
"""
import json
import math
import os
import shutil

import torch
import torch.nn.functional as F
from transformers import OlmoConfig, OlmoForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "train")
OPTIONS = dict(steps=10, batchSize=2, seqLen=8, lr=1e-2, warmup=3, schedule="cosine", tMax=10, alphaF=0.1, weightDecay=0.1,
               betas=[0.9, 0.95], eps=1e-5, maxGradNorm=0.5)


def learning_rate(step, o):
    lr, w = o["lr"], o["warmup"]
    if step <= w:
        return 0.1 * lr + 0.9 * lr * min(step, w) / w
    min_lr = o["alphaF"] * lr
    if step >= o["tMax"]:
        return min_lr
    progress = (step - w) / (o["tMax"] - w)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    config = OlmoConfig(vocab_size=64, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
                        num_key_value_heads=3, max_position_embeddings=32, tie_word_embeddings=False, pad_token_id=1,
                        eos_token_id=63, bos_token_id=None, clip_qkv=None)
    torch.manual_seed(0)
    model = OlmoForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.3 if "embed" not in name else 1.0)
    model.save_pretrained(os.path.join(OUT, "init"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    n_tokens = 6 * OPTIONS["seqLen"] + 3  # 6 instances and a remainder that must be dropped
    ids = torch.randint(2, config.vocab_size, (n_tokens,), generator=g)  # no pad id (1)
    mask = (torch.rand(n_tokens, generator=g) < 0.7).to(torch.uint8)
    T, B, o = OPTIONS["seqLen"], OPTIONS["batchSize"], OPTIONS
    instances = ids[: 6 * T].view(6, T)
    masks = mask[: 6 * T].view(6, T)

    embed = [p for n, p in model.named_parameters() if "embed_tokens" in n]
    rest = [p for n, p in model.named_parameters() if "embed_tokens" not in n]
    opt = torch.optim.AdamW([{"params": rest, "weight_decay": o["weightDecay"]}, {"params": embed, "weight_decay": 0.0}],
                            lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"])
    steps = []
    for step in range(1, o["steps"] + 1):
        lr = learning_rate(step, o)
        for group in opt.param_groups:
            group["lr"] = lr
        rows = [((step - 1) * B + b) % 6 for b in range(B)]
        batch, batch_mask = instances[rows], masks[rows]
        logits = model(input_ids=batch[:, :-1]).logits
        nll = F.cross_entropy(logits.reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1), reduction="none")
        loss = (nll * batch_mask[:, 1:].reshape(-1)).sum() / (B * T)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), o["maxGradNorm"])
        opt.step()
        opt.zero_grad()
        steps.append({"loss": loss.item(), "gradNorm": norm.item(), "lr": lr})
    clipped = sum(s["gradNorm"] > o["maxGradNorm"] for s in steps)
    assert clipped >= 3, "clipping should be active in several steps"
    final = {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters()}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"version": 1, "generator": "scripts/golden/make_training_fixtures.py", "options": OPTIONS,
                   "ids": ids.tolist(), "mask": mask.tolist(), "steps": steps, "final": final}, f)
    print("losses", [round(s["loss"], 4) for s in steps], "clipped steps", clipped)


if __name__ == "__main__":
    main()
