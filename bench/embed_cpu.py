#!/usr/bin/env python3
"""CPU embedding throughput: retrieval/'s encoder against sentence-transformers
on PyTorch CPU, same texts, same thread count, one run.

usage: bench/embed_cpu.py [--build build] [--model DIR] [--data ../shared/data]
                          [--threads 2] [--texts 64] [--repeat 3]

Texts are passages from chroma-chunking-eval cut to exactly 254 word pieces
(256 model tokens with [CLS] and [SEP]), the chunk size the chunkers produce.
torch and sentence-transformers are installed for the benchmark only.
Prints both throughputs and the ratio (ours / sentence-transformers).
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
from sentence_transformers import SentenceTransformer


def make_texts(tok, data, n, pieces=254):
    out = []
    for line in open(f"{data}/chroma-chunking-eval/docs.jsonl"):
        text = json.loads(line)["text"]
        pos = 0
        while len(out) < n and pos + 8000 < len(text):
            window = " ".join(text[pos:pos + 8000].split())
            enc = tok(window, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) > pieces:
                cut = window[:enc["offset_mapping"][pieces - 1][1]]
                if len(tok(cut, add_special_tokens=False)["input_ids"]) == pieces:
                    out.append(cut)
            pos += 8000
    return out


def main():
    ap = argparse.ArgumentParser()
    home = os.environ.get("RAG_MODELS") or os.path.expanduser("~/.cache/rag/models")
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", default=f"{home}/all-minilm-l6-v2")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    model = SentenceTransformer(a.model, device="cpu")
    texts = make_texts(model.tokenizer, a.data, a.texts)
    n_tok = sum(len(model.tokenizer(t)["input_ids"]) for t in texts)
    model.encode(texts[:8], batch_size=32)
    best = 1e30
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.encode(texts, batch_size=32, normalize_embeddings=True)
        best = min(best, time.perf_counter() - t0)
    st_cps = len(texts) / best
    print(f"sentence-transformers (torch {torch.__version__}, {a.threads} threads): "
          f"{st_cps:.2f} chunks/s, {n_tok / best:.1f} tokens/s")

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts))
        path = f.name
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run([f"{a.build}/bench/embed_cpu", a.model, path, str(a.threads),
                          str(a.repeat)], check=True, capture_output=True, text=True, env=env)
    os.unlink(path)
    fields = dict(kv.split("=") for kv in out.stdout.split())
    ours = float(fields["chunks_per_s"])
    print(f"rag retrieval/ encoder ({a.threads} threads): {ours:.2f} chunks/s, "
          f"{float(fields['tokens_per_s']):.1f} tokens/s")
    print(f"ratio: {ours / st_cps:.2f}x ({len(texts)} texts of {n_tok // len(texts)} tokens)")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/embed_cpu.json", "w") as f:
        json.dump({"benchmark": "embed_cpu", "date": time.strftime("%Y-%m-%d"),
                   "threads": a.threads, "texts": len(texts),
                   "tokens_per_text": n_tok // len(texts), "statistic": f"best of {a.repeat}",
                   "rag_chunks_per_s": round(ours, 2),
                   "rag_tokens_per_s": round(float(fields["tokens_per_s"]), 1),
                   "sentence_transformers_chunks_per_s": round(st_cps, 2),
                   "sentence_transformers_tokens_per_s": round(n_tok / best, 1),
                   "peer": f"sentence-transformers on torch {torch.__version__} CPU",
                   "ratio": round(ours / st_cps, 2)}, f, indent=1)


if __name__ == "__main__":
    main()
