#!/usr/bin/env python3
"""Calibrate rag ask's weak-evidence threshold (--min-score).

usage: bench/calibrate_weak.py STORE_WITH_SQUAD [--rag build/cmd/rag] [--n 150]

Answerable questions: SQuAD dev questions, asked of a store holding the SQuAD
articles (e.g. the one `rag eval --keep-store DIR ../shared/data/squad-v1.1-dev`
leaves). Unanswerable: SciFact claims (biomedical), asked of the same store.
For each, the best dense cosine among the top candidates is what `rag ask`
compares with --min-score. Prints both distributions and, for a few
thresholds, the share of answerable questions kept and of off-topic ones
refused; writes bench/results/weak_evidence.json.
"""
import argparse
import json
import random
import subprocess


def best_dense(rag, store, q):
    out = subprocess.run([rag, "--store", store, "search", "--mode", "dense", "-k", "1",
                          "--json", q], capture_output=True, text=True, check=True).stdout
    res = json.loads(out)["results"]
    return res[0]["score"] if res else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--rag", default="build/cmd/rag")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--n", type=int, default=150)
    a = ap.parse_args()
    rnd = random.Random(20241129)
    squad = [json.loads(l)["question"] for l in open(f"{a.data}/squad-v1.1-dev/questions.jsonl")]
    sci = [json.loads(l)["text"] for l in open(f"{a.data}/scifact-beir/queries.jsonl")]
    pos = [best_dense(a.rag, a.store, q) for q in rnd.sample(squad, a.n)]
    neg = [best_dense(a.rag, a.store, q) for q in rnd.sample(sci, a.n)]
    rows = []
    for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
        kept = sum(s >= t for s in pos) / len(pos)
        refused = sum(s < t for s in neg) / len(neg)
        rows.append({"threshold": t, "answerable_kept": round(kept, 3),
                     "off_topic_refused": round(refused, 3)})
        print(f"threshold {t:.2f}: answerable kept {kept:.3f}, off-topic refused {refused:.3f}")
    pct = lambda v, p: sorted(v)[int(p * (len(v) - 1))]
    summary = {"benchmark": "weak_evidence", "n_each": a.n,
               "answerable_best_cosine_p05_p50": [round(pct(pos, .05), 3), round(pct(pos, .5), 3)],
               "off_topic_best_cosine_p50_p95": [round(pct(neg, .5), 3), round(pct(neg, .95), 3)],
               "rows": rows}
    print(json.dumps(summary))
    json.dump(summary, open("bench/results/weak_evidence.json", "w"), indent=1)


if __name__ == "__main__":
    main()
