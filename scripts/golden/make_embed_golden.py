#!/usr/bin/env python3
"""Write tests/golden/embed/minilm.bin: reference token ids and sentence
vectors from sentence-transformers for the embedder parity test
(tests/test_embed.c).

Usage (torch and sentence-transformers installed only for this):
    HF_HUB_OFFLINE=1 python3 scripts/golden/make_embed_golden.py \
        --model ~/.cache/rag/models/all-minilm-l6-v2 --data ../shared/data \
        --out tests/golden/embed/minilm.bin --out-cls tests/golden/embed/minilm_cls_query.bin

The second file exercises the bge-style path with the same weights: CLS
pooling and the BGE query instruction prepended to every text (the test
builds a model directory named like a BGE model around the MiniLM files).

Texts: hand-written sentences, Unicode (accents, Greek, Cyrillic, CJK,
Korean, Arabic, Devanagari, emoji), code, empty and whitespace-only
strings, questions and passages from chroma-chunking-eval (MIT), and
passages longer than the model's 256-token limit, which sentence-transformers
truncates (flag 1: the test passes RETR_EMBED_TRUNCATE for those).

File format (little-endian):
  magic "RAGEMB01", u32 n_texts, u32 dim, u32 max_seq
  per text: u32 flags (bit 0: truncated by the reference),
            u32 n_bytes, text bytes (UTF-8),
            u32 n_full (word pieces without [CLS]/[SEP], untruncated),
            u32 n_ids, i32 ids[n_ids] (model input with [CLS]/[SEP]),
            f32 vec[dim] (L2-normalised sentence embedding)
"""
import argparse
import json
import random
import struct

from sentence_transformers import SentenceTransformer, models

SHORT = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?", "Paris is the capital and most populous city of France.",
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "How do I reset my password?", "Retrieval-augmented generation grounds answers in documents.",
    "FAISS is a library for efficient similarity search.", "I can't believe it's not butter!",
    "Don't panic.", "e-mail me at someone@example.com or call +1 (555) 010-9999.",
    "It costs $3.50, i.e. 20% off.", "U.S.A. vs. U.K.: a comparison", "state-of-the-art",
    "Mr. O'Neil's 3rd-floor apartment", "unaffable unbelievably antidisestablishmentarianism",
    "HELLO WORLD IN CAPITALS", "MiXeD CaSe TeXt", "1234567890", "3.14159 2.71828 1.41421",
    "a", "I", ".", "?!", "...", "--", "#hashtag @mention", "https://example.org/path?q=1&x=2",
    "C:\\Program Files\\rag\\rag.exe", "/usr/local/bin/rag --help", "x^2 + y^2 = z^2",
    "The year 2024 was a leap year.", "Section 4.2.1(b)(iii)", "[CLS] [SEP] [UNK] [PAD] [MASK]",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious",
    "The mitochondria is the powerhouse of the cell.", "Quantum entanglement defies locality.",
]

UNICODE = [
    "Café naïve résumé façade jalapeño", "Ünïcödé çafé naïve", "Crème brûlée à la française",
    "Ångström Øresund Æsir", "Straße Größe Fußball", "İstanbul ıüğşçö", "Dvořák Škoda Łódź",
    "Ελληνικά: Η γρήγορη καφέ αλεπού", "ΣΑΣ σας ς", "Русский текст: съешь же ещё этих булок",
    "Українська мова", "中文字符测试", "我爱自然语言处理。", "日本語のテキスト、ひらがなとカタカナ。",
    "戦場のヴァルキュリア3", "한국어 텍스트 처리", "안녕하세요 세계", "العربية نص تجريبي",
    "עברית טקסט", "हिन्दी पाठ परीक्षण", "ภาษาไทย", "Tiếng Việt có dấu",
    "emoji: 😀 😂 👍 🎉 ❤️", "flags 🇫🇷 🇯🇵 and family 👨‍👩‍👧", "math ∑ ∫ √ ∞ ≠ ≤ ≥ ±",
    "arrows → ← ↑ ↓ ⇒", "quotes “curly” ‘single’ «guillemets» „low“", "dashes – — ‒ ― and … ellipsis",
    "non\u00a0breaking\u00a0spaces", "zero\u200bwidth\u200bspace", "soft\u00adhyphen",
    "tab\tseparated\tvalues", "line\nbreaks\r\nand\rreturns", "\u3000ideographic\u3000space",
    "ligatures ﬁ ﬂ ﬀ", "fullwidth ＡＢＣ １２３", "superscripts x² y³ and ½ ¼",
    "combining e\u0301 a\u0300 o\u0308", "Ⅻ ① ⑩", "°C ℃ ℉ № ™ © ®", "€ £ ¥ ₹ ₽ ₿",
    "mixed 中文 and English 混合", "한국어 and 日本語 and 中文", "control\x01char\x7fs",
    "private\ue000use", "bom\ufeffinside", "Ελληνικά και English μαζί",
]

CODE = [
    "int main(void) { return 0; }",
    "def f(x):\n    return x * 2  # double it\n",
    "for (size_t i = 0; i < n; i++) sum += a[i] * b[i];",
    "SELECT id, text FROM chunks WHERE doc_id = ? ORDER BY ord;",
    "const x = await fetch('/api/v1/items?limit=10').then(r => r.json());",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
    "fn main() { println!(\"{}\", vec![1, 2, 3].iter().sum::<i32>()); }",
    "<div class=\"note\"><p>Hello &amp; welcome</p></div>",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "git commit -m 'fix: handle EINTR in read loop' && git push origin main",
    "x = np.linalg.norm(v, axis=1, keepdims=True); v /= np.maximum(x, 1e-12)",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do wc -l \"$f\"; done",
    "public static void main(String[] args) throws IOException {}",
    "SELECT COUNT(*) FROM vectors v JOIN chunks c ON c.id = v.chunk_id;",
    "a_b_c snake_case camelCaseIdentifier PascalCase kebab-case SCREAMING_CASE",
    "0xDEADBEEF 0b1010 1e-12 -3.5f 42u",
]

EMPTY = ["", " ", "   ", "\t", "\n", " \t\n\r ", "\u3000", "\u00a0\u00a0", "\x00", "\u200b"]


def data_texts(data):
    """Questions and passages from chroma-chunking-eval (MIT)."""
    rng = random.Random(1234)
    qs = [json.loads(l)["question"] for l in open(f"{data}/chroma-chunking-eval/questions.jsonl")]
    docs = [json.loads(l) for l in open(f"{data}/chroma-chunking-eval/docs.jsonl")]
    out = rng.sample(qs, 80)
    for d in docs:
        text = d["text"]
        for _ in range(25):
            n = rng.choice([80, 200, 400, 700, 1000, 1400, 2500, 4000])
            start = rng.randrange(0, max(1, len(text) - n))
            out.append(text[start:start + n])
    return out


BGE_PREFIX = "Represent this sentence for searching relevant passages: "


def write(path, tok, max_seq, texts, vecs, prefix=""):
    dim = vecs.shape[1]
    n_trunc = 0
    with open(path, "wb") as f:
        f.write(b"RAGEMB01" + struct.pack("<III", len(texts), dim, max_seq))
        for t, v in zip(texts, vecs):
            full = tok(prefix + t, add_special_tokens=False)["input_ids"]
            ids = tok(prefix + t, truncation=True, max_length=max_seq)["input_ids"]
            flags = 1 if len(full) > max_seq - 2 else 0
            n_trunc += flags
            b = t.encode("utf-8")
            f.write(struct.pack("<II", flags, len(b)) + b)
            f.write(struct.pack("<II", len(full), len(ids)))
            f.write(struct.pack(f"<{len(ids)}i", *ids))
            f.write(struct.pack(f"<{dim}f", *v.tolist()))
    print(f"{len(texts)} texts ({n_trunc} truncated), dim {dim}, max_seq {max_seq} -> {path}")


def cls_model(path):
    word = models.Transformer(path, max_seq_length=256)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
    return SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--out-cls", required=True)
    a = ap.parse_args()
    model = SentenceTransformer(a.model, device="cpu")
    texts = SHORT + UNICODE + CODE + EMPTY + data_texts(a.data)
    vecs = model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    write(a.out, model.tokenizer, model.max_seq_length, texts, vecs)
    cls = cls_model(a.model)
    some = SHORT[:20] + UNICODE[:10] + CODE[:5] + EMPTY[:3] + data_texts(a.data)[80:100]
    vecs = cls.encode(some, prompt=BGE_PREFIX, normalize_embeddings=True, convert_to_numpy=True)
    write(a.out_cls, cls.tokenizer, cls.max_seq_length, some, vecs, BGE_PREFIX)

if __name__ == "__main__":
    main()
