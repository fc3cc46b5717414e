/*
 * base/base.h - primitives every folder uses: errors, allocation, growable
 * bytes and arrays, arenas, logging, number parsing, SHA-256, UTF-8 and
 * file helpers.
 *
 * Errors: fallible functions return 0 or a negative RAG_E* code and fill the
 * struct rag_err passed last. Out of memory is fatal (x* allocators abort).
 * Library folders never print; only RAG_LOG_DEBUG is allowed there.
 */
#ifndef BASE_BASE_H
#define BASE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---- */

enum rag_code {
    RAG_OK = 0,
    RAG_EINVAL = -1,    /* bad argument or malformed user input */
    RAG_EIO = -2,       /* OS or file error; message includes strerror */
    RAG_EFORMAT = -3,   /* corrupt or unsupported model/index/dataset file */
    RAG_ENOTFOUND = -4, /* a named thing does not exist */
    RAG_EDB = -5,       /* SQLite */
    RAG_EINDEX = -6,    /* FAISS */
    RAG_EGPU = -7,      /* CUDA runtime */
    RAG_ENOSYS = -8,    /* feature not compiled in (e.g. built without gpu) */
};

struct rag_err {
    int code;
    char msg[256];
};

#if defined(__GNUC__)
# define RAG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
# define RAG_PRINTF(a, b)
#endif

/* Set err (may be NULL) to code and the formatted message; returns code. */
int rag_errf(struct rag_err *err, int code, const char *fmt, ...) RAG_PRINTF(3, 4);
/* RAG_EIO with "<message>: strerror(errno)"; returns RAG_EIO. */
int rag_errno(struct rag_err *err, const char *fmt, ...) RAG_PRINTF(2, 3);
/* Turn the message into "<prefix>: <old message>"; the code is kept. */
void rag_err_prefix(struct rag_err *err, const char *fmt, ...) RAG_PRINTF(2, 3);
/* "EINVAL", "EIO", ...: stable words for JSON output. */
const char *rag_code_name(int code);

/* ---- allocation (never returns NULL; aborts on out of memory) ---- */

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xmalloc_array(size_t n, size_t size); /* aborts on n * size overflow */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Ensure room for need elements of size bytes in p (capacity *cap); grows by 1.5x. */
void *grow_array(void *p, size_t *cap, size_t need, size_t size);
#define VEC_RESERVE(v, need) \
 ((v)->item = grow_array((v)->item, &(v)->cap, (need), sizeof(*(v)->item)))

/* ---- growable bytes: content is NUL-terminated after the first append ---- */

struct buf {
    char *data;
    size_t len, cap;
    size_t max; /* 0 = unlimited; buf_append_checked refuses to grow past it */
};
#define BUF_INIT \
 {               \
  0              \
 }

void buf_append(struct buf *b, const void *p, size_t n);
void buf_appends(struct buf *b, const char *s);
void buf_appendc(struct buf *b, char c);
void buf_appendf(struct buf *b, const char *fmt, ...) RAG_PRINTF(2, 3);
void buf_vappendf(struct buf *b, const char *fmt, va_list ap);
/* Like buf_append but returns RAG_EINVAL (buffer unchanged) past b->max. */
int buf_append_checked(struct buf *b, const void *p, size_t n, struct rag_err *err);
const char *buf_cstr(const struct buf *b);        /* "" when empty */
void buf_reset(struct buf *b);                    /* len = 0, keeps memory */
char *buf_detach(struct buf *b, size_t *ret_len); /* caller free()s; b is reset */
void buf_release(struct buf *b);

/* ---- arena: bump allocator, everything freed at once ---- */

struct arena_block;
struct arena {
    struct arena_block *head;
    size_t block_size;
};

void arena_init(struct arena *a, size_t block_size); /* 0 = 64 KiB */
void *arena_alloc(struct arena *a, size_t n);        /* max_align_t aligned, never NULL */
void *arena_calloc(struct arena *a, size_t n, size_t size);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
void arena_release(struct arena *a);

/* ---- logging (stderr). Library folders use RAG_LOG_DEBUG only. ---- */

enum rag_log_level { RAG_LOG_ERROR, RAG_LOG_WARN, RAG_LOG_INFO, RAG_LOG_DEBUG };

void rag_log_set_level(enum rag_log_level level);
enum rag_log_level rag_log_get_level(void);
void rag_log(enum rag_log_level level, const char *fmt, ...) RAG_PRINTF(2, 3);
#define RAG_DEBUG(...) rag_log(RAG_LOG_DEBUG, __VA_ARGS__)

/* ---- number parsing: rejects empty input, trailing junk, overflow, range ---- */

int parse_size(const char *s, size_t min, size_t max, size_t *ret);
int parse_int(const char *s, long min, long max, long *ret);
int parse_double(const char *s, double min, double max, double *ret);

/* ---- SHA-256 ---- */

struct sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* Hex digest of p[0..n) into out (65 bytes with the NUL). */
void sha256_hex(const void *p, size_t n, char out[65]);

/* ---- UTF-8 ---- */

/*
 * Decode one code point from s[0..n). Returns its length in bytes (1..4) and
 * sets *cp, or 0 for an invalid or truncated sequence (overlong forms,
 * surrogates and values above U+10FFFF are invalid).
 */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encode cp into out (at least 4 bytes); returns the length. */
size_t utf8_encode(uint32_t cp, char out[4]);
/* Length of the longest valid UTF-8 prefix of s[0..n). */
size_t utf8_valid_prefix(const char *s, size_t n);
/*
 * Append s[0..n) to out with each invalid byte replaced by U+FFFD. Returns
 * the number of replacements.
 */
size_t utf8_repair(const char *s, size_t n, struct buf *out);

/* ---- files ---- */

/*
 * Read the whole file at path into out (appended). Fails with RAG_EINVAL when
 * it is larger than max bytes (0 = no limit), RAG_EIO otherwise. Messages
 * name the path.
 */
int file_read(const char *path, size_t max, struct buf *out, struct rag_err *err);
/* Write p[0..n) to path through a temporary file, fsync and rename. */
int file_write_atomic(const char *path, const void *p, size_t n, struct rag_err *err);
/* mkdir -p with mode 0755. */
int file_mkdirs(const char *path, struct rag_err *err);
bool file_exists(const char *path);

/*
 * Walk files under each root (a file root is visited itself). Regular files
 * are passed to visit() with their path; a directory reached twice through
 * symlinks (a loop) and unreadable entries are reported through problem() and
 * skipped. Entries are visited in sorted order; hidden entries (".name") are
 * skipped below a root. A non-zero return from visit() stops the walk and is
 * returned.
 */
struct file_walk {
    int (*visit)(void *ctx, const char *path);
    void (*problem)(void *ctx, const char *path, const char *what);
    void *ctx;
};
int file_walk(const char *const *roots, size_t n_roots, const struct file_walk *w,
              struct rag_err *err);

/* ---- time ---- */

double time_now(void); /* monotonic seconds */

/* Progress callback for long library operations: done of total units. */
typedef void rag_progress_fn(void *ctx, size_t done, size_t total);

/* System headers that declare banned functions come first, so banned.h can win. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/banned.h"

#endif
