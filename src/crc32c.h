/*
 * crc32c.h -- CRC-32C (Castagnoli), hardware-accelerated with SSE4.2 when
 * the CPU has it (detected at run time), table-driven otherwise.
 */
#ifndef WEIR_CRC32C_H
#define WEIR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc of data appended to a stream whose crc so far is `crc` (0 to start). */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);

static inline uint32_t crc32c_value(const void *data, size_t n) {
    return crc32c_extend(0, data, n);
}

/* Stored checksums are masked so that a CRC computed over data that itself
 * contains CRCs does not degenerate (rotate and add a constant). */
static inline uint32_t crc32c_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static inline uint32_t crc32c_unmask(uint32_t masked) {
    uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

/* 1 if the hardware path is in use (for weir_version / stats). */
int crc32c_hardware(void);

/* The portable table-driven implementation alone, whatever the CPU (for
 * tests that check the hardware path against it). */
uint32_t crc32c_extend_software(uint32_t crc, const void *data, size_t n);

#endif
