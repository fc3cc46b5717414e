/*
 * tests/testutil.c - helpers shared by the Check suites (tests/testutil.h).
 */
#include "tests/testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "generation/gguf.h"

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

double test_cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;

    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
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

void test_put_u32(struct buf *b, uint32_t v)
{
    buf_append(b, &v, 4);
}

void test_put_u64(struct buf *b, uint64_t v)
{
    buf_append(b, &v, 8);
}

void test_put_str(struct buf *b, const char *s)
{
    test_put_u64(b, strlen(s));
    buf_append(b, s, strlen(s));
}

void test_gguf_key(struct test_gguf *g, const char *key, uint32_t type)
{
    test_put_str(&g->kv, key);
    test_put_u32(&g->kv, type);
    g->n_kv++;
}

void test_gguf_u32(struct test_gguf *g, const char *key, uint32_t v)
{
    test_gguf_key(g, key, GGUF_VALUE_UINT32);
    test_put_u32(&g->kv, v);
}

void test_gguf_f32(struct test_gguf *g, const char *key, float v)
{
    test_gguf_key(g, key, GGUF_VALUE_FLOAT32);
    buf_append(&g->kv, &v, 4);
}

void test_gguf_str(struct test_gguf *g, const char *key, const char *v)
{
    test_gguf_key(g, key, GGUF_VALUE_STRING);
    test_put_str(&g->kv, v);
}

void test_gguf_raw(struct test_gguf *g, const char *key, uint32_t type, const void *v, size_t n)
{
    test_gguf_key(g, key, type);
    buf_append(&g->kv, v, n);
}

/* Zero bytes that bring len up to a multiple of align. */
static void pad(struct buf *b, uint32_t align)
{
    static const char zero[256];

    buf_append(b, zero, (align - b->len % align) % align);
}

void test_gguf_tensor(struct test_gguf *g, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, size_t nbytes)
{
    test_put_str(&g->ti, name);
    test_put_u32(&g->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        test_put_u64(&g->ti, ne[d]);
    test_put_u32(&g->ti, type);
    test_put_u64(&g->ti, g->data.len);
    buf_append(&g->data, data, nbytes);
    pad(&g->data, g->align ? g->align : 32);
    g->n_t++;
}

void test_gguf_finish(struct test_gguf *g, struct buf *out, uint32_t version)
{
    buf_append(out, "GGUF", 4);
    test_put_u32(out, version);
    test_put_u64(out, g->n_t);
    test_put_u64(out, g->n_kv);
    buf_append(out, g->kv.data, g->kv.len);
    buf_append(out, g->ti.data, g->ti.len);
    pad(out, g->align ? g->align : 32);
    buf_append(out, g->data.data, g->data.len);
    buf_release(&g->kv);
    buf_release(&g->ti);
    buf_release(&g->data);
}
