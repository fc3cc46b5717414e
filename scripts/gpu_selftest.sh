#!/bin/sh
# scripts/gpu_selftest.sh - build and run the gpu test suites on a GPU host
# that has only nvcc and gcc: no meson, no Check, none of the other
# libraries. It compiles base/*.c, gpu/*.c, gpu/*.cu, tests/gputest.c and
# the suites tests/test_gpu.c, test_gpugemm.c, test_gpuops.c, test_gpuattn.c
# and test_gpuprefill.c unchanged (Check's API comes from
# scripts/gpu_selftest_check.h), in parallel, links each suite with nvcc and
# cuBLASLt and runs them one after the other, one PASS or FAIL line a test.
#
# Usage: scripts/gpu_selftest.sh [--memcheck] [--bench] [build-dir]
#   build-dir   default: build-gpu-selftest in the source root
#   --memcheck  also run the api, device, kernels and model cases of every
#               suite under compute-sanitizer's memcheck, one log per suite
#               and case (the fault case is left out:
#               it makes a kernel fault on purpose; API error reports are
#               off because test_alloc_too_big runs out of memory on purpose)
#   --bench     also build bench/gpu/bench_gpu.c and run it after the tests
#               (even when they failed) and before memcheck; output on stdout
# Environment: GPU_ARCH (compute capability, default 90), NVCC, CC,
# RAG_TEST_SEED (repeat a run's random inputs), JOBS (parallel compiles,
# default: the number of CPUs), MEMCHECK_CASES (default: all four),
# MEMCHECK_TIMEOUT (seconds per memcheck case),
# CUDA_EXTRA_INC / CUDA_EXTRA_LIB (a directory with cublasLt.h / libcublasLt
# when the toolkit lacks them).
# Exit status: 0 passed, 1 failed (any suite), 77 no GPU (or no CUDA device
# visible).
set -eu

memcheck=0
bench=0
while [ $# -gt 0 ]; do
    case $1 in
    --memcheck) memcheck=1 ;;
    --bench) bench=1 ;;
    *) break ;;
    esac
    shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-gpu-selftest}
arch=${GPU_ARCH:-90}
cc=${CC:-gcc}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
suites="gpu gpugemm gpuops gpuattn gpuprefill"
cflags="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra"
nvflags="-O2 -lineinfo -gencode=arch=compute_${arch},code=[sm_${arch},compute_${arch}]"
inc="-I$root -I$out -I$out/include${CUDA_EXTRA_INC:+ -I$CUDA_EXTRA_INC}"
ltlib="${CUDA_EXTRA_LIB:+-L$CUDA_EXTRA_LIB -Xlinker -rpath=$CUDA_EXTRA_LIB} -lcublasLt"

say() { printf 'gpu_selftest: %s\n' "$*" >&2; }

mkdir -p "$out/include" "$out/obj" "$out/bench"
rm -f "$out"/obj/*.o "$out"/bench/*.o "$out/bench_gpu"
for s in $suites; do rm -f "$out/test_$s"; done
cp "$root/scripts/gpu_selftest_check.h" "$out/include/check.h"
printf '#define RAG_HAVE_CUDA 1\n#define RAG_VERSION "selftest"\n' >"$out/config.h"

# One compile command per line, run $jobs at a time; any failure stops the build.
{
    for f in "$root"/base/*.c "$root"/gpu/*.c "$root"/tests/gputest.c \
        $(for s in $suites; do echo "$root/tests/test_$s.c"; done); do
        d=$(basename "$(dirname "$f")")
        echo "$cc $cflags $inc -c $f -o $out/obj/${d}_$(basename "$f" .c).o"
    done
    for f in "$root"/gpu/*.cu; do
        echo "$nvcc $nvflags $inc -c $f -o $out/obj/gpu_$(basename "$f" .cu).cu.o"
    done
    echo "$cc $cflags $inc -c $root/bench/gpu/bench_gpu.c -o $out/bench/bench_gpu.o"
} >"$out/compile.txt"
say "compiling $(wc -l <"$out/compile.txt") files, $jobs at a time, with $nvcc ($("$nvcc" --version | tail -n 1)), sm_$arch"
xargs -P "$jobs" -I CMD sh -c 'CMD' <"$out/compile.txt"
libobj=$(ls "$out"/obj/*.o | grep -v '/obj/tests_')
for s in $suites; do
    "$nvcc" -o "$out/test_$s" "$out/obj/tests_test_$s.o" "$out/obj/tests_gputest.o" $libobj \
        $ltlib -lm
done
if [ "$bench" = 1 ]; then
    "$nvcc" -o "$out/bench_gpu" "$out/bench/bench_gpu.o" $libobj $ltlib -lm
fi

cd "$out"
status=0
for s in $suites; do
    rc=0
    ./test_$s || rc=$?
    case $rc in
    0) ;;
    77) [ "$status" != 0 ] || status=77 ;;
    *) status=1 ;;
    esac
done
if [ "$bench" = 1 ] && [ "$status" != 77 ]; then
    say "bench: bench/gpu/bench_gpu.c"
    ./bench_gpu || say "bench FAILED (exit status $?)"
fi
if [ "$status" = 0 ] && [ "$memcheck" = 1 ]; then
    for s in $suites; do
        for c in ${MEMCHECK_CASES:-api device kernels model}; do
            say "memcheck: test_$s case $c"
            log=memcheck-$s-$c.log
            CK_RUN_CASE=$c CK_TIMEOUT_MULTIPLIER=10 timeout "${MEMCHECK_TIMEOUT:-3600}" \
                compute-sanitizer --tool memcheck --error-exitcode 1 --report-api-errors no \
                --target-processes all ./test_$s >"$log" 2>&1 || status=1
            grep -E '^(FAIL|=========.*(ERROR|error))' "$log" >&2 || true
            tail -n 1 "$log" >&2
        done
    done
fi
case $status in
0) say "PASS" ;;
77) say "SKIP: no GPU" ;;
*) say "FAIL (exit status $status)" ;;
esac
exit "$status"
