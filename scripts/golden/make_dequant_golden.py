#!/usr/bin/env python3
"""Golden dequantization values from the `gguf` Python package (an independent
implementation of the ggml block formats), for tests/test_generation.c.

Writes tests/golden/generation/dequant_blocks.txt: for each supported tensor type,
a few random blocks (random bytes; the f16 scales are replaced by moderate random
values so the output is finite) and the floats gguf.quants.dequantize() gives:
    block <type-name> <type-id> <hex bytes>
    values <v0> <v1> ... (one per element, %.9g)

and tests/golden/generation/dequant_model.txt: for a few tensors of the default
model, the element count, the float64 sum and sum of squares, and 16 values at fixed
indices of the dequantized tensor:
    tensor <name> <type-name> <n> <sum> <sumsq> <idx>:<value> ...

Usage: python3 scripts/golden/make_dequant_golden.py MODEL.gguf OUTDIR
(requires: pip install gguf numpy; used only to produce the golden files).
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from gguf.constants import GGMLQuantizationType as T, GGML_QUANT_SIZES

TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]
# byte offsets of f16 scale fields inside one block
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_block(rng, t):
    block, size = GGML_QUANT_SIZES[t]
    if t == T.F32:
        return rng.standard_normal(block).astype(np.float32).tobytes()
    if t == T.F16:
        return rng.standard_normal(block).astype(np.float16).tobytes()
    if t == T.BF16:
        f = rng.standard_normal(block).astype(np.float32).view(np.uint32)
        return (f >> 16).astype(np.uint16).tobytes()
    raw = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    for off in F16_FIELDS[t]:
        raw[off:off + 2] = np.float16(rng.uniform(-0.05, 0.05)).tobytes()
    return bytes(raw)


def blocks(out_dir, rng):
    with open(f"{out_dir}/dequant_blocks.txt", "w") as f:
        f.write("# made by scripts/golden/make_dequant_golden.py (gguf.quants.dequantize)\n")
        for t in TYPES:
            block, size = GGML_QUANT_SIZES[t]
            # scalar types: one "block" of 32 elements
            n_el = 32 if block == 1 else block
            for _ in range(3):
                raw = b"".join(random_block(rng, t) for _ in range(n_el // block))
                vals = dequantize(np.frombuffer(raw, dtype=np.uint8), t).astype(np.float32)
                vals = vals.reshape(-1)
                assert vals.size == n_el
                f.write(f"block {t.name.lower()} {int(t)} {raw.hex()}\n")
                f.write("values " + " ".join(f"{v:.9g}" for v in vals) + "\n")


def model(out_dir, path):
    r = GGUFReader(path)
    names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight",
             "blk.29.attn_v.weight", "blk.0.attn_norm.weight", "output_norm.weight"]
    with open(f"{out_dir}/dequant_model.txt", "w") as f:
        f.write("# made by scripts/golden/make_dequant_golden.py from the default model\n")
        for t in r.tensors:
            if t.name not in names:
                continue
            v = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            idx = np.linspace(0, v.size - 1, 16).astype(np.int64)
            picks = " ".join(f"{i}:{v[i]:.9g}" for i in idx)
            f.write(f"tensor {t.name} {t.tensor_type.name.lower()} {v.size} {v.sum():.17g} "
                    f"{(v * v).sum():.17g} {picks}\n")


def main():
    rng = np.random.default_rng(20240607)
    blocks(sys.argv[2], rng)
    model(sys.argv[2], sys.argv[1])


if __name__ == "__main__":
    main()
