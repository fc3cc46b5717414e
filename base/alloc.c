/*
 * base/alloc.c - allocation that never returns NULL: out of memory prints
 * one line and aborts (Redis zmalloc, git xmalloc).
 */
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "rag: out of memory (%zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        oom(n);
    return q;
}

void *xmalloc_array(size_t n, size_t size)
{
    size_t total;

    if (__builtin_mul_overflow(n, size, &total))
        oom(SIZE_MAX);
    return xmalloc(total);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *grow_array(void *p, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap, bytes;

    if (need <= n)
        return p;
    n = n < 8 ? 8 : n + n / 2;
    if (n < need)
        n = need;
    if (__builtin_mul_overflow(n, size, &bytes))
        oom(SIZE_MAX);
    p = xrealloc(p, bytes);
    *cap = n;
    return p;
}
