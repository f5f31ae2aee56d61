#!/usr/bin/env python3
"""LoRA adapters in Hugging Face PEFT on a tiny OLMo: logits and ten training steps.

Writes test/fixtures/lora/ (version 2). The base model is test/fixtures/train/init (untied, f32, from
make_training_fixtures.py), or for the "tied" case the same weights with the embedding tied to the
LM head (tied/base: lm_head dropped, as OLMo-1B has it), trained on that fixture's data with its
options (warmup, cosine, clipping, label mask). Per case (targets q,v at r 4; all seven at r 2;
tied: q, o and up at r 3):
  CASE/adapter/            adapter_config.json + adapter_model.safetensors, as PeftModel.save_pretrained
                           writes them, with B drawn non-zero so the adapter changes the logits
  expected.json            per case: the logits of `logitIds` through the adapted model (eval mode),
                           and ten steps of torch.optim.AdamW on the adapters only (one group, weight
                           decay on every adapter), each step's loss and gradient norm before clipping,
                           and the final adapters.
Regenerate with:

    pip install torch transformers safetensors peft
    python3 scripts/golden/make_lora_fixtures.py

The other direction, PEFT loading what olmo-js wrote: test/fixtures/lora/ours/adapter is a step folder's
adapter that `olmo train` wrote (10 LoRA steps from qv/adapter on the js backend; the command is in
test/lora-cli.test.ts, which also checks that olmo-js still writes those bytes). This script keeps
that folder, loads it with PeftModel.from_pretrained and records PEFT's logits of `logitIds` as
`ours.logits`. To check any other adapter of the base test/fixtures/train/init by hand: write
olmo-js's logits of `logitIds` as a JSON list of floats, then

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
TIED_BASE = os.path.join(OUT, "tied", "base")
CASES = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "all": dict(r=2, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "tied": dict(r=3, lora_alpha=6, target_modules=["q_proj", "o_proj", "up_proj"]),
}


def write_tied_base():
    """train/init with tie_word_embeddings: the embedding serves as the LM head too."""
    untied = OlmoForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)
    config = untied.config
    config.tie_word_embeddings = True
    tied = OlmoForCausalLM(config)
    state = {k: v for k, v in untied.state_dict().items() if k != "lm_head.weight"}
    tied.load_state_dict(state, strict=False)
    tied.tie_weights()
    tied.save_pretrained(TIED_BASE)


def run_case(name, lora_kwargs, train, logit_ids):
    torch.manual_seed(0)
    base = OlmoForCausalLM.from_pretrained(TIED_BASE if name == "tied" else BASE, torch_dtype=torch.float32)
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
    # Not this machine's absolute path.
    saved["base_model_name_or_path"] = "test/fixtures/lora/tied/base" if name == "tied" else "test/fixtures/train/init"
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


def peft_logits(adapter, ids):
    from peft import PeftModel
    base = OlmoForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.reshape(-1)


def main():
    ours = os.path.join(OUT, "ours", "adapter")  # written by olmo-js: kept
    for entry in os.listdir(OUT) if os.path.isdir(OUT) else []:
        if entry != "ours":
            path = os.path.join(OUT, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(OUT, exist_ok=True)
    write_tied_base()
    with open(os.path.join(ROOT, "train", "expected.json")) as f:
        train = json.load(f)
    logit_ids = torch.tensor([[5, 17, 42, 9, 33, 60, 2, 11]])
    cases = {name: run_case(name, kwargs, train, logit_ids) for name, kwargs in CASES.items()}
    fixture = {"version": 2, "generator": "scripts/golden/make_lora_fixtures.py", "base": "test/fixtures/train/init",
               "logitIds": logit_ids.tolist(), "cases": cases}
    if os.path.isdir(ours):
        fixture["ours"] = {"logits": peft_logits(ours, logit_ids).tolist()}
        print("ours: PEFT loaded olmo-js's adapter")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(fixture, f)


def check(adapter, logits_file):
    with open(os.path.join(OUT, "expected.json")) as f:
        ids = torch.tensor(json.load(f)["logitIds"])
    logits = peft_logits(adapter, ids)
    with open(logits_file) as f:
        ours = torch.tensor(json.load(f))
    print("max |PEFT - olmo-js| logit difference:", (logits - ours).abs().max().item())


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    else:
        main()
