/*
 * cmd/cli.c - what every command shares: error and usage output, the store
 * location, and the progress bar (drawn on stderr only when it is a tty,
 * unless --progress or --quiet says otherwise).
 */
#include "cmd/cmd.h"

#include <ftw.h>
#include <unistd.h>

int cmd_fail(const struct rag_err *err)
{
    fprintf(stderr, "rag: error: %s\n", err->msg[0] ? err->msg : rag_code_name(err->code));
    return CMD_FAIL;
}

int cmd_failf(const char *fmt, ...)
{
    va_list ap;

    fputs("rag: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CMD_FAIL;
}

void cmd_warn(const char *fmt, ...)
{
    va_list ap;

    if (rag_log_get_level() < RAG_LOG_WARN)
        return;
    fputs("rag: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_usage(const char *usage)
{
    fputs(usage, stdout);
    return CMD_OK;
}

int cmd_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;

    fputs("rag: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    fputs(usage, stderr);
    return CMD_USAGE;
}

int cmd_option_error(const char *usage, const char *cmd, int c, char *const *argv)
{
    if (c == ':')
        return cmd_usage_error(usage, "%s: option '%s' needs a value", cmd, argv[optind - 1]);
    return cmd_usage_error(usage, "%s: unknown option '%s'", cmd, argv[optind - 1]);
}

bool cmd_show_progress(const struct globals *g)
{
    if (g->progress >= 0)
        return g->progress > 0;
    return isatty(STDERR_FILENO) && rag_log_get_level() >= RAG_LOG_INFO;
}

int cmd_store_open(const struct globals *g, struct store **ret, struct rag_err *err)
{
    return store_open(ret, g->store_dir, err);
}

void progress_start(struct progress *p, const char *label, const char *unit, size_t total,
                    bool enabled)
{
    memset(p, 0, sizeof(*p));
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->enabled = enabled;
    p->start = time_now();
}

static void draw(struct progress *p, double now)
{
    double dt = now - p->start, mb = (double)p->bytes / 1e6;
    double rate = dt > 0 ? (double)p->done / dt : 0, eta = 0;

    if (rate > 0 && p->total > p->done)
        eta = (double)(p->total - p->done) / rate;
    fprintf(stderr, "\r%s: %zu/%zu %s", p->label, p->done, p->total, p->unit);
    if (p->bytes)
        fprintf(stderr, ", %.1f MB, %.1f MB/s", mb, dt > 0 ? mb / dt : 0);
    else
        fprintf(stderr, ", %.1f %s/s", rate, p->unit);
    if (p->chunks)
        fprintf(stderr, ", %zu chunks, %.1f chunks/s", p->chunks,
                dt > 0 ? (double)p->chunks / dt : 0.0);
    fprintf(stderr, ", ETA %.0fs \033[K", eta);
    p->last_draw = now;
}

void progress_update(struct progress *p, size_t done, uint64_t bytes)
{
    double now;

    p->done = done;
    p->bytes = bytes;
    if (!p->enabled)
        return;
    now = time_now();
    if (now - p->last_draw >= 0.1 || done == p->total)
        draw(p, now);
}

void progress_end(struct progress *p)
{
    if (!p->enabled)
        return;
    draw(p, time_now());
    fputc('\n', stderr);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cmd_remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
