#!/usr/bin/env python3
"""CPU generation throughput: generation/'s engine (bench/gen_cpu.c) against HF
transformers on PyTorch CPU reading the same GGUF (dequantized to fp32), same
thread count, same token counts, one run.

usage: bench/gen_cpu.py [--build build] [--model PATH] [--threads 2] [--repeat 3]
                        [--json bench/results/gen_cpu.json]

Figures: prefill tokens/s for 512 and 2,048 tokens from an empty cache, decode
tokens/s over 128 single-token steps after a 16-token prompt (KV cache on both
sides), each the median of --repeat runs after a warm-up, and peak RSS of each
process (each side runs in its own process). torch, transformers, gguf and
accelerate are installed for the benchmark only (run this script with the Python
that has them). Prints both lines and the ratios (ours / transformers); --json
also writes them to a file.
"""
import argparse
import datetime
import json
import os
import statistics
import resource
import subprocess
import sys
import time


def hf_child(model, threads, repeat):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    d, f = os.path.dirname(os.path.abspath(model)), os.path.basename(model)
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    m.eval()
    vocab = m.config.vocab_size
    tok = torch.tensor([[(i * 7919 + 13) % (vocab - 100) + 100 for i in range(2048 + 128)]])

    def prefill(n):
        t = time.perf_counter()
        m(tok[:, :n], use_cache=True)
        return n / (time.perf_counter() - t)

    def decode():
        out = m(tok[:, :16], use_cache=True)
        past = out.past_key_values
        t = time.perf_counter()
        for i in range(128):
            out = m(tok[:, 16 + i:17 + i], past_key_values=past, use_cache=True)
            past = out.past_key_values
        return 128 / (time.perf_counter() - t)

    with torch.inference_mode():
        prefill(512)  # warm-up
        p512 = statistics.median(prefill(512) for _ in range(repeat))
        p2048 = statistics.median(prefill(2048) for _ in range(repeat))
        dec = statistics.median(decode() for _ in range(repeat))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"prefill512_tok_s={p512:.1f} prefill2048_tok_s={p2048:.1f} decode_tok_s={dec:.1f} "
          f"peak_rss_mb={rss:.1f} threads={threads}")


def parse(line):
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def main():
    ap = argparse.ArgumentParser()
    home = os.environ.get("RAG_MODELS") or os.path.expanduser("~/.cache/rag/models")
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", default=f"{home}/smollm2-135m-instruct-q4_1.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--hf-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.hf_child:
        hf_child(a.model, a.threads, a.repeat)
        return
    ours = subprocess.run([f"{a.build}/bench/gen_cpu", a.model, str(a.threads), str(a.repeat)],
                          check=True, capture_output=True, text=True).stdout.strip()
    hf = subprocess.run([sys.executable, __file__, "--hf-child", "--model", a.model,
                         "--threads", str(a.threads), "--repeat", str(a.repeat)],
                        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"rag:          {ours}")
    print(f"transformers: {hf}")
    o, h = parse(ours), parse(hf)
    keys = ("prefill512_tok_s", "prefill2048_tok_s", "decode_tok_s", "peak_rss_mb")
    print("ratio (rag / transformers): " + " ".join(f"{k}={o[k] / h[k]:.2f}" for k in keys))
    if a.json:
        write_json(a, o, h)


def write_json(a, o, h):
    import torch
    import transformers

    names = {"prefill512_tok_s": "prefill_512_tok_per_s", "prefill2048_tok_s":
             "prefill_2048_tok_per_s", "decode_tok_s": "decode_tok_per_s",
             "peak_rss_mb": "peak_rss_mb"}
    out = {"benchmark": "gen_cpu", "date": datetime.date.today().isoformat(),
           "model": os.path.basename(a.model), "threads": a.threads,
           "statistic": f"median of {a.repeat} after a warm-up",
           "peer": f"HF transformers {transformers.__version__} on torch {torch.__version__} "
                   "CPU (fp32)"}
    for k, name in names.items():
        out[name] = round(o[k], 1)
        out["hf_" + name] = round(h[k], 1)
    for k, name in names.items():
        out["ratio_" + name.replace("_tok_per_s", "").replace("_mb", "")] = round(o[k] / h[k], 2)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
