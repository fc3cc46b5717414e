#!/bin/sh
# bench/gpu/run.sh - the GPU benchmark (issue 5): our generator and encoder
# against HF transformers (bf16) and sentence-transformers (fp16) on the
# same GPU, in one run, with random-weight models written here by mkmodel.
#
# Usage, from the repository root on the GPU machine:
#   bench/gpu/run.sh [all|small|8b]      (default all; small: 135M + encoder)
#   bench/gpu/run.sh tiny                (dry run of every step on the CPU with
#                                         tiny shapes, reported as if 135M)
# The programs mkmodel, gen_gpu, embed_gpu and bench_gpu are taken from $BIN
# when set, else from PATH (scripts/devpack puts them there through env.sh):
#   . .devrun/env.sh && bench/gpu/run.sh 2>&1 | tee $OUT/log
# Environment: SCRATCH (model files, default /tmp/rag-bench; the 16 GB 8B
# file is deleted at the end), REPS (timed repetitions of ours, default 5),
# PEER_REPS (of the peers, default 3), PYTHON (default python3), EMBED_ARGS
# (more arguments of embed_gpu, default none: 256 tokens, batch 128), OUT
# (where gpu.json and results.jsonl are copied when set).
#
# Steps: bench_gpu --floor (copy bandwidth, launch floor); then per model
# mkmodel -> gen_gpu -> peers.py gen; embed_gpu and peers.py embed; peers.py
# copy. Each program prints JSON lines, collected with a tag in
# $SCRATCH/results.jsonl; a failed step is recorded and the run goes on.
# bench/gpu/report.py then writes bench/results/gpu.json and prints the
# table last.
set -u

what=${1:-all}
case $what in
all | small | 8b) ;;
tiny) ;;
*) echo "usage: bench/gpu/run.sh [all|small|8b|tiny]" >&2; exit 2 ;;
esac
small=smollm2-135m
embed=bge-small
gen_args=
embed_args=
peer_args=
if [ "$what" = tiny ]; then
    small=tiny embed=tiny gen_args="--device cpu --prefill 64 --steps 8 --seqs 4"
    peer_args="--device cpu --prefill 64 --steps 8 --seqs 4"
    embed_args="--device cpu --tokens 32 --batch 8 --chunks 16"
    EMBED_ARGS=${EMBED_ARGS:-$embed_args}
fi
here=$(cd "$(dirname "$0")" && pwd)
S=${SCRATCH:-/tmp/rag-bench}
REPS=${REPS:-5}
PEER_REPS=${PEER_REPS:-3}
PY=${PYTHON:-python3}
R=$S/results.jsonl
export TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$S" bench/results || exit 1
: >"$R"
: >"$S/bench_gpu.txt"
trap 'rm -f "$S/llama3-8b-bf16.gguf"' EXIT INT TERM

prog() {
    if [ -n "${BIN:-}" ]; then echo "$BIN/$1"; else command -v "$1" || echo "$1"; fi
}

# step TAG COMMAND...: run, keep its JSON lines tagged, record a failure.
step() {
    tag=$1
    shift
    echo "== $tag: $*" >&2
    t0=$(date +%s)
    "$@" >"$S/step.out"
    rc=$?
    sed -n "s/^{/{\"tag\": \"$tag\", /p" "$S/step.out" >>"$R"
    grep -v '^{' "$S/step.out" >&2
    if [ $rc -ne 0 ]; then
        echo "{\"tag\": \"$tag\", \"bench\": \"error\", \"step\": \"$tag\", \"rc\": $rc}" >>"$R"
        echo "== $tag FAILED (exit $rc)" >&2
    fi
    echo "== $tag: $(($(date +%s) - t0)) s" >&2
    return $rc
}

# model SHAPE TYPE SUFFIX: write the model, time ours on it.
# shellcheck disable=SC2086 # gen_args is a word list
model() {
    f=$S/$1-$2.gguf
    step "mk_$3" "$(prog mkmodel)" "$1" "$2" "$f" &&
        step "rag_gen_$3" "$(prog gen_gpu)" --reps "$REPS" $gen_args "$f"
    rm -f "$f"
}

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -n), $what" >&2
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv >&2 2>/dev/null
echo "== floor: bench_gpu --floor" >&2
"$(prog bench_gpu)" --floor >"$S/bench_gpu.txt" 2>&1 || echo "== bench_gpu FAILED" >&2
cat "$S/bench_gpu.txt" >&2
[ "$what" = tiny ] || step peer_copy "$PY" "$here/peers.py" copy --reps "$REPS"

# shellcheck disable=SC2086 # the *_args and EMBED_ARGS are word lists
if [ "$what" != 8b ]; then
    model $small q4_1 135m_q4_1
    model $small bf16 135m_bf16
    step peer_gen_135m "$PY" "$here/peers.py" gen --shape $small --reps "$PEER_REPS" $peer_args
    step rag_embed "$(prog embed_gpu)" "$S/embed-$embed" --shape $embed --reps "$REPS" \
        ${EMBED_ARGS:-}
    rm -rf "$S/embed-$embed"
    step peer_embed "$PY" "$here/peers.py" embed --shape $embed --reps "$REPS" $embed_args
fi
if [ "$what" = all ] || [ "$what" = 8b ]; then
    model llama3-8b bf16 8b_bf16
    step peer_gen_8b "$PY" "$here/peers.py" gen --shape llama3-8b --reps "$PEER_REPS"
fi

[ "$what" = tiny ] && echo "== DRY RUN: tiny shapes on the CPU, labelled as the real ones" >&2
json=bench/results/gpu.json
[ "$what" = tiny ] && json=$S/gpu.json
"$PY" "$here/report.py" "$R" "$S/bench_gpu.txt" "$json"
if [ -n "${OUT:-}" ]; then
    cp "$json" "$R" "$OUT/"
fi
