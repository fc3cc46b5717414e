/*
 * tests/testutil.c - helpers shared by the Check suites.
 */
#include "tests/testutil.h"

#include <ftw.h>
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

const char *test_tmpdir(void)
{
    static char path[4096];
    const char *base = getenv("TMPDIR");

    snprintf(path, sizeof(path), "%s/ragtest.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path))
        ck_abort_msg("mkdtemp failed");
    return path;
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

void test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}
