/*
 * base/arena.c - bump allocator over a list of blocks (git mem-pool, nginx
 * pools). Everything is freed at once by arena_release; a request larger
 * than the block size gets a block of its own.
 */
#include "base/base.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
}

static struct arena_block *new_block(size_t size)
{
    struct arena_block *b = xmalloc(sizeof(*b) + size);

    b->next = NULL;
    b->used = 0;
    b->size = size;
    return b;
}

void *arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    struct arena_block *b = a->head;
    size_t at;

    if (n == 0)
        n = 1;
    if (b) {
        at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->size && n <= b->size - at) {
            b->used = at + n;
            return b->data + at;
        }
    }
    if (n > a->block_size / 2) {
        /* Big requests get their own block behind the current head. */
        b = new_block(n);
        b->used = n;
        if (a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            a->head = b;
        }
        return b->data;
    }
    b = new_block(a->block_size);
    b->next = a->head;
    a->head = b;
    b->used = n;
    return b->data;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    size_t total;
    void *p;

    if (__builtin_mul_overflow(n, size, &total))
        abort();
    p = arena_alloc(a, total);
    memset(p, 0, total);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_release(struct arena *a)
{
    struct arena_block *b = a->head, *next;

    while (b) {
        next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
