/*
 * tests/test_base.c - base/: errors, buffers, arenas, parsing, SHA-256 (FIPS
 * 180-4 test vectors), UTF-8 validation and repair, files and the walker.
 */
#include "base/base.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

START_TEST(test_err_messages)
{
    struct rag_err err = { 0 };

    ck_assert_int_eq(rag_errf(&err, RAG_EINVAL, "bad '%s'", "x"), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "bad 'x'");
    rag_err_prefix(&err, "ingest '%s'", "a.txt");
    ck_assert_str_eq(err.msg, "ingest 'a.txt': bad 'x'");
    ck_assert_int_eq(err.code, RAG_EINVAL);
    ck_assert_str_eq(rag_code_name(RAG_EFORMAT), "EFORMAT");
    errno = ENOENT;
    ck_assert_int_eq(rag_errno(&err, "open '%s'", "f"), RAG_EIO);
    ck_assert_str_eq(err.msg, "open 'f': No such file or directory");
    ck_assert_int_eq(rag_errf(NULL, RAG_EIO, "ignored"), RAG_EIO);
}
END_TEST

START_TEST(test_buf)
{
    struct buf b = BUF_INIT;
    struct rag_err err = { 0 };
    size_t len;
    char *p;

    ck_assert_str_eq(buf_cstr(&b), "");
    buf_appends(&b, "abc");
    buf_appendc(&b, '-');
    buf_appendf(&b, "%d%s", 42, "x");
    ck_assert_str_eq(buf_cstr(&b), "abc-42x");
    ck_assert_uint_eq(b.len, 7);
    b.max = 8;
    ck_assert_int_eq(buf_append_checked(&b, "12", 2, &err), RAG_EINVAL);
    ck_assert_uint_eq(b.len, 7);
    ck_assert_int_eq(buf_append_checked(&b, "1", 1, &err), 0);
    p = buf_detach(&b, &len);
    ck_assert_str_eq(p, "abc-42x1");
    ck_assert_uint_eq(len, 8);
    ck_assert_ptr_null(b.data);
    free(p);
}
END_TEST

START_TEST(test_arena)
{
    struct arena a;
    char *s;
    void *big;
    int i;

    arena_init(&a, 128);
    for (i = 0; i < 100; i++) {
        s = arena_strdup(&a, "hello");
        ck_assert_str_eq(s, "hello");
        ck_assert_uint_eq((uintptr_t)s % _Alignof(max_align_t), 0);
    }
    big = arena_calloc(&a, 1000, 8);
    ck_assert_int_eq(((char *)big)[7999], 0);
    s = arena_strdup(&a, "after");
    ck_assert_str_eq(s, "after");
    arena_release(&a);
    ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(test_parse)
{
    size_t z;
    long l;
    double d;

    ck_assert_int_eq(parse_size("42", 1, 100, &z), 0);
    ck_assert_uint_eq(z, 42);
    ck_assert_int_eq(parse_size("", 0, 100, &z), RAG_EINVAL);
    ck_assert_int_eq(parse_size("4x", 0, 100, &z), RAG_EINVAL);
    ck_assert_int_eq(parse_size("-1", 0, 100, &z), RAG_EINVAL);
    ck_assert_int_eq(parse_size("101", 0, 100, &z), RAG_EINVAL);
    ck_assert_int_eq(parse_size("99999999999999999999999", 0, SIZE_MAX, &z), RAG_EINVAL);
    ck_assert_int_eq(parse_int("-5", -10, 10, &l), 0);
    ck_assert_int_eq(l, -5);
    ck_assert_int_eq(parse_int(" 5", -10, 10, &l), RAG_EINVAL);
    ck_assert_int_eq(parse_double("0.25", 0, 1, &d), 0);
    ck_assert_double_eq(d, 0.25);
    ck_assert_int_eq(parse_double("nan", 0, 1, &d), RAG_EINVAL);
    ck_assert_int_eq(parse_double("1.5", 0, 1, &d), RAG_EINVAL);
}
END_TEST

START_TEST(test_sha256_vectors)
{
    char hex[65];
    struct sha256 s;
    uint8_t d[32];
    char *million = xmalloc(1000000);
    int i;

    sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a' fed in uneven pieces exercises the block buffering. */
    memset(million, 'a', 1000000);
    sha256_init(&s);
    for (i = 0; i < 1000000; i += 7)
        sha256_update(&s, million + i, 1000000 - i < 7 ? 1000000 - i : 7);
    sha256_final(&s, d);
    ck_assert_uint_eq(d[0], 0xcd);
    ck_assert_uint_eq(d[31], 0xd0);
    free(million);
}
END_TEST

START_TEST(test_utf8)
{
    static const char *bad[] = { "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                 "\x80",     "\xc3",         "\xff" };
    struct buf out = BUF_INIT;
    uint32_t cp;
    char enc[4];
    size_t i;

    ck_assert_uint_eq(utf8_decode("\xc3\xa9", 2, &cp), 2);
    ck_assert_uint_eq(cp, 0xe9);
    ck_assert_uint_eq(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0x1f600);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_uint_eq(utf8_decode(bad[i], strlen(bad[i]), &cp), 0);
    ck_assert_uint_eq(utf8_encode(0x20ac, enc), 3);
    ck_assert_int_eq(memcmp(enc, "\xe2\x82\xac", 3), 0);
    ck_assert_uint_eq(utf8_valid_prefix("plain ascii text\xff", 17), 16);
    ck_assert_uint_eq(utf8_repair("a\xffz\xc3\xa9\xc3", 6, &out), 2);
    ck_assert_str_eq(buf_cstr(&out), "a\xef\xbf\xbdz\xc3\xa9\xef\xbf\xbd");
    buf_release(&out);
}
END_TEST

START_TEST(test_file_read_limits)
{
    char path[4200];
    struct buf b = BUF_INIT;
    struct rag_err err = { 0 };
    const char *dir = test_tmpdir();

    snprintf(path, sizeof(path), "%s/f.txt", dir);
    test_write_file(path, "hello world", 11);
    ck_assert_int_eq(file_read(path, 0, &b, &err), 0);
    ck_assert_str_eq(buf_cstr(&b), "hello world");
    buf_reset(&b);
    ck_assert_int_eq(file_read(path, 5, &b, &err), RAG_EINVAL);
    ck_assert_msg(strstr(err.msg, "f.txt") != NULL, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/missing", dir);
    ck_assert_int_eq(file_read(path, 0, &b, &err), RAG_EIO);
    ck_assert_msg(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    ck_assert_int_eq(file_mkdirs(path, &err), 0);
    ck_assert(file_exists(path));
    snprintf(path, sizeof(path), "%s/atomic", dir);
    ck_assert_int_eq(file_write_atomic(path, "xyz", 3, &err), 0);
    buf_reset(&b);
    ck_assert_int_eq(file_read(path, 0, &b, &err), 0);
    ck_assert_str_eq(buf_cstr(&b), "xyz");
    buf_release(&b);
    test_rmtree(dir);
}
END_TEST

struct walk_log {
    struct buf files, problems;
};

static int log_visit(void *ctx, const char *path)
{
    struct walk_log *l = ctx;

    buf_appendf(&l->files, "%s\n", strrchr(path, '/') + 1);
    return 0;
}

static void log_problem(void *ctx, const char *path, const char *what)
{
    struct walk_log *l = ctx;

    buf_appendf(&l->problems, "%s: %s\n", strrchr(path, '/') + 1, what);
}

START_TEST(test_walk_sorted_and_loops)
{
    char p[4200], root[2048];
    struct walk_log log = { BUF_INIT, BUF_INIT };
    struct file_walk w = { log_visit, log_problem, &log };
    struct rag_err err = { 0 };
    const char *roots[1] = { root };

    snprintf(root, sizeof(root), "%s", test_tmpdir());
    snprintf(p, sizeof(p), "%s/sub", root);
    ck_assert_int_eq(file_mkdirs(p, &err), 0);
    snprintf(p, sizeof(p), "%s/b.txt", root);
    test_write_file(p, "b", 1);
    snprintf(p, sizeof(p), "%s/a.txt", root);
    test_write_file(p, "a", 1);
    snprintf(p, sizeof(p), "%s/.hidden", root);
    test_write_file(p, "h", 1);
    snprintf(p, sizeof(p), "%s/sub/c.md", root);
    test_write_file(p, "c", 1);
    snprintf(p, sizeof(p), "%s/sub/loop", root);
    ck_assert_int_eq(symlink(root, p), 0);
    ck_assert_int_eq(file_walk(roots, 1, &w, &err), 0);
    ck_assert_str_eq(buf_cstr(&log.files), "a.txt\nb.txt\nc.md\n");
    ck_assert_str_eq(buf_cstr(&log.problems), "loop: directory already visited (symlink loop)\n");
    buf_release(&log.files);
    buf_release(&log.problems);
    test_rmtree(root);
}
END_TEST

START_TEST(test_walk_missing_root)
{
    struct walk_log log = { BUF_INIT, BUF_INIT };
    struct file_walk w = { log_visit, log_problem, &log };
    struct rag_err err = { 0 };
    const char *roots[1] = { "/nonexistent/rag/root" };

    ck_assert_int_eq(file_walk(roots, 1, &w, &err), RAG_EIO);
    ck_assert_str_eq(err.msg, "'/nonexistent/rag/root': No such file or directory");
}
END_TEST

static Suite *base_suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_err_messages);
    tcase_add_test(tc, test_buf);
    tcase_add_test(tc, test_arena);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_file_read_limits);
    tcase_add_test(tc, test_walk_sorted_and_loops);
    tcase_add_test(tc, test_walk_missing_root);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(base_suite)
