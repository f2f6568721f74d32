/*
 * crc32c.c -- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of every file-store record.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does 8 bytes per step;
 * elsewhere a slicing-by-8 table does the same work in portable C.  The
 * choice is made once, at the first call (pthread_once), so the function is
 * safe to call from any thread at any time.  The interface chains like
 * zlib's crc32(): crc32c(crc32c(0, a, la), b, lb) == crc32c(0, ab, la + lb).
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "filestore.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc32c_impl)(uint32_t, const unsigned char *, size_t);

/*
 * crc32c_sw --
 *     Slicing-by-8: eight table lookups per 8 input bytes.  Works on any
 *     CPU and any alignment (the 8-byte loads go through memcpy).
 */
static uint32_t
crc32c_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t w;

    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        --len;
    }
    while (len >= 8) {
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= crc;
        crc = crc32c_table[7][w & 0xff] ^
              crc32c_table[6][(w >> 8) & 0xff] ^
              crc32c_table[5][(w >> 16) & 0xff] ^
              crc32c_table[4][(w >> 24) & 0xff] ^
              crc32c_table[3][(w >> 32) & 0xff] ^
              crc32c_table[2][(w >> 40) & 0xff] ^
              crc32c_table[1][(w >> 48) & 0xff] ^
              crc32c_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        --len;
    }
    return crc;
}

#ifdef CRC32C_HAVE_SSE42
/*
 * crc32c_hw --
 *     The SSE4.2 crc32 instruction, 8 bytes at a time once the pointer is
 *     aligned.  Compiled for SSE4.2 only here, so the rest of the library
 *     keeps the baseline instruction set.
 */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc, w;

    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        --len;
    }
    while (len >= 8) {
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        --len;
    }
    return (uint32_t)c;
}
#endif

/*
 * crc32c_init --
 *     Build the slicing tables and pick the implementation; runs once.
 */
static void
crc32c_init(void)
{
    uint32_t crc;
    int i, j, k;

    for (i = 0; i < 256; i++) {
        crc = (uint32_t)i;
        for (j = 0; j < 8; j++)
            crc = (crc & 1) != 0 ? (crc >> 1) ^ CRC32C_POLY : crc >> 1;
        crc32c_table[0][i] = crc;
    }
    for (i = 0; i < 256; i++) {
        crc = crc32c_table[0][i];
        for (k = 1; k < 8; k++) {
            crc = crc32c_table[0][crc & 0xff] ^ (crc >> 8);
            crc32c_table[k][i] = crc;
        }
    }
    crc32c_impl = crc32c_sw;
#ifdef CRC32C_HAVE_SSE42
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc32c_impl = crc32c_hw;
#endif
}

uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
    (void)pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_impl(~crc, buf, len);
}

/*
 * crc32c_portable --
 *     The table-driven implementation whatever the CPU, so tests can check
 *     that both paths agree.
 */
uint32_t
crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    (void)pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw(~crc, buf, len);
}
