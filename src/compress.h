/*
 * compress.h -- block compression codecs. Which ones exist depends on the
 * libraries found at build time (liblz4, libzstd); tables record the
 * codecs they use so a build without one refuses them clearly.
 *
 * A compressed block is varint32 uncompressed length | codec payload.
 */
#ifndef WEIR_COMPRESS_H
#define WEIR_COMPRESS_H

#include "coding.h"

/* Codec ids as stored in block trailers (match WEIR_COMPRESSION_*). */
enum {
    CODEC_NONE = 0,
    CODEC_LZ4 = 1,
    CODEC_ZSTD = 2,
    CODEC_MAX = 2
};

/* 1 if this build can write and read `codec`. */
int codec_supported(int codec);
/* "none", "lz4", "zstd", or "unknown". */
const char *codec_name(int codec);
/* Space-separated names of the codecs compiled in, e.g. "none lz4 zstd". */
const char *codec_list(void);

/* Compress `in` into out (replacing its contents). 0 on success, -1 if
 * the codec is unavailable or failed (store the block uncompressed). */
int codec_compress(int codec, slice in, buf *out);

/* Decompress a block into a new malloc'd buffer. WEIR_OK, WEIR_CORRUPTION
 * (bad payload; message says why), WEIR_NOT_SUPPORTED or WEIR_NO_MEMORY. */
int codec_decompress(int codec, slice in, char **out, size_t *out_len);

#endif
