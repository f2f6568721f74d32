/*
 * fuzz_api.c -- sequences of API calls checked against a model
 * (libFuzzer target).
 *
 * The input is a sequence of calls, run on the simulated disk (home "/h")
 * against five tables ("a", "b.1", "c-2", "D_3", "e"):
 *
 *   byte 0: the first open's configuration (the REOPEN operand too)
 *     bit 0     leader (else follower)
 *     bits 1-2  sync level, value % 3 (LAYERED_SYNC_NONE, _WRITE, _FSYNC)
 *     bit 3     two drain threads (else one)
 *     bits 4-5  drain policy (LAYERED_DRAIN_*)
 *     bit 6     a budget of 4 open handles (RLIMIT_NOFILE is lowered to
 *               8 while the connection opens, which sizes the budget), so
 *               idle handles are swept and drains run in small batches
 *   then calls, until the input ends: a byte, the call (value % 22), and
 *   its operands, one byte each (an operand past the end reads as 0):
 *     T  a table, value % 5
 *     K  a key, two bytes k0 k1: length {1,1,2,2,3,4,8,300}[k0 & 7]; its
 *        first four bytes chosen by the bit pairs of k1 from
 *        {0x00, 'a', 'b', 0xff}, the rest by bits 3-4 of k0 from the same
 *     V  a value, two bytes v0 v1: v0 < 0xf0 gives v0 % 48 bytes, else
 *        (v0 - 0xef) * 2 KiB; byte i is v1 + 7 i + i / 256
 *      0 CREATE T f      config by f & 3: NULL, "exclusive=false",
 *                        "exclusive=true", "" (with f & 4: a bad config)
 *      1 DROP T f        f bit 0 LAYERED_DROP_FORCE, bit 1
 *                        LAYERED_DROP_CHECKPOINT_WAIT, bits 2-4 all set:
 *                        an unknown flag too
 *      2 INSERT T K V    through the table's cursor if one is open, else
 *                        through a cursor of its own
 *      3 REMOVE T K      likewise
 *      4 OPEN T          (re)open the table's cursor
 *      5 CLOSE T         close it
 *      6 NEXT T          7 PREV T (the cursor is opened first if need be)
 *      8 SEARCH T K      9 SEARCH_NEAR T K
 *     10 RESET T        11 CHECKPOINT
 *     12 STEP_UP        13 STEP_DOWN
 *     14 ARCHIVE T      15 UNARCHIVE T       16 OFFLOAD T
 *     17 REOPEN c       close, open again with configuration byte c
 *     18 STATE T        19 LIST
 *     20 SCAN T         read the whole table forwards and backwards, and
 *                        its two constituents through file: cursors
 *     21 MISC s T x y   s % 8: 0 STATS, 1 BULK (insert x % 16 + 1 keys,
 *                        key bytes (x, y + j), value (y, x)), 2..7 a call
 *                        with a bad argument (s and x choose which)
 *   After the last call every table is scanned, the database closed and
 *   opened again (everything must still be there) and scanned again.
 *
 * The model keeps each table's two constituents (so what a file: cursor
 * reads is checked too) and derives the layered view from them:
 *   - a table is absent, or exists in a state: ACTIVE, ARCHIVED or
 *     OFFLOADED; create makes it ACTIVE and empty (EEXIST if it exists,
 *     0 with exclusive=false); drop makes it absent (ENOENT if absent
 *     without FORCE; EBUSY while our cursor is open on it);
 *   - a follower's insert puts the row in the ingest, its remove puts an
 *     ingest tombstone (LAYERED_NOTFOUND if the key is not visible); a
 *     leader's insert puts the row in the stable, its remove deletes it
 *     from the stable (LAYERED_NOTFOUND if not visible or not in the
 *     stable);
 *   - the view is the ingest over the stable, a tombstone hiding the key;
 *   - a step-up drains every ACTIVE or ARCHIVED table whose ingest holds
 *     entries: each ingest entry goes to the stable unless the stable's
 *     entry for the key is as new or newer (every write gets the next
 *     sequence number, as the engine's LSN), a tombstone becoming a delete
 *     (none if the stable lacks the key); the ingest is then empty.  The
 *     step-up's drain counts (tables, rows, bytes) must match;
 *   - archive: ACTIVE -> ARCHIVED, else no change (ENOENT if absent);
 *     unarchive: ARCHIVED -> ACTIVE, OFFLOADED -> ACTIVE with its stable
 *     rows and an empty ingest; offload: ARCHIVED -> OFFLOADED unless our
 *     cursor is open on it or its ingest holds entries (EBUSY), 0 if
 *     OFFLOADED, LAYERED_NOT_ARCHIVED if ACTIVE; an OFFLOADED table cannot
 *     be opened (ENOENT);
 *   - a cursor has no snapshot: its position is a key, and next/prev/
 *     search/search_near see the view as it is; an insert or remove
 *     through it unpositions it; a reopen closes it;
 *   - the statistics count exactly the successful calls that changed
 *     something, and database_size after a checkpoint or an open is the
 *     stable files' sizes on the disk plus the buffer;
 *   - no call panics; a close leaves no descriptor or mapping open.
 * A mismatch prints the recent calls and aborts, so the fuzzer reports it.
 * FUZZ_TRACE=1 prints every call as it is made.
 */
#include <sys/resource.h>

#include "fuzz_common.h"

#define NT 5
#define BAD_NAME_LEN 201

static const char *const table_names[NT] = {"a", "b.1", "c-2", "D_3", "e"};

enum op {
    OP_CREATE,
    OP_DROP,
    OP_INSERT,
    OP_REMOVE,
    OP_OPEN,
    OP_CLOSE,
    OP_NEXT,
    OP_PREV,
    OP_SEARCH,
    OP_SEARCH_NEAR,
    OP_RESET,
    OP_CHECKPOINT,
    OP_STEP_UP,
    OP_STEP_DOWN,
    OP_ARCHIVE,
    OP_UNARCHIVE,
    OP_OFFLOAD,
    OP_REOPEN,
    OP_STATE,
    OP_LIST,
    OP_SCAN,
    OP_MISC,
    OP_COUNT
};

/* ---- the model ---- */

struct ent {
    unsigned char *key;
    size_t klen;
    bool tomb;
    uint8_t vseed;
    uint32_t vlen;
    uint64_t lsn;
};

/* Entries sorted by key. */
struct layer {
    struct ent *v;
    size_t n, cap;
};

struct mtable {
    bool exists;
    int state;
    struct layer ing, stb;
    layered_cursor *cur;
    bool positioned;
    unsigned char *pkey;
    size_t pklen;
};

struct counts {
    uint64_t creates, drops, drop_busy, checkpoints, step_ups, step_downs,
        inserts, removes, archives, unarchives, restores, offloads,
        tables_drained, rows_drained, bytes_drained;
};

static struct {
    struct mtable t[NT];
    int role;
    uint8_t cfg;
    uint64_t lsn;
    struct counts n;
    layered_conn *conn;
    layered_session *s;
} M;

static int
key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c != 0 ? c : al < bl ? -1 : al > bl ? 1 : 0;
}

/* The index of key in l, or where it would go (*found false). */
static size_t
layer_pos(const struct layer *l, const void *key, size_t klen, bool *found)
{
    size_t lo = 0, hi = l->n;

    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(l->v[mid].key, l->v[mid].klen, key, klen);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct ent *
layer_find(struct layer *l, const void *key, size_t klen)
{
    bool found;
    size_t i = layer_pos(l, key, klen, &found);

    return found ? &l->v[i] : NULL;
}

static void
layer_set(struct layer *l, const void *key, size_t klen, bool tomb,
          uint8_t vseed, uint32_t vlen, uint64_t lsn)
{
    bool found;
    size_t i = layer_pos(l, key, klen, &found);
    struct ent *e;

    if (!found) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            if ((l->v = realloc(l->v, l->cap * sizeof(*l->v))) == NULL)
                abort();
        }
        memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(*l->v));
        l->n++;
        e = &l->v[i];
        if ((e->key = malloc(klen)) == NULL)
            abort();
        memcpy(e->key, key, klen);
        e->klen = klen;
    } else
        e = &l->v[i];
    e->tomb = tomb;
    e->vseed = vseed;
    e->vlen = tomb ? 0 : vlen;
    e->lsn = lsn;
}

static void
layer_del(struct layer *l, const void *key, size_t klen)
{
    bool found;
    size_t i = layer_pos(l, key, klen, &found);

    if (!found)
        return;
    free(l->v[i].key);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(*l->v));
    l->n--;
}

static void
layer_clear(struct layer *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    l->n = 0;
}

static void
layer_free(struct layer *l)
{
    layer_clear(l);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* What a layered cursor sees for key: NULL if absent or hidden. */
static const struct ent *
visible(struct mtable *t, const void *key, size_t klen)
{
    const struct ent *e = layer_find(&t->ing, key, klen);

    if (e != NULL)
        return e->tomb ? NULL : e;
    return layer_find(&t->stb, key, klen);
}

/* The whole view in key order (into a buffer that is reused). */
static const struct ent **view_buf;
static size_t view_cap;

static const struct ent **
view_list(struct mtable *t, size_t *np)
{
    const struct ent **v;
    size_t i = 0, j = 0, n = 0;

    if (view_cap < t->ing.n + t->stb.n + 1) {
        view_cap = (t->ing.n + t->stb.n + 1) * 2;
        if ((view_buf = realloc(view_buf, view_cap * sizeof(*view_buf))) ==
            NULL)
            abort();
    }
    v = view_buf;
    while (i < t->ing.n || j < t->stb.n) {
        int c;
        if (i == t->ing.n)
            c = 1;
        else if (j == t->stb.n)
            c = -1;
        else
            c = key_cmp(t->ing.v[i].key, t->ing.v[i].klen, t->stb.v[j].key,
                        t->stb.v[j].klen);
        if (c <= 0) {
            if (!t->ing.v[i].tomb)
                v[n++] = &t->ing.v[i];
            i++;
            if (c == 0)
                j++;
        } else
            v[n++] = &t->stb.v[j++];
    }
    *np = n;
    return v;
}

/* The first visible key after (forward) or before key; from the edge
 * when key is NULL; key itself qualifies with inclusive. */
static const struct ent *
view_step(struct mtable *t, const void *key, size_t klen, bool forward,
          bool inclusive)
{
    size_t n;
    const struct ent **v = view_list(t, &n);

    if (forward) {
        for (size_t i = 0; i < n; i++) {
            int c = key == NULL ? 1 : key_cmp(v[i]->key, v[i]->klen, key, klen);
            if (c > 0 || (c == 0 && inclusive))
                return v[i];
        }
    } else
        for (size_t i = n; i > 0; i--) {
            int c = key == NULL ? -1
                                : key_cmp(v[i - 1]->key, v[i - 1]->klen, key,
                                          klen);
            if (c < 0 || (c == 0 && inclusive))
                return v[i - 1];
        }
    return NULL;
}

/* ---- input ---- */

static const uint8_t *in_p;
static size_t in_n, in_off;

static uint8_t
rd(void)
{
    return in_off < in_n ? in_p[in_off++] : 0;
}

static unsigned char keybuf[512];

static size_t
make_key(unsigned char *buf, uint8_t k0, uint8_t k1)
{
    static const size_t lens[8] = {1, 1, 2, 2, 3, 4, 8, 300};
    static const unsigned char alpha[4] = {0x00, 'a', 'b', 0xff};
    size_t len = lens[k0 & 7];

    for (size_t i = 0; i < len; i++)
        buf[i] = i < 4 ? alpha[(k1 >> (2 * i)) & 3] : alpha[(k0 >> 3) & 3];
    return len;
}

static uint32_t
val_len(uint8_t v0)
{
    return v0 < 0xf0 ? v0 % 48u : (uint32_t)(v0 - 0xef) * 2048u;
}

#define VAL_MAX (16 * 2048)

/* The value bytes of a seed (its first len bytes are the value of any
 * length): made once per seed, so neither a write nor a check builds one. */
static const unsigned char *
val_bytes(uint8_t seed)
{
    static unsigned char pat[256][VAL_MAX];
    static bool made[256];

    if (!made[seed]) {
        for (uint32_t i = 0; i < VAL_MAX; i++)
            pat[seed][i] = (unsigned char)(seed + 7 * i + i / 256);
        made[seed] = true;
    }
    return pat[seed];
}

/* ---- the trace ---- */

#define TRACE_KEEP 64
static char trace_ring[TRACE_KEEP][160];
static unsigned long trace_count;

static void
dump_trace(void)
{
    unsigned long from = trace_count > TRACE_KEEP ? trace_count - TRACE_KEEP : 0;

    fprintf(stderr, "the last calls (of %lu), role %s:\n", trace_count,
            M.role == LAYERED_ROLE_LEADER ? "leader" : "follower");
    for (unsigned long i = from; i < trace_count; i++)
        fprintf(stderr, "  #%lu %s\n", i, trace_ring[i % TRACE_KEEP]);
}

static void __attribute__((format(printf, 1, 2)))
trace(const char *fmt, ...)
{
    static int live = -1;
    char *slot = trace_ring[trace_count % TRACE_KEEP];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(slot, sizeof(trace_ring[0]), fmt, ap);
    va_end(ap);
    if (live < 0)
        live = getenv("FUZZ_TRACE") != NULL;
    if (live)
        fprintf(stderr, "#%lu %s\n", trace_count, slot);
    trace_count++;
}

static const char *
hex(const void *p, size_t n)
{
    static char buf[2][40];
    static int which;
    char *b = buf[which ^= 1];
    const unsigned char *c = p;
    size_t i, o = 0;

    for (i = 0; i < n && i < 8; i++)
        o += (size_t)snprintf(b + o, sizeof(buf[0]) - o, "%02x", c[i]);
    if (i < n)
        (void)snprintf(b + o, sizeof(buf[0]) - o, "..(%zu)", n);
    return b;
}

static void
expect(int got, int want, const char *what)
{
    if (got != want)
        fz_fail("%s returned %d (%s), the model expects %d (%s)", what, got,
                layered_strerror(got), want, layered_strerror(want));
    if (atomic_load(&fz_panics) != 0)
        fz_fail("%s: the connection panicked", what);
}

static const char *
uri_of(int i)
{
    static char buf[2][64];
    static int which;

    (void)snprintf(buf[which ^= 1], sizeof(buf[0]), "layered:%s",
                   table_names[i]);
    return buf[which];
}

static bool
openable(const struct mtable *t)
{
    return t->exists && t->state != LAYERED_TABLE_OFFLOADED;
}

static void
unposition(struct mtable *t)
{
    t->positioned = false;
}

static void
position(struct mtable *t, const void *key, size_t klen)
{
    free(t->pkey);
    if ((t->pkey = malloc(klen)) == NULL)
        abort();
    memcpy(t->pkey, key, klen);
    t->pklen = klen;
    t->positioned = true;
}

/* The cursor's row must be e. */
static void
check_row(layered_cursor *c, const struct ent *e, const char *what)
{
    const void *k, *v;
    size_t kl, vl;
    int ret;

    if ((ret = layered_cursor_get(c, &k, &kl, &v, &vl)) != 0)
        fz_fail("%s: get: %s", what, layered_strerror(ret));
    if (key_cmp(k, kl, e->key, e->klen) != 0)
        fz_fail("%s: on key %s, the model expects %s", what, hex(k, kl),
                hex(e->key, e->klen));
    if (vl != e->vlen || (vl > 0 && memcmp(v, val_bytes(e->vseed), vl) != 0))
        fz_fail("%s: key %s has a value of %zu bytes (%s), the model "
                "expects %u (%s)", what, hex(k, kl), vl, hex(v, vl), e->vlen,
                hex(val_bytes(e->vseed), e->vlen));
}

/* ---- connection ---- */

static void model_drain(uint64_t *queuedp, uint64_t *rowsp, uint64_t *bytesp);

static void
db_open(uint8_t cfg)
{
    layered_config c;
    int ret;

    M.cfg = cfg;
    M.role = (cfg & 1) ? LAYERED_ROLE_LEADER : LAYERED_ROLE_FOLLOWER;
    fz_config(&c, M.role, ((cfg >> 1) & 3) % 3, (cfg & 8) ? 2 : 1,
              (cfg >> 4) & 3);
    if (cfg & 0x40) {
        struct rlimit rl, low;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            abort();
        low = rl;
        low.rlim_cur = 8;
        (void)setrlimit(RLIMIT_NOFILE, &low);
        ret = layered_open_os(FZ_HOME, &c, &fz_os, &M.conn);
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    } else
        ret = layered_open_os(FZ_HOME, &c, &fz_os, &M.conn);
    if (ret != 0)
        fz_fail("open: %s", layered_strerror(ret));
    if ((ret = layered_session_open(M.conn, &M.s)) != 0)
        fz_fail("session_open: %s", layered_strerror(ret));
    memset(&M.n, 0, sizeof(M.n));
    /* A leader open drains what the ingests hold first. */
    if (M.role == LAYERED_ROLE_LEADER) {
        uint64_t queued, rows, bytes;

        model_drain(&queued, &rows, &bytes);
        if (queued > 0) {
            M.n.step_ups = 1;
            M.n.tables_drained = queued;
            M.n.rows_drained = rows;
            M.n.bytes_drained = bytes;
        }
    }
}

static void
db_close(void)
{
    int ret;

    for (int i = 0; i < NT; i++) {
        M.t[i].cur = NULL; /* closed with the connection */
        unposition(&M.t[i]);
    }
    ret = layered_close(M.conn);
    M.conn = NULL;
    M.s = NULL;
    expect(ret, 0, "close");
    fz_check_released("after close");
}

/* database_size: the stable files on the disk plus the buffer. */
static void
check_size(const char *when)
{
    layered_conn_stats st;
    uint64_t sum = 0;
    char path[128];

    for (int i = 0; i < NT; i++) {
        int64_t sz;
        if (!M.t[i].exists)
            continue;
        (void)snprintf(path, sizeof(path), "%s/%s.stable", FZ_SHARED,
                       table_names[i]);
        if ((sz = sim_file_size(path)) < 0)
            fz_fail("%s: %s is missing", when, path);
        sum += (uint64_t)sz;
    }
    expect(layered_stats(M.conn, &st), 0, "stats");
    if (st.stable_checkpoint_bytes != sum ||
        st.database_size != sum + LAYERED_CHECKPOINT_SIZE_BUFFER)
        fz_fail("%s: database_size %llu (stable bytes %llu), the stable "
                "files hold %llu", when, (unsigned long long)st.database_size,
                (unsigned long long)st.stable_checkpoint_bytes,
                (unsigned long long)sum);
}

/* ---- the calls ---- */

/* The cursor for a write: the table's own, else a new one (NULL when the
 * table cannot be opened, which the model must have expected). */
static layered_cursor *
write_cursor(int i, bool *own)
{
    struct mtable *t = &M.t[i];
    layered_cursor *c = NULL;

    if (t->cur != NULL) {
        *own = false;
        return t->cur;
    }
    *own = true;
    expect(layered_cursor_open(M.s, uri_of(i), &c), openable(t) ? 0 : ENOENT,
           "cursor_open");
    return c;
}

static void
done_cursor(int i, layered_cursor *c, bool own)
{
    if (own)
        expect(layered_cursor_close(c), 0, "cursor_close");
    else
        unposition(&M.t[i]);
}

static void
do_create(int i, uint8_t f)
{
    static const char *const cfgs[4] = {NULL, "exclusive=false",
                                        "exclusive=true", ""};
    struct mtable *t = &M.t[i];
    const char *cfg = cfgs[f & 3];
    bool bad = (f & 3) == 3 && (f & 4), excl = (f & 3) != 1;
    int want;

    if (bad)
        cfg = "exclusive=maybe";
    trace("create %s %s", table_names[i], cfg == NULL ? "NULL" : cfg);
    want = bad ? EINVAL : t->exists ? (excl ? EEXIST : 0) : 0;
    expect(layered_create(M.s, uri_of(i), cfg), want, "create");
    if (!bad && !t->exists) {
        t->exists = true;
        t->state = LAYERED_TABLE_ACTIVE;
        layer_clear(&t->ing);
        layer_clear(&t->stb);
        M.n.creates++;
    }
}

static void
do_drop(int i, uint8_t f)
{
    struct mtable *t = &M.t[i];
    unsigned flags = ((f & 1) ? LAYERED_DROP_FORCE : 0) |
                     ((f & 2) ? LAYERED_DROP_CHECKPOINT_WAIT : 0) |
                     ((f & 0x1c) == 0x1c ? 0x10u : 0);
    int want;

    trace("drop %s flags %#x", table_names[i], flags);
    if (flags & 0x10)
        want = EINVAL;
    else if (!t->exists)
        want = (flags & LAYERED_DROP_FORCE) ? 0 : ENOENT;
    else if (t->cur != NULL)
        want = EBUSY;
    else
        want = 0;
    expect(layered_drop(M.s, uri_of(i), flags), want, "drop");
    if (want == EBUSY)
        M.n.drop_busy++;
    if (want == 0 && t->exists) {
        t->exists = false;
        layer_clear(&t->ing);
        layer_clear(&t->stb);
        M.n.drops++;
    }
}

static void
do_insert(int i, const unsigned char *key, size_t klen, uint8_t vseed,
          uint32_t vlen)
{
    struct mtable *t = &M.t[i];
    layered_cursor *c;
    bool own;

    trace("insert %s %s = %u bytes from %u", table_names[i], hex(key, klen),
          vlen, vseed);
    if ((c = write_cursor(i, &own)) == NULL)
        return;
    expect(layered_cursor_insert(c, key, klen, val_bytes(vseed), vlen), 0,
           "insert");
    layer_set(M.role == LAYERED_ROLE_LEADER ? &t->stb : &t->ing, key, klen,
              false, vseed, vlen, ++M.lsn);
    M.n.inserts++;
    done_cursor(i, c, own);
}

static void
do_remove(int i, const unsigned char *key, size_t klen)
{
    struct mtable *t = &M.t[i];
    layered_cursor *c;
    bool own;
    int want;

    trace("remove %s %s", table_names[i], hex(key, klen));
    if ((c = write_cursor(i, &own)) == NULL)
        return;
    if (visible(t, key, klen) == NULL)
        want = LAYERED_NOTFOUND;
    else if (M.role == LAYERED_ROLE_FOLLOWER)
        want = 0;
    else
        want = layer_find(&t->stb, key, klen) != NULL ? 0 : LAYERED_NOTFOUND;
    expect(layered_cursor_remove(c, key, klen), want, "remove");
    if (want == 0) {
        if (M.role == LAYERED_ROLE_FOLLOWER)
            layer_set(&t->ing, key, klen, true, 0, 0, ++M.lsn);
        else {
            layer_del(&t->stb, key, klen);
            ++M.lsn;
        }
        M.n.removes++;
    }
    done_cursor(i, c, own);
}

static void
do_bulk(int i, uint8_t x, uint8_t y)
{
    struct mtable *t = &M.t[i];
    unsigned char key[512];
    layered_cursor *c;
    int n = x % 16 + 1;
    uint32_t vlen = val_len(y);
    bool own;

    trace("bulk %s %d keys from %02x%02x, values %u bytes from %u",
          table_names[i], n, x, y, vlen, x);
    if ((c = write_cursor(i, &own)) == NULL)
        return;
    for (int j = 0; j < n; j++) {
        size_t klen = make_key(key, x, (uint8_t)(y + j));
        expect(layered_cursor_insert(c, key, klen, val_bytes(x), vlen), 0,
               "bulk insert");
        layer_set(M.role == LAYERED_ROLE_LEADER ? &t->stb : &t->ing, key,
                  klen, false, x, vlen, ++M.lsn);
        M.n.inserts++;
    }
    done_cursor(i, c, own);
}

static void
do_open(int i)
{
    struct mtable *t = &M.t[i];
    layered_cursor *c = NULL;

    trace("open cursor %s", table_names[i]);
    if (t->cur != NULL) {
        expect(layered_cursor_close(t->cur), 0, "cursor_close");
        t->cur = NULL;
    }
    expect(layered_cursor_open(M.s, uri_of(i), &c), openable(t) ? 0 : ENOENT,
           "cursor_open");
    if (!openable(t) && c != NULL)
        fz_fail("a failed cursor_open left its handle set");
    t->cur = c;
    unposition(t);
}

static void
do_close(int i)
{
    struct mtable *t = &M.t[i];

    trace("close cursor %s", table_names[i]);
    if (t->cur != NULL)
        expect(layered_cursor_close(t->cur), 0, "cursor_close");
    t->cur = NULL;
    unposition(t);
}

static bool
ensure_cursor(int i)
{
    if (M.t[i].cur == NULL)
        do_open(i);
    return M.t[i].cur != NULL;
}

static void
do_move(int i, bool forward)
{
    struct mtable *t = &M.t[i];
    const struct ent *e;

    if (!ensure_cursor(i))
        return;
    trace("%s %s", forward ? "next" : "prev", table_names[i]);
    e = t->positioned ? view_step(t, t->pkey, t->pklen, forward, false)
                      : view_step(t, NULL, 0, forward, false);
    expect(forward ? layered_cursor_next(t->cur) : layered_cursor_prev(t->cur),
           e != NULL ? 0 : LAYERED_NOTFOUND, forward ? "next" : "prev");
    if (e == NULL) {
        unposition(t);
        return;
    }
    check_row(t->cur, e, forward ? "next" : "prev");
    position(t, e->key, e->klen);
}

static void
do_search(int i, const unsigned char *key, size_t klen, bool near)
{
    struct mtable *t = &M.t[i];
    const struct ent *e;
    int exact = 7, want_exact = 0;

    if (!ensure_cursor(i))
        return;
    trace("%s %s %s", near ? "search_near" : "search", table_names[i],
          hex(key, klen));
    if ((e = visible(t, key, klen)) == NULL && near) {
        if ((e = view_step(t, key, klen, true, false)) != NULL)
            want_exact = 1;
        else if ((e = view_step(t, key, klen, false, false)) != NULL)
            want_exact = -1;
    }
    expect(near ? layered_cursor_search_near(t->cur, key, klen, &exact)
                : layered_cursor_search(t->cur, key, klen),
           e != NULL ? 0 : LAYERED_NOTFOUND, near ? "search_near" : "search");
    if (e == NULL) {
        unposition(t);
        return;
    }
    if (near && exact != want_exact)
        fz_fail("search_near: exact %d, the model expects %d", exact,
                want_exact);
    check_row(t->cur, e, near ? "search_near" : "search");
    position(t, e->key, e->klen);
}

static void
do_reset(int i)
{
    struct mtable *t = &M.t[i];

    trace("reset %s", table_names[i]);
    if (t->cur != NULL)
        expect(layered_cursor_reset(t->cur), 0, "cursor_reset");
    unposition(t);
}

static void
do_checkpoint(void)
{
    trace("checkpoint");
    expect(layered_checkpoint(M.s), 0, "checkpoint");
    M.n.checkpoints++;
    check_size("after a checkpoint");
}

/* The model of a drain: every ingest into its stable, by the LSN rule. */
static void
model_drain(uint64_t *queuedp, uint64_t *rowsp, uint64_t *bytesp)
{
    uint64_t queued = 0, rows = 0, bytes = 0;

    for (int i = 0; i < NT; i++) {
        struct mtable *t = &M.t[i];
        if (!t->exists || t->state == LAYERED_TABLE_OFFLOADED ||
            t->ing.n == 0)
            continue;
        queued++;
        for (size_t j = 0; j < t->ing.n; j++) {
            const struct ent *e = &t->ing.v[j];
            struct ent *s = layer_find(&t->stb, e->key, e->klen);
            if (s != NULL && s->lsn >= e->lsn)
                continue; /* the stable's is newer */
            if (e->tomb) {
                if (s == NULL)
                    continue; /* nothing to delete */
                layer_del(&t->stb, e->key, e->klen);
            } else
                layer_set(&t->stb, e->key, e->klen, false, e->vseed,
                          e->vlen, e->lsn);
            rows++;
            bytes += e->klen + e->vlen;
        }
        layer_clear(&t->ing);
    }
    *queuedp = queued;
    *rowsp = rows;
    *bytesp = bytes;
}

static void
do_step_up(void)
{
    layered_drain_stats ds;
    uint64_t queued = 0, rows = 0, bytes = 0;

    trace("step_up");
    if (M.role == LAYERED_ROLE_FOLLOWER)
        model_drain(&queued, &rows, &bytes);
    expect(layered_step_up(M.conn, &ds), 0, "step_up");
    if (ds.tables_queued != queued || ds.tables_drained != queued ||
        ds.tables_skipped != 0 || ds.rows != rows || ds.bytes != bytes ||
        ds.busy_drops != 0)
        fz_fail("step_up drained %llu of %llu tables (%llu skipped), %llu "
                "rows, %llu bytes; the model expects %llu tables, %llu rows, "
                "%llu bytes", (unsigned long long)ds.tables_drained,
                (unsigned long long)ds.tables_queued,
                (unsigned long long)ds.tables_skipped,
                (unsigned long long)ds.rows, (unsigned long long)ds.bytes,
                (unsigned long long)queued, (unsigned long long)rows,
                (unsigned long long)bytes);
    if (M.role == LAYERED_ROLE_FOLLOWER) {
        M.n.step_ups++;
        M.n.tables_drained += queued;
        M.n.rows_drained += rows;
        M.n.bytes_drained += bytes;
    }
    M.role = LAYERED_ROLE_LEADER;
}

static void
do_step_down(void)
{
    trace("step_down");
    expect(layered_step_down(M.conn), 0, "step_down");
    if (M.role == LAYERED_ROLE_LEADER)
        M.n.step_downs++;
    M.role = LAYERED_ROLE_FOLLOWER;
}

static void
do_archive(int i)
{
    struct mtable *t = &M.t[i];

    trace("archive %s", table_names[i]);
    expect(layered_archive(M.s, uri_of(i)), t->exists ? 0 : ENOENT,
           "archive");
    if (t->exists && t->state == LAYERED_TABLE_ACTIVE) {
        t->state = LAYERED_TABLE_ARCHIVED;
        M.n.archives++;
    }
}

static void
do_unarchive(int i)
{
    struct mtable *t = &M.t[i];

    trace("unarchive %s", table_names[i]);
    expect(layered_unarchive(M.s, uri_of(i)), t->exists ? 0 : ENOENT,
           "unarchive");
    if (!t->exists || t->state == LAYERED_TABLE_ACTIVE)
        return;
    if (t->state == LAYERED_TABLE_OFFLOADED) {
        M.n.restores++;
        layer_clear(&t->ing); /* a new empty ingest */
    }
    t->state = LAYERED_TABLE_ACTIVE;
    M.n.unarchives++;
}

static void
do_offload(int i)
{
    struct mtable *t = &M.t[i];
    int want;

    trace("offload %s", table_names[i]);
    if (!t->exists)
        want = ENOENT;
    else if (t->state == LAYERED_TABLE_OFFLOADED)
        want = 0;
    else if (t->state == LAYERED_TABLE_ACTIVE)
        want = LAYERED_NOT_ARCHIVED;
    else if (t->cur != NULL || t->ing.n > 0)
        want = EBUSY;
    else
        want = 0;
    expect(layered_offload(M.s, uri_of(i)), want, "offload");
    if (want == 0 && t->state == LAYERED_TABLE_ARCHIVED) {
        t->state = LAYERED_TABLE_OFFLOADED;
        M.n.offloads++;
    }
}

static void
do_reopen(uint8_t cfg)
{
    trace("reopen config %#x", cfg);
    db_close();
    db_open(cfg);
    check_size("after open");
}

static void
do_state(int i)
{
    struct mtable *t = &M.t[i];
    int state = -1;

    trace("state %s", table_names[i]);
    expect(layered_table_state(M.s, uri_of(i), &state),
           t->exists ? 0 : ENOENT, "table_state");
    if (t->exists && state != t->state)
        fz_fail("table_state %s: %d, the model expects %d", table_names[i],
                state, t->state);
}

struct listing {
    char names[NT + 1][LAYERED_NAME_MAX + 1];
    int states[NT + 1];
    int n;
};

static int
list_cb(void *arg, const char *name, int state)
{
    struct listing *l = arg;

    if (l->n > NT)
        fz_fail("list_tables: more tables than the model has");
    (void)snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    l->states[l->n++] = state;
    return 0;
}

static void
do_list(void)
{
    struct listing l;
    int order[NT], n = 0;

    trace("list");
    l.n = 0;
    expect(layered_list_tables(M.s, list_cb, &l), 0, "list_tables");
    for (int i = 0; i < NT; i++)
        if (M.t[i].exists)
            order[n++] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && strcmp(table_names[order[b - 1]],
                                        table_names[order[b]]) > 0; b--) {
            int x = order[b];
            order[b] = order[b - 1];
            order[b - 1] = x;
        }
    if (l.n != n)
        fz_fail("list_tables: %d tables, the model has %d", l.n, n);
    for (int j = 0; j < n; j++)
        if (strcmp(l.names[j], table_names[order[j]]) != 0 ||
            l.states[j] != M.t[order[j]].state)
            fz_fail("list_tables: table %d is %s (state %d), the model "
                    "expects %s (state %d)", j, l.names[j], l.states[j],
                    table_names[order[j]], M.t[order[j]].state);
}

/* Read a file: cursor to its end and back; it must list want (n rows). */
static void
scan_file(int i, bool ingest)
{
    struct mtable *t = &M.t[i];
    const struct layer *l = ingest ? &t->ing : &t->stb;
    char uri[64];
    layered_cursor *c = NULL;
    size_t j;

    (void)snprintf(uri, sizeof(uri), "file:%s.%s", table_names[i],
                   ingest ? "ingest" : "stable");
    expect(layered_cursor_open(M.s, uri, &c), openable(t) ? 0 : ENOENT,
           "file cursor_open");
    if (c == NULL)
        return;
    for (j = 0; j < l->n; j++) {
        if (l->v[j].tomb)
            continue; /* a file: cursor skips tombstones */
        expect(layered_cursor_next(c), 0, uri);
        check_row(c, &l->v[j], uri);
    }
    expect(layered_cursor_next(c), LAYERED_NOTFOUND, uri);
    for (j = l->n; j > 0; j--) {
        if (l->v[j - 1].tomb)
            continue;
        expect(layered_cursor_prev(c), 0, uri);
        check_row(c, &l->v[j - 1], uri);
    }
    expect(layered_cursor_prev(c), LAYERED_NOTFOUND, uri);
    expect(layered_cursor_insert(c, "k", 1, "v", 1), ENOTSUP,
           "insert through a file: cursor");
    expect(layered_cursor_remove(c, "k", 1), ENOTSUP,
           "remove through a file: cursor");
    expect(layered_cursor_close(c), 0, "cursor_close");
}

static void
do_scan(int i)
{
    struct mtable *t = &M.t[i];
    layered_cursor *c = NULL;
    const struct ent **v;
    size_t n;

    trace("scan %s", table_names[i]);
    expect(layered_cursor_open(M.s, uri_of(i), &c), openable(t) ? 0 : ENOENT,
           "cursor_open");
    if (c != NULL) {
        v = view_list(t, &n);
        for (size_t j = 0; j < n; j++) {
            expect(layered_cursor_next(c), 0, "scan next");
            check_row(c, v[j], "scan next");
        }
        expect(layered_cursor_next(c), LAYERED_NOTFOUND, "scan next");
        for (size_t j = n; j > 0; j--) {
            expect(layered_cursor_prev(c), 0, "scan prev");
            check_row(c, v[j - 1], "scan prev");
        }
        expect(layered_cursor_prev(c), LAYERED_NOTFOUND, "scan prev");
        expect(layered_cursor_close(c), 0, "cursor_close");
    }
    scan_file(i, true);
    scan_file(i, false);
}

static void
do_stats(void)
{
    layered_conn_stats st;
    uint64_t tables = 0;

    trace("stats");
    expect(layered_stats(M.conn, &st), 0, "stats");
    for (int i = 0; i < NT; i++)
        tables += M.t[i].exists;
#define STAT(field, want)                                                   \
    if ((uint64_t)st.field != (uint64_t)(want))                                               \
        fz_fail("stats: " #field " %llu, the model expects %llu",           \
                (unsigned long long)st.field, (unsigned long long)(want));
    STAT(role, (uint64_t)M.role)
    STAT(panicked, 0)
    STAT(tables, tables)
    STAT(creates, M.n.creates)
    STAT(drops, M.n.drops)
    STAT(drop_busy, M.n.drop_busy)
    STAT(checkpoints, M.n.checkpoints)
    STAT(step_ups, M.n.step_ups)
    STAT(step_downs, M.n.step_downs)
    STAT(inserts, M.n.inserts)
    STAT(removes, M.n.removes)
    STAT(archives, M.n.archives)
    STAT(unarchives, M.n.unarchives)
    STAT(restores, M.n.restores)
    STAT(offloads, M.n.offloads)
    STAT(tables_drained, M.n.tables_drained)
    STAT(rows_drained, M.n.rows_drained)
    STAT(bytes_drained, M.n.bytes_drained)
    STAT(tables_skipped, 0)
#undef STAT
}

/* Calls with a bad argument: EINVAL (or ENOTSUP), nothing changes. */
static void
do_bad(uint8_t s, int i, uint8_t x)
{
    static char long_name[8 + BAD_NAME_LEN + 1];
    struct mtable *t = &M.t[i];
    layered_cursor *c = (layered_cursor *)&c;
    int which = (s / 8) % 12, exact;

    if (long_name[0] == '\0') {
        memcpy(long_name, "layered:", 8);
        memset(long_name + 8, 'x', BAD_NAME_LEN);
    }
    trace("bad call %d on %s (%u)", which, table_names[i], x);
    switch (which) {
    case 0: {
        static const char *const uris[] = {"layered:", "layered:.x",
                                           "layered:a/b", "table:a",
                                           "layered:a b", long_name, NULL};
        const char *u = uris[x % 7];
        expect(layered_create(M.s, u, NULL), EINVAL, "create (bad uri)");
        expect(layered_drop(M.s, u, LAYERED_DROP_FORCE), EINVAL,
               "drop (bad uri)");
        expect(layered_archive(M.s, u), EINVAL, "archive (bad uri)");
        expect(layered_unarchive(M.s, u), EINVAL, "unarchive (bad uri)");
        expect(layered_offload(M.s, u), EINVAL, "offload (bad uri)");
        expect(layered_table_state(M.s, u, &exact), EINVAL,
               "table_state (bad uri)");
        break;
    }
    case 1: {
        static const char *const uris[] = {"nope:a", "file:a.other",
                                           "file:.ingest", "file:a",
                                           "layered:", "file:a/b.stable"};
        expect(layered_cursor_open(M.s, uris[x % 6], &c), EINVAL,
               "cursor_open (bad uri)");
        if (c != NULL)
            fz_fail("a failed cursor_open left its handle set");
        break;
    }
    case 2:
        expect(layered_table_state(M.s, uri_of(i), NULL), EINVAL,
               "table_state (NULL state)");
        expect(layered_drop(M.s, uri_of(i), 0x100), EINVAL,
               "drop (unknown flag)");
        expect(layered_create(M.s, uri_of(i), "exclusive=TRUE"), EINVAL,
               "create (bad config)");
        break;
    default:
        /* Bad keys and values through the table's cursor. */
        if (t->cur == NULL)
            break;
        c = t->cur;
        switch (which) {
        case 3:
            expect(layered_cursor_insert(c, keybuf, 0, "v", 1), EINVAL,
                   "insert (empty key)");
            expect(layered_cursor_insert(c, NULL, 1, "v", 1), EINVAL,
                   "insert (NULL key)");
            break;
        case 4:
            expect(layered_cursor_insert(c, "k", 1, NULL, 5), EINVAL,
                   "insert (NULL value)");
            break;
        case 5: {
            unsigned char *big = calloc(1, LAYERED_KEY_MAX + 1);
            if (big == NULL)
                abort();
            expect(layered_cursor_insert(c, big, LAYERED_KEY_MAX + 1, "v", 1),
                   EINVAL, "insert (key too long)");
            expect(layered_cursor_search(c, big, LAYERED_KEY_MAX + 1),
                   EINVAL, "search (key too long)");
            free(big);
            break;
        }
        case 6:
            expect(layered_cursor_search(c, keybuf, 0), EINVAL,
                   "search (empty key)");
            expect(layered_cursor_remove(c, keybuf, 0), EINVAL,
                   "remove (empty key)");
            break;
        case 7:
            expect(layered_cursor_search_near(c, "a", 1, NULL), EINVAL,
                   "search_near (NULL exact)");
            expect(layered_cursor_search_near(c, keybuf, 0, &exact), EINVAL,
                   "search_near (empty key)");
            break;
        default: {
            const void *k;
            expect(layered_cursor_reset(c), 0, "cursor_reset");
            expect(layered_cursor_get(c, &k, NULL, NULL, NULL), EINVAL,
                   "get (unpositioned)");
            break;
        }
        }
        /* After an error the position is undefined: start over. */
        expect(layered_cursor_reset(c), 0, "cursor_reset");
        unposition(t);
        break;
    }
}

static void
do_misc(void)
{
    uint8_t s = rd();
    int i = rd() % NT;
    uint8_t x = rd(), y = rd();

    switch (s % 8) {
    case 0:
        do_stats();
        break;
    case 1:
        do_bulk(i, x, y);
        break;
    default:
        do_bad(s, i, x);
        break;
    }
}

static void
step(void)
{
    int op = rd() % OP_COUNT, i;
    size_t klen;
    uint8_t a, b;

    switch (op) {
    case OP_CREATE:
        i = rd() % NT;
        do_create(i, rd());
        break;
    case OP_DROP:
        i = rd() % NT;
        do_drop(i, rd());
        break;
    case OP_INSERT:
        i = rd() % NT;
        a = rd();
        b = rd();
        klen = make_key(keybuf, a, b);
        a = rd();
        b = rd();
        do_insert(i, keybuf, klen, b, val_len(a));
        break;
    case OP_REMOVE:
    case OP_SEARCH:
    case OP_SEARCH_NEAR:
        i = rd() % NT;
        a = rd();
        b = rd();
        klen = make_key(keybuf, a, b);
        if (op == OP_REMOVE)
            do_remove(i, keybuf, klen);
        else
            do_search(i, keybuf, klen, op == OP_SEARCH_NEAR);
        break;
    case OP_OPEN:
        do_open(rd() % NT);
        break;
    case OP_CLOSE:
        do_close(rd() % NT);
        break;
    case OP_NEXT:
    case OP_PREV:
        do_move(rd() % NT, op == OP_NEXT);
        break;
    case OP_RESET:
        do_reset(rd() % NT);
        break;
    case OP_CHECKPOINT:
        do_checkpoint();
        break;
    case OP_STEP_UP:
        do_step_up();
        break;
    case OP_STEP_DOWN:
        do_step_down();
        break;
    case OP_ARCHIVE:
        do_archive(rd() % NT);
        break;
    case OP_UNARCHIVE:
        do_unarchive(rd() % NT);
        break;
    case OP_OFFLOAD:
        do_offload(rd() % NT);
        break;
    case OP_REOPEN:
        do_reopen(rd());
        break;
    case OP_STATE:
        do_state(rd() % NT);
        break;
    case OP_LIST:
        do_list();
        break;
    case OP_SCAN:
        do_scan(rd() % NT);
        break;
    default:
        do_misc();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- seeds: hand-written sequences (fuzz_api --make-seeds DIR) ---- */

/* Tables */
#define A 0
#define B 1
#define C 2
/* Configurations: leader or follower, sync level (<< 1), two drain
 * threads, policy (<< 4) */
#define LEADER 0x01
#define FOLLOWER 0x00
#define SYNC_NONE 0x00
#define SYNC_FSYNC 0x04
/* Keys: length code, then characters (bit pairs of 0x00 'a' 'b' 0xff) */
#define K_A 0x00, 0x01          /* "a" */
#define K_B 0x00, 0x02          /* "b" */
#define K_AB 0x02, 0x09         /* "ab" */
#define K_BA 0x02, 0x06         /* "ba" */
#define K_AAA 0x04, 0x15        /* "aaa" */
#define K_LONG 0x07, 0x05       /* 300 bytes */
/* Values: length, seed */
#define V_SHORT 0x05, 0x11
#define V_EMPTY 0x00, 0x22
#define V_BIG 0xfe, 0x33        /* 30 KiB */

#define CREATE(t) OP_CREATE, t, 0
#define CREATE_NX(t) OP_CREATE, t, 1
#define DROP(t, f) OP_DROP, t, f
#define INSERT(t, k, v) OP_INSERT, t, k, v
#define REMOVE(t, k) OP_REMOVE, t, k
#define OPEN(t) OP_OPEN, t
#define CLOSE(t) OP_CLOSE, t
#define NEXT(t) OP_NEXT, t
#define PREV(t) OP_PREV, t
#define SEARCH(t, k) OP_SEARCH, t, k
#define NEAR(t, k) OP_SEARCH_NEAR, t, k
#define RESET(t) OP_RESET, t
#define CHECKPOINT OP_CHECKPOINT
#define STEP_UP OP_STEP_UP
#define STEP_DOWN OP_STEP_DOWN
#define ARCHIVE(t) OP_ARCHIVE, t
#define UNARCHIVE(t) OP_UNARCHIVE, t
#define OFFLOAD(t) OP_OFFLOAD, t
#define REOPEN(c) OP_REOPEN, c
#define STATE(t) OP_STATE, t
#define LIST OP_LIST
#define SCAN(t) OP_SCAN, t
#define STATS OP_MISC, 0, 0, 0, 0
#define BULK(t, x, y) OP_MISC, 1, t, x, y
#define BAD(which, t, x) OP_MISC, (uint8_t)(2 + 8 * (which)), t, x, 0

static const uint8_t seed_basic[] = {
    LEADER, CREATE(A), CREATE(B), INSERT(A, K_A, V_SHORT),
    INSERT(A, K_AB, V_EMPTY), INSERT(A, K_BA, V_SHORT), INSERT(A, K_LONG, V_SHORT),
    INSERT(B, K_B, V_SHORT), NEXT(A), NEXT(A), PREV(A), SEARCH(A, K_AB),
    NEAR(A, K_AAA), NEAR(A, K_B), REMOVE(A, K_AB), NEXT(A), SCAN(A),
    CHECKPOINT, CREATE(A), CREATE_NX(A), LIST, STATE(B), STATS, REOPEN(LEADER),
    SCAN(A), SCAN(B)};
static const uint8_t seed_step_up[] = {
    FOLLOWER, CREATE(A), CREATE(B), INSERT(A, K_A, V_SHORT),
    INSERT(A, K_B, V_SHORT), REMOVE(A, K_A), REMOVE(A, K_AB),
    INSERT(B, K_AAA, V_EMPTY), SCAN(A), STEP_UP, STATS, SCAN(A),
    INSERT(A, K_BA, V_SHORT), REMOVE(A, K_B), STEP_DOWN, INSERT(A, K_BA, V_EMPTY),
    REMOVE(A, K_BA), STEP_UP, SCAN(A), CHECKPOINT, STATS};
static const uint8_t seed_lifecycle[] = {
    FOLLOWER, CREATE(A), INSERT(A, K_A, V_SHORT), ARCHIVE(A), OFFLOAD(A),
    STEP_UP, OFFLOAD(A), STATE(A), OPEN(A), INSERT(A, K_B, V_SHORT), SCAN(A),
    ARCHIVE(A), OFFLOAD(A), UNARCHIVE(A), SCAN(A), INSERT(A, K_B, V_SHORT),
    ARCHIVE(A), UNARCHIVE(A), OFFLOAD(A), DROP(A, 0), DROP(A, 0), DROP(A, 1),
    CREATE(A), SCAN(A), STATS};
static const uint8_t seed_busy[] = {
    LEADER, CREATE(A), INSERT(A, K_A, V_SHORT), OPEN(A), NEXT(A), DROP(A, 1),
    ARCHIVE(A), OFFLOAD(A), INSERT(A, K_B, V_SHORT), NEXT(A), CLOSE(A),
    OFFLOAD(A), DROP(A, 3), STATS};
static const uint8_t seed_leader_over_ingest[] = {
    FOLLOWER, CREATE(A), INSERT(A, K_A, V_SHORT), INSERT(A, K_B, V_SHORT),
    REOPEN(LEADER), INSERT(A, K_A, V_EMPTY), REMOVE(A, K_B), SEARCH(A, K_A),
    SCAN(A), STEP_DOWN, REMOVE(A, K_A), STEP_UP, SCAN(A), STATS};
static const uint8_t seed_compact[] = {
    LEADER, CREATE(A), BULK(A, 0x06, 0xfe), BULK(A, 0x06, 0xfe),
    BULK(A, 0x06, 0xfe), CHECKPOINT, SCAN(A), STEP_DOWN, BULK(A, 0x06, 0xf8),
    STEP_UP, CHECKPOINT, REMOVE(A, K_A), SCAN(A)};
static const uint8_t seed_sync_none[] = {
    FOLLOWER | SYNC_NONE, CREATE(A), CREATE(C), INSERT(A, K_A, V_SHORT),
    INSERT(C, K_LONG, V_BIG), SEARCH(C, K_LONG), SCAN(C), CHECKPOINT,
    REOPEN(FOLLOWER | SYNC_FSYNC | 0x08), INSERT(A, K_B, V_SHORT), STEP_UP,
    SCAN(A), REOPEN(LEADER | 0x02 | 0x20), SCAN(C)};
static const uint8_t seed_small_budget[] = {
    FOLLOWER | 0x40 | 0x08, CREATE(A), CREATE(B), CREATE(C), CREATE(3),
    CREATE(4), INSERT(A, K_A, V_SHORT), INSERT(B, K_A, V_SHORT),
    INSERT(C, K_A, V_SHORT), INSERT(3, K_B, V_SHORT), INSERT(4, K_AB, V_SHORT),
    SCAN(A), SCAN(B), SCAN(C), SCAN(3), SCAN(4), STEP_UP, STATS, STEP_DOWN,
    REMOVE(A, K_A), INSERT(4, K_BA, V_SHORT), REOPEN(FOLLOWER | 0x40 | 0x20),
    STEP_UP, SCAN(A), SCAN(4)};
static const uint8_t seed_bad[] = {
    LEADER, CREATE(A), OPEN(A), BAD(0, A, 0), BAD(0, A, 4), BAD(0, A, 6),
    BAD(1, A, 1), BAD(2, A, 0), BAD(3, A, 0), BAD(4, A, 0), BAD(5, A, 0),
    BAD(6, A, 0), BAD(7, A, 0), BAD(8, A, 0), NEXT(A)};

static void
write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s: %zu bytes\n", path, n);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp((*argv)[i], "--make-seeds") == 0) {
            const char *d = (*argv)[i + 1];
#define SEED(x) write_seed(d, #x, x, sizeof(x))
            SEED(seed_basic);
            SEED(seed_step_up);
            SEED(seed_lifecycle);
            SEED(seed_busy);
            SEED(seed_leader_over_ingest);
            SEED(seed_compact);
            SEED(seed_sync_none);
            SEED(seed_small_budget);
            SEED(seed_bad);
#undef SEED
            exit(0);
        }
    return 0;
}

/* Free the model: a run that ends with as many frees as mallocs spares
 * libFuzzer its leak check (which runs the input again). */
static void
model_free(void)
{
    for (int i = 0; i < NT; i++) {
        layer_free(&M.t[i].ing);
        layer_free(&M.t[i].stb);
        free(M.t[i].pkey);
    }
    memset(&M, 0, sizeof(M));
    free(view_buf);
    view_buf = NULL;
    view_cap = 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_p = data;
    in_n = size;
    in_off = 0;
    trace_count = 0;
    fz_dump_hook = dump_trace;
    model_free();
    fz_reset();
    atomic_store(&fz_panics, 0);
    (void)sim_os.mkdir(FZ_HOME, 0755);

    db_open(rd());
    trace("open config %#x", M.cfg);
    while (in_off < in_n)
        step();

    /* Everything is there, also after a clean close and a reopen. */
    for (int i = 0; i < NT; i++)
        do_scan(i);
    do_list();
    do_stats();
    do_reopen(M.cfg & ~1u) ;
    if (M.role == LAYERED_ROLE_FOLLOWER)
        do_step_up();
    for (int i = 0; i < NT; i++)
        do_scan(i);
    do_list();
    db_close();
    model_free();
    return 0;
}
