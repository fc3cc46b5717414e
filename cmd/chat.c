/*
 * cmd/chat.c - the interactive session of `rag ask`: line editing and
 * history (libedit), follow-up questions rewritten with the previous one
 * before retrieval, /sources, /help, /quit. Ctrl-C stops a running answer,
 * not the session; at the prompt it clears the line.
 */
#include "cmd/cmd.h"

#include <ctype.h>
#include <signal.h>

#include <editline/readline.h>

static volatile int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int stream_out(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* Words that point back to the conversation ("it", "they", "what about"...). */
static bool is_follow_up(const char *q)
{
    static const char *const refs[] = { "it",   "its",   "they",  "them", "their", "this",
                                        "that", "these", "those", "he",   "she",   "his",
                                        "her",  "there", "and",   "also", "about" };
    size_t words = 0, i, n;
    const char *p = q;

    while (*p) {
        while (*p && !isalnum((unsigned char)*p))
            p++;
        for (n = 0; isalnum((unsigned char)p[n]); n++)
            ;
        for (i = 0; n && i < sizeof(refs) / sizeof(refs[0]); i++)
            if (strlen(refs[i]) == n && !strncasecmp(p, refs[i], n))
                return true;
        words += n > 0;
        p += n;
    }
    return words <= 3;
}

static void history_path(struct buf *out)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

    if (state && *state)
        buf_appendf(out, "%s/rag", state);
    else
        buf_appendf(out, "%s/.local/state/rag", home && *home ? home : ".");
    file_mkdirs(out->data, NULL);
    buf_appends(out, "/history");
}

static void show_sources(const struct ask_result *r)
{
    size_t i;

    for (i = 0; i < r->n_sources; i++)
        if (r->source[i].in_prompt || r->weak)
            printf("[%zu]%s %s%s%s [bytes %zu-%zu]\n", i + 1, r->source[i].cited ? "*" : " ",
                   r->source[i].path, r->source[i].heading[0] ? " > " : "", r->source[i].heading,
                   r->source[i].byte_start, r->source[i].byte_end);
    if (!r->n_sources)
        printf("(no question asked yet)\n");
}

/* Answer one line; the previous question is kept for follow-ups. */
static int turn(struct asker *a, const char *line, struct buf *prev, struct ask_result *r,
                struct rag_err *err)
{
    struct buf query = BUF_INIT;
    int rc;

    if (prev->len && is_follow_up(line))
        buf_appendf(&query, "%s %s", prev->data, line);
    ask_result_release(r);
    ask_result_init(r);
    interrupted = 0;
    rc = asker_ask(a, line, query.len ? query.data : NULL, stream_out, NULL, r, err);
    printf(interrupted ? " [stopped]\n" : "\n");
    for (size_t i = 0; !rc && i < r->n_problems; i++)
        printf("rag: citation check: %s\n", r->problem[i]);
    buf_reset(prev);
    buf_appends(prev, line);
    buf_release(&query);
    return rc;
}

int chat_session(struct asker *a, const struct globals *g, struct rag_err *err)
{
    struct sigaction sa = { .sa_handler = on_sigint };
    struct buf hist = BUF_INIT, prev = BUF_INIT;
    struct ask_result r;
    char *line;
    int rc = 0;

    (void)g;
    sigaction(SIGINT, &sa, NULL);
    asker_set_interrupt(a, &interrupted);
    history_path(&hist);
    read_history(hist.data);
    ask_result_init(&r);
    printf("rag: ask about the indexed documents; /sources, /help, /quit\n");
    while (!rc) {
        interrupted = 0;
        line = readline("> ");
        if (!line && interrupted)
            continue;
        if (!line || !strcmp(line, "/quit") || !strcmp(line, "/exit")) {
            free(line);
            break;
        }
        if (*line)
            add_history(line);
        if (!strcmp(line, "/sources"))
            show_sources(&r);
        else if (!strcmp(line, "/help"))
            printf("/sources: the sources of the last answer; /quit: leave (or Ctrl-D)\n");
        else if (*line)
            rc = turn(a, line, &prev, &r, err);
        free(line);
    }
    write_history(hist.data);
    ask_result_release(&r);
    buf_release(&hist);
    buf_release(&prev);
    return rc;
}
