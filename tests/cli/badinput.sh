#!/bin/sh
# Bad inputs end to end: each gives a one-line message naming the file, the
# right exit status, and loses nothing else.
set -eu
RAG=$1
. "$(dirname "$0")/lib.sh"

c="$T/corpus"
mkdir -p "$c/loop"
printf 'A good file about the okapi.\n' >"$c/good.txt"
printf 'text\0with\0nul bytes\0\1\2\3' >"$c/binary.txt"
: >"$c/empty.md"
printf 'caf\351 cr\350me \377 br\373l\351e about the ibex\n' >"$c/latin1.txt"
ln -s .. "$c/loop/up"
ln -s "$c/missing-target.txt" "$c/dangling.txt"
truncate -s 200M "$c/huge.txt"

run ingest --json "$c"
is "ingest with bad files still succeeds" "$rc" 0
is "good, empty and repaired files added" "$(count_status added)" 3
is "binary and huge files skipped" "$(count_status skipped)" 2
like "binary file warning names the file" "$err" "rag: warning: skipped '$c/binary.txt': binary file"
like "huge file warning names the file" "$err" "rag: warning: skipped '$c/huge.txt': file too large"
like "invalid UTF-8 is repaired and counted" "$err" "'$c/latin1.txt': replaced 5 invalid UTF-8 bytes"
like "symlink loop reported" "$err" "skipped '$c/loop/up': .*symlink loop"
like "dangling symlink reported" "$err" "skipped '$c/dangling.txt': No such file or directory"
run search --mode bm25 --json ibex
is "repaired file is searchable" "$(jget "$out" 'j["results"][0]["doc_path"]')" "$c/latin1.txt"
run stats --json
is "empty file recorded" "$(jget "$out" 'j["documents"]')" 3

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
else
    as_user=""
fi
u="$T/unreadable"
mkdir -p "$u"
printf 'secret\n' >"$u/secret.txt"
printf 'public text about the tapir\n' >"$u/public.txt"
chmod 000 "$u/secret.txt"
chmod -R a+rwX "$T/store" 2>/dev/null || true
chmod a+rwx "$T" "$u"
set +e
RAG_STORE="$T/store2" $as_user "$RAG" ingest --no-embed --json "$u" >"$T/.stdout" 2>"$T/.stderr"
rc=$?
set -e
like "unreadable file skipped with its name" "$(cat "$T/.stderr")" "skipped open '$u/secret.txt': Permission denied"
is "unreadable file: exit 0" "$rc" 0
like "unreadable file: the rest ingested" "$(cat "$T/.stdout")" "public.txt\",\"status\":\"added\""

run ingest "$T/does-not-exist"
is "missing path: exit 1" "$rc" 1
is "missing path: one line naming it" "$err" "rag: error: '$T/does-not-exist': No such file or directory"

bad="$T/badstore"
mkdir -p "$bad"
head -c 8192 /dev/urandom >"$bad/rag.db"
cp "$bad/rag.db" "$T/rag.db.orig"
run --store "$bad" ingest "$c/good.txt"
is "corrupt store: exit 1" "$rc" 1
like "corrupt store: one line naming the file" "$err" "^rag: error: store '$bad/rag.db': file is not a database$"
ok "corrupt store left untouched" cmp "$bad/rag.db" "$T/rag.db.orig"

run ingest
is "no PATH: usage error" "$rc" 2
run ingest --chunker nosuch "$c"
is "unknown chunker: usage error" "$rc" 2
like "unknown chunker named" "$err" "unknown chunker 'nosuch'"
run search -k 0 word
is "bad -k: usage error" "$rc" 2
run search --mode
is "option without its value: usage error" "$rc" 2
like "option without its value: says so" "$err" "^rag: search: option '--mode' needs a value$"
run ingest --bogus "$c"
is "unknown option: usage error" "$rc" 2
like "unknown option: named" "$err" "^rag: ingest: unknown option '--bogus'$"
run frobnicate
is "unknown command: usage error" "$rc" 2
run search --help
is "--help exits 0" "$rc" 0
like "--help prints usage on stdout" "$out" "^usage: rag search"
run models
like "models: the default embedder is installed" "$out" "^all-minilm-l6-v2 +embed +ok"
like "models: the default generator is installed" "$out" "smollm2-135m-instruct +generate +ok"
run models verify all-minilm-l6-v2
is "models verify: hashes match" "$rc" 0
RAG_MODELS="$T/no-models" run models verify smollm2-135m-instruct
is "models verify: missing model fails" "$rc" 1
like "models verify: says missing" "$out" "smollm2-135m-instruct +generate +missing"
run models fetch no-such-model
is "models fetch: unknown model is a usage error" "$rc" 2
run models frobnicate
is "models: unknown verb is a usage error" "$rc" 2
run --version
like "--version" "$out" "^rag [0-9]+\.[0-9]+\.[0-9]+$"
done_testing
