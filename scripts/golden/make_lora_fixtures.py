#!/usr/bin/env python3
"""LoRA adapters in Hugging Face PEFT on a tiny OLMo: logits and ten training steps.

Writes test/fixtures/lora/ (version 1). The base model is test/fixtures/train/init (untied, f32, from
make_training_fixtures.py), trained on that fixture's data with its options (warmup, cosine, clipping,
label mask). Per case (targets q,v at r 4; all seven at r 2):
  CASE/adapter/            adapter_config.json + adapter_model.safetensors, as PeftModel.save_pretrained
                           writes them, with B drawn non-zero so the adapter changes the logits
  expected.json            per case: the logits of `logitIds` through the adapted model (eval mode),
                           and ten steps of torch.optim.AdamW on the adapters only (one group, weight
                           decay on every adapter), each step's loss and gradient norm before clipping,
                           and the final adapters.
Regenerate with:

    pip install torch transformers safetensors peft
    python3 scripts/golden/make_lora_fixtures.py

The other direction (PEFT loads what olmo-js wrote): save an adapter with saveLoraAdapter for the base
test/fixtures/train/init, write olmo-js's logits of `logitIds` as a JSON list of floats, then

    python3 scripts/golden/make_lora_fixtures.py --check ADAPTER_DIR LOGITS.json

prints the largest difference from PeftModel.from_pretrained's logits (f32: a few 1e-6).
"""
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import OlmoForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from make_training_fixtures import learning_rate  # noqa: E402  (OLMo's warmup + cosine, as the full-training fixtures use)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
OUT = os.path.join(ROOT, "lora")
BASE = os.path.join(ROOT, "train", "init")
CASES = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "all": dict(r=2, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
}


def run_case(name, lora_kwargs, train, logit_ids):
    torch.manual_seed(0)
    base = OlmoForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)
    config = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **lora_kwargs)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # PEFT starts B at zero; non-zero B makes the loaded adapter matter
    folder = os.path.join(OUT, name, "adapter")
    model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))  # a model-card template
    with open(os.path.join(folder, "adapter_config.json")) as f:
        saved = json.load(f)
    saved["base_model_name_or_path"] = "test/fixtures/train/init"  # not this machine's absolute path
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(saved, f, indent=2)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=logit_ids).logits

    o = train["options"]
    T, B = o["seqLen"], o["batchSize"]
    ids = torch.tensor(train["ids"])[: 6 * T].view(6, T)
    mask = torch.tensor(train["mask"], dtype=torch.float32)[: 6 * T].view(6, T)
    vocab = model.config.vocab_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weightDecay"])
    model.train()
    steps = []
    for step in range(1, o["steps"] + 1):
        lr = learning_rate(step, o)
        for group in opt.param_groups:
            group["lr"] = lr
        rows = [((step - 1) * B + b) % 6 for b in range(B)]
        batch, batch_mask = ids[rows], mask[rows]
        out = model(input_ids=batch[:, :-1]).logits
        nll = F.cross_entropy(out.reshape(-1, vocab), batch[:, 1:].reshape(-1), reduction="none")
        loss = (nll * batch_mask[:, 1:].reshape(-1)).sum() / (B * T)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, o["maxGradNorm"])
        opt.step()
        opt.zero_grad()
        steps.append({"loss": loss.item(), "gradNorm": norm.item(), "lr": lr})
    final = {n.replace(".default", ""): p.detach().reshape(-1).tolist() for n, p in model.named_parameters() if p.requires_grad}
    print(name, "losses", [round(s["loss"], 4) for s in steps], "clipped", sum(s["gradNorm"] > o["maxGradNorm"] for s in steps))
    return {"logits": logits.reshape(-1).tolist(), "steps": steps, "final": final}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    with open(os.path.join(ROOT, "train", "expected.json")) as f:
        train = json.load(f)
    logit_ids = torch.tensor([[5, 17, 42, 9, 33, 60, 2, 11]])
    cases = {name: run_case(name, kwargs, train, logit_ids) for name, kwargs in CASES.items()}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"version": 1, "generator": "scripts/golden/make_lora_fixtures.py", "base": "test/fixtures/train/init",
                   "logitIds": logit_ids.tolist(), "cases": cases}, f)


def check(adapter, logits_file):
    from peft import PeftModel
    base = OlmoForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    with open(os.path.join(OUT, "expected.json")) as f:
        ids = torch.tensor(json.load(f)["logitIds"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits.reshape(-1)
    with open(logits_file) as f:
        ours = torch.tensor(json.load(f))
    print("max |PEFT - olmo-js| logit difference:", (logits - ours).abs().max().item())


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    else:
        main()
