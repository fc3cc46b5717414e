/*
 * tests/testutil.c - helpers shared by the Check suites.
 */
#include "tests/testutil.h"

#include <ftw.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Every directory test_tmpdir() made, removed at exit by the process that
 * made it (a forked test inherits the list but leaves its parent's entries).
 */
static struct {
    char path[64][4096];
    pid_t pid[64];
    int n;
} made;

static void remove_made(void)
{
    while (made.n > 0) {
        made.n--;
        if (made.pid[made.n] == getpid())
            test_rmtree(made.path[made.n]);
    }
}

const char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (made.n == (int)(sizeof(made.path) / sizeof(made.path[0])))
        ck_abort_msg("test_tmpdir: more than 64 directories in one process");
    path = made.path[made.n];
    snprintf(path, sizeof(made.path[0]), "%s/ragtest.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path))
        ck_abort_msg("mkdtemp failed");
    made.pid[made.n] = getpid();
    if (made.n++ == 0)
        atexit(remove_made);
    return path;
}

const char *test_data_path(const char *rel, char *out, size_t n)
{
    const char *root = getenv("RAG_DATA");

    if (!root)
        return NULL;
    snprintf(out, n, "%s/%s", root, rel);
    return access(out, R_OK) == 0 ? out : NULL;
}

const char *test_source_path(const char *rel, char *out, size_t n)
{
    const char *root = getenv("RAG_SOURCE_ROOT");

    snprintf(out, n, "%s/%s", root ? root : ".", rel);
    return out;
}

void test_write_safetensors(const char *path, struct buf *head, const struct buf *data)
{
    struct buf file = BUF_INIT;
    uint64_t n;

    buf_appendc(head, '}');
    while (head->len % 8)
        buf_appendc(head, ' ');
    n = head->len;
    buf_append(&file, &n, 8);
    buf_append(&file, head->data, head->len);
    buf_append(&file, data->data, data->len);
    test_write_file(path, file.data, file.len);
    buf_release(&file);
}

const char *test_model_path(const char *name, char *out, size_t n)
{
    const char *dir = getenv("RAG_MODELS"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");

    if (dir && *dir)
        snprintf(out, n, "%s/%s", dir, name);
    else if (xdg && *xdg)
        snprintf(out, n, "%s/rag/models/%s", xdg, name);
    else
        snprintf(out, n, "%s/.cache/rag/models/%s", home && *home ? home : ".", name);
    return access(out, R_OK) == 0 ? out : NULL;
}

int test_probe(int (*probe)(void))
{
    int status;
    pid_t pid;

    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(probe());
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    if (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 2)
        return WEXITSTATUS(status) == 0;
    return -1;
}

void test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}
