#!/bin/sh
# The vector side end to end: BM25-only ingest then reindex, another index
# type, a damaged index file rebuilt from the store, a missing model.
set -eu
RAG=$1
. "$(dirname "$0")/lib.sh"

c="$T/corpus"
mkdir -p "$c"
printf 'Penguins huddle together to survive the Antarctic winter.\n\nEmperor penguins breed on sea ice.\n' >"$c/birds.txt"
printf 'The stock market fell sharply after the interest rate decision.\n\nBond yields rose.\n' >"$c/money.md"

run ingest --no-embed "$c"
is "ingest --no-embed" "$rc" 0
run stats --json
is "no vectors yet" "$(jget "$out" 'j["vectors"]')" 0
run reindex
like "reindex embeds the missing chunks" "$out" "^embedded 2 chunks that had no vector; index rebuilt with 2 vectors$"
run stats --json
is "every chunk has a vector" "$(jget "$out" 'j["vectors"]')" 2
run search --mode dense -k 1 --json "cold weather birds"
is "dense search finds the right file" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/birds.txt"

run reindex --index HNSW32,Flat
is "reindex as HNSW" "$rc" 0
run search --mode dense -k 1 --json "finance and interest rates"
is "HNSW search works" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/money.md"
is "no rebuild after reindex" "$err" ""

head -c 100 "$RAG_STORE/vectors.faiss" >"$T/short" && mv "$T/short" "$RAG_STORE/vectors.faiss"
run search --mode dense -k 1 --json "penguins"
is "damaged index: search still answers" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/birds.txt"
like "damaged index: rebuilt with a warning" "$err" "rag: warning: rebuilt the vector index '$RAG_STORE/vectors.faiss'"
run search --mode dense -k 1 --json "penguins"
is "rebuilt index is kept" "$err" ""

RAG_MODELS="$T/no-models" run ingest "$c"
is "missing model: exit 1" "$rc" 1
like "missing model: one line naming the file" "$err" "^rag: error: embedder .*: open '$T/no-models/all-minilm-l6-v2/config.json': No such file or directory$"
RAG_MODELS="$T/no-models" run search --mode bm25 penguins
is "BM25 search needs no model" "$rc" 0
done_testing
