/*
 * crc32c.c -- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) for every
 * checksum weir writes. Two implementations produce identical results:
 *
 *  - software: slicing-by-8 over eight 256-entry tables, one 8-byte word
 *    per step;
 *  - x86_64 SSE4.2: the crc32 instruction, run on three independent streams
 *    at once for long inputs (the instruction has a latency of ~3 cycles but
 *    a throughput of one per cycle) and stitched together with a "shift by
 *    N zero bytes" operator held in lookup tables.
 *
 * The choice is made once, on first use, from __builtin_cpu_supports.
 * Building with -DWEIR_CRC32C_NO_HW forces the portable path (as on non-x86).
 * Internally the CRC register is kept un-inverted; crc32c_extend applies the
 * standard pre/post inversion so results chain across calls.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(WEIR_CRC32C_NO_HW)
#define WEIR_CRC32C_X86 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

/* slicing tables: slice8[0] is the classic byte table, slice8[k] advances a
 * byte k further positions through the register. */
static uint32_t slice8[8][256];

static inline uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint32_t crc_register_sw(uint32_t reg, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) {
        reg = slice8[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo = reg ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        reg = slice8[7][lo & 0xff] ^ slice8[6][(lo >> 8) & 0xff] ^
              slice8[5][(lo >> 16) & 0xff] ^ slice8[4][lo >> 24] ^
              slice8[3][hi & 0xff] ^ slice8[2][(hi >> 8) & 0xff] ^
              slice8[1][(hi >> 16) & 0xff] ^ slice8[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) reg = slice8[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
    return reg;
}

static uint32_t crc_extend_sw(uint32_t crc, const void *data, size_t n) {
    return ~crc_register_sw(~crc, (const unsigned char *)data, n);
}

static void init_slice_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int b = 0; b < 8; b++) r = (r >> 1) ^ (CRC32C_POLY & (0u - (r & 1)));
        slice8[0][i] = r;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            slice8[k][i] = (slice8[k - 1][i] >> 8) ^ slice8[0][slice8[k - 1][i] & 0xff];
}

#ifdef WEIR_CRC32C_X86

/* Stream lengths for the three-way interleave: long inputs use LONG-byte
 * streams, what remains uses SHORT-byte ones, the tail goes one word at a
 * time. Both are multiples of 8. */
#define CRC_LONG 2048
#define CRC_SHORT 256

/* shift tables: the register after feeding N zero bytes is a linear function
 * of the register before, so it splits into four per-byte lookups. */
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

static void init_shift_table(uint32_t table[4][256], size_t zero_bytes) {
    static const unsigned char zeros[CRC_LONG];
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++)
        basis[bit] = crc_register_sw(UINT32_C(1) << bit, zeros, zero_bytes);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t r = 0;
            for (int bit = 0; bit < 8; bit++)
                if (v & (1u << bit)) r ^= basis[k * 8 + bit];
            table[k][v] = r;
        }
}

static inline uint32_t shift_register(uint32_t table[4][256], uint32_t reg) {
    return table[0][reg & 0xff] ^ table[1][(reg >> 8) & 0xff] ^ table[2][(reg >> 16) & 0xff] ^
           table[3][reg >> 24];
}

static inline uint64_t load_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

__attribute__((target("sse4.2"))) static uint32_t crc_extend_hw(uint32_t crc, const void *data,
                                                                 size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t reg = (uint32_t)~crc;

    while (n >= 3 * CRC_LONG) {
        uint64_t r1 = 0, r2 = 0;
        for (size_t i = 0; i < CRC_LONG; i += 8) {
            reg = _mm_crc32_u64(reg, load_u64(p + i));
            r1 = _mm_crc32_u64(r1, load_u64(p + CRC_LONG + i));
            r2 = _mm_crc32_u64(r2, load_u64(p + 2 * CRC_LONG + i));
        }
        reg = shift_register(shift_long, (uint32_t)reg) ^ (uint32_t)r1;
        reg = shift_register(shift_long, (uint32_t)reg) ^ (uint32_t)r2;
        p += 3 * CRC_LONG;
        n -= 3 * CRC_LONG;
    }
    while (n >= 3 * CRC_SHORT) {
        uint64_t r1 = 0, r2 = 0;
        for (size_t i = 0; i < CRC_SHORT; i += 8) {
            reg = _mm_crc32_u64(reg, load_u64(p + i));
            r1 = _mm_crc32_u64(r1, load_u64(p + CRC_SHORT + i));
            r2 = _mm_crc32_u64(r2, load_u64(p + 2 * CRC_SHORT + i));
        }
        reg = shift_register(shift_short, (uint32_t)reg) ^ (uint32_t)r1;
        reg = shift_register(shift_short, (uint32_t)reg) ^ (uint32_t)r2;
        p += 3 * CRC_SHORT;
        n -= 3 * CRC_SHORT;
    }
    while (n >= 8) {
        reg = _mm_crc32_u64(reg, load_u64(p));
        p += 8;
        n -= 8;
    }
    uint32_t r = (uint32_t)reg;
    while (n--) r = _mm_crc32_u8(r, *p++);
    return ~r;
}

#endif /* WEIR_CRC32C_X86 */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static crc_fn crc_chosen;
static int crc_uses_hardware;

static void crc_init(void) {
    init_slice_tables();
    crc_chosen = crc_extend_sw;
#ifdef WEIR_CRC32C_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        init_shift_table(shift_long, CRC_LONG);
        init_shift_table(shift_short, CRC_SHORT);
        crc_chosen = crc_extend_hw;
        crc_uses_hardware = 1;
    }
#endif
}

static uint32_t crc_extend_first(uint32_t crc, const void *data, size_t n);

/* Starts at a trampoline that initialises the tables; afterwards holds the
 * chosen implementation, so the steady state is one relaxed load. */
static _Atomic(crc_fn) crc_impl = crc_extend_first;

static uint32_t crc_extend_first(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    atomic_store_explicit(&crc_impl, crc_chosen, memory_order_release);
    return crc_chosen(crc, data, n);
}

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n) {
    /* Acquire pairs with the release above so the tables are visible to a
     * thread that sees the final pointer without having run pthread_once. */
    crc_fn f = atomic_load_explicit(&crc_impl, memory_order_acquire);
    return f(crc, data, n);
}

int crc32c_hardware(void) {
    pthread_once(&crc_once, crc_init);
    return crc_uses_hardware;
}

uint32_t crc32c_extend_software(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    return crc_extend_sw(crc, data, n);
}
