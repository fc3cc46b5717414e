/*
 * base/err.c - error codes and messages. The failure site writes the
 * message; callers may add context in front with rag_err_prefix.
 */
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void verrf(struct rag_err *err, int code, const char *fmt, va_list ap)
{
    if (!err)
        return;
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int rag_errf(struct rag_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verrf(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int rag_errno(struct rag_err *err, const char *fmt, ...)
{
    int saved = errno;
    size_t n;
    va_list ap;

    if (!err)
        return RAG_EIO;
    va_start(ap, fmt);
    verrf(err, RAG_EIO, fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
    return RAG_EIO;
}

void rag_err_prefix(struct rag_err *err, const char *fmt, ...)
{
    char old[sizeof(err->msg)];
    size_t n;
    va_list ap;

    if (!err)
        return;
    memcpy(old, err->msg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", old);
}

const char *rag_code_name(int code)
{
    switch (code) {
    case RAG_OK:
        return "OK";
    case RAG_EINVAL:
        return "EINVAL";
    case RAG_EIO:
        return "EIO";
    case RAG_EFORMAT:
        return "EFORMAT";
    case RAG_ENOTFOUND:
        return "ENOTFOUND";
    case RAG_EDB:
        return "EDB";
    case RAG_EINDEX:
        return "EINDEX";
    case RAG_EGPU:
        return "EGPU";
    case RAG_ENOSYS:
        return "ENOSYS";
    default:
        return "EUNKNOWN";
    }
}
