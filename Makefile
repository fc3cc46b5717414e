# Two entry points for a fresh Debian 12 machine (README):
#   make demo  - set up, build, ingest a real corpus and query it
#   make test  - set up, build, run every test (default build with warnings as
#                errors, then the suite again under ASan + UBSan)
BUILD     ?= build
SAN_BUILD ?= build-san
FAISS_LIB := $(CURDIR)/.deps/faiss/lib
MESON_OPTS = -Dfaiss_c_libdir=$(FAISS_LIB)
# nvcc lives here in the CUDA Toolkit's standard install; CUDA stays optional.
export PATH := $(PATH):/usr/local/cuda/bin

.PHONY: all setup build test test-default test-san lint demo bench clean

all: build

setup:
	@scripts/setup

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS) --werror -Dgpu=auto

$(SAN_BUILD)/build.ninja:
	meson setup $(SAN_BUILD) $(MESON_OPTS) -Dgpu=disabled -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dc_args=-fno-sanitize-recover=undefined

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: setup test-default test-san lint

test-default: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs

test-san: $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=10 \
	    ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    meson test -C $(SAN_BUILD) --print-errorlogs --no-suite lint --timeout-multiplier 4

lint:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

demo: build
	scripts/demo $(BUILD)/cmd/rag

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
