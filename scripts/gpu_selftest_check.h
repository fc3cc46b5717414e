/*
 * scripts/gpu_selftest_check.h - a stand-in for <check.h>, so that
 * scripts/gpu_selftest.sh can build the gpu suites (tests/test_gpu*.c and
 * tests/gputest.c) unchanged on a GPU host that has nvcc and gcc but not the
 * Check library. It covers the part of Check's API that they use, plus
 * test_run_suite() and test_probe() from tests/testutil.c, defined weak so
 * that every file of a program may include this header.
 *
 * Like Check in its default mode, every test runs in its own forked process
 * (checked fixtures included) under an alarm of the case's timeout; a failed
 * assertion prints file:line and the message and ends that process. Each
 * test prints one PASS or FAIL line on stdout. CK_RUN_CASE=<name> runs one
 * case and CK_TIMEOUT_MULTIPLIER=<n> stretches the timeouts, as in Check. The selftest script copies this file to <build>/include/check.h.
 */
#ifndef RAG_GPU_SELFTEST_CHECK_H
#define RAG_GPU_SELFTEST_CHECK_H

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHIM_MAX_TESTS 64

struct shim_test {
    const char *name;
    void (*fn)(int);
};

/* Check's API names these types with typedefs; the shim keeps the names. */
typedef struct shim_tcase {
    const char *name;
    const struct shim_test *test[SHIM_MAX_TESTS];
    int n_tests;
    void (*setup)(void);
    void (*teardown)(void);
    unsigned timeout_s;
    struct shim_tcase *next;
} TCase;

typedef struct shim_suite {
    const char *name;
    TCase *first, *last;
} Suite;

#define START_TEST(t)                                    \
 static void t##_fn(int _i);                             \
 static const struct shim_test t##_def = { #t, t##_fn }; \
 static const struct shim_test *const t = &t##_def;      \
 static void t##_fn(int _i __attribute__((unused)))
#define END_TEST

static inline Suite *suite_create(const char *name)
{
    Suite *s = calloc(1, sizeof(*s));

    if (!s)
        abort();
    s->name = name;
    return s;
}

static inline TCase *tcase_create(const char *name)
{
    TCase *tc = calloc(1, sizeof(*tc));

    if (!tc)
        abort();
    tc->name = name;
    tc->timeout_s = 4;
    return tc;
}

static inline void suite_add_tcase(Suite *s, TCase *tc)
{
    if (s->last)
        s->last->next = tc;
    else
        s->first = tc;
    s->last = tc;
}

static inline void tcase_add_test(TCase *tc, const struct shim_test *t)
{
    if (tc->n_tests == SHIM_MAX_TESTS)
        abort();
    tc->test[tc->n_tests++] = t;
}

static inline void tcase_add_checked_fixture(TCase *tc, void (*setup)(void), void (*teardown)(void))
{
    tc->setup = setup;
    tc->teardown = teardown;
}

static inline void tcase_set_timeout(TCase *tc, double seconds)
{
    tc->timeout_s = seconds < 1 ? 1 : (unsigned)seconds;
}

__attribute__((format(printf, 3, 4), noreturn)) static inline void
shim_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

/* ck_assert_msg prints the expression (which may hold a '%'), then the message. */
#define ck_abort_msg(...) shim_fail(__FILE__, __LINE__, __VA_ARGS__)
#define ck_assert_msg(expr, ...)                                    \
 ((expr) ? (void)0 :                                                \
           (fprintf(stderr, "    assertion '%s' failed:\n", #expr), \
            shim_fail(__FILE__, __LINE__, __VA_ARGS__)))
#define ck_assert(expr) ((expr) ? (void)0 : shim_fail(__FILE__, __LINE__, "'%s' failed", #expr))

#define SHIM_CMP(type, fmt, X, OP, Y)                                                          \
 do {                                                                                          \
  type x_ = (X);                                                                               \
  type y_ = (Y);                                                                               \
  if (!(x_ OP y_))                                                                             \
   shim_fail(__FILE__, __LINE__, "'%s %s %s' failed: %" fmt " vs %" fmt, #X, #OP, #Y, x_, y_); \
 } while (0)
#define ck_assert_int_eq(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, ==, Y)
#define ck_assert_int_ne(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, !=, Y)
#define ck_assert_int_lt(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, <, Y)
#define ck_assert_int_le(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, <=, Y)
#define ck_assert_int_gt(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, >, Y)
#define ck_assert_int_ge(X, Y)   SHIM_CMP(intmax_t, PRIdMAX, X, >=, Y)
#define ck_assert_uint_eq(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, ==, Y)
#define ck_assert_uint_ne(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, !=, Y)
#define ck_assert_uint_lt(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, <, Y)
#define ck_assert_uint_le(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, <=, Y)
#define ck_assert_uint_gt(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, >, Y)
#define ck_assert_uint_ge(X, Y)  SHIM_CMP(uintmax_t, PRIuMAX, X, >=, Y)
#define ck_assert_ptr_eq(X, Y)   SHIM_CMP(const void *, "p", X, ==, Y)
#define ck_assert_ptr_ne(X, Y)   SHIM_CMP(const void *, "p", X, !=, Y)
#define ck_assert_ptr_null(X)    ck_assert_ptr_eq(X, NULL)
#define ck_assert_ptr_nonnull(X) ck_assert_ptr_ne(X, NULL)
#define ck_assert_str_eq(X, Y)                                                  \
 do {                                                                           \
  const char *x_ = (X), *y_ = (Y);                                              \
  if (!x_ || !y_ || strcmp(x_, y_) != 0)                                        \
   shim_fail(__FILE__, __LINE__, "'%s == %s' failed: \"%s\" vs \"%s\"", #X, #Y, \
             x_ ? x_ : "(null)", y_ ? y_ : "(null)");                           \
 } while (0)

/* CK_TIMEOUT_MULTIPLIER, as Check reads it (a positive integer), else 1. */
static inline unsigned shim_timeout_multiplier(void)
{
    const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
    unsigned m = 0;

    while (s && *s >= '0' && *s <= '9' && m < 1000)
        m = m * 10 + (unsigned)(*s++ - '0');
    return m ? m : 1;
}

/* Run one test in a child process; returns 1 when it passed. */
static inline int shim_run_one(const TCase *tc, const struct shim_test *t)
{
    struct timespec t0, t1;
    int status = 0;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        alarm(tc->timeout_s * shim_timeout_multiplier());
        if (tc->setup)
            tc->setup();
        t->fn(0);
        if (tc->teardown)
            tc->teardown();
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok)
        printf("PASS %s/%s (%.2f s)\n", tc->name, t->name, s);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL %s/%s: timeout after %u s\n", tc->name, t->name,
               tc->timeout_s * shim_timeout_multiplier());
    else if (WIFSIGNALED(status))
        printf("FAIL %s/%s: killed by signal %d\n", tc->name, t->name, WTERMSIG(status));
    else
        printf("FAIL %s/%s (%.2f s)\n", tc->name, t->name, s);
    fflush(stdout);
    return ok;
}

int test_run_suite(Suite *s);
int test_probe(int (*probe)(void));

__attribute__((weak)) int test_run_suite(Suite *s)
{
    const char *only = getenv("CK_RUN_CASE");
    int passed = 0, failed = 0;
    TCase *tc, *next;

    for (tc = s->first; tc; tc = tc->next) {
        if (only && *only && strcmp(only, tc->name) != 0)
            continue;
        for (int i = 0; i < tc->n_tests; i++) {
            if (shim_run_one(tc, tc->test[i]))
                passed++;
            else
                failed++;
        }
    }
    printf("%s: %d passed, %d failed\n", s->name, passed, failed);
    for (tc = s->first; tc; tc = next) {
        next = tc->next;
        free(tc);
    }
    free(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* As in tests/testutil.c: probe() in a child; 1 when it returned 0, 0 when 2, else -1. */
__attribute__((weak)) int test_probe(int (*probe)(void))
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

#endif
