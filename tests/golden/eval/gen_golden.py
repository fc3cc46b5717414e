#!/usr/bin/env python3
"""Generate the eval golden files from independent reference implementations.

  metrics.jsonl    document metrics from pytrec_eval (nDCG@k, recall@k, MAP@k;
                   MRR@k and hit@k written out as BEIR computes them), chunk
                   and Chroma evidence metrics from a set-of-bytes
                   implementation of the definitions in eval/eval.h
  answers.jsonl    SQuAD normal form, EM and F1 from the evaluate-v1.1.py
                   definitions (Python's str.lower, re \\b, str.split)
  bootstrap.jsonl  percentile bootstrap CIs (numpy.percentile) with a Python
                   PCG32 that mirrors the C generator
  squad_reference.json  EM / F1 of the two reference prediction files,
                   scored on dev-v1.1.rebuilt.json (the official layout)

Requires pytrec-eval-terrier and numpy. Run from the repository root:
  python3 tests/golden/eval/gen_golden.py ../shared/data
"""
import collections
import json
import math
import os
import random
import re
import string
import sys

import numpy
import pytrec_eval

OUT = os.path.dirname(os.path.abspath(__file__))


# ---- document metrics ----

def doc_case(rng, i):
    pool = [f"d{j}" for j in range(30)]
    n_qrels = rng.randint(1, 6)
    qrels = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(pool, n_qrels)}
    if rng.random() < 0.1:
        qrels[rng.choice(pool)] = -1
    ranking = rng.sample(pool, rng.randint(1, 25))
    if rng.random() < 0.3:  # duplicates, as chunks of one document
        for _ in range(rng.randint(1, 5)):
            ranking.insert(rng.randint(0, len(ranking)), rng.choice(ranking))
    k = rng.choice([1, 3, 5, 10, 10, 20, 100])
    distinct = list(dict.fromkeys(ranking))
    run = {"q": {d: float(len(distinct) - r) for r, d in enumerate(distinct)}}
    ev = pytrec_eval.RelevanceEvaluator(
        {"q": qrels}, {f"ndcg_cut.{k}", f"recall.{k}", f"map_cut.{k}"})
    res = ev.evaluate(run)["q"]
    top = distinct[:k]
    rel = [d for d in top if qrels.get(d, 0) > 0]
    mrr = next((1.0 / (r + 1) for r, d in enumerate(top) if qrels.get(d, 0) > 0), 0.0)
    if not any(g > 0 for g in qrels.values()):
        res = {f"ndcg_cut_{k}": 0.0, f"recall_{k}": 0.0, f"map_cut_{k}": 0.0}
    return {"kind": "docs", "name": f"random-{i}", "qrels": qrels, "ranking": ranking, "k": k,
            "expect": {"ndcg": res[f"ndcg_cut_{k}"], "recall": res[f"recall_{k}"],
                       "mrr": mrr, "hit": 1.0 if rel else 0.0, "map": res[f"map_cut_{k}"]}}


# ---- chunk and evidence metrics (sets of byte positions) ----

def bytes_of(s, e):
    return set(range(s, e))


def chunk_expect(text, evidence, answers, hits, k, all_chunks):
    top = hits[:k]
    ev_bytes = set().union(*[bytes_of(s, e) for s, e in evidence]) if evidence else set()

    def relevant(h):
        d, s, e = h
        if d != "A":
            return False
        if any(bytes_of(s, e) & bytes_of(a, b) for a, b in evidence):
            return True
        return any(a["span"] and s <= a["span"][0] and a["span"][1] <= e for a in answers)

    first = next((r for r, h in enumerate(top) if relevant(h)), None)
    hit = 1.0 if first is not None else 0.0
    covered_spans = sum(1 for a, b in evidence
                        if any(d == "A" and bytes_of(s, e) & bytes_of(a, b) for d, s, e in top))
    recall = covered_spans / len(evidence) if evidence else hit

    def contains(h, a):
        d, s, e = h
        if d != "A":
            return False
        if a["span"] and a["exact"]:
            return s <= a["span"][0] and a["span"][1] <= e
        regions = [(max(s, x), min(e, y)) for x, y in evidence] if evidence else [(s, e)]
        return any(a["text"] and a["text"] in text[x:y] for x, y in regions if y > x)

    answer_hit = 1.0 if any(contains(h, a) for h in top for a in answers) else 0.0
    got = set().union(*[bytes_of(s, e) for d, s, e in top if d == "A"]) if top else set()
    covered = len(ev_bytes & got)
    retrieved = sum(e - s for d, s, e in top)
    evidence_n = len(ev_bytes)
    touch = [bytes_of(s, e) for d, s, e in all_chunks
             if d == "A" and any(max(s, a) <= min(e, b) for a, b in evidence)]
    u = set().union(*touch) if touch else set()
    omega = len(ev_bytes & u) / len(u | ev_bytes) if (u | ev_bytes) and touch else 0.0
    return {"hit": hit, "mrr": 1.0 / (first + 1) if first is not None else 0.0,
            "recall": recall, "answer_hit": answer_hit,
            "ev_recall": covered / evidence_n if evidence_n else 0.0,
            "ev_precision": covered / retrieved if retrieved else 0.0,
            "ev_iou": covered / (retrieved + evidence_n - covered)
            if retrieved + evidence_n > covered else 0.0,
            "omega": omega}


def rand_span(rng, n, lo=1, hi=120):
    s = rng.randrange(0, n - lo)
    return [s, min(n, s + rng.randint(lo, hi))]


def chunk_case(rng, i):
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(40, 160)))
    n = len(text)
    evidence = []
    if rng.random() < 0.5:  # one gold paragraph (SQuAD) ...
        evidence.append(rand_span(rng, n, 20, 200))
    else:  # ... or disjoint references (Chroma)
        for _ in range(rng.randint(1, 3)):
            sp = rand_span(rng, n, 5, 80)
            if all(sp[1] <= a or sp[0] >= b for a, b in evidence):
                evidence.append(sp)
    answers = []
    if len(evidence) == 1 and rng.random() < 0.6:
        a, b = evidence[0]
        for _ in range(rng.randint(1, 3)):
            s = rng.randrange(a, b)
            e = min(b, s + rng.randint(1, 12))
            exact = rng.random() < 0.7
            answers.append({"text": text[s:e], "span": [s, e], "exact": exact})
    chunks = []
    for _ in range(rng.randint(0, 12)):
        d = "A" if rng.random() < 0.75 else "B"
        chunks.append([d] + rand_span(rng, n, 1, 150))
    k = rng.choice([1, 2, 3, 5, 10])
    return {"kind": "chunks", "name": f"random-{i}", "text": text, "evidence": evidence,
            "answers": answers, "hits": chunks, "k": k,
            "expect": chunk_expect(text, evidence, answers, chunks, k, chunks)}


# ---- answers (evaluate-v1.1.py definitions) ----

def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


ANSWER_CASES = [
    ("The Eiffel Tower!", ["Eiffel tower"]),
    ("an apple a day", ["apple day", "an apple"]),
    ("  Denver   Broncos ", ["Denver Broncos"]),
    ("the–end", ["end"]),
    ("théâtre the", ["théâtre"]),
    ("“the” answer", ["answer"]),
    ("Ünited   STATES", ["ünited states"]),
    ("ΑΘΗΝΑ", ["αθηνα"]),
    ("İstanbul", ["istanbul"]),
    ("1,000 km", ["1000 km"]),
    ("a_b the_c", ["ab thec"]),
    ("thereafter then the", ["thereafter then"]),
    ("", ["something"]),
    ("", [""]),
    ("the a an", [""]),
    ("Santa Clara, California", ["Santa Clara, California", "Levi's Stadium"]),
    ("cat cat dog", ["cat dog dog"]),
    ("new\u00a0york\u2009city", ["new york city"]),
    ("e\u0301the x", ["é x"]),
    ("£50 the", ["£50"]),
    ("2\u00b2the", ["2²the"]),
    ("Ⅻthe 12", ["Ⅻthe 12"]),
    ("l'the", ["lthe"]),
    ("ﬁsh the", ["ﬁsh"]),
]


def answer_cases():
    out = []
    for pred, golds in ANSWER_CASES:
        out.append({"pred": pred, "gold": golds, "norm": normalize_answer(pred),
                    "em": max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds),
                    "f1": max(f1(pred, g) for g in golds)})
    return out


# ---- bootstrap ----

M64 = (1 << 64) - 1


class Pcg32:
    def __init__(self, seed):
        self.state, self.inc = 0, ((seed << 1) | 1) & M64
        self.next()
        self.state = (self.state + seed) & M64
        self.next()

    def next(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & M64
        x = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((x >> rot) | (x << ((32 - rot) & 31))) & 0xFFFFFFFF

    def below(self, bound):
        threshold = (1 << 32) % bound
        while True:
            x = self.next()
            if x >= threshold:
                return x % bound


def bootstrap(values, resamples, seed):
    r = Pcg32(seed)
    n = len(values)
    means = []
    for _ in range(resamples):
        total = 0.0
        for _ in range(n):
            total += values[r.below(n)]
        means.append(total / n)
    return float(numpy.percentile(means, 2.5)), float(numpy.percentile(means, 97.5))


def bootstrap_cases(rng):
    vecs = [[float(rng.random() < 0.7) for _ in range(50)],
            [rng.random() for _ in range(200)],
            [0.25],
            [1.0] * 20,
            [rng.choice([0.0, 0.5, 1.0]) for _ in range(7)]]
    out = []
    for i, v in enumerate(vecs):
        for resamples, seed in ((1000, 20240229), (200, 7)):
            lo, hi = bootstrap(v, resamples, seed)
            out.append({"values": v, "resamples": resamples, "seed": seed, "lo": lo, "hi": hi})
    return out


# ---- SQuAD reference predictions on the official layout ----

def squad_reference(data):
    root = os.path.join(data, "squad-v1.1-dev")
    with open(os.path.join(root, "dev-v1.1.rebuilt.json"), encoding="utf-8") as f:
        dataset = json.load(f)["data"]
    out = {}
    for name in ("bert-large-ensemble-google.json", "logistic-regression-baseline-stanford.json"):
        with open(os.path.join(root, "reference-predictions", name), encoding="utf-8") as f:
            preds = json.load(f)
        em = fs = total = 0
        for article in dataset:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    total += 1
                    golds = [a["text"] for a in qa["answers"]]
                    p = preds.get(qa["id"])
                    if p is None:
                        continue
                    em += max(float(normalize_answer(p) == normalize_answer(g)) for g in golds)
                    fs += max(f1(p, g) for g in golds)
        out[name] = {"em": 100.0 * em / total, "f1": 100.0 * fs / total, "total": total}
    return out


def write_jsonl(name, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    rng = random.Random(20240229)
    rows = [doc_case(rng, i) for i in range(300)] + [chunk_case(rng, i) for i in range(200)]
    write_jsonl("metrics.jsonl", rows)
    write_jsonl("answers.jsonl", answer_cases())
    write_jsonl("bootstrap.jsonl", bootstrap_cases(rng))
    with open(os.path.join(OUT, "squad_reference.json"), "w", encoding="utf-8") as f:
        json.dump(squad_reference(data), f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
