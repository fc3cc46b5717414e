#!/bin/sh
# bench/ingest.sh [RAG] - ingest throughput without embeddings (read + chunk +
# store) in MB/s of input, on the Chroma corpora (Markdown) and on the SQLite
# HTML documentation. Each corpus is ingested 5 times into a fresh store
# (--force re-reads unchanged files); the median is reported. No peer: the
# target is >= 50 MB/s. Writes bench/results/ingest.json.
set -eu
cd "$(dirname "$0")/.."
rag=${1:-build/cmd/rag}
data=${RAG_DATA:-../shared/data}
runs=5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median MB/s of $runs ingests of the given paths
measure() {
    rm -rf "$tmp/store"
    "$rag" --store "$tmp/store" ingest --no-embed "$@" >/dev/null
    i=0
    while [ $i -lt $runs ]; do
        "$rag" --store "$tmp/store" ingest --no-embed --force "$@" |
            sed -n 's/.* \([0-9.]*\) MB in \([0-9.]*\) s (\([0-9.]*\) MB\/s)$/\3 \1/p'
        i=$((i + 1))
    done | sort -n | awk -v r=$runs 'NR == int((r + 1) / 2) { print $1, $2 }'
}

set -- $(measure "$data"/chroma-chunking-eval/corpora/*.md)
md_rate=$1 md_mb=$2
set -- $(measure /usr/share/doc/sqlite3/*.html)
html_rate=$1 html_mb=$2
host=$(uname -n)
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
date=$(date -u +%Y-%m-%d)
cat >bench/results/ingest.json <<JSON
{"benchmark": "ingest", "date": "$date", "cpu": "$cpu", "cores": $(nproc),
 "runs": $runs, "statistic": "median",
 "markdown_chroma_mb": $md_mb, "markdown_chroma_mb_per_s": $md_rate,
 "html_sqlite_docs_mb": $html_mb, "html_sqlite_docs_mb_per_s": $html_rate,
 "target_mb_per_s": 50}
JSON
printf '%-28s %8s %10s\n' corpus MB 'MB/s'
printf '%-28s %8s %10s\n' "chroma corpora (Markdown)" "$md_mb" "$md_rate"
printf '%-28s %8s %10s\n' "SQLite docs (HTML)" "$html_mb" "$html_rate"
