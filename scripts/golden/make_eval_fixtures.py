#!/usr/bin/env python3
"""What OLMo's downstream evaluator and transformers compute on the eval fixtures.

Reads the hand-written rows in test/fixtures/eval/<task>.jsonl (each in its Hugging Face dataset's own
schema) and test/fixtures/eval/text.txt, runs the default model (models/olmo-tiny-shakespeare, its real
tokenizer) with transformers' OlmoForCausalLM, and writes test/fixtures/eval/expected.json (version 1):

  tasks.<name>.items[i].choices[c]: query / ctx_len / continuation / dc_query / dc_len token ids, and
      ll, ll_dc, chars, tokens
  tasks.<name>.metrics: acc, len_norm, pmi_dc from those scores
  perplexity[k]: seq_len, stride, masked, tokens, nll (summed), loss

The task rules are an independent Python transcription of allenai/OLMo olmo/eval/downstream.py (the
ICLMultiChoiceTaskDataset subclasses' doc_to_text / doc_to_continuations / doc_to_label /
doc_to_domain_conditional, prep_examples, and ICLMetric's acc / len_norm / pmi_dc), run with the
model's context length as model_ctx_len. Perplexity follows transformers' "Perplexity of fixed-length
models" guide: labels -100 before each window's new tokens, loss times the number of scored labels.
The weights are BF16 on disk; they run upcast to float32, as olmo-js computes with them.

Regenerate with:

    pip install torch transformers safetensors tokenizers
    python3 scripts/golden/make_eval_fixtures.py
"""
import json
import math
import os
import re

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import OlmoForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODEL = os.path.join(ROOT, "models", "olmo-tiny-shakespeare")
FIXTURES = os.path.join(ROOT, "test", "fixtures", "eval")
TASKS = ["arc_easy", "arc_challenge", "boolq", "copa", "hellaswag", "openbookqa", "piqa", "sciq", "winogrande", "mmlu", "truthful_qa"]
PRIMARY = {"arc_easy": "acc", "arc_challenge": "len_norm", "boolq": "acc", "copa": "acc", "hellaswag": "len_norm",
           "openbookqa": "len_norm", "piqa": "len_norm", "sciq": "acc", "winogrande": "acc", "mmlu": "len_norm",
           "truthful_qa": "acc"}


# ---- downstream.py's prompt rules, per task: (contexts, continuations, domain conditionals, label) ----

def hellaswag_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def doc_to_item(task, doc):
    if task in ("arc_easy", "arc_challenge"):
        key = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}.get(doc["answerKey"], doc["answerKey"])
        conts = [" " + c for c in doc["choices"]["text"]]
        ctx = "Question: " + doc["question"] + "\nAnswer:"
        return [ctx] * len(conts), conts, ["Answer:"] * len(conts), ["A", "B", "C", "D", "E"].index(key)
    if task == "boolq":
        ctx = doc["passage"] + "\nQuestion: " + doc["question"] + "?\nAnswer:"
        return [ctx] * 2, [" yes", " no"], ["Answer:"] * 2, 0 if doc["answer"] else 1
    if task == "copa":
        connector = "because" if doc["question"] == "cause" else "therefore"
        ctx = doc["premise"].strip()[:-1] + " " + connector
        conts = [" " + c[0].lower() + c[1:] for c in (doc["choice1"], doc["choice2"])]
        return [ctx] * 2, conts, [connector] * 2, doc["label"]
    if task == "hellaswag":
        ctx = hellaswag_preprocess(doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize())
        dc = hellaswag_preprocess(doc["ctx_b"].capitalize())
        if len(dc) == 0:
            dc = hellaswag_preprocess(doc["ctx_a"]).split(" ")[-1]
        conts = [" " + hellaswag_preprocess(e) for e in doc["endings"]]
        return [ctx] * len(conts), conts, [dc] * len(conts), int(doc["label"])
    if task == "openbookqa":
        conts = [" " + c for c in doc["choices"]["text"]]
        dc = doc["question_stem"].strip().split(" ")[-1]
        return [doc["question_stem"]] * len(conts), conts, [dc] * len(conts), ["A", "B", "C", "D"].index(doc["answerKey"].strip())
    if task == "piqa":
        ctx = "Question: " + doc["goal"] + "\nAnswer:"
        return [ctx] * 2, [" " + doc["sol1"], " " + doc["sol2"]], ["Answer:"] * 2, doc["label"]
    if task == "sciq":
        ctx = doc["support"].strip() + "\nQuestion: " + doc["question"] + "\nAnswer:"
        conts = [" " + doc[k] for k in ("distractor1", "distractor2", "distractor3", "correct_answer")]
        return [ctx] * 4, conts, ["Answer:"] * 4, 3
    if task == "winogrande":
        i = doc["sentence"].index("_")
        ctxs = [doc["sentence"][:i] + o for o in (doc["option1"], doc["option2"])]
        cont = " " + doc["sentence"][i + 1:].strip()
        return ctxs, [cont, cont], [doc["option1"], doc["option2"]], int(doc["answer"]) - 1
    if task == "mmlu":
        ctx = "Question: " + doc["question"].strip() + "\nAnswer:"
        conts = [" " + c for c in doc["choices"]]
        return [ctx] * len(conts), conts, ["Answer:"] * len(conts), doc["answer"]
    if task == "truthful_qa":
        # Not in downstream.py: MC1 (the single true answer of mc1_targets) in mmlu's zero-shot form.
        targets = doc["mc1_targets"]
        ctx = "Question: " + doc["question"].strip() + "\nAnswer:"
        conts = [" " + c for c in targets["choices"]]
        return [ctx] * len(conts), conts, ["Answer:"] * len(conts), targets["labels"].index(1)
    raise ValueError(task)


def loglikelihood(model, query, ctx_len, cont):
    """ICLMetric.update's "acc" log-likelihood of one sample."""
    with torch.no_grad():
        logits = F.log_softmax(model(torch.tensor([query])).logits[0], dim=-1)
    cont_logits = logits[ctx_len - 1: ctx_len + len(cont) - 1]
    return torch.gather(cont_logits, 1, torch.tensor(cont).unsqueeze(-1)).sum().item()


def metrics(items):
    """ICLMetric.compute for acc, len_norm and pmi_dc."""
    out = {}
    for metric in ("acc", "len_norm", "pmi_dc"):
        correct = []
        for item in items:
            cs = item["choices"]
            if metric == "acc":
                scores = [c["ll"] for c in cs]
            elif metric == "len_norm":
                scores = [c["ll"] / c["chars"] for c in cs]
            else:
                scores = [c["ll"] / c["ll_dc"] for c in cs]
            ranked = sorted(scores, reverse=True)
            if len(ranked) > 1 and ranked[0] - ranked[1] < 1e-4 * abs(ranked[0]):
                print(f"  warning: {metric} of an item has a near tie ({ranked[0]} vs {ranked[1]}): float rounding could flip it")
            correct.append(1.0 if torch.argmax(torch.tensor(scores)).item() == item["label"] else 0.0)
        out[metric] = sum(correct) / len(correct)
    return out


def task_fixture(model, tokenizer, task, ctx_len_max):
    encode = lambda s: tokenizer.encode(s, add_special_tokens=False).ids
    rows = [json.loads(l) for l in open(os.path.join(FIXTURES, f"{task}.jsonl"), encoding="utf-8") if l.strip()]
    items = []
    for doc in rows:
        contexts, conts, dcs, label = doc_to_item(task, doc)
        choices = []
        for ctx_str, cont_str, dc_str in zip(contexts, conts, dcs):
            ctx, cont, dc = encode(ctx_str), encode(cont_str), encode(dc_str)
            query = (ctx + cont[:-1])[-ctx_len_max:]
            ctx_len = len(query) - len(cont) + 1
            dc_query = dc + cont[:-1]
            choices.append({
                "query": query, "ctx_len": ctx_len, "continuation": cont, "dc_query": dc_query, "dc_len": len(dc),
                "truncated": len(ctx) + len(cont) - 1 > ctx_len_max,
                "ll": loglikelihood(model, query, ctx_len, cont),
                "ll_dc": loglikelihood(model, dc_query, len(dc), cont),
                "chars": len(cont_str) - 1, "tokens": len(cont),
            })
        items.append({"label": label, "choices": choices})
    m = metrics(items)
    print(f"{task}: {len(items)} items, {m}")
    return {"file": f"test/fixtures/eval/{task}.jsonl", "primary_metric": PRIMARY[task], "items": items, "metrics": m}


def perplexity_case(model, ids, seq_len, stride, mask):
    """transformers' sliding-window recipe; the summed nll over the scored labels."""
    n = len(ids)
    nll, tokens, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + seq_len, n)
        trg_len = end - prev_end
        input_ids = torch.tensor([ids[begin:end]])
        labels = input_ids.clone()
        labels[:, :-trg_len] = -100
        if mask is not None:
            for t in range(begin, end):
                if mask[t] == 0:
                    labels[0, t - begin] = -100
        scored = (labels[:, 1:] != -100).sum().item()
        if scored > 0:
            with torch.no_grad():
                loss = model(input_ids, labels=labels).loss.item()
            nll += loss * scored
            tokens += scored
        prev_end = end
        if end == n:
            break
    return {"seq_len": seq_len, "stride": stride, "masked": mask is not None, "tokens": tokens, "nll": nll, "loss": nll / tokens}


def main():
    torch.manual_seed(0)
    model = OlmoForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
    tokenizer = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    context = model.config.max_position_embeddings
    out = {"version": 1, "model": "models/olmo-tiny-shakespeare", "context_length": context, "tasks": {}, "perplexity": []}
    for task in TASKS:
        out["tasks"][task] = task_fixture(model, tokenizer, task, context)
    text = open(os.path.join(FIXTURES, "text.txt"), encoding="utf-8").read()
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    out["text_tokens"] = len(ids)
    every_fifth_masked = [0 if t % 5 == 0 else 1 for t in range(len(ids))]
    for seq_len, stride, mask in [(64, 64, None), (64, 24, None), (256, 100, None), (48, 48, every_fifth_masked)]:
        case = perplexity_case(model, ids, seq_len, stride, mask)
        print(f"perplexity seq_len {seq_len} stride {stride}{' masked' if mask else ''}: {case['tokens']} tokens, loss {case['loss']:.6f}")
        out["perplexity"].append(case)
    text = json.dumps(out, indent=1, ensure_ascii=False)
    # Lists of numbers (token ids) on one line each, so the file reads item by item.
    text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    with open(os.path.join(FIXTURES, "expected.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
