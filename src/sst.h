/*
 * sst.h -- immutable sorted table files ("sst").
 *
 * Layout:
 *   data block 0 + trailer ... data block N-1 + trailer
 *   filter block + trailer   (one bloom filter over every user key; may be
 *                             empty when bloom bits are 0)
 *   index block + trailer    (one entry per data block: key = an internal
 *                             key >= the block's last key and < the next
 *                             block's first key; value = varint64 offset |
 *                             varint64 size | varint32 block ordinal)
 *   footer, SST_FOOTER_SIZE bytes:
 *     fixed64 filter offset, fixed64 filter size,
 *     fixed64 index offset,  fixed64 index size,
 *     fixed64 number of entries,
 *     fixed32 format version (SST_FORMAT_VERSION), fixed32 flags (bit
 *     1 << codec for every compression codec some data block uses),
 *     fixed32 masked crc32c of the 48 bytes above, fixed32 zero,
 *     fixed64 magic SST_MAGIC
 * Data blocks carry a hash index of their user keys (block.h) when their
 * restart count allows one.
 * Block trailer (SST_TRAILER_SIZE bytes): 1 byte compression type
 * (SST_COMPRESSION_*; only data blocks are ever compressed, and only when
 * that saves at least 1/8) | fixed32 masked crc32c over the stored block
 * bytes and the type byte. Sizes in handles exclude the trailer; a
 * compressed block's bytes are compress.h's format.
 *
 * Readers map the file read-only and hand out pointers into the map; each
 * data block's checksum is verified the first time it is touched (a bitmap
 * remembers which were), index and filter at open.
 */
#ifndef WEIR_SST_H
#define WEIR_SST_H

#include <stdint.h>

#include "coding.h"
#include "dbformat.h"
#include "env.h"

#define SST_MAGIC UINT64_C(0x57454952535354a1) /* "WEIRSST" + version byte */
/* Version 2: data blocks may carry a hash index (block.h). Version 1
 * tables (no hash index) are still read. */
#define SST_FORMAT_VERSION 2
#define SST_OLDEST_FORMAT_VERSION 1
#define SST_FOOTER_SIZE 64
#define SST_TRAILER_SIZE 5
#define SST_COMPRESSION_NONE 0
#define SST_COMPRESSION_LZ4 1
#define SST_COMPRESSION_ZSTD 2

/* Data blocks store every SST_RESTART_INTERVAL-th key whole (a restart).
 * A point lookup finds the restart interval (hash index, else a binary
 * search) and then scans forward through prefix-compressed keys, decoding
 * each: 4 keeps that scan to 1.5 entries on average where 16 (LevelDB's
 * and RocksDB's default) costs 7.5, for about 2% more space with 16-byte
 * keys (measured in BENCHMARKS.md). Readers take any interval: it is
 * recorded in each block. */
#define SST_RESTART_INTERVAL 4

typedef struct sst_build_options {
    size_t block_size;      /* target uncompressed data block size */
    int restart_interval;   /* 16 is a good default */
    int bloom_bits_per_key; /* 0: no filter */
    int compression;        /* SST_COMPRESSION_*; must be compiled in */
} sst_build_options;

typedef struct sst_builder sst_builder;

/* Create the file at path (truncating). */
int sst_builder_open(weir_env *env, const char *path, const sst_build_options *opts,
                     sst_builder **out);
/* Add an entry; internal keys must be strictly increasing (ikey_compare).
 * WEIR_INVALID if not, WEIR_IO_ERROR/WEIR_NO_SPACE from the file. */
int sst_builder_add(sst_builder *b, slice ikey, slice value);
uint64_t sst_builder_num_entries(const sst_builder *b);
/* Bytes written so far plus the pending block: when to cut a file. */
uint64_t sst_builder_file_size(const sst_builder *b);
/* Write filter, index and footer, fsync and close. *file_size is the final
 * size. The builder is freed whatever the result. */
int sst_builder_finish(sst_builder *b, uint64_t *file_size);
/* Close without finishing (caller removes the file). Frees the builder. */
void sst_builder_abandon(sst_builder *b);

typedef struct sst_reader sst_reader;

/* Open a finished table: map it, check footer, magic, sizes, and the index
 * and filter checksums. WEIR_CORRUPTION names the file and the offset. */
int sst_reader_open(weir_env *env, const char *path, uint64_t file_size, sst_reader **out);
void sst_reader_close(sst_reader *r);

struct block_cache;
/* Keep decompressed data blocks of this table in `cache` (NULL: decompress
 * on every use). Set once, right after open. */
void sst_reader_set_block_cache(sst_reader *r, struct block_cache *cache);
/* Bitmask (1 << codec) of the compression codecs the table's blocks use. */
uint32_t sst_reader_codecs(const sst_reader *r);

uint64_t sst_reader_num_entries(const sst_reader *r);
uint64_t sst_reader_num_blocks(const sst_reader *r);

/* Called by sst_reader_get with the first entry whose internal key is >=
 * the lookup key (the caller checks the user key). Pointers are valid only
 * during the call. */
typedef void (*sst_get_fn)(void *arg, slice ikey, slice value);

/* Point lookup. If the bloom filter says user_key (whose bloom_hash is
 * `hash`) is absent, returns WEIR_OK without calling fn; otherwise seeks
 * lookup_ikey and, if an entry >= it exists in the table, calls fn once.
 * Returns WEIR_OK or the error (corruption names file and offset). */
int sst_reader_get(sst_reader *r, slice lookup_ikey, uint64_t hash, sst_get_fn fn, void *arg);
/* sst_reader_get for a caller that has already asked the filter
 * (sst_reader_may_contain) and been told the key may be present. flags:
 * SST_READ_MEMORY_ONLY returns WEIR_INCOMPLETE (calling nothing) instead of
 * reading a data block for the first time since the table was opened. */
#define SST_READ_MEMORY_ONLY 1u
int sst_reader_get_unfiltered(sst_reader *r, slice lookup_ikey, uint64_t hash, unsigned flags,
                              sst_get_fn fn, void *arg);

/* 0 if the filter proves user_key (hash) absent, 1 otherwise. */
int sst_reader_may_contain(const sst_reader *r, uint64_t hash);

/* Iterator over the table's entries. cleanup(cleanup_arg) runs when it is
 * destroyed (the table cache releases its handle there). NULL on OOM (after
 * running cleanup). Errors surface through iter_status. */
iter *sst_reader_iter(sst_reader *r, void (*cleanup)(void *), void *cleanup_arg);
/* Point an iterator made by sst_reader_iter at another table, keeping its
 * memory: a level iterator moving between tables (every seek that lands
 * in another file) then allocates and frees nothing. Runs the old cleanup
 * and takes the new one; the iterator is unpositioned, with no error.
 * 0 (nothing done) if `it` is not such an iterator. */
int sst_reader_iter_retarget(iter *it, sst_reader *r, void (*cleanup)(void *), void *cleanup_arg);

/* Salvage: a forward iterator (seek_first and next only) that reports each
 * data block that fails its checksum or cannot be decoded, through fn
 * (offset, stored size or 0 if unknown, the last intact key before it
 * (empty at the start), the index key bounding the block's keys from
 * above, the reason) and goes on with the next block instead of stopping.
 * A damaged index or footer still fails the whole table. cleanup as for
 * sst_reader_iter. For weir_salvage only. NULL on OOM. */
typedef void (*sst_damage_fn)(void *arg, uint64_t offset, uint64_t size, slice lower_key, slice upper_key,
                              const char *reason);
iter *sst_reader_salvage_iter(sst_reader *r, sst_damage_fn fn, void *arg, void (*cleanup)(void *),
                              void *cleanup_arg);

/* Verify every block's checksum and that every block parses and its keys
 * are in order. WEIR_CORRUPTION names the file and the block's offset. */
int sst_reader_verify(sst_reader *r);

/* Approximate file offset of the first entry >= ikey (for size estimates). */
uint64_t sst_reader_approximate_offset(sst_reader *r, slice ikey);

#endif
