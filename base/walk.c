/*
 * base/walk.c - depth-first walk over files below a set of roots, in sorted
 * order, following symlinks. Every directory is entered once: its (device,
 * inode) pair goes into a small hash set, so a symlink loop (or a second
 * link to a directory already walked) is reported once and skipped.
 */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dir_id {
    dev_t dev;
    ino_t ino;
};

struct seen {
    struct dir_id *slot; /* open addressing; ino == 0 marks an empty slot */
    size_t n, cap;
};

static size_t slot_of(const struct seen *s, struct dir_id id)
{
    size_t h = ((size_t)id.ino * 0x9e3779b97f4a7c15ull) ^ (size_t)id.dev;

    return h & (s->cap - 1);
}

static void seen_grow(struct seen *s);

/* Insert id; returns false when it was already present. */
static bool seen_add(struct seen *s, struct dir_id id)
{
    size_t i;

    if ((s->n + 1) * 2 > s->cap)
        seen_grow(s);
    for (i = slot_of(s, id);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i].ino) {
            s->slot[i] = id;
            s->n++;
            return true;
        }
        if (s->slot[i].ino == id.ino && s->slot[i].dev == id.dev)
            return false;
    }
}

static void seen_grow(struct seen *s)
{
    struct seen bigger = { xcalloc(s->cap ? s->cap * 2 : 64, sizeof(struct dir_id)), 0,
                           s->cap ? s->cap * 2 : 64 };
    size_t i;

    for (i = 0; i < s->cap; i++)
        if (s->slot[i].ino)
            seen_add(&bigger, s->slot[i]);
    free(s->slot);
    *s = bigger;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void report(const struct file_walk *w, const char *path, const char *what)
{
    if (w->problem)
        w->problem(w->ctx, path, what);
}

static int walk_path(const char *path, const struct file_walk *w, struct seen *seen,
                     struct rag_err *err);

static int walk_dir(const char *path, const struct file_walk *w, struct seen *seen,
                    struct rag_err *err)
{
    struct dirent **ent = NULL;
    struct buf child = BUF_INIT;
    int n = scandir(path, &ent, NULL, by_name), i, rc = 0;

    if (n < 0) {
        report(w, path, strerror(errno));
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!rc && ent[i]->d_name[0] != '.') {
            buf_reset(&child);
            buf_appendf(&child, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                        ent[i]->d_name);
            rc = walk_path(child.data, w, seen, err);
        }
        free(ent[i]);
    }
    free(ent);
    buf_release(&child);
    return rc;
}

static int walk_path(const char *path, const struct file_walk *w, struct seen *seen,
                     struct rag_err *err)
{
    struct stat st;

    if (stat(path, &st)) {
        report(w, path, errno == ELOOP ? "symlink loop" : strerror(errno));
        return 0;
    }
    if (S_ISREG(st.st_mode))
        return w->visit(w->ctx, path);
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (!seen_add(seen, (struct dir_id){ st.st_dev, st.st_ino ? st.st_ino : 1 })) {
        report(w, path, "directory already visited (symlink loop)");
        return 0;
    }
    return walk_dir(path, w, seen, err);
}

int file_walk(const char *const *roots, size_t n_roots, const struct file_walk *w,
              struct rag_err *err)
{
    struct seen seen = { 0 };
    struct stat st;
    size_t i;
    int rc = 0;

    for (i = 0; i < n_roots && !rc; i++) {
        if (stat(roots[i], &st)) {
            rc = rag_errno(err, "'%s'", roots[i]);
            break;
        }
        rc = walk_path(roots[i], w, &seen, err);
    }
    free(seen.slot);
    return rc;
}
