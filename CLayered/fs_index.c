/*
 * fs_index.c -- the arena and the in-memory index (key -> offset) of a
 * file store.
 */

#include "fs_int.h"

/*
 * fs_arena_init, fs_arena_destroy --
 *     An empty arena; free every chunk at once.
 */
void
fs_arena_init(struct fs_arena *a)
{
    memset(a, 0, sizeof(*a));
    a->next_size = ARENA_CHUNK_MIN;
}

void
fs_arena_destroy(struct fs_arena *a)
{
    struct arena_chunk *c, *next;

    for (c = a->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    fs_arena_init(a);
}

/*
 * arena_alloc --
 *     Bump-allocate size bytes (a multiple of 8), reusing a node of the
 *     same size from the free list first.  NULL on ENOMEM.
 */
static void *
arena_alloc(struct fs_arena *a, size_t size)
{
    struct arena_chunk *c;
    struct fs_node *n;
    size_t csize;
    void *p;

    if (size <= ARENA_FREE_MAX && (n = a->free[size / 8]) != NULL) {
        a->free[size / 8] = RB_LEFT(n, rb);
        return (n);
    }
    if (size > a->avail) {
        if (size > a->next_size / 4) {
            /* Oversized: its own chunk; the current one stays current. */
            if ((c = malloc(sizeof(*c) + size)) == NULL)
                return (NULL);
            c->size = size;
            c->next = a->chunks;
            a->chunks = c;
            a->bytes += sizeof(*c) + size;
            return (c->data);
        }
        csize = a->next_size;
        if ((c = malloc(csize)) == NULL)
            return (NULL);
        c->size = csize;
        c->next = a->chunks;
        a->chunks = c;
        a->bytes += csize;
        a->cur = c->data;
        a->avail = csize - sizeof(*c);
        if (a->next_size < ARENA_CHUNK_MAX)
            a->next_size *= 2;
    }
    p = a->cur;
    a->cur += size;
    a->avail -= size;
    return (p);
}

/*
 * fs_node_alloc --
 *     A node for a key, from the arena, not yet linked.  NULL on ENOMEM.
 */
struct fs_node *
fs_node_alloc(struct fs_arena *a, const void *key, size_t klen)
{
    struct fs_node *n;

    if ((n = arena_alloc(a, node_size(klen))) == NULL)
        return (NULL);
    memcpy(n->key, key, klen);
    n->kf = (uint32_t)klen;
    n->off = 0;
    n->vlen = 0;
    return (n);
}

/*
 * fs_node_free --
 *     Return an unlinked node to its arena's free list (nodes too large
 *     for the lists stay unused until the arena is rebuilt).
 */
void
fs_node_free(struct fs_arena *a, struct fs_node *n)
{
    size_t size = node_size(NODE_KLEN(n));

    if (size <= ARENA_FREE_MAX) {
        RB_LEFT(n, rb) = a->free[size / 8];
        a->free[size / 8] = n;
    }
}

/*
 * fs_idx_find --
 *     The node holding key, or NULL and (if parentp) the insertion point:
 *     the parent and the side (negative: left).
 */
struct fs_node *
fs_idx_find(struct fs_tree *t, const void *key, size_t klen,
            struct fs_node **parentp, int *dirp)
{
    struct fs_node *n = RB_ROOT(t), *parent = NULL;
    int c = 0;

    while (n != NULL) {
        c = fs_key_cmp(key, klen, n->key, NODE_KLEN(n));
        if (c == 0)
            return (n);
        parent = n;
        n = c < 0 ? RB_LEFT(n, rb) : RB_RIGHT(n, rb);
    }
    if (parentp != NULL) {
        *parentp = parent;
        *dirp = c;
    }
    return (NULL);
}

/*
 * fs_idx_link --
 *     Link a node at an insertion point found by fs_idx_find (saves the second
 *     descent RB_INSERT would make) and rebalance.
 */
void
fs_idx_link(struct fs_tree *t, struct fs_node *n, struct fs_node *parent,
            int dir)
{
    RB_SET(n, parent, rb);
    if (parent == NULL)
        RB_ROOT(t) = n;
    else if (dir < 0)
        RB_LEFT(parent, rb) = n;
    else
        RB_RIGHT(parent, rb) = n;
    fs_tree_RB_INSERT_COLOR(t, n);
}

/*
 * fs_idx_search --
 *     The node for a relational search (FS_EQ, FS_GE, FS_GT, FS_LE, FS_LT)
 *     in one descent.
 */
struct fs_node *
fs_idx_search(struct fs_tree *t, const void *key, size_t klen,
              enum fs_seek_mode mode)
{
    struct fs_node *n = RB_ROOT(t), *best = NULL;
    int c;

    while (n != NULL) {
        c = fs_key_cmp(key, klen, n->key, NODE_KLEN(n));
        switch (mode) {
        case FS_EQ:
            if (c == 0)
                return (n);
            n = c < 0 ? RB_LEFT(n, rb) : RB_RIGHT(n, rb);
            break;
        case FS_GE:
        case FS_GT:
            if (c < 0 || (c == 0 && mode == FS_GE)) {
                best = n;
                n = RB_LEFT(n, rb);
            } else
                n = RB_RIGHT(n, rb);
            break;
        default: /* FS_LE, FS_LT */
            if (c > 0 || (c == 0 && mode == FS_LE)) {
                best = n;
                n = RB_RIGHT(n, rb);
            } else
                n = RB_LEFT(n, rb);
            break;
        }
    }
    return (best);
}

/*
 * fs_idx_set --
 *     Point a node at a new record, keeping live bytes in step.  is_new:
 *     the node is not yet counted.
 */
void
fs_idx_set(fs_file *f, struct fs_node *n, bool is_new, uint64_t off,
           uint32_t vlen, bool tomb)
{
    if (!is_new)
        f->live_bytes -= node_rec_size(n);
    n->off = off;
    n->vlen = vlen;
    n->kf = (n->kf & NODE_KLEN_MASK) | (tomb ? NODE_TOMB : 0);
    f->live_bytes += node_rec_size(n);
}

/*
 * fs_idx_remove --
 *     Unlink a node (a stable delete); cached positions must re-search.
 */
void
fs_idx_remove(fs_file *f, struct fs_node *n)
{
    f->live_bytes -= node_rec_size(n);
    fs_tree_RB_REMOVE(&f->tree, n);
    fs_node_free(&f->arena, n);
    --f->entries;
    ++f->gen;
}

/*
 * fs_idx_reset --
 *     Drop the whole index (clear): every node goes with the arena.
 */
void
fs_idx_reset(fs_file *f)
{
    fs_arena_destroy(&f->arena);
    RB_INIT(&f->tree);
    f->entries = 0;
    f->live_bytes = 0;
    ++f->gen;
    f->rewrite_gen = f->gen;
}

/*
 * fs_lsn_raise --
 *     Raise the connection's LSN counter to at least lsn (CAS loop: other
 *     files may raise it concurrently).
 */
void
fs_lsn_raise(_Atomic uint64_t *counter, uint64_t lsn)
{
    uint64_t cur = atomic_load(counter);

    while (cur < lsn && !atomic_compare_exchange_weak(counter, &cur, lsn))
        ;
}
