/*
 * base/utf8.c - strict UTF-8 decoding (no overlong forms, no surrogates, at
 * most U+10FFFF) and repair of invalid input with U+FFFD. The ASCII fast path
 * matters: readers run it over every byte of every document.
 */
#include "base/base.h"

#include <string.h>

size_t utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c;
    size_t len, i;

    if (n == 0)
        return 0;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        c = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        c = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)))
        return 0;
    *cp = c;
    return len;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Skip a run of ASCII bytes eight at a time. */
static size_t ascii_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    uint64_t w;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0, len;
    uint32_t cp;

    while (i < n) {
        i += ascii_run((const unsigned char *)s + i, n - i);
        if (i >= n)
            break;
        len = utf8_decode(s + i, n - i, &cp);
        if (!len)
            break;
        i += len;
    }
    return i;
}

size_t utf8_repair(const char *s, size_t n, struct buf *out)
{
    size_t i = 0, ok, bad = 0;

    while (i < n) {
        ok = utf8_valid_prefix(s + i, n - i);
        buf_append(out, s + i, ok);
        i += ok;
        if (i < n) {
            buf_append(out, "\xef\xbf\xbd", 3);
            bad++;
            i++;
        }
    }
    if (!out->data)
        buf_append(out, "", 0);
    return bad;
}
