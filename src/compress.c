/*
 * compress.c -- see compress.h. The uncompressed length is stored in front
 * of every payload so decompression allocates exactly once and can reject
 * a payload that decodes to a different size.
 */
#include "compress.h"

#include <stdlib.h>

#include "status.h"

#ifdef WEIR_HAVE_LZ4
#include <lz4.h>
#endif
#ifdef WEIR_HAVE_ZSTD
#include <zstd.h>
#endif

/* A block never decompresses to more than this (blocks are cut far
 * smaller); a larger claim is corruption, not a reason to allocate. */
#define MAX_UNCOMPRESSED (UINT32_C(1) << 30)

int codec_supported(int codec) {
    switch (codec) {
    case CODEC_NONE: return 1;
#ifdef WEIR_HAVE_LZ4
    case CODEC_LZ4: return 1;
#endif
#ifdef WEIR_HAVE_ZSTD
    case CODEC_ZSTD: return 1;
#endif
    default: return 0;
    }
}

const char *codec_name(int codec) {
    switch (codec) {
    case CODEC_NONE: return "none";
    case CODEC_LZ4: return "lz4";
    case CODEC_ZSTD: return "zstd";
    default: return "unknown";
    }
}

const char *codec_list(void) {
    return "none"
#ifdef WEIR_HAVE_LZ4
           " lz4"
#endif
#ifdef WEIR_HAVE_ZSTD
           " zstd"
#endif
        ;
}

int codec_compress(int codec, slice in, buf *out) {
    if (!codec_supported(codec) || codec == CODEC_NONE || in.len > MAX_UNCOMPRESSED) return -1;
    buf_clear(out);
    if (buf_put_varint32(out, (uint32_t)in.len) != 0) return -1;
    size_t header = out->len;
    size_t bound = 0;
#ifdef WEIR_HAVE_LZ4
    if (codec == CODEC_LZ4) bound = (size_t)LZ4_compressBound((int)in.len);
#endif
#ifdef WEIR_HAVE_ZSTD
    if (codec == CODEC_ZSTD) bound = ZSTD_compressBound(in.len);
#endif
    if (bound == 0 || buf_reserve(out, bound) != 0) return -1;
    size_t n = 0;
#ifdef WEIR_HAVE_LZ4
    if (codec == CODEC_LZ4) {
        int r = LZ4_compress_default(in.data, out->data + header, (int)in.len, (int)bound);
        if (r <= 0) return -1;
        n = (size_t)r;
    }
#endif
#ifdef WEIR_HAVE_ZSTD
    if (codec == CODEC_ZSTD) {
        /* Level 3: zstd's default, a good speed/ratio point for LSM blocks. */
        size_t r = ZSTD_compress(out->data + header, bound, in.data, in.len, 3);
        if (ZSTD_isError(r)) return -1;
        n = r;
    }
#endif
    out->len = header + n;
    return 0;
}

int codec_decompress(int codec, slice in, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!codec_supported(codec) || codec == CODEC_NONE)
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "block uses compression %s (%d), which this build does not include "
                              "(compiled in: %s)",
                              codec_name(codec), codec, codec_list());
    uint32_t raw_len;
    const char *p = decode_varint32(in.data, in.data + in.len, &raw_len);
    if (!p || raw_len > MAX_UNCOMPRESSED)
        return weir_set_error(WEIR_CORRUPTION, "%s block has a bad uncompressed length",
                              codec_name(codec));
    size_t payload = in.len - (size_t)(p - in.data);
    char *dst = malloc(raw_len ? raw_len : 1);
    if (!dst) return weir_set_error(WEIR_NO_MEMORY, "out of memory decompressing a %u-byte block", raw_len);
    int ok = 0;
#ifdef WEIR_HAVE_LZ4
    if (codec == CODEC_LZ4) {
        int r = LZ4_decompress_safe(p, dst, (int)payload, (int)raw_len);
        ok = r >= 0 && (uint32_t)r == raw_len;
    }
#endif
#ifdef WEIR_HAVE_ZSTD
    if (codec == CODEC_ZSTD) {
        size_t r = ZSTD_decompress(dst, raw_len, p, payload);
        ok = !ZSTD_isError(r) && r == raw_len;
    }
#endif
    if (!ok) {
        free(dst);
        return weir_set_error(WEIR_CORRUPTION, "%s block does not decompress to its recorded %u bytes",
                              codec_name(codec), raw_len);
    }
    *out = dst;
    *out_len = raw_len;
    return WEIR_OK;
}
