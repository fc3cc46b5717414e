#!/usr/bin/env python3
"""Make the independent references that tests/test_reader.c checks against.

Run from the repository root:  python3 tests/golden/reader/make_refs.py

Needs markdown-it-py and mdit-py-plugins (Markdown block structure), pypdf
(an encrypted PDF) and pdftotext from poppler-utils (PDF page text). None of
them is needed to build or run the tests: their outputs are committed.

Outputs:
  tests/golden/reader/<name>.md.ref   one top-level block per line:
      <kind> <first line> <last non-blank line>   (0-based line numbers)
      kinds: paragraph heading list code table. Block quotes, HTML blocks and
      thematic breaks count as paragraphs; runs of lines that markdown-it
      gives no token (link reference definitions) are paragraphs too, since
      the reader must cover every non-blank line with a block.
  tests/golden/reader/<name>.pdf.ref  one page per line: its words, space-joined
  tests/data/reader/encrypted.pdf    copyright-release.pdf with user password
"""
import subprocess
import sys

from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin

DATA = "tests/data/reader/"
GOLDEN = "tests/golden/reader/"

KINDS = {
    "paragraph_open": "paragraph",
    "heading_open": "heading",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "fence": "code",
    "code_block": "code",
    "front_matter": "code",
    "table_open": "table",
    "blockquote_open": "paragraph",
    "html_block": "paragraph",
    "hr": "paragraph",
}


def md_blocks(path):
    text = open(path, encoding="utf-8").read()
    lines = text.split("\n")
    md = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    out = []
    for tok in md.parse(text):
        if tok.level != 0 or tok.nesting == -1 or tok.map is None:
            continue
        first, end = tok.map
        last = end - 1
        while last > first and not lines[last].strip():
            last -= 1
        out.append([KINDS[tok.type], first, last])
    covered = set()
    for _, first, last in out:
        covered.update(range(first, last + 1))
    run = None
    for i, line in enumerate(lines):
        if line.strip() and i not in covered:
            if run and run[2] == i - 1:
                run[2] = i
            else:
                run = ["paragraph", i, i]
                out.append(run)
        elif line.strip() == "":
            run = None
    out.sort(key=lambda b: b[1])
    return out


def pdf_pages(path):
    n = int(
        [
            l.split()[1]
            for l in subprocess.run(["pdfinfo", path], capture_output=True, text=True).stdout.splitlines()
            if l.startswith("Pages:")
        ][0]
    )
    pages = []
    for p in range(1, n + 1):
        txt = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", "-f", str(p), "-l", str(p), path, "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        pages.append(" ".join(txt.split()))
    return pages


def main():
    for name in ["corepack.md", "edge.md"]:
        with open(GOLDEN + name + ".ref", "w") as f:
            for kind, first, last in md_blocks(DATA + name):
                f.write(f"{kind} {first} {last}\n")
    for name in ["copyright-release.pdf"]:
        with open(GOLDEN + name + ".ref", "w") as f:
            for words in pdf_pages(DATA + name):
                f.write(words + "\n")
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(DATA + "copyright-release.pdf"))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with open(DATA + "encrypted.pdf", "wb") as f:
        writer.write(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
