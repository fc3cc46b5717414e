#!/bin/sh
# Incremental ingest end to end: add, re-ingest, modify, delete, rename, dry
# run; exact counts, no duplicates, the full-text index in sync.
set -eu
RAG=$1
. "$(dirname "$0")/lib.sh"

c="$T/corpus"
mkdir -p "$c/sub"
{
    printf '# Alpha guide\n\nThe zebrafish swims in alphaland.\n\n## Setup\n\n'
    i=0
    while [ $i -lt 60 ]; do
        printf 'Step %d of the setup checks the cables, the fuses and the lights again.\n\n' $i
        i=$((i + 1))
    done
    printf 'Finally install the quokka package.\n'
} >"$c/a.md"
printf 'Plain text about the narwhal and its tusk.\n\nA second paragraph on glaciers.\n' >"$c/b.txt"
printf '<html><head><title>Gamma</title><script>var hidden = "scriptword";</script></head><body><h1>Gamma page</h1><p>The axolotl regrows limbs.</p><nav>navword menu</nav></body></html>\n' >"$c/c.html"
printf 'Deep file mentioning the pangolin.\n' >"$c/sub/d.txt"
printf 'binary-ish name but ignored extension\n' >"$c/e.xyz"

run ingest --json "$c"
is "first ingest succeeds" "$rc" 0
is "four files added" "$(count_status added)" 4
run stats --json
is "stats: 4 documents" "$(jget "$out" 'j["documents"]')" 4
chunks=$(jget "$out" 'j["chunks"]')

run search --mode bm25 --json zebrafish
is "search finds the Markdown file" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/a.md"
run search --mode bm25 --json quokka
is "heading path kept" "$(jget "$out" 'j["results"][0]["heading_path"]')" "Alpha guide > Setup"
run search --mode bm25 --json scriptword
is "HTML script text is not indexed" "$(jget "$out" 'len(j["results"])')" 0
run search --mode bm25 --json navword
is "HTML nav text is not indexed" "$(jget "$out" 'len(j["results"])')" 0

run ingest --json "$c"
is "re-ingest: all unchanged" "$(count_status unchanged)" 4
is "re-ingest: nothing added" "$(count_status added)" 0
run stats --json
is "re-ingest: same chunk count" "$(jget "$out" 'j["chunks"]')" "$chunks"

printf 'Plain text about the walrus now.\n' >"$c/b.txt"
run ingest --json --dry-run "$c"
is "dry run reports the change" "$(count_status changed)" 1
run search --mode bm25 --json narwhal
is "dry run changed nothing" "$(jget "$out" 'len(j["results"])')" 1
run ingest --json "$c"
is "modified file replaced" "$(count_status changed)" 1
run search --mode bm25 --json narwhal
is "old text gone from the index" "$(jget "$out" 'len(j["results"])')" 0
run search --mode bm25 --json walrus
is "new text indexed" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/b.txt"

rm "$c/sub/d.txt"
run ingest --json "$c"
is "vanished file removed" "$(count_status removed)" 1
run search --mode bm25 --json pangolin
is "removed file's text gone" "$(jget "$out" 'len(j["results"])')" 0

mv "$c/a.md" "$c/a2.md"
run ingest --json "$c"
is "rename: one added" "$(count_status added)" 1
is "rename: one removed" "$(count_status removed)" 1
run search --mode bm25 --json zebrafish
is "rename: no duplicate hits" "$(jget "$out" 'len(j["results"])')" 1
is "rename: new path" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/a2.md"
run stats --json
is "three documents left" "$(jget "$out" 'j["documents"]')" 3

run stats --json
is "every chunk has a vector" "$(jget "$out" 'j["vectors"]')" "$(jget "$out" 'j["chunks"]')"
run search --mode dense -k 50 --json "a zebrafish swimming"
is "dense: the renamed path is gone" "$(jget "$out" 'sum(r["doc_path"].endswith("/a.md") for r in j["results"])')" 0
is "dense: the deleted file is gone" "$(jget "$out" 'sum(r["doc_path"].endswith("/d.txt") for r in j["results"])')" 0
is "dense: results are the store's chunks" "$(jget "$out" 'len(j["results"])')" "$(jget "$(RAG_STORE=$RAG_STORE "$RAG" stats --json)" 'j["chunks"]')"
run search --json "glaciers and tusks"
like "hybrid: both lists reported" "$out" '"bm25_rank":.*"dense_rank":'

run rm "$c/b.txt"
is "rm succeeds" "$rc" 0
run search --mode bm25 --json walrus
is "rm removes from the index" "$(jget "$out" 'len(j["results"])')" 0
run search --mode dense -k 50 --json walrus
is "rm removes the vectors" "$(jget "$out" 'sum(r["doc_path"].endswith("/b.txt") for r in j["results"])')" 0
is "rm leaves the index in step (no rebuild)" "$err" ""
run rm "$c/nothing-here.txt"
is "rm of an unknown path fails" "$rc" 1

run ingest "$c"
like "summary line" "$out" "^1 added, 0 changed, 0 removed, 2 unchanged, 0 skipped; [0-9]+ chunks"
done_testing
