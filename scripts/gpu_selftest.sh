#!/bin/sh
# scripts/gpu_selftest.sh - build and run the gpu test suite on a GPU host
# that has only nvcc and gcc: no meson, no Check, none of the other
# libraries. It compiles base/*.c, gpu/gpu.c, gpu/*.cu and tests/test_gpu.c
# unchanged (Check's API comes from scripts/gpu_selftest_check.h), links
# with nvcc and runs the tests, one PASS or FAIL line each.
#
# Usage: scripts/gpu_selftest.sh [--memcheck] [build-dir]
#   build-dir   default: build-gpu-selftest in the source root
#   --memcheck  also run the api, device and kernels cases under
#               compute-sanitizer's memcheck (the fault case is left out:
#               it makes a kernel fault on purpose; API error reports are
#               off because test_alloc_too_big runs out of memory on purpose)
# Environment: GPU_ARCH (compute capability, default 90), NVCC, CC,
# RAG_TEST_SEED (repeat a run's random inputs).
# Exit status: 0 passed, 1 failed, 77 no GPU (or no CUDA device visible).
set -eu

memcheck=0
if [ "${1:-}" = --memcheck ]; then
    memcheck=1
    shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-gpu-selftest}
arch=${GPU_ARCH:-90}
cc=${CC:-gcc}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
cflags="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra"
nvflags="-O2 -lineinfo -gencode=arch=compute_${arch},code=[sm_${arch},compute_${arch}]"
inc="-I$root -I$out -I$out/include"

say() { printf 'gpu_selftest: %s\n' "$*" >&2; }

mkdir -p "$out/include" "$out/obj"
rm -f "$out"/obj/*.o "$out/test_gpu"
cp "$root/scripts/gpu_selftest_check.h" "$out/include/check.h"
printf '#define RAG_HAVE_CUDA 1\n#define RAG_VERSION "selftest"\n' >"$out/config.h"

say "compiling with $nvcc ($("$nvcc" --version | tail -n 1)), sm_$arch"
for f in "$root"/base/*.c "$root"/gpu/*.c "$root"/tests/test_gpu.c; do
    d=$(basename "$(dirname "$f")")
    $cc $cflags $inc -c "$f" -o "$out/obj/${d}_$(basename "$f" .c).o"
done
for f in "$root"/gpu/*.cu; do
    "$nvcc" $nvflags $inc -c "$f" -o "$out/obj/gpu_$(basename "$f" .cu).cu.o"
done
"$nvcc" -o "$out/test_gpu" "$out"/obj/*.o -lm

cd "$out"
status=0
./test_gpu || status=$?
if [ "$status" = 0 ] && [ "$memcheck" = 1 ]; then
    for c in api device kernels; do
        say "memcheck: case $c"
        CK_RUN_CASE=$c CK_TIMEOUT_MULTIPLIER=10 compute-sanitizer --tool memcheck --error-exitcode 1 \
            --report-api-errors no --target-processes all ./test_gpu >memcheck-$c.log 2>&1 || status=1
        grep -E '^(FAIL|=========.*(ERROR|error))' memcheck-$c.log >&2 || true
        tail -n 1 memcheck-$c.log >&2
    done
fi
case $status in
0) say "PASS" ;;
77) say "SKIP: no GPU" ;;
*) say "FAIL (exit status $status)" ;;
esac
exit "$status"
