#!/usr/bin/env python3
"""Golden files for generation/'s BPE tokenizer and chat templates.

The reference is Hugging Face: transformers' GGUF tokenizer converter
(transformers.integrations.gguf.gguf_tokenizer_mapping, the code behind
AutoTokenizer.from_pretrained(dir, gguf_file=...)) run on the GGUF's own
tokenizer metadata, read with the gguf package, and encoded by the
tokenizers library. Torch is not needed: only the metadata reader of
transformers imports it, and the gguf package reads the same keys.

Pre-tokenizers. transformers 5.x maps tokenizer.ggml.pre to a split pattern
for llama3/qwen2-style names but has no entry for "smollm", so for SmolLM2 it
falls back to a bare ByteLevel pre-tokenizer. SmolLM2's own tokenizer.json
(and llama.cpp's "smollm" pre-tokenizer) first isolates every digit:
Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)]. The
golden file uses the model's real pipeline; the script reports how many
strings the unpatched converter would tokenize differently. The other
variants reuse the same vocabulary and merges with the pre-tokenizer each
family uses in Hugging Face:
  gpt2    ByteLevel(use_regex=True)
  llama3  Split(llama3 pattern, isolated) + ByteLevel(use_regex=False), BPE ignore_merges=True
          (Llama 3's tokenizer.json; llama.cpp sets ignore_merges for it too)
  qwen2   Split(qwen2 pattern, isolated) + ByteLevel(use_regex=False)
          (as transformers' converter builds it; Qwen2's NFC normalizer is not
          applied, as in the converter and in llama.cpp)

Outputs (tests/golden/tokenizer/):
  ids.tsv   one case per line: pre, special (1 = control tokens parsed),
            roundtrip (1 = every byte has a token, so decode(encode(s)) == s),
            hex of the UTF-8 string, ids separated by spaces
  corpus.tsv  for each file of $RAG_DATA/chroma-chunking-eval/corpora: name,
            byte size, token count and the SHA-256 of the ids as little-endian
            int32 (smollm, plain text); also prints tokenizers' speed on them
  chat.tsv  one conversation per line: add_generation_prompt, messages as
            hex(role) ':' hex(content) joined by ',', hex of the prompt that
            transformers' apply_chat_template renders from the GGUF's
            tokenizer.chat_template, and the prompt's ids (special tokens parsed)

Usage: make_tokenizer_golden.py [--model PATH] [--data DIR] [--out DIR]
       make_tokenizer_golden.py --classes   (print the character classes that
       tokenizers' regex engine extends beyond Unicode 14, used in bpe.c)
Needs: pip install tokenizers transformers gguf
"""

import argparse
import jinja2
import json
import os
import random
import sys

from gguf import GGUFReader
from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.integrations.gguf.gguf_tokenizer_mapping import (
    _LLAMA3_SPLIT,
    _QWEN2_SPLIT,
    _SPECIAL_TOKENS,
    GGUF_TOKENIZER_MAPPING,
    convert_gguf_tokenizer,
)

DEFAULT_MODEL = os.path.join(
    os.environ.get("RAG_MODELS", os.path.expanduser("~/.cache/rag/models")),
    "smollm2-135m-instruct-q4_1.gguf",
)


def load_transformers(path):
    """transformers' fast tokenizer for the GGUF, as from_pretrained(gguf_file=) builds it."""
    fields = GGUFReader(path).fields
    md = {k: f.contents() for k, f in fields.items() if k.startswith(("tokenizer.", "general.arch"))}
    grouped = {
        group: {name: md[f"tokenizer.{key}"] for key, name in names.items() if f"tokenizer.{key}" in md}
        for group, names in GGUF_TOKENIZER_MAPPING.items()
    }
    tdict, config = grouped["tokenizer"], grouped["tokenizer_config"]
    for name, key in _SPECIAL_TOKENS.items():
        tid = md.get(f"tokenizer.ggml.{key}")
        config[name] = tdict["tokens"][tid] if tid is not None else None
    backend, _ = convert_gguf_tokenizer(md["general.architecture"], tdict)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **config), md


def bytelevel(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def variant(backend, pre):
    """The converter's tokenizer with the pre-tokenizer of family pre."""
    j = json.loads(backend.to_str())
    j["model"]["ignore_merges"] = pre == "llama3"
    if pre == "smollm":
        j["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, bytelevel(True)],
        }
    elif pre == "gpt2":
        j["pre_tokenizer"] = bytelevel(True)
    else:
        pattern = _LLAMA3_SPLIT if pre == "llama3" else _QWEN2_SPLIT
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split(pattern), bytelevel(False)]}
    return Tokenizer.from_str(json.dumps(j))


# ---- test strings ----

FIXED = [
    "Hello, we can use", "The capital of France is", "\n", "Hello world! 123", "Café déjà vu.",
    "  multiple   spaces", "", " ", "a", "I'm sure they'll say it's fine, don't you think? We've seen it.",
    "I'M SURE THEY'LL SAY IT'S FINE, DON'T YOU? WE'VE, I'D", "'s 's 'S 't 're 'Re 've 'm 'll 'LL 'd",
    "rock'n'roll o'clock y'all ma'am", "'ſ 'ſt 'K", "’s ‘quoted’ “double”",
    "tabs\tand\nnewlines\r\nmixed\r", "\t\t\tindent", "line1\n\n\nline4", "trailing   ", "   leading",
    "a\u00a0b\u00a0\u00a0c", "x\u3000y\u2003z\u2009w", "nel\u0085here", "ls\u2028ps\u2029end",
    "mongolian\u180esep", " \u0085x", "a \u0085\u0085 b", "\u0085\u0085x", " \u180ex", "a \u180e\u180e b",
    " \u00a0x", "\u3000 x", " \u2028x", " \u1680\u1680y", "\u2000\u200a z", "zw\u200bsp\u200cnj\u200dj", "\ufeffbom at start", "soft\u00adhyphen",
    "Numbers 12345 and 3.14159 and 1,000,000", "0", "00000000000000000000", "-42 +7 1e10 0x1F 0b1010",
    "2024-01-31T23:59:59Z", "+1 (555) 123-4567", "１２３ ｆｕｌｌｗｉｄｔｈ", "٠١٢٣٤٥٦٧٨٩ ۰۱۲۳", "१२३ ৪৫৬ ๑๒๓",
    "½ ¾ ⅓ ² ³ ¹ ⁴ ₅", "Ⅻ ⅻ Ⅳ 〇 〡", "①②③ ⑴ ⒈", "3½ 2² 10⁶",
    "Café naïve résumé façade Ångström", "e\u0301 combining a\u0300\u0301\u0302", "\u0301 leading mark",
    "Zoë Brontë coöperate", "ß ẞ straße STRASSE", "İstanbul ı I i", "ǅ ǈ ǋ titlecase",
    "你好，世界！这是一个测试。", "日本語のテキストとカタカナ ー", "한국어 텍스트입니다", "Россия и Україна",
    "Ελληνικά κείμενα", "مرحبا بالعالم", "שלום עולם", "हिन्दी पाठ", "বাংলা লেখা", "தமிழ் உரை",
    "ภาษาไทย", "ქართული", "Հայերեն", "አማርኛ", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙", "𠀀𠀁 𪚥", "ꦧꦱꦗꦮ",
    "Emoji: 😀👍🏽🇺🇸 and ❤️", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👩🏽‍💻 coder", "1️⃣ #️⃣ *️⃣",
    "🇯🇵🇫🇷🇩🇪", "🫠🫶🏻", "☺︎ ☺️", "emoji😀inside😀words",
    "Punctuation!!! ??? ... --- (parens) [brackets] {braces}", "«guillemets» „German“ 「Japanese」",
    "def foo(x):\n    return x ** 2  ", "int main(void) { return 0; }\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}", '{"key": [1, 2.5, null, true], "k2": "v"}',
    "<div class=\"x\">Hello &amp; bye</div>", "SELECT * FROM t WHERE id = 42;",
    "$ ls -la | grep foo > /dev/null 2>&1", "https://example.com/path?q=1&r=two#frag",
    "user@example.org", "C:\\Windows\\System32", "snake_case camelCase PascalCase kebab-case",
    "    if x:\n        pass\n", "a\\nb\\tc", "\\xff\\x00", "%C3%A9 %20", "Ã© Ã¨ mojibake", "\ufffd\ufffd",
    "\x00\x01\x02\x03\x04\x05\x06\x07\x08", "\x0b\x0c\x0e\x0f\x10\x13\x14\x16\x1b\x1d\x1f\x7f",
    "\ue000\uf8ff private", "\uffff\ufffe nonchars", "\U00040000 plane4", "\U000e0041 tag",
    "<|im_start|>user\nhi<|im_end|>\n", "a<|im_end|>b", "<|endoftext|><|endoftext|>",
    "<|im_start|", "<|im_start", "|im_start|>", "<|im_start|><|im_start|>", "<<|im_end|>>",
    "text <|endoftext|> more", "<repo_name>x<file_sep>y<filename>z", "<|unknown|> <im_start>",
    "<|IM_START|>", "<|im_start|>\n<|im_end|>", " <|im_end|> ",
]


def long_strings(rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        "a" * 1000, "supercalifragilisticexpialidocious" * 30,
        "".join(rng.choice(letters) for _ in range(3000)), "1234567890" * 50, "\n" * 200, " " * 500,
        "\t \n" * 100, "ab " * 400, "!" * 300, "é" * 400, "中文" * 300, "😀" * 100,
        "x" + " " * 100 + "y", "word\n" * 200, "3.14159265358979323846264338327950288419716939937510",
        "Pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism" * 3,
        "Donaudampfschifffahrtsgesellschaftskapitän",
    ]


FRAGMENTS = [
    "the", "The", " and", "retrieval", "augmented", "generation", "tokenizer", "GGUF", "don't", "it's",
    "we'll", "123", "4567", "0.5", "3,000", "1st", "2nd", "Straße", "naïve", "東京", "서울", "Москва",
    "القاهرة", "ירושלים", "मुंबई", "😀", "🚀", "👍🏿", "👨‍🔬", "🇧🇷", "\t", "\n", "\r\n", "  ", "   ",
    "\u00a0", ",", ".", "!", "?", ";", ":", "-", "--", "—", "(", ")", "[", "]", "{", "}", "\"", "'",
    "`", "<", ">", "/", "\\", "|", "#", "@", "$", "%", "^", "&", "*", "_", "=", "+", "~", "<|im_start|>",
    "<|im_end|>", "<|endoftext|>", "x86_64", "printf(\"%d\\n\", x);", "λx.x", "∑", "∞", "≠", "→",
    "€", "£", "¥", "©", "®", "™", "°C", "µs", "Ωmega", "ﬁ", "ǆ",
]

BLOCKS = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF),
    (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x214F),
    (0x2150, 0x218F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F),
    (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
    (0x1D400, 0x1D7FF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF),
]


def random_strings(rng, n):
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # fragments with random glue
            parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12))]
            glue = ["", " ", "  ", "\n", "\t", " \n"]
            out.append("".join(p + rng.choice(glue) for p in parts))
        elif kind == 1:  # random code points from one or two blocks
            blocks = rng.sample(BLOCKS, rng.randint(1, 2))
            cps = []
            for _ in range(rng.randint(1, 40)):
                lo, hi = rng.choice(blocks)
                cps.append(rng.randint(lo, hi))
            out.append("".join(map(chr, cps)))
        elif kind == 2:  # words, digits and whitespace
            words = []
            for _ in range(rng.randint(1, 15)):
                r = rng.random()
                if r < 0.5:
                    words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ'") for _ in range(rng.randint(1, 12))))
                elif r < 0.8:
                    words.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
                else:
                    words.append(rng.choice([" ", "  ", "\t", "\n", "\n\n", "\r\n", " \t ", "\u3000"]))
            out.append(rng.choice(["", " "]).join(words))
        else:  # any code point below U+30000 except surrogates
            cps = [rng.randint(1, 0x2FFFF) for _ in range(rng.randint(1, 20))]
            out.append("".join(chr(c) for c in cps if not 0xD800 <= c <= 0xDFFF))
    return out


# Letters and numbers assigned in Unicode 15-17, which PCRE2 10.42 does not know (bpe.c).
NEWER = [
    (0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0x105C0, 0x105F3), (0x10D4A, 0x10D65), (0x10EC2, 0x10EC4),
    (0x11380, 0x11389), (0x11BC0, 0x11BE0), (0x11F04, 0x11F10), (0x13460, 0x143FA), (0x16100, 0x1611D),
    (0x16D40, 0x16D6C), (0x1E030, 0x1E06D), (0x1E4D0, 0x1E4EB), (0x2EBF0, 0x2EE5D), (0x31350, 0x323AF),
    (0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11F50, 0x11F59), (0x1D2C0, 0x1D2D3), (0x1E4F0, 0x1E4F9),
    (0x11DE0, 0x11DE9), (0x16FF4, 0x16FF6),
]


def newer_strings():
    out = []
    for lo, hi in NEWER:
        a, b = chr(lo), chr(hi)
        out.append(f"x{a}y {a}{b} 1{a}2 {b}'s a{b}\n{a}")
        out.append(f" {a}")
        out.append(f"word{b}word 42{a}")
    return out


def all_strings():
    rng = random.Random(20240605)
    strings = FIXED + newer_strings() + long_strings(rng) + random_strings(rng, 1100)
    seen, unique = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


# ---- chat conversations ----

CHATS = [
    ([("user", "hi")], True),
    ([("user", "What is the capital of France?")], True),
    ([("user", "What is the capital of France?")], False),
    ([("system", "You answer in one word."), ("user", "Capital of Italy?")], True),
    ([("user", "Hello"), ("assistant", "Hi! How can I help?"), ("user", "Tell me a joke.")], True),
    ([("system", "Use only the sources.\n\n[1] doc.md: Paris is the capital."), ("user", "Capital? Cite [n].")], True),
    ([("user", "  spaces around  \n")], True),
    ([("user", "Unicode: 日本語 😀 Café")], True),
    ([("user", "multi\nline\n\nquestion")], True),
    ([("assistant", "I start."), ("user", "ok")], True),
    ([], True),
    ([("user", "")], True),
]


def write_ids(out_dir, tf, md):
    backend = tf.backend_tokenizer
    vocab = backend.get_vocab()
    b2u = bytes_to_unicode()
    byte_ok = {b for b in range(256) if b2u[b] in vocab}
    plain = all_strings()
    lines, n_diff = [], 0
    pres = ["smollm", "gpt2", "llama3", "qwen2"]
    for pre in pres:
        tok = variant(backend, pre)
        for special in (1, 0):
            tok.encode_special_tokens = not special
            for s in plain:
                if pre != "smollm" and special == 0:
                    continue
                if special == 0 and "<" not in s:
                    continue
                ids = tok.encode(s, add_special_tokens=False).ids
                if pre == "smollm" and special == 1:
                    n_diff += backend.encode(s, add_special_tokens=False).ids != ids
                rt = int(all(b in byte_ok for b in s.encode("utf-8")))
                lines.append(f"{pre}\t{special}\t{rt}\t{s.encode('utf-8').hex()}\t{' '.join(map(str, ids))}\n")
    with open(os.path.join(out_dir, "ids.tsv"), "w") as f:
        f.write(f"# made by scripts/golden/make_tokenizer_golden.py from {os.path.basename(md['path'])}\n")
        f.writelines(lines)
    print(f"ids.tsv: {len(lines)} cases, {len(plain)} distinct strings; "
          f"the unpatched transformers converter differs on {n_diff} (smollm)", file=sys.stderr)


def write_corpus(out_dir, tf, data_dir):
    import hashlib
    import struct
    import time

    tok = variant(tf.backend_tokenizer, "smollm")
    tok.encode_special_tokens = True
    corpora = os.path.join(data_dir, "chroma-chunking-eval", "corpora")
    lines, total_bytes, total_ids, total_time = [], 0, 0, 0.0
    for name in sorted(os.listdir(corpora)):
        data = open(os.path.join(corpora, name), "rb").read()
        t0 = time.perf_counter()
        ids = tok.encode(data.decode("utf-8"), add_special_tokens=False).ids
        total_time += time.perf_counter() - t0
        digest = hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest()
        lines.append(f"{name}\t{len(data)}\t{len(ids)}\t{digest}\n")
        total_bytes += len(data)
        total_ids += len(ids)
    with open(os.path.join(out_dir, "corpus.tsv"), "w") as f:
        f.write("# made by scripts/golden/make_tokenizer_golden.py: name, bytes, tokens, sha256(int32 ids)\n")
        f.writelines(lines)
    print(f"corpus.tsv: {total_bytes} bytes, {total_ids} tokens; tokenizers encode() "
          f"{total_ids / total_time:,.0f} tokens/s ({total_bytes / total_time / 1e6:.2f} MB/s)", file=sys.stderr)


def write_chat(out_dir, tf):
    backend = tf.backend_tokenizer
    backend.encode_special_tokens = False
    lines = []
    for msgs, gen in CHATS:
        conv = [{"role": r, "content": c} for r, c in msgs]
        if conv:
            prompt = tf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
        else:  # transformers refuses an empty conversation: render the template with jinja2
            prompt = jinja2.Environment().from_string(tf.chat_template).render(
                messages=conv, add_generation_prompt=gen)
        ids = backend.encode(prompt, add_special_tokens=False).ids
        enc = ",".join(r.encode().hex() + ":" + c.encode().hex() for r, c in msgs)
        lines.append(f"{int(gen)}\t{enc}\t{prompt.encode().hex()}\t{' '.join(map(str, ids))}\n")
    with open(os.path.join(out_dir, "chat.tsv"), "w") as f:
        f.write("# made by scripts/golden/make_tokenizer_golden.py: transformers apply_chat_template\n")
        f.writelines(lines)
    print(f"chat.tsv: {len(lines)} conversations", file=sys.stderr)


def print_classes():
    """Code points tokenizers' Oniguruma / Rust classify beyond PCRE2 10.42's Unicode 14."""
    import unicodedata

    # each code point between two U+0001 (in none of the classes): it is a piece alone iff it matches
    cps = [c for c in range(2, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    s = "\x01" + "\x01".join(map(chr, cps)) + "\x01"

    def matched(pt):
        return {ord(p) for p, (a, b) in pt.pre_tokenize_str(s) if b - a == 1 and p != "\x01"}

    def ranges(xs):
        out = []
        for x in sorted(xs):
            if out and out[-1][1] == x - 1:
                out[-1][1] = x
            else:
                out.append([x, x])
        return " ".join(f"{a:x}-{b:x}" if a != b else f"{a:x}" for a, b in out)

    print(f"python unicodedata {unicodedata.unidata_version}")
    old_l = {c for c in cps if unicodedata.category(chr(c)).startswith("L")}
    old_n = {c for c in cps if unicodedata.category(chr(c)).startswith("N")}
    for name, pat, old in (("L", r"\p{L}", old_l), ("N", r"\p{N}", old_n), ("s", r"\s", set())):
        got = matched(pre_tokenizers.Split(Regex(pat), behavior="isolated"))
        print(name, ranges(got - old) if old else ranges(got))
    print("numeric", ranges(matched(pre_tokenizers.Digits(individual_digits=True)) - old_n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "tokenizer"))
    ap.add_argument("--data", default=os.environ.get(
        "RAG_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")))
    ap.add_argument("--classes", action="store_true")
    args = ap.parse_args()
    if args.classes:
        print_classes()
        return
    tf, md = load_transformers(args.model)
    md["path"] = args.model
    os.makedirs(args.out, exist_ok=True)
    write_ids(args.out, tf, md)
    write_corpus(args.out, tf, args.data)
    write_chat(args.out, tf)


if __name__ == "__main__":
    main()
