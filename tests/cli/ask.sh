#!/bin/sh
# rag ask end to end with the real default model: the JSON trace (budget
# never exceeded, sources that exist), weak evidence, the interactive session
# through a pseudo-terminal, and bad inputs.
set -eu
RAG=$1
. "$(dirname "$0")/lib.sh"

c="$T/corpus"
mkdir -p "$c"
printf 'Emperor penguins breed on the sea ice of Antarctica during the winter. The male keeps the egg warm for about two months.\n' >"$c/birds.txt"
printf 'The central bank raised interest rates by half a point, and bond yields rose.\n' >"$c/money.txt"
run ingest "$c"
is "ingest" "$rc" 0

run ask --json --ctx 512 --max-tokens 24 "Where do emperor penguins breed?"
is "ask: exit 0" "$rc" 0
is "ask: schema" "$(jget "$out" 'j["schema"]')" "rag.ask/1"
is "prompt and answer fit the context" "$(jget "$out" 'j["tokens"]["prompt"] + j["tokens"]["answer"] <= 512')" True
is "prompt within its budget" "$(jget "$out" 'j["tokens"]["prompt"] <= 512 - 24')" True
is "best candidate is the right file" "$(jget "$out" 'j["candidates"][0]["doc_path"]')" "$c/birds.txt"
is "it went into the prompt as [1]" "$(jget "$out" 'j["candidates"][0]["source"]')" 1
is "an answer was generated" "$(jget "$out" 'len(j["answer"].strip()) > 0 and j["tokens"]["answer"] > 0')" True
is "it stopped for a reason" "$(jget "$out" 'j["stopped"] in ("eos", "limit")')" True
is "timings are reported" "$(jget "$out" 'all(j["timings"][k] >= 0 for k in ("embed", "search", "prefill", "decode", "time_to_first_token"))')" True
is "no citation points to a missing source" "$(jget "$out" 'sum("no such source" in p for p in j["citation_problems"])')" 0

run ask --json --max-tokens 16 "What is the capital city of Mongolia?"
is "weak evidence: abstains" "$(jget "$out" 'j["abstained"] and j["weak_evidence"]')" True
like "weak evidence: says so" "$out" "not found in the indexed documents"
is "weak evidence: nothing generated" "$(jget "$out" 'j["tokens"]["answer"]')" 0

run ask --max-tokens 16 --ctx 512 "Where do emperor penguins breed?"
like "plain output lists the sources" "$out" "sources:"
like "plain output names the file" "$out" "\\[1\\].* $c/birds.txt \\[bytes 0-"

if command -v script >/dev/null; then
    printf 'Where do emperor penguins breed?\n/sources\n/quit\n' |
        timeout 300 script -qfec "$RAG ask --max-tokens 16 --ctx 512" /dev/null >"$T/tty" 2>&1 || true
    like "interactive: banner" "$(cat "$T/tty")" "ask about the indexed documents"
    like "interactive: /sources lists the file" "$(cat "$T/tty")" "\\[1\\]\\*? ? ?$c/birds.txt"
fi

run ask --json "penguins" </dev/null
is "a question on the command line needs no terminal" "$rc" 0
run ask </dev/null
is "no question and no terminal: usage error" "$rc" 2
run ask --model "$T/missing.gguf" "penguins"
is "missing model: exit 1" "$rc" 1
like "missing model: names the file" "$err" "^rag: error: .*'$T/missing.gguf'"
run --device bogus ask "penguins"
is "unknown device: usage error" "$rc" 2
like "unknown device: one line naming it" "$err" "^rag: --device: unknown device 'bogus' \\(auto, cpu or gpu\\)$"
RAG_DEVICE=bogus "$RAG" stats >/dev/null 2>"$T/err" && rc=0 || rc=$?
is "unknown RAG_DEVICE: usage error" "$rc" 2
like "unknown RAG_DEVICE: names the variable" "$(cat "$T/err")" "^rag: RAG_DEVICE: unknown device 'bogus'"
run --device
is "--device without a value: usage error" "$rc" 2
like "--device without a value: says so" "$err" "^rag: option '--device' needs a value$"
export RAG_DEVICE=cpu
run ask --json --ctx 512 --max-tokens 8 "Where do emperor penguins breed?"
unset RAG_DEVICE
is "RAG_DEVICE=cpu: exit 0" "$rc" 0
is "RAG_DEVICE=cpu: both models on the cpu" "$(jget "$out" 'j["device"]["embedder"] + j["device"]["generator"]')" "cpucpu"
if [ ! -e /dev/nvidia0 ]; then
    run --device gpu ask "penguins"
    is "--device gpu without a GPU: exit 1" "$rc" 1
    like "--device gpu without a GPU: one line saying why" "$err" "^rag: error: embedder '[^']+': device gpu requested: gpu: (built without CUDA|no CUDA device)"
fi
run ask --ctx 256 --max-tokens 250 "penguins"
is "answer reserve larger than the context: usage error" "$rc" 2
done_testing
