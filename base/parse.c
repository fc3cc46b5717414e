/*
 * base/parse.c - checked number parsing: empty input, trailing junk,
 * overflow and out-of-range values are errors (RAG_EINVAL).
 */
#include "base/base.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

int parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
    unsigned long long v;
    char *end;

    if (!s || !isdigit((unsigned char)*s))
        return RAG_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return RAG_EINVAL;
    *ret = (size_t)v;
    return 0;
}

int parse_int(const char *s, long min, long max, long *ret)
{
    long v;
    char *end;

    if (!s || !*s || isspace((unsigned char)*s))
        return RAG_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return RAG_EINVAL;
    *ret = v;
    return 0;
}

int parse_double(const char *s, double min, double max, double *ret)
{
    double v;
    char *end;

    if (!s || !*s || isspace((unsigned char)*s))
        return RAG_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return RAG_EINVAL;
    *ret = v;
    return 0;
}
