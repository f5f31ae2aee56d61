#!/usr/bin/env python3
"""PyTorch's side of `npm run bench`'s training comparison: the same OLMo config and batch shape,
AdamW steps on CPU with a fixed number of threads. Prints one JSON line: {"tokens_per_s": ...}.

usage: python3 scripts/bench/torch_train.py CONFIG_JSON BATCH SEQ_LEN STEPS THREADS
"""
import json
import os
import sys

import torch
from transformers import OlmoConfig, OlmoForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from timing import steps_per_second  # noqa: E402

config_path, batch, seq_len, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
torch.set_num_threads(threads)
cfg = json.load(open(config_path))
model = OlmoForCausalLM(OlmoConfig(**{k: v for k, v in cfg.items() if k != "model_type"}))
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)
ids = torch.randint(2, cfg["vocab_size"], (batch, seq_len))


def step():
    logits = model(input_ids=ids[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), ids[:, 1:].reshape(-1), reduction="sum") / ids.numel()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


print(json.dumps({"tokens_per_s": batch * seq_len * steps_per_second(step, steps), "threads": threads, "torch": torch.__version__}))
