#!/bin/sh
# bench/retrieval.sh [RAG] - retrieval quality of `rag eval --retrieval-only`
# on the shared datasets: SciFact nDCG@10 for bm25, dense and hybrid; SQuAD
# (a seeded sample of 2,000 questions) and the Chroma set (all 472) chunk
# recall@5 and evidence IoU@5 for each mode at two chunk sizes (recursive
# chunker, 128 and 254 word pieces). Stores are kept in a scratch folder so
# the modes share one chunking and one embedding pass. Writes
# bench/results/retrieval.json and prints a table.
set -eu
cd "$(dirname "$0")/.."
rag=${1:-build/cmd/rag}
data=${RAG_DATA:-../shared/data}
tmp=${RAG_BENCH_TMP:-$(mktemp -d)}
out=bench/results/retrieval.json

run() { # DATASET NAME MODE [ARGS...] -> one JSON line
    ds=$1 name=$2 mode=$3
    shift 3
    store="$tmp/$name-$( [ "$mode" = bm25 ] && echo text || echo vec)"
    "$rag" --no-progress eval --retrieval-only --json --mode "$mode" --keep-store "$store" \
        "$@" "$data/$ds" | sed "s/^{/{\"run\":\"$name\",/"
}

{
    for mode in bm25 dense hybrid; do
        run scifact-beir scifact "$mode" -k 10
    done
    for size in 128 254; do
        for mode in dense hybrid bm25; do
            run squad-v1.1-dev "squad-$size" "$mode" -k 5 --sample 2000 --chunker recursive \
                --max-tokens "$size"
            run chroma-chunking-eval "chroma-$size" "$mode" -k 5 --chunker recursive \
                --max-tokens "$size"
        done
    done
} >"$tmp/runs.jsonl"

python3 - "$tmp/runs.jsonl" "$out" <<'PY'
import json, sys, datetime, platform
runs = [json.loads(l) for l in open(sys.argv[1])]
def m(r, k):
    v = r["metrics"].get(k)
    return None if v is None else round(v["mean"], 4)
rows = []
for r in runs:
    rows.append({"run": r["run"], "mode": r["mode"], "chunks": r["chunks"],
                 "questions": r["questions"], "ndcg_at_10": m(r, "ndcg@10"),
                 "recall_at_10": m(r, "recall@10"), "chunk_recall_at_5": m(r, "chunk_recall@5"),
                 "evidence_iou_at_5": m(r, "evidence_iou@5"),
                 "evidence_recall_at_5": m(r, "evidence_recall@5"),
                 "search_ms_per_question": round(1e3 * r["search_seconds"] / r["questions"], 2)})
json.dump({"benchmark": "retrieval", "date": str(datetime.date.today()),
           "machine": platform.processor() or platform.machine(), "runs": rows},
          open(sys.argv[2], "w"), indent=1)
print(f'{"run":<12} {"mode":<7} {"chunks":>6} {"nDCG@10":>8} {"recall@5":>8} {"IoU@5":>7} {"ms/q":>7}')
for x in rows:
    f = lambda v: "-" if v is None else f"{v:.4f}"
    print(f'{x["run"]:<12} {x["mode"]:<7} {x["chunks"]:>6} {f(x["ndcg_at_10"]):>8} '
          f'{f(x["chunk_recall_at_5"]):>8} {f(x["evidence_iou_at_5"]):>7} {x["search_ms_per_question"]:>7}')
PY
