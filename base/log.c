/*
 * base/log.c - leveled logging to stderr with "rag: <level>: " prefixes.
 * The threshold is set by cmd/ from -q / -v / -vv.
 */
#include "base/base.h"

#include <stdio.h>

static enum rag_log_level threshold = RAG_LOG_INFO;

void rag_log_set_level(enum rag_log_level level)
{
    threshold = level;
}

enum rag_log_level rag_log_get_level(void)
{
    return threshold;
}

void rag_log(enum rag_log_level level, const char *fmt, ...)
{
    static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
    va_list ap;

    if (level > threshold)
        return;
    fprintf(stderr, "rag: %s", prefix[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
