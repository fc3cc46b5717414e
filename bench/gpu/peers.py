#!/usr/bin/env python3
"""PyTorch peers of bench/gpu/gen_gpu and embed_gpu, measured the same way on
the same GPU, with random weights (no files are read or downloaded).

usage: bench/gpu/peers.py gen   --shape smollm2-135m|llama3-8b|tiny
                                [--steps 128] [--prefill 4096] [--seqs 32]
       bench/gpu/peers.py embed --shape bge-small|tiny [--tokens 256]
                                [--batch 128] [--chunks 1024]
       bench/gpu/peers.py copy  [--mib 1024]
common: [--device cuda|cpu] [--reps 5]

gen: HF transformers LlamaForCausalLM built from a LlamaConfig of the shape,
random init (torch.manual_seed(0)), bf16, sdpa attention, on the device.
  prefill   one forward of --prefill tokens from an empty cache, use_cache=True
            and logits_to_keep=1 (only the last token's logits, as ours);
  decode    greedy model.generate() with the default dynamic KV cache, batch 1
            after a 16-token prompt and batch --seqs with prompts of 16, 32,
            ..., 16 * seqs tokens, LEFT-PADDED to the longest with an
            attention mask (the lengths gen_gpu uses); decode time is
            t(generate 1 + steps tokens) - t(generate 1 token), so the
            prompt's prefill is not counted; tok/s = batch * steps / time;
  kernels   CUDA kernels of one batch-1 decode forward (torch.profiler);
  memory    torch.cuda.max_memory_allocated over the shape's runs.
embed: sentence-transformers on a random BertModel of the bge-small-en-v1.5
shape (12 layers, 384 wide, 12 heads, ffn 1536, vocab 30522) saved to a
temporary folder with a word-level vocabulary and CLS pooling + Normalize,
fp16 (.half()), texts of exactly --tokens tokens with [CLS] and [SEP];
chunks/s of SentenceTransformer.encode(batch_size=--batch), tokenization
included, and of the model forward alone on pre-tokenized batches.
copy: device-to-device copy of --mib MiB (torch copy_), GB/s counting the
bytes read and written.

Each figure is the median of --reps timed runs after one warm-up run, with
torch.cuda.synchronize() before reading the clock. One JSON line per
measurement on stdout.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

GEN_SHAPES = {
    # layers, dim, heads, kv heads, head dim, ffn, vocab, rope base, tied
    "smollm2-135m": (30, 576, 9, 3, 64, 1536, 49152, 100000.0, True),
    "llama3-8b": (32, 4096, 32, 8, 128, 14336, 128256, 500000.0, False),
    "tiny": (2, 64, 4, 2, 16, 128, 512, 10000.0, False),
}
EMBED_SHAPES = {
    # layers, hidden, heads, ffn, vocab
    "bge-small": (12, 384, 12, 1536, 30522),
    "tiny": (2, 64, 4, 128, 1000),
}
B1_PROMPT = 16


def emit(**kv):
    print(json.dumps(kv), flush=True)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def median_time(fn, reps, dev):
    fn()
    t = []
    for _ in range(reps):
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def llama_config(shape):
    from transformers import LlamaConfig

    layers, dim, heads, kv, hd, ffn, vocab, base, tied = GEN_SHAPES[shape]
    kw = dict(vocab_size=vocab, hidden_size=dim, intermediate_size=ffn, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=kv, head_dim=hd,
              max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=tied,
              bos_token_id=None, eos_token_id=None, pad_token_id=0, use_cache=True)
    try:
        cfg = LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": base}, **kw)
    except TypeError:
        cfg = LlamaConfig(rope_theta=base, **kw)
    cfg._attn_implementation = "sdpa"
    return cfg


def build_llama(shape, dev):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with dev:
            model = LlamaForCausalLM(llama_config(shape))
    finally:
        torch.set_default_dtype(torch.float32)
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def token_ids(n, vocab, dev, offset=0):
    i = torch.arange(offset, offset + n, dtype=torch.int64)
    return ((i * 7919 + 13) % (vocab - vocab // 8) + vocab // 8).to(dev)


def prefill(model, vocab, a, dev):
    ids = token_ids(a.prefill, vocab, dev).unsqueeze(0)

    def run():
        with torch.inference_mode():
            try:
                model(input_ids=ids, use_cache=True, logits_to_keep=1)
            except TypeError:
                model(input_ids=ids, use_cache=True, num_logits_to_keep=1)

    t = median_time(run, a.reps, dev)
    emit(bench="peer_prefill", shape=a.shape, tokens=a.prefill, ms=round(t * 1e3, 3),
         tok_per_s=round(a.prefill / t, 1))


def batch_prompts(n_seqs, vocab, dev):
    """Left-padded prompts of 16, 32, ..., 16 * n_seqs tokens and their mask."""
    longest = B1_PROMPT * n_seqs
    ids = torch.zeros((n_seqs, longest), dtype=torch.int64, device=dev)
    mask = torch.zeros_like(ids)
    for s in range(n_seqs):
        n = B1_PROMPT * (s + 1)
        ids[s, longest - n:] = token_ids(n, vocab, dev, offset=s)
        mask[s, longest - n:] = 1
    return ids, mask


def decode(model, vocab, a, dev, batch):
    if batch == 1:
        ids = token_ids(B1_PROMPT, vocab, dev).unsqueeze(0)
        mask = torch.ones_like(ids)
    else:
        ids, mask = batch_prompts(batch, vocab, dev)

    def gen(new):
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new,
                                 do_sample=False, pad_token_id=0)
        assert out.shape[1] == ids.shape[1] + new, "generate stopped early"

    t1 = median_time(lambda: gen(1), a.reps, dev)
    tn = median_time(lambda: gen(1 + a.steps), a.reps, dev)
    emit(bench="peer_decode", shape=a.shape, batch=batch, steps=a.steps,
         padding="left" if batch > 1 else "none", method="generate() greedy, dynamic cache",
         tok_per_s=round(batch * a.steps / (tn - t1), 1))


def kernels_per_step(model, vocab, a, dev):
    """CUDA kernels launched by one batch-1 decode forward with a 16-token cache."""
    from torch.profiler import ProfilerActivity, profile

    if dev.type != "cuda":
        return
    ids = token_ids(B1_PROMPT + 1, vocab, dev).unsqueeze(0)
    with torch.inference_mode():
        out = model(input_ids=ids[:, :B1_PROMPT], use_cache=True)
        cache = out.past_key_values
        step = ids[:, B1_PROMPT:]
        pos = torch.tensor([[B1_PROMPT]], device=dev)
        sync(dev)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(input_ids=step, past_key_values=cache, position_ids=pos, use_cache=True)
            sync(dev)
    n = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    emit(bench="peer_kernels", shape=a.shape, kernels_per_step_b1=n)


def cmd_gen(a, dev):
    vocab = GEN_SHAPES[a.shape][6]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    model = build_llama(a.shape, dev)
    params = sum(p.numel() for p in model.parameters())
    emit(bench="peer_model", shape=a.shape, params=params, dtype="bfloat16",
         attn=model.config._attn_implementation, build_s=round(time.perf_counter() - t0, 2),
         torch=torch.__version__, transformers=__import__("transformers").__version__)
    prefill(model, vocab, a, dev)
    decode(model, vocab, a, dev, 1)
    decode(model, vocab, a, dev, a.seqs)
    try:
        kernels_per_step(model, vocab, a, dev)
    except Exception as e:  # the profiler is a nicety: report, go on
        print(f"peers.py: kernel count failed: {e}", file=sys.stderr)
    if dev.type == "cuda":
        emit(bench="peer_memory", shape=a.shape,
             max_allocated_bytes=torch.cuda.max_memory_allocated(dev))


def write_bert(folder, shape, tokens):
    """Random BertModel, word-level vocabulary and ST config (CLS pooling, Normalize)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    layers, hidden, heads, ffn, vocab = EMBED_SHAPES[shape]
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=ffn,
                     max_position_embeddings=512)
    BertModel(cfg).save_pretrained(folder)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(special + [f"w{i}" for i in range(vocab - len(special))]) + "\n")
    BertTokenizerFast(vocab_file=os.path.join(folder, "vocab.txt")).save_pretrained(folder)
    os.makedirs(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": hidden, "pooling_mode_cls_token": True,
                   "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
                   "pooling_mode_mean_sqrt_len_tokens": False}, f)
    with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": tokens, "do_lower_case": True}, f)
    with open(os.path.join(folder, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type":
                    "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type":
                    "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type":
                    "sentence_transformers.models.Normalize"}], f)
    return vocab - 5


def cmd_embed(a, dev):
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as folder:
        n_words = write_bert(folder, a.shape, a.tokens)
        model = SentenceTransformer(folder, device=str(dev))
    model.half()
    model.max_seq_length = a.tokens
    texts = [" ".join(f"w{(c * 7919 + i * 104729) % n_words}" for i in range(a.tokens - 2))
             for c in range(a.chunks)]
    got = len(model.tokenizer(texts[0])["input_ids"])
    assert got == a.tokens, f"a text has {got} tokens, not {a.tokens}"

    def encode():
        with torch.inference_mode():
            model.encode(texts, batch_size=a.batch, convert_to_tensor=True)

    t = median_time(encode, a.reps, dev)
    features = {k: v.to(dev) if torch.is_tensor(v) else v
                for k, v in model.tokenize(texts[:a.batch]).items()}

    def forward():
        with torch.inference_mode():
            model(dict(features))

    tf = median_time(forward, a.reps, dev)
    emit(bench="peer_embed", shape=a.shape, tokens=a.tokens, batch=a.batch, chunks=a.chunks,
         dtype="float16", pooling="cls", chunks_per_s=round(a.chunks / t, 1),
         forward_chunks_per_s=round(a.batch / tf, 1),
         sentence_transformers=__import__("sentence_transformers").__version__)


def cmd_copy(a, dev):
    n = a.mib << 20
    x = torch.empty(n, dtype=torch.uint8, device=dev).random_()
    y = torch.empty_like(x)
    t = median_time(lambda: y.copy_(x), a.reps, dev)
    emit(bench="peer_copy", mib=a.mib, gb_per_s=round(2 * n / t / 1e9, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["gen", "embed", "copy"])
    ap.add_argument("--shape", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--prefill", type=int, default=4096)
    ap.add_argument("--seqs", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=1024)
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    shapes = {"gen": GEN_SHAPES, "embed": EMBED_SHAPES, "copy": {None: None}}[a.what]
    if a.shape not in shapes:
        ap.error(f"--shape must be one of {', '.join(str(s) for s in shapes)} for {a.what}")
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("peers.py: no CUDA device", file=sys.stderr)
        sys.exit(77)
    {"gen": cmd_gen, "embed": cmd_embed, "copy": cmd_copy}[a.what](a, dev)


if __name__ == "__main__":
    main()
