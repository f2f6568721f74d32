/*
 * fuzz_open.c -- arbitrary file bytes in a home must never crash the
 * engine (libFuzzer target).
 *
 * The input is the contents of a home's files, in this framing:
 *
 *   byte 0: configuration
 *     bit 0     open as leader (else follower)
 *     bits 1-2  sync level, value % 3 (LAYERED_SYNC_NONE, _WRITE, _FSYNC)
 *     bit 3     two drain threads (else one)
 *     bit 4     repair the checksum of layered.meta (its "end" line)
 *     bit 5     repair the checksum of every line of layered.meta.log
 *     bit 6     repair the constituent files' header and record checksums
 *     bit 7     do not create the shared directory beforehand
 *   then entries, until the input ends:
 *     byte  kind % 8:
 *             0 layered.meta          1 layered.meta.log
 *             2 LOCK                  3 NAME.ingest (in the home)
 *             4 shared/NAME.stable    5 layered.meta.tmp
 *             6 shared/NAME           7 a directory at NAME (in the home)
 *     kinds 3, 4, 6 and 7 only:
 *       byte  n, the length of NAME (at most 200 bytes of it are used)
 *       n bytes: NAME; a byte outside [A-Za-z0-9_.-], and a leading '.',
 *             become '_'
 *     kinds 0 to 6 only:
 *       u16   L, little-endian, the length of the contents (cut to what
 *             the input has left)
 *       L bytes: the contents
 *   A later entry for the same file replaces the earlier one.  The repairs
 *   let mutations get past the checksums to the parsers behind them; an
 *   input with the bits clear is written byte for byte.
 *
 * The files are written into a fresh simulated disk (home "/h", shared
 * directory "/h/shared"), then layered_open_os: it must return an error or
 * open -- never crash, hang or read out of bounds (ASan, UBSan), and an
 * open that failed must have released every descriptor.  If it opens:
 * every table is listed and read (a layered cursor forwards, backwards,
 * searched key by key and with search_near between keys; file: cursors on
 * both constituents), checking the order and that the layered view agrees
 * with its constituents; then a step-up and a checkpoint; when the step-up
 * drained every ingest, writes (a row inserted and removed in each table,
 * an archive and unarchive, a table created and dropped) must work; then a
 * second read.  When all of that succeeded and the close returned 0, the home is
 * the engine's own work: it is opened again and must read exactly as it
 * did before the close.
 *
 * Seeds: `fuzz_open --make-seeds DIR` builds real homes with the engine on
 * the simulated disk (and a few damaged ones), and writes each in this
 * framing to DIR.
 */
#include "fuzz_common.h"

#define NAME_CAP 200
#define SCAN_LIMIT 200000  /* more rows than a 64 KiB file can hold */
#define SEARCH_LIMIT 64    /* keys searched one by one per table */

enum kind {
    K_META,
    K_LOG,
    K_LOCK,
    K_INGEST,
    K_STABLE,
    K_TMP,
    K_SHARED_FILE,
    K_DIR,
    K_COUNT
};

#define CFG_LEADER 0x01
#define CFG_SYNC(c) ((((c) >> 1) & 3) % 3)
#define CFG_THREADS2 0x08
#define CFG_FIX_META 0x10
#define CFG_FIX_LOG 0x20
#define CFG_FIX_FILES 0x40
#define CFG_NO_SHARED 0x80

static bool
kind_named(int kind)
{
    return kind == K_INGEST || kind == K_STABLE || kind == K_SHARED_FILE ||
           kind == K_DIR;
}

/* ---- checksum repairs ---- */

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* The snapshot: the last line (as the engine finds it) becomes
 * "end COUNT CRC" with COUNT kept from it if it has one. */
static void
fix_meta(struct fz_buf *out, const unsigned char *p, size_t len)
{
    const unsigned char *end = NULL;
    unsigned long long count = 0;
    char line[64], tail[64];
    size_t body, n;

    for (size_t i = len >= 2 ? len - 1 : 0; i > 0; i--)
        if (p[i - 1] == '\n') {
            end = p + i;
            break;
        }
    body = end == NULL ? 0 : (size_t)(end - p);
    n = len - body < sizeof(tail) - 1 ? len - body : sizeof(tail) - 1;
    memcpy(tail, p + body, n);
    tail[n] = '\0';
    if (sscanf(tail, "end %llu", &count) != 1) {
        /* No count to keep: the table lines the body has. */
        for (size_t i = 0; i + 6 <= body; i++)
            if ((i == 0 || p[i - 1] == '\n') && memcmp(p + i, "table ", 6) == 0)
                count++;
    }
    fz_buf_add(out, p, body);
    n = (size_t)snprintf(line, sizeof(line), "end %llu %08x\n", count,
                         fz_crc32c(0, p, body));
    fz_buf_add(out, line, n);
}

/* The journal: every complete line of 10 bytes or more gets the CRC of
 * what follows its first 9 bytes as its first 8. */
static void
fix_log(unsigned char *p, size_t len)
{
    char hex[9];
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\n')
            continue;
        if (i - start >= 10) {
            (void)snprintf(hex, sizeof(hex), "%08x",
                           fz_crc32c(0, p + start + 9, i - start - 9));
            memcpy(p + start, hex, 8);
            p[start + 8] = ' ';
        }
        start = i + 1;
    }
}

/* A constituent: the header's CRC, then each record's body and header
 * CRCs, walking by the lengths the records claim. */
static void
fix_constituent(unsigned char *p, size_t len)
{
    size_t off = 32;

    if (len < 32)
        return;
    put_le32(p + 28, fz_crc32c(0, p, 28));
    while (len - off >= 24) {
        uint32_t klen = le32(p + off + 16) & 0xffffffu, vlen = le32(p + off + 20);
        uint64_t rlen = 24 + (uint64_t)klen + vlen;
        if (rlen > len - off)
            break;
        put_le32(p + off + 4, fz_crc32c(0, p + off + 24, klen + (size_t)vlen));
        put_le32(p + off, fz_crc32c(0, p + off + 4, 20));
        off += (size_t)rlen;
    }
}

/* ---- writing the home ---- */

static void
sanitize(char *name, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  (c == '.' && i > 0);
        name[i] = ok ? (char)c : '_';
    }
    name[n] = '\0';
}

static void
write_home(const uint8_t *data, size_t size, uint8_t cfg)
{
    size_t off = 1;

    (void)sim_os.mkdir(FZ_HOME, 0755);
    if (!(cfg & CFG_NO_SHARED))
        (void)sim_os.mkdir(FZ_SHARED, 0755);
    while (off < size) {
        char name[NAME_CAP + 1] = "", path[NAME_CAP + 64];
        struct fz_buf fixed = {0};
        unsigned char *copy;
        int kind = data[off++] % K_COUNT;
        size_t len;

        if (kind_named(kind)) {
            size_t n = off < size ? data[off++] : 0;
            if (n > size - off)
                n = size - off;
            sanitize(name, data + off, n < NAME_CAP ? n : NAME_CAP);
            off += n;
            if (name[0] == '\0')
                (void)snprintf(name, sizeof(name), "_");
        }
        switch (kind) {
        case K_META:
            (void)snprintf(path, sizeof(path), "%s/layered.meta", FZ_HOME);
            break;
        case K_LOG:
            (void)snprintf(path, sizeof(path), "%s/layered.meta.log", FZ_HOME);
            break;
        case K_LOCK:
            (void)snprintf(path, sizeof(path), "%s/LOCK", FZ_HOME);
            break;
        case K_INGEST:
            (void)snprintf(path, sizeof(path), "%s/%s.ingest", FZ_HOME, name);
            break;
        case K_STABLE:
            (void)snprintf(path, sizeof(path), "%s/%s.stable", FZ_SHARED, name);
            break;
        case K_TMP:
            (void)snprintf(path, sizeof(path), "%s/layered.meta.tmp", FZ_HOME);
            break;
        case K_SHARED_FILE:
            (void)snprintf(path, sizeof(path), "%s/%s", FZ_SHARED, name);
            break;
        default:
            (void)snprintf(path, sizeof(path), "%s/%s", FZ_HOME, name);
            (void)sim_os.mkdir(path, 0755);
            continue;
        }
        if (size - off < 2) {
            len = size - off == 1 ? data[off] : 0;
            off = size;
        } else {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
        }
        if (len > size - off)
            len = size - off;
        if (kind == K_STABLE || kind == K_SHARED_FILE)
            (void)sim_os.mkdir(FZ_SHARED, 0755);
        if ((copy = malloc(len + 1)) == NULL)
            abort();
        memcpy(copy, data + off, len);
        off += len;
        if (kind == K_META && (cfg & CFG_FIX_META)) {
            fix_meta(&fixed, copy, len);
            (void)fz_write_file(path, fixed.p, fixed.len);
        } else {
            if (kind == K_LOG && (cfg & CFG_FIX_LOG))
                fix_log(copy, len);
            if ((kind == K_INGEST || kind == K_STABLE) &&
                (cfg & CFG_FIX_FILES))
                fix_constituent(copy, len);
            (void)fz_write_file(path, copy, len);
        }
        fz_buf_free(&fixed);
        free(copy);
    }
}

/* ---- reading what opened ---- */

struct table_ent {
    char name[NAME_CAP + 2];
    int state;
};

struct tables {
    struct table_ent *v;
    size_t n, cap;
};

static int
list_cb(void *arg, const char *name, int state)
{
    struct tables *t = arg;

    if (strlen(name) > NAME_CAP)
        fz_fail("list_tables: a name of %zu bytes", strlen(name));
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        if ((t->v = realloc(t->v, t->cap * sizeof(*t->v))) == NULL)
            abort();
    }
    (void)snprintf(t->v[t->n].name, sizeof(t->v[t->n].name), "%s", name);
    t->v[t->n].state = state;
    if (t->n > 0 && strcmp(t->v[t->n - 1].name, name) >= 0)
        fz_fail("list_tables: %s after %s", name, t->v[t->n - 1].name);
    t->n++;
    return 0;
}

/* Rows read by a cursor: each is u32 klen, u32 vlen, key, value. */
struct rows {
    struct fz_buf data;
    size_t *off;
    size_t n, cap;
};

static void
rows_add(struct rows *r, const void *k, size_t kl, const void *v, size_t vl)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        if ((r->off = realloc(r->off, r->cap * sizeof(*r->off))) == NULL)
            abort();
    }
    r->off[r->n++] = r->data.len;
    fz_buf_u32(&r->data, (uint32_t)kl);
    fz_buf_u32(&r->data, (uint32_t)vl);
    fz_buf_add(&r->data, k, kl);
    fz_buf_add(&r->data, v, vl);
}

static void
row_get(const struct rows *r, size_t i, const unsigned char **k, size_t *kl,
        const unsigned char **v, size_t *vl)
{
    const unsigned char *p = r->data.p + r->off[i];

    *kl = le32(p);
    *vl = le32(p + 4);
    *k = p + 8;
    *v = p + 8 + *kl;
}

static void
rows_free(struct rows *r)
{
    fz_buf_free(&r->data);
    free(r->off);
    memset(r, 0, sizeof(*r));
}

static int
key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c != 0 ? c : al < bl ? -1 : al > bl ? 1 : 0;
}

/* The row with this key, or -1. */
static long
rows_find(const struct rows *r, const void *key, size_t klen)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2, kl, vl;
        const unsigned char *k, *v;
        int c;
        row_get(r, mid, &k, &kl, &v, &vl);
        if ((c = key_cmp(k, kl, key, klen)) == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Errors a read of damaged files may return. */
static bool
read_error_ok(int ret)
{
    return ret == LAYERED_CORRUPT || ret == EIO || ret == ENOMEM;
}

/* Errors opening a cursor on a listed table may return. */
static bool
open_error_ok(int ret)
{
    return ret == LAYERED_CORRUPT ||
           (ret > 0 && ret != EINVAL && ret != EBUSY && ret != EAGAIN);
}

static bool
cursor_row(layered_cursor *c, const char *uri, const void **k, size_t *kl,
           const void **v, size_t *vl)
{
    int ret;

    if ((ret = layered_cursor_get(c, k, kl, v, vl)) != 0)
        fz_fail("%s: get after a successful move: %s", uri,
                layered_strerror(ret));
    if (*kl == 0 || *kl > LAYERED_KEY_MAX || *k == NULL || *v == NULL)
        fz_fail("%s: get returned a key of %zu bytes", uri, *kl);
    return true;
}

/*
 * scan --
 *     Read a table or a constituent through one cursor: forwards (keys
 *     strictly ascending), backwards (the same rows reversed), then key by
 *     key with search (the same value) and with search_near just past
 *     each key (the next row).  0, or the error that stopped it (allowed:
 *     damage; anything else fails the run).
 */
static int
scan(layered_session *s, const char *uri, struct rows *out)
{
    layered_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int ret, exact;

    if ((ret = layered_cursor_open(s, uri, &c)) != 0) {
        if (!open_error_ok(ret))
            fz_fail("cursor_open %s: %s", uri, layered_strerror(ret));
        return ret;
    }
    while ((ret = layered_cursor_next(c)) == 0) {
        (void)cursor_row(c, uri, &k, &kl, &v, &vl);
        if (out->n > 0) {
            const unsigned char *pk, *pv;
            size_t pkl, pvl;
            row_get(out, out->n - 1, &pk, &pkl, &pv, &pvl);
            if (key_cmp(pk, pkl, k, kl) >= 0)
                fz_fail("%s: next went from a key to one not larger (row "
                        "%zu)", uri, out->n);
        }
        if (out->n >= SCAN_LIMIT)
            fz_fail("%s: more than %d rows: the cursor does not end", uri,
                    SCAN_LIMIT);
        rows_add(out, k, kl, v, vl);
    }
    if (ret != LAYERED_NOTFOUND)
        goto done;
    /* Backwards: the same rows. */
    for (size_t i = out->n; i > 0; i--) {
        const unsigned char *wk, *wv;
        size_t wkl, wvl;
        if ((ret = layered_cursor_prev(c)) != 0) {
            if (read_error_ok(ret))
                goto done;
            fz_fail("%s: prev at row %zu: %s", uri, i - 1,
                    layered_strerror(ret));
        }
        (void)cursor_row(c, uri, &k, &kl, &v, &vl);
        row_get(out, i - 1, &wk, &wkl, &wv, &wvl);
        if (key_cmp(k, kl, wk, wkl) != 0 || vl != wvl || memcmp(v, wv, vl))
            fz_fail("%s: prev at row %zu differs from next", uri, i - 1);
    }
    if ((ret = layered_cursor_prev(c)) != LAYERED_NOTFOUND) {
        if (ret == 0)
            fz_fail("%s: prev found a row before the first", uri);
        if (!read_error_ok(ret))
            fz_fail("%s: prev past the first row: %s", uri,
                    layered_strerror(ret));
        goto done;
    }
    /* Key by key. */
    for (size_t i = 0; i < out->n && i < SEARCH_LIMIT; i++) {
        const unsigned char *wk, *wv;
        unsigned char *probe;
        size_t wkl, wvl;
        row_get(out, i, &wk, &wkl, &wv, &wvl);
        if ((ret = layered_cursor_search(c, wk, wkl)) != 0) {
            if (read_error_ok(ret))
                goto done;
            fz_fail("%s: search of row %zu: %s", uri, i,
                    layered_strerror(ret));
        }
        (void)cursor_row(c, uri, &k, &kl, &v, &vl);
        if (key_cmp(k, kl, wk, wkl) != 0 || vl != wvl || memcmp(v, wv, vl))
            fz_fail("%s: search of row %zu found another row", uri, i);
        if (wkl >= LAYERED_KEY_MAX)
            continue;
        /* key || 0x00 is the smallest key after key. */
        if ((probe = malloc(wkl + 1)) == NULL)
            abort();
        memcpy(probe, wk, wkl);
        probe[wkl] = 0;
        ret = layered_cursor_search_near(c, probe, wkl + 1, &exact);
        if (ret == 0) {
            const unsigned char *nk, *nv;
            size_t nkl, nvl, j = i + 1 < out->n ? i + 1 : i;
            int want;
            (void)cursor_row(c, uri, &k, &kl, &v, &vl);
            row_get(out, j, &nk, &nkl, &nv, &nvl);
            want = j == i ? -1 : key_cmp(nk, nkl, probe, wkl + 1) == 0 ? 0 : 1;
            if (key_cmp(k, kl, nk, nkl) != 0 || exact != want)
                fz_fail("%s: search_near after row %zu: exact %d, want row "
                        "%zu exact %d", uri, i, exact, j, want);
        } else if (!read_error_ok(ret))
            fz_fail("%s: search_near after row %zu: %s", uri, i,
                    layered_strerror(ret));
        free(probe);
        if (ret != 0)
            goto done;
    }
    ret = 0;
done:
    if (ret != 0 && ret != LAYERED_NOTFOUND && !read_error_ok(ret))
        fz_fail("%s: read: %s", uri, layered_strerror(ret));
    if (layered_cursor_close(c) != 0)
        fz_fail("%s: cursor_close failed", uri);
    return ret == LAYERED_NOTFOUND ? 0 : ret;
}

/* Append a scan's result to a view: the error, then the rows. */
static void
view_add(struct fz_buf *view, const char *uri, int ret, const struct rows *r)
{
    fz_buf_add(view, uri, strlen(uri) + 1);
    fz_buf_u32(view, (uint32_t)ret);
    fz_buf_u32(view, (uint32_t)r->n);
    fz_buf_add(view, r->data.p, r->data.len);
}

/*
 * read_all_tables --
 *     List and read every table into view.  Returns true if every table
 *     that is not offloaded read without an error.
 */
static bool
read_all_tables(layered_session *s, struct fz_buf *view)
{
    struct tables t = {0};
    bool clean = true;
    int ret;

    if ((ret = layered_list_tables(s, list_cb, &t)) != 0)
        fz_fail("list_tables: %s", layered_strerror(ret));
    for (size_t i = 0; i < t.n; i++) {
        char uri[NAME_CAP + 32];
        struct rows lr = {0}, ir = {0}, sr = {0};
        int state, lret, iret, sret;

        (void)snprintf(uri, sizeof(uri), "layered:%s", t.v[i].name);
        state = -1;
        if ((ret = layered_table_state(s, uri, &state)) != 0 ||
            state != t.v[i].state)
            fz_fail("table_state %s: %s, state %d, listed %d", uri,
                    layered_strerror(ret), state, t.v[i].state);
        fz_buf_add(view, t.v[i].name, strlen(t.v[i].name) + 1);
        fz_buf_u32(view, (uint32_t)state);
        lret = scan(s, uri, &lr);
        view_add(view, uri, lret, &lr);
        (void)snprintf(uri, sizeof(uri), "file:%s.ingest", t.v[i].name);
        iret = scan(s, uri, &ir);
        view_add(view, uri, iret, &ir);
        (void)snprintf(uri, sizeof(uri), "file:%s.stable", t.v[i].name);
        sret = scan(s, uri, &sr);
        view_add(view, uri, sret, &sr);
        if (state == LAYERED_TABLE_OFFLOADED) {
            if (lret != ENOENT || iret != ENOENT || sret != ENOENT)
                fz_fail("%s is offloaded, yet a cursor opened on it (%d %d "
                        "%d)", t.v[i].name, lret, iret, sret);
        } else if (lret != 0 || iret != 0 || sret != 0)
            clean = false;
        else {
            /* Ingest over stable: every ingest row is in the layered view
             * with its value, and every layered row comes from the ingest
             * or, failing that, from the stable. */
            for (size_t j = 0; j < ir.n; j++) {
                const unsigned char *k, *v, *lk, *lv;
                size_t kl, vl, lkl, lvl;
                long at;
                row_get(&ir, j, &k, &kl, &v, &vl);
                if ((at = rows_find(&lr, k, kl)) < 0)
                    fz_fail("layered:%s: an ingest row is not in the view",
                            t.v[i].name);
                row_get(&lr, (size_t)at, &lk, &lkl, &lv, &lvl);
                if (vl != lvl || memcmp(v, lv, vl) != 0)
                    fz_fail("layered:%s: the view's value is not the "
                            "ingest's", t.v[i].name);
            }
            for (size_t j = 0; j < lr.n; j++) {
                const unsigned char *k, *v, *sk, *sv;
                size_t kl, vl, skl, svl;
                long at;
                row_get(&lr, j, &k, &kl, &v, &vl);
                if (rows_find(&ir, k, kl) >= 0)
                    continue;
                if ((at = rows_find(&sr, k, kl)) < 0)
                    fz_fail("layered:%s: a row of the view is in neither "
                            "constituent", t.v[i].name);
                row_get(&sr, (size_t)at, &sk, &skl, &sv, &svl);
                if (vl != svl || memcmp(v, sv, vl) != 0)
                    fz_fail("layered:%s: the view's value is not the "
                            "stable's", t.v[i].name);
            }
        }
        rows_free(&lr);
        rows_free(&ir);
        rows_free(&sr);
    }
    free(t.v);
    return clean;
}

/*
 * probe --
 *     After a step-up that drained every ingest: the engine writes into
 *     the files it loaded and into the metadata journal it replayed.  In
 *     each ACTIVE or ARCHIVED table that opens, a leader's insert must read
 *     back and its remove must remove it (the view ends as it began); the
 *     first such table is archived and unarchived; a new table is created,
 *     written and dropped.
 */
static void
probe(layered_session *s)
{
    static const char key[] = "\xff\xfe-probe", val[] = "probe-value";
    struct tables t = {0};
    bool lifecycle = false;
    int ret;

    if ((ret = layered_list_tables(s, list_cb, &t)) != 0)
        fz_fail("list_tables: %s", layered_strerror(ret));
    for (size_t i = 0; i < t.n; i++) {
        char uri[NAME_CAP + 32];
        layered_cursor *c;
        const void *v;
        size_t vl;
        if (t.v[i].state != LAYERED_TABLE_ACTIVE &&
            t.v[i].state != LAYERED_TABLE_ARCHIVED)
            continue;
        (void)snprintf(uri, sizeof(uri), "layered:%s", t.v[i].name);
        if (layered_cursor_open(s, uri, &c) != 0)
            continue;
        if ((ret = layered_cursor_insert(c, key, sizeof(key) - 1, val,
                                         sizeof(val) - 1)) != 0 ||
            (ret = layered_cursor_search(c, key, sizeof(key) - 1)) != 0)
            fz_fail("%s: a leader's insert, then search: %s", uri,
                    layered_strerror(ret));
        if (layered_cursor_get(c, NULL, NULL, &v, &vl) != 0 ||
            vl != sizeof(val) - 1 || memcmp(v, val, vl) != 0)
            fz_fail("%s: the row inserted reads back differently", uri);
        if ((ret = layered_cursor_remove(c, key, sizeof(key) - 1)) != 0)
            fz_fail("%s: remove of the row inserted: %s", uri,
                    layered_strerror(ret));
        if ((ret = layered_cursor_search(c, key, sizeof(key) - 1)) !=
            LAYERED_NOTFOUND)
            fz_fail("%s: the row removed is still found (%s)", uri,
                    layered_strerror(ret));
        if (layered_cursor_close(c) != 0)
            fz_fail("%s: cursor_close failed", uri);
        if (!lifecycle && t.v[i].state == LAYERED_TABLE_ACTIVE) {
            lifecycle = true;
            if ((ret = layered_archive(s, uri)) != 0 ||
                (ret = layered_unarchive(s, uri)) != 0)
                fz_fail("%s: archive and unarchive: %s", uri,
                        layered_strerror(ret));
        }
    }
    free(t.v);

    ret = layered_create(s, "layered:zz-probe", NULL);
    if (ret == EEXIST || (ret > 0 && ret != EINVAL && ret != EBUSY))
        return; /* a name the home has, or a path it has made unusable */
    if (ret != 0)
        fz_fail("create of a new table: %s", layered_strerror(ret));
    {
        layered_cursor *c;
        if ((ret = layered_cursor_open(s, "layered:zz-probe", &c)) != 0 ||
            (ret = layered_cursor_insert(c, key, sizeof(key) - 1, val,
                                         sizeof(val) - 1)) != 0 ||
            (ret = layered_cursor_close(c)) != 0 ||
            (ret = layered_drop(s, "layered:zz-probe", 0)) != 0)
            fz_fail("a new table: write and drop: %s", layered_strerror(ret));
    }
}

static bool
panicked(layered_conn *conn)
{
    layered_conn_stats st;

    return layered_stats(conn, &st) == 0 && st.panicked;
}

static int
open_home(const layered_config *cfg, layered_conn **connp)
{
    int ret = layered_open_os(FZ_HOME, cfg, &fz_os, connp);

    if (ret != 0) {
        if (*connp != NULL)
            fz_fail("open failed (%s) but set its handle",
                    layered_strerror(ret));
        if (!open_error_ok(ret) && ret != LAYERED_PANIC)
            fz_fail("open: %s", layered_strerror(ret));
        fz_check_released("after a failed open");
    }
    return ret;
}

/* How far the runs got (printed at exit with FUZZ_STATS set). */
static unsigned long st_runs, st_opened, st_clean;

static void
print_stats(void)
{
    fprintf(stderr, "fuzz_open: %lu runs, %lu opened, %lu closed cleanly and "
            "reopened\n", st_runs, st_opened, st_clean);
}

static void
run(const uint8_t *data, size_t size)
{
    layered_config cfg;
    layered_conn *conn = NULL;
    layered_session *s;
    layered_drain_stats ds;
    struct fz_buf view = {0}, again = {0};
    uint8_t c = size > 0 ? data[0] : 0;
    bool clean, drained;
    int ret;

    fz_reset();
    atomic_store(&fz_panics, 0);
    write_home(data, size, c);
    fz_config(&cfg, (c & CFG_LEADER) ? LAYERED_ROLE_LEADER
                                     : LAYERED_ROLE_FOLLOWER,
              CFG_SYNC(c), (c & CFG_THREADS2) ? 2 : 1,
              LAYERED_DRAIN_SKIP_MISSING);
    st_runs++;
    if (open_home(&cfg, &conn) != 0)
        return;
    st_opened++;
    if ((ret = layered_session_open(conn, &s)) != 0)
        fz_fail("session_open: %s", layered_strerror(ret));
    struct fz_buf first = {0};
    clean = read_all_tables(s, &first);
    fz_buf_free(&first);

    ret = layered_step_up(conn, &ds);
    if (ret != 0 && ret != LAYERED_PANIC)
        fz_fail("step_up: %s", layered_strerror(ret));
    drained = ret == 0 && !(c & CFG_LEADER);
    clean = clean && ret == 0;
    if (!panicked(conn)) {
        ret = layered_checkpoint(s);
        if (ret != 0 && ret != LAYERED_PANIC && !open_error_ok(ret))
            fz_fail("checkpoint: %s", layered_strerror(ret));
        clean = clean && ret == 0;
        if (ret == 0 && drained)
            probe(s);
    } else
        clean = false;
    if (!panicked(conn))
        clean = read_all_tables(s, &view) && clean;
    else
        clean = false;
    ret = layered_close(conn);
    fz_check_released("after close");
    clean = clean && ret == 0 && atomic_load(&fz_panics) == 0;
    if (!clean) {
        fz_buf_free(&view);
        return;
    }

    /* The home is now the engine's own: it opens again, as it read. */
    st_clean++;
    cfg.role = LAYERED_ROLE_LEADER;
    if ((ret = layered_open_os(FZ_HOME, &cfg, &fz_os, &conn)) != 0)
        fz_fail("reopening a home the engine closed cleanly: %s",
                layered_strerror(ret));
    if ((ret = layered_session_open(conn, &s)) != 0)
        fz_fail("session_open: %s", layered_strerror(ret));
    (void)read_all_tables(s, &again);
    if (again.len != view.len ||
        (view.len > 0 && memcmp(again.p, view.p, view.len) != 0))
        fz_fail("the home reads differently after a clean close and reopen "
                "(%zu bytes of view, %zu before)", again.len, view.len);
    if ((ret = layered_close(conn)) != 0)
        fz_fail("close after reopen: %s", layered_strerror(ret));
    fz_check_released("after the second close");
    fz_buf_free(&view);
    fz_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

/* ---- seeds: real homes, serialised in the framing ---- */

static const char *seed_dir;
static int seed_count;

static void
ser_entry(struct fz_buf *b, int kind, const char *name, const void *data,
          size_t len)
{
    if (len > 0xffff)
        fz_fail("seed file of %zu bytes does not fit the framing", len);
    fz_buf_u8(b, (unsigned)kind);
    if (kind_named(kind)) {
        fz_buf_u8(b, (unsigned)strlen(name));
        fz_buf_add(b, name, strlen(name));
    }
    if (kind != K_DIR) {
        fz_buf_u8(b, (unsigned)(len & 0xff));
        fz_buf_u8(b, (unsigned)(len >> 8));
        fz_buf_add(b, data, len);
    }
}

/* One directory of the simulated disk into entries. */
static void
ser_dir(struct fz_buf *b, const char *dir, bool shared)
{
    const char *e;

    for (int i = 0; (e = sim_dir_entry(dir, i)) != NULL; i++) {
        char name[256], path[512];
        unsigned char *data;
        size_t len, nl;
        struct stat st;
        int kind;

        (void)snprintf(name, sizeof(name), "%s", e);
        (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (sim_os.stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (!shared && strcmp(name, "shared") != 0)
                ser_entry(b, K_DIR, name, NULL, 0);
            continue;
        }
        nl = strlen(name);
        if (shared) {
            kind = nl > 7 && strcmp(name + nl - 7, ".stable") == 0 ? K_STABLE
                                                                   : K_SHARED_FILE;
            if (kind == K_STABLE)
                name[nl - 7] = '\0';
        } else if (strcmp(name, "layered.meta") == 0)
            kind = K_META;
        else if (strcmp(name, "layered.meta.log") == 0)
            kind = K_LOG;
        else if (strcmp(name, "LOCK") == 0)
            kind = K_LOCK;
        else if (strcmp(name, "layered.meta.tmp") == 0)
            kind = K_TMP;
        else if (nl > 7 && strcmp(name + nl - 7, ".ingest") == 0) {
            kind = K_INGEST;
            name[nl - 7] = '\0';
        } else
            continue;
        if ((data = fz_read_file(path, &len)) == NULL)
            continue;
        ser_entry(b, kind, name, data, len);
        free(data);
    }
}

static void
seed_write(const char *what, uint8_t cfg)
{
    struct fz_buf b = {0};
    char path[4096];
    FILE *f;

    fz_buf_u8(&b, cfg);
    ser_dir(&b, FZ_HOME, false);
    ser_dir(&b, FZ_SHARED, true);
    (void)snprintf(path, sizeof(path), "%s/%02d-%s", seed_dir, ++seed_count,
                   what);
    if ((f = fopen(path, "wb")) == NULL || fwrite(b.p, 1, b.len, f) != b.len ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s: %zu bytes\n", path, b.len);
    fz_buf_free(&b);
}

static layered_conn *
seed_open(int role, layered_session **sp)
{
    layered_config cfg;
    layered_conn *conn;
    int ret;

    fz_config(&cfg, role, LAYERED_SYNC_WRITE, 1, LAYERED_DRAIN_SKIP_MISSING);
    if ((ret = layered_open_os(FZ_HOME, &cfg, &fz_os, &conn)) != 0 ||
        (ret = layered_session_open(conn, sp)) != 0)
        fz_fail("seed: open: %s", layered_strerror(ret));
    return conn;
}

#define SEED_OK(call)                                                       \
    do {                                                                    \
        int r_ = (call);                                                    \
        if (r_ != 0)                                                        \
            fz_fail("seed: %s: %s", #call, layered_strerror(r_));           \
    } while (0)

static void
seed_put(layered_session *s, const char *table, const char *key,
         const char *val)
{
    char uri[64];
    layered_cursor *c;

    (void)snprintf(uri, sizeof(uri), "layered:%s", table);
    SEED_OK(layered_cursor_open(s, uri, &c));
    SEED_OK(layered_cursor_insert(c, key, strlen(key), val, strlen(val)));
    SEED_OK(layered_cursor_close(c));
}

static void
seed_del(layered_session *s, const char *table, const char *key)
{
    char uri[64];
    layered_cursor *c;

    (void)snprintf(uri, sizeof(uri), "layered:%s", table);
    SEED_OK(layered_cursor_open(s, uri, &c));
    SEED_OK(layered_cursor_remove(c, key, strlen(key)));
    SEED_OK(layered_cursor_close(c));
}

/* Overwrite bytes of a file on the simulated disk. */
static void
seed_poke(const char *path, long off, const void *bytes, size_t n)
{
    unsigned char *data;
    size_t len;

    if ((data = fz_read_file(path, &len)) == NULL)
        fz_fail("seed: %s missing", path);
    if (off < 0)
        off += (long)len;
    if (off < 0 || (size_t)off + n > len)
        fz_fail("seed: poke past the end of %s", path);
    memcpy(data + off, bytes, n);
    (void)fz_write_file(path, data, len);
    free(data);
}

static void
seed_cut(const char *path, size_t by)
{
    unsigned char *data;
    size_t len;

    if ((data = fz_read_file(path, &len)) == NULL || len < by)
        fz_fail("seed: cannot cut %s", path);
    (void)fz_write_file(path, data, len - by);
    free(data);
}

/* A snapshot written by hand, with a correct checksum. */
static void
seed_snapshot(const char *body)
{
    char buf[2048];
    unsigned count = 0;

    for (const char *p = body; (p = strstr(p, "table ")) != NULL; p++)
        count++;
    (void)snprintf(buf, sizeof(buf), "%send %u %08x\n", body, count,
                   fz_crc32c(0, body, strlen(body)));
    (void)fz_write_file(FZ_HOME "/layered.meta", buf, strlen(buf));
}

static void
seed_journal(const char *const *lines, int n)
{
    struct fz_buf b = {0};

    for (int i = 0; i < n; i++) {
        char rec[300];
        (void)snprintf(rec, sizeof(rec), "%08x %s\n",
                       fz_crc32c(0, lines[i], strlen(lines[i])), lines[i]);
        fz_buf_add(&b, rec, strlen(rec));
    }
    (void)fz_write_file(FZ_HOME "/layered.meta.log", b.p, b.len);
    fz_buf_free(&b);
}

static void
make_seeds(void)
{
    layered_conn *conn;
    layered_session *s;
    char key[32], val[128];

    /* An empty home. */
    fz_reset();
    conn = seed_open(LAYERED_ROLE_FOLLOWER, &s);
    SEED_OK(layered_close(conn));
    seed_write("empty", 0x00);

    /* A leader's tables: stable rows, an overwrite, a remove. */
    fz_reset();
    conn = seed_open(LAYERED_ROLE_LEADER, &s);
    SEED_OK(layered_create(s, "layered:t1", NULL));
    SEED_OK(layered_create(s, "layered:t2", NULL));
    for (int i = 0; i < 6; i++) {
        (void)snprintf(key, sizeof(key), "k%02d", i);
        (void)snprintf(val, sizeof(val), "value-%d-%.*s", i, i * 8,
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        seed_put(s, "t1", key, val);
    }
    seed_put(s, "t1", "k02", "overwritten");
    seed_del(s, "t1", "k04");
    seed_put(s, "t2", "only", "");
    SEED_OK(layered_checkpoint(s));
    SEED_OK(layered_close(conn));
    seed_write("leader", 0x03);

    /* A follower's ingest over a leader's stable: rows, overwrites and
     * tombstones in the ingest. */
    fz_reset();
    conn = seed_open(LAYERED_ROLE_LEADER, &s);
    SEED_OK(layered_create(s, "layered:orders", NULL));
    SEED_OK(layered_create(s, "layered:users", NULL));
    seed_put(s, "orders", "o1", "stable-1");
    seed_put(s, "orders", "o2", "stable-2");
    seed_put(s, "orders", "o3", "stable-3");
    seed_put(s, "users", "u1", "alice");
    SEED_OK(layered_close(conn));
    conn = seed_open(LAYERED_ROLE_FOLLOWER, &s);
    seed_put(s, "orders", "o2", "ingest-2");
    seed_put(s, "orders", "o4", "ingest-4");
    seed_del(s, "orders", "o1");
    seed_put(s, "users", "u2", "bob");
    SEED_OK(layered_close(conn));
    seed_write("follower", 0x02);
    seed_write("follower-repaired", 0x72);

    /* ... with the ingest's last record torn, and with a stable record's
     * byte changed (damage, not a tail). */
    seed_cut(FZ_HOME "/orders.ingest", 5);
    seed_write("torn-ingest", 0x02);
    seed_poke(FZ_SHARED "/orders.stable", 32 + 24 + 1, "#", 1);
    seed_write("damaged-stable", 0x02);

    /* Lifecycle states, and a journal of schema changes (read while the
     * connection is open, before close folds it into a snapshot). */
    fz_reset();
    conn = seed_open(LAYERED_ROLE_LEADER, &s);
    SEED_OK(layered_create(s, "layered:a", NULL));
    SEED_OK(layered_create(s, "layered:b", NULL));
    SEED_OK(layered_create(s, "layered:c", NULL));
    SEED_OK(layered_create(s, "layered:gone", NULL));
    seed_put(s, "a", "ka", "va");
    seed_put(s, "b", "kb", "vb");
    SEED_OK(layered_archive(s, "layered:a"));
    SEED_OK(layered_archive(s, "layered:b"));
    SEED_OK(layered_offload(s, "layered:b"));
    SEED_OK(layered_drop(s, "layered:gone", 0));
    SEED_OK(layered_step_down(conn));
    seed_put(s, "c", "kc", "follower");
    seed_write("journal", 0x00);
    seed_write("journal-repaired", 0x20);
    SEED_OK(layered_close(conn));
    seed_write("lifecycle", 0x09);

    /* ... its journal torn, its snapshot's checksum wrong. */
    seed_journal((const char *const[]){"journal - 1", "create x 0",
                                       "state x 1"},
                 3);
    seed_cut(FZ_HOME "/layered.meta.log", 3);
    seed_write("torn-journal", 0x00);
    seed_poke(FZ_HOME "/layered.meta", 0, "L", 1);
    seed_write("bad-snapshot", 0x00);

    /* Recovery: a drop and an offload a crash interrupted (a snapshot
     * listing a table as dropped, a journal recording one as stopping). */
    fz_reset();
    conn = seed_open(LAYERED_ROLE_LEADER, &s);
    SEED_OK(layered_create(s, "layered:half", NULL));
    SEED_OK(layered_create(s, "layered:stop", NULL));
    SEED_OK(layered_create(s, "layered:keep", NULL));
    seed_put(s, "keep", "k", "v");
    SEED_OK(layered_close(conn));
    seed_snapshot("layered-meta 1\ngen 3\nlsn 9\ntable half 4 0\n"
                  "table keep 0 0\ntable stop 1 0\n");
    seed_journal((const char *const[]){"journal - 3", "state stop 3",
                                       "dropping keep 0", "create new 0"},
                 2);
    seed_write("recovery", 0x00);
    seed_journal((const char *const[]){"journal - 3", "state stop 3",
                                       "dropping keep 0", "create new 0"},
                 4);
    seed_write("recovery-journal", 0x30);
    /* A journal of an older generation is ignored. */
    seed_journal((const char *const[]){"journal - 2", "drop keep 0"}, 2);
    seed_write("old-journal", 0x00);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (getenv("FUZZ_STATS") != NULL)
        atexit(print_stats);
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp((*argv)[i], "--make-seeds") == 0) {
            seed_dir = (*argv)[i + 1];
            make_seeds();
            exit(0);
        }
    return 0;
}
