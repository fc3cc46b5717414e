#!/usr/bin/env python3
"""Reference logits and greedy continuations of the default model from HF transformers,
which reads the same GGUF file (gguf_file=...) and dequantizes it to fp32, so the
reference computes with the same weights in fp32 (PyTorch CPU).

Writes tests/golden/generation/hf_logits.txt, for 20 prompts:
    prompt <k> <n> <id> ... (token ids from transformers' tokenizer of the GGUF)
    top <id>:<logit> ... (the 10 largest next-token logits, best first)
    sample <idx>:<logit> ... (logits at idx = 0, 193, 386, ...)
and tests/golden/generation/hf_greedy.txt, for 4 prompts:
    prompt <k> <n> <id> ...
    greedy <64 ids> (greedy continuation, model.generate(do_sample=False))

Usage: python3 scripts/golden/make_generation_golden.py MODEL.gguf OUTDIR
(requires: pip install torch transformers accelerate gguf numpy; only to produce golden files).
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Hello, we can use",
    "Once upon a time, in a small village,",
    "def fibonacci(n):\n    ",
    "1, 2, 3, 4, 5,",
    "The quick brown fox jumps over the",
    "Water boils at a temperature of",
    "Q: What is the largest planet in the solar system?\nA:",
    "In machine learning, a transformer is",
    "Translate to French: Good morning ->",
    "The theory of relativity was developed by",
    "SELECT name FROM users WHERE",
    "List three colors: red,",
    "Café déjà vu. Ünïcödé text with emoji 🙂 and",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nName a fruit that is yellow.<|im_end|>\n<|im_start|>assistant\n",
    "   indented    text\twith\ttabs\n\n\nand newlines",
    "The year 2024 was",
    "Photosynthesis converts sunlight into",
    "A",
]
GREEDY = [0, 2, 14, 15]


def main():
    path, out_dir = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    with torch.no_grad(), open(f"{out_dir}/hf_logits.txt", "w") as out:
        out.write("# made by scripts/golden/make_generation_golden.py (HF transformers, fp32)\n")
        for k, t in enumerate(ids):
            logits = model(torch.tensor([t])).logits[0, -1].double()
            top = torch.topk(logits, 10)
            out.write(f"prompt {k} {len(t)} " + " ".join(map(str, t)) + "\n")
            out.write("top " + " ".join(f"{int(i)}:{float(v):.6f}"
                                        for v, i in zip(top.values, top.indices)) + "\n")
            out.write("sample " + " ".join(f"{i}:{float(logits[i]):.6f}"
                                           for i in range(0, logits.numel(), 193)) + "\n")
    with torch.no_grad(), open(f"{out_dir}/hf_greedy.txt", "w") as out:
        out.write("# made by scripts/golden/make_generation_golden.py (HF transformers, fp32)\n")
        for k in GREEDY:
            t = ids[k]
            gen = model.generate(torch.tensor([t]), attention_mask=torch.ones(1, len(t),
                                 dtype=torch.long), max_new_tokens=64, min_new_tokens=64,
                                 do_sample=False)
            cont = gen[0, len(t):].tolist()
            assert len(cont) == 64
            out.write(f"prompt {k} {len(t)} " + " ".join(map(str, t)) + "\n")
            out.write("greedy " + " ".join(map(str, cont)) + "\n")


if __name__ == "__main__":
    main()
