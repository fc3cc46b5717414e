#!/usr/bin/env python3
"""Table and gpu.json of bench/gpu/run.sh.

usage: bench/gpu/report.py RESULTS.jsonl BENCH_GPU.txt OUT.json

RESULTS.jsonl holds the JSON lines of mkmodel, gen_gpu, embed_gpu and
peers.py, each with a "tag" added by run.sh (which program, which model);
BENCH_GPU.txt is the output of `bench_gpu --floor` (may be empty). Writes
OUT.json (flat, every key with its unit) and prints the table last:
metric | rag | peer | ratio | target | met?, where ratio is the speed-up
over the peer (> 1: rag is faster; for times, peer time / rag time).
The embedding target is checked against the stronger of the two peer
figures, the model forward alone on pre-tokenized batches (ours includes
tokenizing). The 8B roofline uses the highest copy bandwidth measured
(bench_gpu's cudaMemcpyAsync and copy kernel, torch's copy_). Our device
memory is everything the model holds, the KV caches of all sequences at
full capacity included; the peer's is torch's peak allocation.
Standard library only.
"""
import json
import re
import sys
import time

SMALL = [("135m_q4_1", "135M Q4_1"), ("135m_bf16", "135M bf16")]
ALL = SMALL + [("8b_bf16", "8B bf16")]


def load(path):
    by_tag, errors = {}, []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("bench") == "error":
            errors.append(rec)
        by_tag.setdefault(rec.get("tag", "?"), []).append(rec)
    return by_tag, errors


def first(recs, bench, **match):
    for r in recs or []:
        if r.get("bench") == bench and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def floor_numbers(path):
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    m = re.search(r"cudaMemcpyAsync [\d.]+ ms, (\d+) GB/s; copy kernel .*? ([\d.]+) ms, (\d+) GB/s",
                  text)
    if m:
        out["copy_memcpy_gb_per_s"] = float(m.group(1))
        out["copy_kernel_gb_per_s"] = float(m.group(3))
    m = re.search(r"empty kernel: eager ([\d.]+) us/launch, graph of \d+ ([\d.]+) us/kernel", text)
    if m:
        out["launch_eager_us"] = float(m.group(1))
        out["launch_graph_us"] = float(m.group(2))
    m = re.search(r"^device +(.*)$", text, re.M)
    if m:
        out["device"] = m.group(1).strip()
    return out


def ours(res, tags):
    """Keys of our generator, the embedder and the model files."""
    for suf, _ in ALL:
        g = first(tags.get("rag_gen_" + suf), "gen_gpu")
        if g:
            res[f"prefill_{g['prefill_tokens']}_ms_{suf}"] = g["prefill_ms"]
            res[f"prefill_{g['prefill_tokens']}_tok_per_s_{suf}"] = g["prefill_tok_per_s"]
            res[f"decode_b1_tok_per_s_{suf}"] = g["decode_b1_tok_per_s"]
            res[f"decode_b1_logits_tok_per_s_{suf}"] = g["decode_b1_logits_tok_per_s"]
            res[f"decode_b{g['decode_seqs']}_tok_per_s_{suf}"] = g["decode_batch_tok_per_s"]
            res[f"device_mib_{suf}"] = round(g["device_bytes"] / 2**20, 1)
            res[f"kernels_per_step_b1_{suf}"] = g["kernels_per_step_b1"]
            res[f"kernels_per_step_b{g['decode_seqs']}_{suf}"] = g["kernels_per_step_batch"]
            res[f"open_s_{suf}"] = g["open_s"]
            res[f"on_gpu_{suf}"] = g["on_gpu"]
        mk = first(tags.get("mk_" + suf), "mkmodel")
        if mk:
            res[f"file_bytes_{suf}"] = mk["bytes"]
            res[f"decode_weight_bytes_{suf}"] = mk["decode_weight_bytes"]
            res[f"mkmodel_s_{suf}"] = mk["seconds"]
    for r in tags.get("rag_embed", []):
        if isinstance(r.get("chunks_per_s"), (int, float)):
            res["embed_chunks_per_s"] = r["chunks_per_s"]
            if isinstance(r.get("device_bytes"), (int, float)):
                res["embed_device_mib"] = round(r["device_bytes"] / 2**20, 1)


def peers(res, tags):
    for suf in ("135m", "8b"):
        recs = tags.get("peer_gen_" + suf)
        p = first(recs, "peer_prefill")
        if p:
            res[f"peer_prefill_{p['tokens']}_ms_{suf}"] = p["ms"]
            res[f"peer_prefill_{p['tokens']}_tok_per_s_{suf}"] = p["tok_per_s"]
        for r in recs or []:
            if r.get("bench") == "peer_decode":
                res[f"peer_decode_b{r['batch']}_tok_per_s_{suf}"] = r["tok_per_s"]
            elif r.get("bench") == "peer_memory":
                res[f"peer_max_allocated_mib_{suf}"] = round(r["max_allocated_bytes"] / 2**20, 1)
            elif r.get("bench") == "peer_kernels":
                res[f"peer_kernels_per_step_b1_{suf}"] = r["kernels_per_step_b1"]
            elif r.get("bench") == "peer_model":
                res["peer_versions"] = f"torch {r['torch']}, transformers {r['transformers']}"
    e = first(tags.get("peer_embed"), "peer_embed")
    if e:
        res["peer_embed_chunks_per_s"] = e["chunks_per_s"]
        res["peer_embed_forward_chunks_per_s"] = e["forward_chunks_per_s"]
        res["peer_embed_versions"] = f"sentence-transformers {e['sentence_transformers']}"
    c = first(tags.get("peer_copy"), "peer_copy")
    if c:
        res["peer_copy_gb_per_s"] = c["gb_per_s"]


def roofline(res):
    """Copy bandwidth: the best of bench_gpu's two copies and torch's (the highest, so the
    roofline percentage is not flattered by a slow copy)."""
    found = [(res.get(k), k) for k in ("copy_memcpy_gb_per_s", "copy_kernel_gb_per_s",
                                       "peer_copy_gb_per_s") if res.get(k)]
    if not found:
        return
    bw, src = max(found)
    res["copy_gb_per_s"] = bw
    res["copy_source"] = src
    tok = res.get("decode_b1_tok_per_s_8b_bf16")
    nbytes = res.get("decode_weight_bytes_8b_bf16")
    if tok and nbytes:
        res["roofline_tok_per_s_8b_bf16"] = round(bw * 1e9 / nbytes, 1)
        res["roofline_pct_decode_b1_8b_bf16"] = round(100.0 * tok * nbytes / (bw * 1e9), 1)


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v < 100:
        return f"{v:,.2f}{unit}"
    return f"{v:,.0f}{unit}"


def row(rows, metric, rag, peer=None, speedup=None, target="", met=None, no_peer=False):
    """speedup None: rag / peer when both are known; False: no ratio for this row."""
    if speedup is None and rag and peer:
        speedup = rag / peer
    ratio = "" if speedup is False else "n/a" if speedup is None else f"{speedup:.2f}x"
    rows.append((metric, fmt(rag), "" if no_peer else fmt(peer), ratio,
                 target, "" if met is None else ("yes" if met else "NO")))


def at_least(v, t):
    return None if v is None else v >= t


def table(res, seqs, n_pre):
    r, g = [], res.get
    for suf, name in ALL:
        p = "8b" if suf.startswith("8b") else "135m"
        v = g(f"decode_b1_tok_per_s_{suf}")
        t = None if p == "8b" else 2000
        row(r, f"decode batch 1, {name} (tok/s)", v, g(f"peer_decode_b1_tok_per_s_{p}"),
            target=">= 85 % roofline" if t is None else f">= {t:,}",
            met=None if t is None else at_least(v, t))
    pct = g("roofline_pct_decode_b1_8b_bf16")
    row(r, "decode batch 1, 8B bf16 (% of copy roofline)", pct, speedup=False, target=">= 85 %",
        met=at_least(pct, 85), no_peer=True)
    for suf, name in ALL:
        p, t = ("8b", 4500) if suf.startswith("8b") else ("135m", 10000)
        v = g(f"decode_b{seqs}_tok_per_s_{suf}")
        row(r, f"decode {seqs} sequences, {name} (tok/s)", v,
            g(f"peer_decode_b{seqs}_tok_per_s_{p}"), target=f">= {t:,}", met=at_least(v, t))
    for suf, name in SMALL:
        v = g(f"prefill_{n_pre}_tok_per_s_{suf}")
        row(r, f"prefill {n_pre} tokens, {name} (tok/s)", v,
            g(f"peer_prefill_{n_pre}_tok_per_s_135m"), target=">= 70,000",
            met=at_least(v, 70000))
    v, pv = g(f"prefill_{n_pre}_ms_8b_bf16"), g(f"peer_prefill_{n_pre}_ms_8b")
    row(r, f"prefill {n_pre} tokens, 8B bf16 (ms)", v, pv, speedup=pv / v if v and pv else None,
        target="<= 121 ms", met=None if v is None else v <= 121)
    v, pf, pe = g("embed_chunks_per_s"), g("peer_embed_forward_chunks_per_s"), \
        g("peer_embed_chunks_per_s")
    row(r, "embedding, bge-small shape, 256 tok, batch 128 (chunks/s)", v, pf,
        target=">= 2x peer", met=None if v is None or pf is None else v >= 2 * pf)
    row(r, "  same, peer through ST encode() with its tokenizer", v, pe, target="report")
    for suf, name in ALL:
        p = "8b" if suf.startswith("8b") else "135m"
        row(r, f"device memory, {name} (MiB)", g(f"device_mib_{suf}"),
            g(f"peer_max_allocated_mib_{p}"), speedup=False, target="report")
        row(r, f"kernels per decode step, batch 1, {name}", g(f"kernels_per_step_b1_{suf}"),
            g(f"peer_kernels_per_step_b1_{p}"), speedup=False, target="report")
        row(r, f"decode batch 1 with logits to host, {name} (tok/s)",
            g(f"decode_b1_logits_tok_per_s_{suf}"), speedup=False, target="report", no_peer=True)
    row(r, "launch floor, empty kernel eager (us)", g("launch_eager_us"), speedup=False,
        target="report", no_peer=True)
    row(r, "launch floor, empty kernel in a graph (us)", g("launch_graph_us"), speedup=False,
        target="report", no_peer=True)
    row(r, "HBM copy bandwidth, read + write (GB/s)",
        max(g("copy_memcpy_gb_per_s") or 0, g("copy_kernel_gb_per_s") or 0) or None,
        g("peer_copy_gb_per_s"), speedup=False, target="report")
    return r


def print_table(rows):
    head = ("metric", "rag", "peer", "ratio", "target", "met?")
    w = [max(len(x[i]) for x in rows + [head]) for i in range(6)]
    line = lambda x: " | ".join(x[i].ljust(w[i]) if i == 0 else x[i].rjust(w[i])
                                for i in range(6))
    print(line(head))
    print("-+-".join("-" * n for n in w))
    for x in rows:
        print(line(x))


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: report.py RESULTS.jsonl BENCH_GPU.txt OUT.json")
    tags, errors = load(sys.argv[1])
    res = {"benchmark": "gpu", "date": time.strftime("%Y-%m-%d"), "statistic": "median"}
    res.update(floor_numbers(sys.argv[2]))
    ours(res, tags)
    peers(res, tags)
    roofline(res)
    seqs = next((g["decode_seqs"] for t, v in tags.items() if t.startswith("rag_gen_")
                 for g in v if g.get("bench") == "gen_gpu"), 32)
    n_pre = next((g["prefill_tokens"] for t, v in tags.items() if t.startswith("rag_gen_")
                  for g in v if g.get("bench") == "gen_gpu"), 4096)
    res["peer_decode_padding"] = "left (prompts of 16, 32, ... tokens)"
    res["errors"] = [f"{e.get('step')}: exit {e.get('rc')}" for e in errors]
    with open(sys.argv[3], "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    rows = table(res, seqs, n_pre)
    for e in res["errors"]:
        print(f"step failed: {e}")
    for suf, name in ALL:
        if res.get(f"on_gpu_{suf}") is False:
            print(f"WARNING: gen_gpu ran {name} on the CPU, not the GPU")
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
