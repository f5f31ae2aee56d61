#!/usr/bin/env python3
"""PyTorch + PEFT's side of `npm run bench`'s LoRA comparison (bench/lora.ts): the same OLMo config,
LoRA r 8 / alpha 16 on all seven linear layers of each block, one sequence of SEQ_LEN tokens per step,
AdamW on the adapters, on CPU with a fixed number of threads. The base is random (speed does not depend
on the values) in DTYPE (float32 or bfloat16). Prints one JSON line: {"tokens_per_s": ..., "peak_rss_bytes": ...}.

usage: python3 scripts/bench/torch_lora.py CONFIG_JSON SEQ_LEN STEPS THREADS DTYPE [checkpoint]
  checkpoint: recompute each block in the backward pass (transformers' gradient checkpointing)
"""
import json
import os
import resource
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import OlmoConfig, OlmoForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from timing import steps_per_second  # noqa: E402

config_path, seq_len, steps, threads, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
checkpoint = len(sys.argv) > 6 and sys.argv[6] == "checkpoint"
torch.set_num_threads(threads)
cfg = json.load(open(config_path))
config = OlmoConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "torch_dtype", "dtype")})
torch.set_default_dtype(getattr(torch, dtype))
base = OlmoForCausalLM(config)
torch.set_default_dtype(torch.float32)
if checkpoint:
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=targets, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)
ids = torch.randint(2, cfg["vocab_size"], (1, seq_len))
model.train()


def step():
    logits = model(input_ids=ids[:, :-1]).logits.float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), ids[:, 1:].reshape(-1), reduction="sum") / ids.numel()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()


print(json.dumps({
    "tokens_per_s": seq_len * steps_per_second(step, steps), "threads": threads, "dtype": dtype, "checkpoint": checkpoint,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "torch": torch.__version__,
}))
