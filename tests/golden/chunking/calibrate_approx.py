#!/usr/bin/env python3
"""Compare chunk_count_approx (chunking/tokens.c) with real WordPiece counts.

Reimplements the counter's rules in Python and compares it with the
bert-base-uncased WordPiece tokenizer (all-MiniLM-L6-v2's tokenizer.json) on
the chroma-chunking-eval corpora: per document, and per window of about 256
tokens (the default chunk size). Needs the `tokenizers` package; used to fit
the run-length costs, never at test time.

usage: calibrate_approx.py TOKENIZER_JSON CORPUS.md...
"""
import sys

from tokenizers import Tokenizer


def byte_kind(c):
    if c in b' \t\n\v\f\r':
        return 'space'
    if (0x41 <= c <= 0x5a) or (0x61 <= c <= 0x7a) or 0xc2 <= c <= 0xdf:
        return 'letter'
    if 0x30 <= c <= 0x39:
        return 'digit'
    if 0x80 <= c <= 0xbf:
        return 'cont'
    return 'single'


def approx(data):
    """Tokens of UTF-8 bytes by the rules in the header comment of tokens.c."""
    total, kind, run, lead = 0, None, 0, None
    for c in data:
        k = byte_kind(c)
        if k == 'cont':
            if lead != 2:
                continue  # inside a 3- or 4-byte character, already counted
            k = 'letter'  # the rest of a 2-byte letter
        else:
            lead = 2 if 0xc2 <= c <= 0xdf else 1
        if k in ('letter', 'digit'):
            if k != kind:
                total += run_cost(kind, run)
                kind, run = k, 0
            run += 1
            continue
        total += run_cost(kind, run)
        kind, run = None, 0
        total += k == 'single'
    return total + run_cost(kind, run)


def run_cost(kind, n):
    if not n:
        return 0
    if kind == 'letter':
        return 1 if n <= 8 else 2 if n <= 14 else n - 12
    return 1 if n <= 4 else n - 3


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    tok.no_truncation()
    tok.no_padding()
    print('%-24s %10s %10s %8s %18s' % ('corpus', 'wordpiece', 'approx', 'error', 'window err mean/p95'))
    for path in sys.argv[2:]:
        text = open(path, encoding='utf-8').read()
        real = len(tok.encode(text, add_special_tokens=False).ids)
        est = approx(text.encode('utf-8'))
        errs = []
        words = text.split(' ')
        for i in range(0, len(words), 180):  # windows of about 256 tokens
            w = ' '.join(words[i:i + 180])
            r = len(tok.encode(w, add_special_tokens=False).ids)
            if r >= 50:
                errs.append(abs(approx(w.encode('utf-8')) - r) / r)
        errs.sort()
        print('%-24s %10d %10d %+7.1f%% %8.1f%% %7.1f%%' % (
            path.rsplit('/', 1)[-1], real, est, 100.0 * (est - real) / real,
            100.0 * sum(errs) / len(errs), 100.0 * errs[int(0.95 * (len(errs) - 1))]))


if __name__ == '__main__':
    main()
