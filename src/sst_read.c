/*
 * sst_read.c -- reads immutable table files (layout in sst.h): opens and
 * validates a mapped file, answers point lookups without allocating, and
 * provides the two-level (index -> data block) iterator, full verification
 * and offset estimates.
 *
 * The file is untrusted: the footer, index and filter are checked at open,
 * each data block's checksum the first time it is used, and everything
 * decoded from a block is bounds-checked before use.
 */
#include "sst.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "status.h"

struct sst_reader {
    weir_env *env;
    env_readable *file;  /* kept open: the mapping is released through it */
    env_mapping map;
    const char *base;
    uint64_t size;       /* the table's size (the mapping may be longer) */
    uint64_t data_end;   /* data blocks live in [0, data_end) */
    uint64_t filter_off;
    uint64_t index_off;
    block index;
    const char *filter;
    size_t filter_len;
    uint64_t num_entries;
    uint64_t num_blocks;
    /* Bit n set: data block n passed its checksum. Concurrent readers may
     * verify the same block twice, which is harmless. */
    _Atomic uint64_t *verified;
    uint32_t codecs;           /* footer flags: codecs the blocks use */
    block_cache *cache;        /* decompressed blocks, or NULL */
    uint64_t cache_id;
    /* The index again, for point lookups (build_lookup_index): per block,
     * the 8 bytes of its separator's user key after the prefix every
     * separator shares, big-endian, so a seek binary-searches a dense array
     * of integers instead of decoding and comparing index entries. NULL if
     * not built (then the index block is searched). */
    uint64_t *lookup_words;
    /* Every LOOKUP_GROUP-th word of lookup_words, so a search first scans
     * a small array that stays in the CPU cache and then only one group
     * of the big one (two cache lines), instead of binary-searching the
     * whole array, whose lower steps each missed the cache: a 64 MiB
     * table has 16K words, and with 20 such tables the arrays are 2.5 MiB.
     * NULL when there was no memory (then the whole array is searched). */
    uint64_t *lookup_top;
    uint32_t lookup_top_n;
    const char *lookup_common; /* the shared prefix (in the mapped index) */
    uint32_t lookup_common_len;
    /* With lookup_words: block i's offset and size, decoded once, so a
     * point lookup never touches the index block (handles[i].ordinal == i). */
    struct block_handle *lookup_handles;
};

/* Keeps a decompressed block alive while it is read. */
typedef struct block_pin {
    block_cache *cache;
    cache_handle *handle;      /* from the cache, or */
    char *owned;               /* a private copy when there is no cache */
} block_pin;

static void pin_release(block_pin *p) {
    if (p->handle) block_cache_release(p->cache, p->handle);
    free(p->owned);
    p->handle = NULL;
    p->owned = NULL;
}

typedef struct block_handle {
    uint64_t offset;
    uint64_t size;
    uint32_t ordinal;
} block_handle;

static const char *path_of(const sst_reader *r) { return r->file->path; }

/* Keys inside a damaged block may be shorter than a tag; compare those
 * bytewise so nothing reads before a key's start. Well-formed tables never
 * take that branch. */
static int table_key_compare(slice a, slice b) {
    if (a.len < IKEY_TAG_SIZE || b.len < IKEY_TAG_SIZE) return slice_compare(a, b);
    return ikey_compare(a, b);
}

static int decode_handle(slice v, block_handle *h) {
    const char *p = v.data, *end = v.data + v.len;
    memset(h, 0, sizeof *h);
    if (!(p = decode_varint64(p, end, &h->offset))) return 0;
    if (!(p = decode_varint64(p, end, &h->size))) return 0;
    if (!(p = decode_varint32(p, end, &h->ordinal))) return 0;
    return p == end;
}

/* 1 if a block of `size` bytes plus its trailer at `off` ends by `limit`. */
static int block_fits(uint64_t off, uint64_t size, uint64_t limit) {
    return size <= limit && SST_TRAILER_SIZE <= limit - size &&
           off <= limit - size - SST_TRAILER_SIZE;
}

/* Check a block's trailer: checksum first (it covers the type byte, so a
 * damaged type reads as corruption), then the compression type. */
static int verify_block(const sst_reader *r, uint64_t off, uint64_t size, const char *what) {
    const char *p = r->base + off;
    uint32_t stored = crc32c_unmask(decode_fixed32(p + size + 1));
    uint32_t actual = crc32c_extend(crc32c_value(p, (size_t)size), p + size, 1);
    if (stored != actual)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s: checksum mismatch in %s block at offset %" PRIu64
                              " (%" PRIu64 " bytes)",
                              path_of(r), what, off, size);
    unsigned type = (unsigned char)p[size];
    int data = what[0] == 'd';
    if (type != SST_COMPRESSION_NONE && !(data && codec_supported((int)type)))
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "table %s: %s block at offset %" PRIu64
                              " uses compression type %u, which this build cannot read",
                              path_of(r), what, off, type);
    return WEIR_OK;
}

static int bad_data_handle(const sst_reader *r, const block_handle *h) {
    return weir_set_error(WEIR_CORRUPTION,
                          "table %s: index points at a bad data block (offset %" PRIu64
                          ", %" PRIu64 " bytes, ordinal %u)",
                          path_of(r), h->offset, h->size, h->ordinal);
}

/* The block's bytes, decompressed if they are stored compressed: from the
 * cache when there is one, else into a private buffer held by pin. */
static int block_contents(sst_reader *r, const block_handle *h, int use_cache, block_pin *pin,
                          slice *out) {
    const char *p = r->base + h->offset;
    int codec = (unsigned char)p[h->size];
    if (codec == SST_COMPRESSION_NONE) {
        *out = slice_make(p, (size_t)h->size);
        return WEIR_OK;
    }
    pin->cache = r->cache;
    if (use_cache && r->cache) {
        pin->handle = block_cache_lookup(r->cache, r->cache_id, h->offset);
        if (pin->handle) {
            *out = slice_make(cache_handle_data(pin->handle), cache_handle_size(pin->handle));
            return WEIR_OK;
        }
    }
    char *raw;
    size_t raw_len;
    int rc = codec_decompress(codec, slice_make(p, (size_t)h->size), &raw, &raw_len);
    if (rc != WEIR_OK)
        return weir_wrap_error(rc, "table %s: data block at offset %" PRIu64, path_of(r), h->offset);
    if (use_cache && r->cache) {
        pin->handle = block_cache_insert(r->cache, r->cache_id, h->offset, raw, raw_len);
        if (!pin->handle)
            return weir_set_error(WEIR_NO_MEMORY, "table %s: out of memory caching a block", path_of(r));
        raw = (char *)cache_handle_data(pin->handle);
    } else {
        pin->owned = raw;
    }
    *out = slice_make(raw, raw_len);
    return WEIR_OK;
}

/* Verify (once) and parse a data block; pin keeps decompressed bytes
 * alive until pin_release. */
static int load_data_block(sst_reader *r, const block_handle *h, block *out, block_pin *pin,
                           unsigned flags) {
    if (h->ordinal >= r->num_blocks || !block_fits(h->offset, h->size, r->data_end))
        return bad_data_handle(r, h);
    _Atomic uint64_t *word = &r->verified[h->ordinal / 64];
    uint64_t bit = UINT64_C(1) << (h->ordinal % 64);
    if (!(atomic_load_explicit(word, memory_order_relaxed) & bit)) {
        /* Never touched since open: its pages may still be on disk. */
        if (flags & SST_READ_MEMORY_ONLY)
            return weir_set_error(WEIR_INCOMPLETE, "table %s: block at offset %" PRIu64
                                  " has not been read yet (memory_only)", path_of(r), h->offset);
        int rc = verify_block(r, h->offset, h->size, "data");
        if (rc != WEIR_OK) return rc;
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
    }
    slice contents = {NULL, 0};
    int rc = block_contents(r, h, 1, pin, &contents);
    if (rc != WEIR_OK) return rc;
    rc = block_parse(out, contents.data, contents.len);
    if (rc != WEIR_OK) pin_release(pin);
    if (rc != WEIR_OK)
        return weir_wrap_error(rc, "table %s: data block at offset %" PRIu64, path_of(r),
                               h->offset);
    return WEIR_OK;
}

/* Turn a dead block iterator into a message naming the file and offset. */
static int block_iter_error(const sst_reader *r, const block_iter *it, uint64_t block_off,
                            const char *what) {
    if (it->oom)
        return weir_set_error(WEIR_NO_MEMORY, "table %s: out of memory reading %s block at offset %" PRIu64,
                              path_of(r), what, block_off);
    return weir_set_error(WEIR_CORRUPTION,
                          "table %s: bad entry at offset %" PRIu64 " (%s block at offset %" PRIu64 ")",
                          path_of(r), block_off + it->corrupt_offset, what, block_off);
}

static int short_key_error(const sst_reader *r, uint64_t block_off, const char *what) {
    return weir_set_error(WEIR_CORRUPTION,
                          "table %s: key shorter than its tag in %s block at offset %" PRIu64,
                          path_of(r), what, block_off);
}

/* Walk the index once at open: count blocks and check every handle, so
 * later lookups can trust ordinals (the bitmap index) and ranges. */
static int check_index(sst_reader *r) {
    block_iter it;
    block_iter_init(&it, &r->index, table_key_compare);
    int rc = WEIR_OK;
    uint64_t count = 0, prev_end = 0;
    buf prev_key = BUF_INIT;
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
        block_handle h;
        slice key = block_iter_key(&it);
        if (key.len < IKEY_TAG_SIZE) {
            rc = short_key_error(r, r->index_off, "index");
            break;
        }
        if (count > 0 && ikey_compare(key, buf_slice(&prev_key)) <= 0) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "table %s: index keys out of order at entry %" PRIu64
                                " (index block at offset %" PRIu64 ")",
                                path_of(r), count, r->index_off);
            break;
        }
        if (!decode_handle(it.value, &h) || h.ordinal != count || h.offset < prev_end ||
            !block_fits(h.offset, h.size, r->data_end)) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "table %s: bad block handle in index entry %" PRIu64
                                " (index block at offset %" PRIu64 ")",
                                path_of(r), count, r->index_off);
            break;
        }
        if (buf_set(&prev_key, key.data, key.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory opening table %s", path_of(r));
            break;
        }
        prev_end = h.offset + h.size + SST_TRAILER_SIZE;
        count++;
    }
    if (rc == WEIR_OK && (it.corrupt || it.oom)) rc = block_iter_error(r, &it, r->index_off, "index");
    block_iter_free(&it);
    buf_free(&prev_key);
    r->num_blocks = count;
    return rc;
}

/* 8 bytes of p[0..n) big-endian, zero-padded past n: integers that order
 * like the bytes, a shorter string before a longer one it prefixes. */
static inline uint64_t load_word(const char *p, size_t n) {
    unsigned char t[8] = {0};
    memcpy(t, p, n < 8 ? n : 8);
    return (uint64_t)t[0] << 56 | (uint64_t)t[1] << 48 | (uint64_t)t[2] << 40 | (uint64_t)t[3] << 32 |
           (uint64_t)t[4] << 24 | (uint64_t)t[5] << 16 | (uint64_t)t[6] << 8 | (uint64_t)t[7];
}

#define LOOKUP_GROUP 16 /* words per group of lookup_top: 128 bytes */

/* Build lookup_words (see struct sst_reader). Every index entry is a
 * restart with its key whole, checked by check_index. The shared prefix is
 * taken from the first and the last-but-one separators: the last block's
 * separator is often shortened to a short successor ("1" after
 * "0999...") that shares nothing, and is then given the largest word.
 * Best effort: without memory the index block is searched instead. */
static void build_lookup_index(sst_reader *r) {
    uint32_t n = r->index.num_restarts;
    slice first, other, v;
    if (n == 0 || n != r->num_blocks || !block_restart_entry(&r->index, 0, &first, &v) ||
        !block_restart_entry(&r->index, n >= 2 ? n - 2 : 0, &other, &v) || first.len < IKEY_TAG_SIZE ||
        other.len < IKEY_TAG_SIZE)
        return;
    slice fu = ikey_user(first), ou = ikey_user(other);
    uint32_t c = 0;
    while (c < fu.len && c < ou.len && fu.data[c] == ou.data[c]) c++;
    uint64_t *w = malloc((size_t)n * sizeof *w);
    block_handle *handles = malloc((size_t)n * sizeof *handles);
    if (!w || !handles) {
        free(w);
        free(handles);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        slice k;
        if (!block_restart_entry(&r->index, i, &k, &v) || k.len < IKEY_TAG_SIZE ||
            !decode_handle(v, &handles[i]) || handles[i].ordinal != i) {
            free(w);
            free(handles);
            return;
        }
        slice u = ikey_user(k);
        if (u.len >= c && memcmp(u.data, fu.data, c) == 0) {
            w[i] = load_word(u.data + c, u.len - c);
        } else {
            /* Only the last separator may leave the shared prefix, and then
             * it is above every key that has it. */
            size_t m = u.len < c ? u.len : c;
            int above = memcmp(u.data, fu.data, m) > 0;
            if (i != n - 1 || !above) {
                free(w);
                free(handles);
                return;
            }
            w[i] = UINT64_MAX;
        }
    }
    r->lookup_words = w;
    r->lookup_handles = handles;
    uint32_t groups = (n + LOOKUP_GROUP - 1) / LOOKUP_GROUP;
    r->lookup_top = malloc(sizeof *r->lookup_top * groups);
    if (r->lookup_top) {
        for (uint32_t g = 0; g < groups; g++) r->lookup_top[g] = w[g * LOOKUP_GROUP];
        r->lookup_top_n = groups;
    }
    r->lookup_common = fu.data;
    r->lookup_common_len = c;
}

/* The first index entry whose separator is >= target (an internal key),
 * or the number of entries if none is. */
static uint32_t lookup_block(const sst_reader *r, slice target) {
    uint32_t n = r->index.num_restarts;
    slice tu = ikey_user(target);
    uint32_t c = r->lookup_common_len;
    size_t m = tu.len < c ? tu.len : c;
    int cmp = m ? memcmp(tu.data, r->lookup_common, m) : 0;
    if (cmp < 0 || (cmp == 0 && tu.len < c)) return 0; /* before every separator */
    if (cmp > 0) {
        /* Past every separator with the prefix: only the last one (which
         * may lie outside it) can still be >= the target. */
        slice k, v;
        if (!block_restart_entry(&r->index, n - 1, &k, &v)) return n - 1; /* checked at open */
        return table_key_compare(k, target) >= 0 ? n - 1 : n;
    }
    uint64_t t = load_word(tu.data + c, tu.len - c);
    const uint64_t *w = r->lookup_words;
    uint32_t lo = 0, hi = n; /* first word >= t */
    if (r->lookup_top) {
        /* The first sample >= t closes the range: the answer lies after
         * the sample before it and at or before this one. */
        const uint64_t *top = r->lookup_top;
        uint32_t glo = 0, ghi = r->lookup_top_n;
        while (glo < ghi) {
            uint32_t mid = glo + (ghi - glo) / 2;
            if (top[mid] < t) glo = mid + 1;
            else ghi = mid;
        }
        if (glo == 0) {
            hi = 0;
        } else {
            lo = (glo - 1) * LOOKUP_GROUP + 1;
            if (glo < r->lookup_top_n) hi = glo * LOOKUP_GROUP;
        }
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    if (lo == n || w[lo] != t) return lo;
    /* Separators whose words tie with the target's: compare them whole. */
    uint32_t end = lo + 1, top = n; /* first word > t */
    while (end < top) {
        uint32_t mid = end + (top - end) / 2;
        if (w[mid] <= t) end = mid + 1;
        else top = mid;
    }
    while (lo < end) {
        uint32_t mid = lo + (end - lo) / 2;
        slice k, v;
        if (!block_restart_entry(&r->index, mid, &k, &v)) return mid; /* checked at open */
        if (table_key_compare(k, target) < 0) lo = mid + 1;
        else end = mid;
    }
    return lo;
}

static int open_checked(sst_reader *r, uint64_t file_size) {
    const char *path = path_of(r);
    if (r->map.len < file_size)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s is truncated: %zu bytes, expected %" PRIu64, path,
                              r->map.len, file_size);
    if (file_size < SST_FOOTER_SIZE)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s: %" PRIu64 " bytes is too short to hold a footer (%d)",
                              path, file_size, SST_FOOTER_SIZE);
    r->size = file_size;
    uint64_t footer_off = file_size - SST_FOOTER_SIZE;
    const char *f = r->base + footer_off;
    if (decode_fixed64(f + 56) != SST_MAGIC)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s: bad magic number at offset %" PRIu64
                              " (not a weir table, or truncated)",
                              path, footer_off + 56);
    if (crc32c_unmask(decode_fixed32(f + 48)) != crc32c_value(f, 48) || decode_fixed32(f + 52) != 0)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s: footer checksum mismatch at offset %" PRIu64, path,
                              footer_off);
    uint32_t version = decode_fixed32(f + 40), flags = decode_fixed32(f + 44);
    uint32_t known = (UINT32_C(1) << SST_COMPRESSION_LZ4) | (UINT32_C(1) << SST_COMPRESSION_ZSTD);
    int known_version = version >= SST_OLDEST_FORMAT_VERSION && version <= SST_FORMAT_VERSION;
    for (int codec = 1; codec <= CODEC_MAX && known_version; codec++) {
        if ((flags & (UINT32_C(1) << codec)) && !codec_supported(codec))
            return weir_set_error(WEIR_NOT_SUPPORTED,
                                  "table %s uses %s compression, which this build of weir does not "
                                  "include (compiled in: %s); rebuild weir with it",
                                  path, codec_name(codec), codec_list());
    }
    r->codecs = flags;
    if (!known_version || (flags & ~known) != 0)
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "table %s: format version %u flags %u (footer at offset %" PRIu64
                              ") are not supported; this build reads versions %d to %d",
                              path, version, flags, footer_off, SST_OLDEST_FORMAT_VERSION,
                              SST_FORMAT_VERSION);
    uint64_t filter_off = decode_fixed64(f), filter_size = decode_fixed64(f + 8);
    uint64_t index_off = decode_fixed64(f + 16), index_size = decode_fixed64(f + 24);
    r->num_entries = decode_fixed64(f + 32);
    /* Filter, then index, then footer, none overlapping. */
    if (!block_fits(index_off, index_size, footer_off) || !block_fits(filter_off, filter_size, index_off))
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s: footer at offset %" PRIu64 " has bad block handles "
                              "(filter %" PRIu64 "+%" PRIu64 ", index %" PRIu64 "+%" PRIu64 ")",
                              path, footer_off, filter_off, filter_size, index_off, index_size);
    r->filter_off = filter_off;
    r->index_off = index_off;
    r->data_end = filter_off;

    int rc = verify_block(r, filter_off, filter_size, "filter");
    if (rc != WEIR_OK) return rc;
    rc = verify_block(r, index_off, index_size, "index");
    if (rc != WEIR_OK) return rc;
    r->filter = r->base + filter_off;
    r->filter_len = (size_t)filter_size;
    rc = block_parse(&r->index, r->base + index_off, (size_t)index_size);
    if (rc != WEIR_OK)
        return weir_wrap_error(rc, "table %s: index block at offset %" PRIu64, path, index_off);
    rc = check_index(r);
    if (rc != WEIR_OK) return rc;
    build_lookup_index(r);
    size_t words = (size_t)((r->num_blocks + 63) / 64);
    r->verified = calloc(words ? words : 1, sizeof *r->verified);
    if (!r->verified) return weir_set_error(WEIR_NO_MEMORY, "out of memory opening table %s", path);
    return WEIR_OK;
}

void sst_reader_close(sst_reader *r) {
    if (!r) return;
    if (r->file) {
        if (r->map.base) r->env->ops->munmap(r->file, &r->map);
        r->env->ops->close_readable(r->file);
    }
    free(r->verified);
    free(r->lookup_words);
    free(r->lookup_top);
    free(r->lookup_handles);
    free(r);
}

int sst_reader_open(weir_env *env, const char *path, uint64_t file_size, sst_reader **out) {
    *out = NULL;
    sst_reader *r = calloc(1, sizeof *r);
    if (!r) return weir_set_error(WEIR_NO_MEMORY, "out of memory opening table %s", path);
    r->env = env;
    int rc = env->ops->open_readable(env, path, &r->file);
    if (rc != WEIR_OK) {
        free(r);
        return rc;
    }
    rc = env->ops->mmap(r->file, &r->map);
    if (rc == WEIR_OK) {
        r->base = r->map.base;
        rc = open_checked(r, file_size);
    } else {
        r->map.base = NULL;
    }
    if (rc != WEIR_OK) {
        weir_error saved;
        weir_error_save(&saved, rc);
        sst_reader_close(r);
        return weir_error_raise(&saved);
    }
    *out = r;
    return WEIR_OK;
}

void sst_reader_set_block_cache(sst_reader *r, block_cache *cache) {
    r->cache = cache;
    if (cache) r->cache_id = block_cache_new_id(cache);
}

uint32_t sst_reader_codecs(const sst_reader *r) { return r->codecs; }

uint64_t sst_reader_num_entries(const sst_reader *r) { return r->num_entries; }
uint64_t sst_reader_num_blocks(const sst_reader *r) { return r->num_blocks; }

int sst_reader_may_contain(const sst_reader *r, uint64_t hash) {
    if (r->filter_len == 0) return 1;
    return bloom_may_contain(r->filter, r->filter_len, hash);
}

/* ---- point lookup ------------------------------------------------------ */

/* Keys up to these sizes are rebuilt on the stack. */
#define GET_INDEX_SCRATCH 128
#define GET_DATA_SCRATCH 256

int sst_reader_get(sst_reader *r, slice lookup_ikey, uint64_t hash, sst_get_fn fn, void *arg) {
    if (!sst_reader_may_contain(r, hash)) return WEIR_OK;
    return sst_reader_get_unfiltered(r, lookup_ikey, hash, 0, fn, arg);
}

/* Look the target up in data block h: 1 when settled (fn called, or an
 * error in *rc), 0 when the block ends before the target (a separator may
 * exceed its block's last key: the next block's first entry answers). */
static int get_in_block(sst_reader *r, const block_handle *h, slice lookup_ikey, uint64_t hash,
                        int first, unsigned flags, sst_get_fn fn, void *arg, int *rc) {
    char data_scratch[GET_DATA_SCRATCH];
    block blk;
    block_pin pin = {0};
    *rc = load_data_block(r, h, &blk, &pin, flags);
    if (*rc != WEIR_OK) return 1;
    block_iter di;
    block_iter_init_scratch(&di, &blk, table_key_compare, data_scratch, sizeof data_scratch);
    if (first)
        block_iter_seek_for_get(&di, lookup_ikey, hash);
    else
        block_iter_seek_first(&di);
    int settled = 1;
    if (block_iter_valid(&di)) {
        slice key = block_iter_key(&di);
        if (key.len < IKEY_TAG_SIZE)
            *rc = short_key_error(r, h->offset, "data");
        else
            fn(arg, key, di.value);
    } else if (di.corrupt || di.oom) {
        *rc = block_iter_error(r, &di, h->offset, "data");
    } else {
        settled = 0;
    }
    block_iter_free(&di);
    pin_release(&pin);
    return settled;
}

int sst_reader_get_unfiltered(sst_reader *r, slice lookup_ikey, uint64_t hash, unsigned flags,
                              sst_get_fn fn, void *arg) {
    int rc = WEIR_OK;
    if (r->lookup_handles) {
        /* The index's words and handles, decoded at open: the index block
         * itself is not touched. Usually one round (see get_in_block). */
        uint32_t n = r->index.num_restarts;
        int first = 1;
        for (uint32_t at = lookup_block(r, lookup_ikey); at < n; at++, first = 0)
            if (get_in_block(r, &r->lookup_handles[at], lookup_ikey, hash, first, flags, fn, arg, &rc))
                break;
        return rc;
    }
    char index_scratch[GET_INDEX_SCRATCH];
    block_iter ii;
    block_iter_init_scratch(&ii, &r->index, table_key_compare, index_scratch, sizeof index_scratch);
    block_iter_seek(&ii, lookup_ikey);
    int first = 1;
    for (; block_iter_valid(&ii); block_iter_next(&ii), first = 0) {
        block_handle h;
        if (!decode_handle(ii.value, &h)) {
            rc = bad_data_handle(r, &h);
            break;
        }
        if (get_in_block(r, &h, lookup_ikey, hash, first, flags, fn, arg, &rc)) break;
    }
    if (rc == WEIR_OK && (ii.corrupt || ii.oom)) rc = block_iter_error(r, &ii, r->index_off, "index");
    block_iter_free(&ii);
    return rc;
}

/* ---- two-level iterator ------------------------------------------------ */

typedef struct sst_iter {
    iter base;
    sst_reader *r;
    block_iter index;
    block_iter data;     /* always iterates data_blk */
    block data_blk;      /* the loaded data block; empty when none */
    block_pin data_pin;  /* keeps data_blk's bytes alive if decompressed */
    uint64_t data_off;   /* its offset, UINT64_MAX when none */
    int status;          /* first error; the iterator stays invalid after it */
    weir_error error;
    void (*cleanup)(void *);
    void *cleanup_arg;
    sst_damage_fn salvage_fn; /* salvage: report a bad data block and skip it */
    void *salvage_arg;
    buf salvage_last;         /* salvage: the last key returned (a lost block's lower bound) */
} sst_iter;

/* Forget the data block: an empty block makes the data iterator invalid. */
static void clear_data(sst_iter *it) {
    memset(&it->data_blk, 0, sizeof it->data_blk);
    pin_release(&it->data_pin);
    it->data_off = UINT64_MAX;
}

static void set_error(sst_iter *it, int code) {
    it->status = code;
    weir_error_save(&it->error, code);
    clear_data(it);
}

/* Salvage: tell the caller a data block is lost and leave no block loaded
 * (the data iterator is invalid, so the caller moves to the next one). */
static void skip_damaged(sst_iter *it, uint64_t off, uint64_t size) {
    it->salvage_fn(it->salvage_arg, off, size, buf_slice(&it->salvage_last), block_iter_key(&it->index),
                   weir_errmsg());
    clear_data(it);
    block_iter_seek_first(&it->data); /* an empty block: invalid, not corrupt */
}

/* Load the block the index iterator points at: 1 loaded, 0 on error
 * (recorded), -1 a damaged block a salvaging iterator skipped. */
static int load_current(sst_iter *it) {
    block_handle h;
    if (!decode_handle(it->index.value, &h)) {
        set_error(it, bad_data_handle(it->r, &h));
        return 0;
    }
    if (h.offset == it->data_off) return 1;
    block blk;
    block_pin pin = {0};
    int rc = load_data_block(it->r, &h, &blk, &pin, 0);
    if (rc != WEIR_OK) {
        if (it->salvage_fn && rc == WEIR_CORRUPTION) {
            skip_damaged(it, h.offset, h.size);
            return -1;
        }
        set_error(it, rc);
        return 0;
    }
    pin_release(&it->data_pin);
    it->data_pin = pin;
    it->data_blk = blk;
    it->data_off = h.offset;
    return 1;
}

/* The index ran out (or broke): end of table, or an error. */
static void index_exhausted(sst_iter *it) {
    if (it->index.corrupt || it->index.oom)
        set_error(it, block_iter_error(it->r, &it->index, it->r->index_off, "index"));
    else
        clear_data(it);
}

/* After the data iterator moved: report what stopped it or check the key. */
static int settle_slow(sst_iter *it);
static inline int settle(sst_iter *it) {
    if (block_iter_valid(&it->data) && it->data.key.len >= IKEY_TAG_SIZE) return 1;
    return settle_slow(it);
}

static int settle_slow(sst_iter *it) {
    if (block_iter_valid(&it->data)) {
        if (block_iter_key(&it->data).len < IKEY_TAG_SIZE) {
            set_error(it, short_key_error(it->r, it->data_off, "data"));
            return 1;
        }
        return 1;
    }
    if (it->data.corrupt || it->data.oom) {
        int rc = block_iter_error(it->r, &it->data, it->data_off, "data");
        if (it->salvage_fn && rc == WEIR_CORRUPTION) {
            /* The rest of this block cannot be decoded: skip it. */
            skip_damaged(it, it->data_off, 0);
            return 0;
        }
        set_error(it, rc);
        return 1;
    }
    return 0; /* ran off this block */
}

static void skip_forward(sst_iter *it) {
    while (!settle(it)) {
        int loaded;
        do {
            block_iter_next(&it->index);
            if (!block_iter_valid(&it->index)) {
                index_exhausted(it);
                return;
            }
            loaded = load_current(it);
            if (loaded == 0) return;
        } while (loaded < 0);
        block_iter_seek_first(&it->data);
    }
}

static void skip_backward(sst_iter *it) {
    while (!settle(it)) {
        block_iter_prev(&it->index);
        if (!block_iter_valid(&it->index)) {
            index_exhausted(it);
            return;
        }
        if (!load_current(it)) return;
        block_iter_seek_last(&it->data);
    }
}

static int si_valid(const iter *base) {
    const sst_iter *it = (const sst_iter *)base;
    return it->status == WEIR_OK && block_iter_valid(&it->data);
}

static void si_seek_first(iter *base) {
    sst_iter *it = (sst_iter *)base;
    if (it->status != WEIR_OK) return;
    block_iter_seek_first(&it->index);
    if (!block_iter_valid(&it->index)) {
        index_exhausted(it);
        return;
    }
    int loaded = load_current(it);
    if (loaded == 0) return;
    if (loaded > 0) block_iter_seek_first(&it->data);
    skip_forward(it);
}

static void si_seek_last(iter *base) {
    sst_iter *it = (sst_iter *)base;
    if (it->status != WEIR_OK) return;
    block_iter_seek_last(&it->index);
    if (!block_iter_valid(&it->index)) {
        index_exhausted(it);
        return;
    }
    if (!load_current(it)) return;
    block_iter_seek_last(&it->data);
    skip_backward(it);
}

static void si_seek(iter *base, slice target) {
    sst_iter *it = (sst_iter *)base;
    if (it->status != WEIR_OK) return;
    if (it->r->lookup_words && !it->salvage_fn) {
        uint32_t at = lookup_block(it->r, target);
        if (at >= it->r->index.num_restarts) {
            clear_data(it); /* past the last key: invalid, not an error */
            return;
        }
        block_iter_seek_to_restart(&it->index, at);
    } else {
        block_iter_seek(&it->index, target);
    }
    if (!block_iter_valid(&it->index)) {
        index_exhausted(it);
        return;
    }
    if (!load_current(it)) return;
    if (it->data_blk.buckets && target.len >= IKEY_TAG_SIZE) {
        slice user = ikey_user(target);
        block_iter_seek_hashed(&it->data, target, bloom_hash(user.data, user.len));
    } else {
        block_iter_seek(&it->data, target);
    }
    skip_forward(it);
}

static void si_next(iter *base) {
    sst_iter *it = (sst_iter *)base;
    if (!si_valid(base)) return;
    if (it->salvage_fn) {
        slice k = block_iter_key(&it->data);
        if (buf_set(&it->salvage_last, k.data, k.len) != 0) buf_clear(&it->salvage_last);
    }
    block_iter_next(&it->data);
    skip_forward(it);
}

static void si_prev(iter *base) {
    sst_iter *it = (sst_iter *)base;
    if (!si_valid(base)) return;
    block_iter_prev(&it->data);
    skip_backward(it);
}

static slice si_key(const iter *base) { return block_iter_key(&((const sst_iter *)base)->data); }
static slice si_value(const iter *base) { return ((const sst_iter *)base)->data.value; }

static int si_status(const iter *base) {
    const sst_iter *it = (const sst_iter *)base;
    return it->status == WEIR_OK ? WEIR_OK : weir_error_raise(&it->error);
}

static void si_destroy(iter *base) {
    sst_iter *it = (sst_iter *)base;
    block_iter_free(&it->index);
    block_iter_free(&it->data);
    pin_release(&it->data_pin);
    buf_free(&it->salvage_last);
    if (it->cleanup) it->cleanup(it->cleanup_arg);
    free(it);
}

static const struct iter_ops sst_iter_ops = {
    si_valid, si_seek_first, si_seek_last, si_seek,   si_next,
    si_prev,  si_key,        si_value,     si_status, si_destroy,
};

iter *sst_reader_iter(sst_reader *r, void (*cleanup)(void *), void *cleanup_arg) {
    sst_iter *it = calloc(1, sizeof *it);
    if (!it) {
        if (cleanup) cleanup(cleanup_arg);
        return NULL;
    }
    it->base.ops = &sst_iter_ops;
    it->r = r;
    block_iter_init(&it->index, &r->index, table_key_compare);
    block_iter_init(&it->data, &it->data_blk, table_key_compare);
    it->data_off = UINT64_MAX;
    it->cleanup = cleanup;
    it->cleanup_arg = cleanup_arg;
    return &it->base;
}

int sst_reader_iter_retarget(iter *base, sst_reader *r, void (*cleanup)(void *), void *cleanup_arg) {
    if (!base || base->ops != &sst_iter_ops) return 0;
    sst_iter *it = (sst_iter *)base;
    if (it->salvage_fn) return 0;
    pin_release(&it->data_pin);
    memset(&it->data_blk, 0, sizeof it->data_blk);
    it->data_off = UINT64_MAX;
    if (it->cleanup) it->cleanup(it->cleanup_arg);
    it->r = r;
    it->cleanup = cleanup;
    it->cleanup_arg = cleanup_arg;
    it->status = WEIR_OK;
    block_iter_rebind(&it->index, &r->index);
    block_iter_rebind(&it->data, &it->data_blk);
    return 1;
}

iter *sst_reader_salvage_iter(sst_reader *r, sst_damage_fn fn, void *arg, void (*cleanup)(void *),
                              void *cleanup_arg) {
    iter *base = sst_reader_iter(r, cleanup, cleanup_arg);
    if (base) {
        sst_iter *it = (sst_iter *)base;
        it->salvage_fn = fn;
        it->salvage_arg = arg;
    }
    return base;
}

/* ---- verification and estimates --------------------------------------- */

/* Check one data block: checksum, format, keys increasing from the previous
 * block's last key, and every key within (previous index key, index key]. */
static int verify_data_block(sst_reader *r, const block_handle *h, slice index_key,
                             slice prev_index_key, buf *prev_key, uint64_t *count) {
    if (h->ordinal >= r->num_blocks || !block_fits(h->offset, h->size, r->data_end))
        return bad_data_handle(r, h);
    int rc = verify_block(r, h->offset, h->size, "data");
    if (rc != WEIR_OK) return rc;
    block blk;
    block_pin pin = {0};
    slice contents = {NULL, 0};
    rc = block_contents(r, h, 0, &pin, &contents);
    if (rc != WEIR_OK) return rc;
    rc = block_parse(&blk, contents.data, contents.len);
    if (rc != WEIR_OK) {
        pin_release(&pin);
        return weir_wrap_error(rc, "table %s: data block at offset %" PRIu64, path_of(r), h->offset);
    }
    block_iter di;
    block_iter_init(&di, &blk, table_key_compare);
    for (block_iter_seek_first(&di); block_iter_valid(&di); block_iter_next(&di)) {
        slice key = block_iter_key(&di);
        if (key.len < IKEY_TAG_SIZE) {
            rc = short_key_error(r, h->offset, "data");
            break;
        }
        if (*count > 0 && ikey_compare(key, buf_slice(prev_key)) <= 0) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "table %s: keys out of order at offset %" PRIu64
                                " (data block at offset %" PRIu64 ")",
                                path_of(r), h->offset + di.current, h->offset);
            break;
        }
        if (ikey_compare(key, index_key) > 0 ||
            (prev_index_key.len && ikey_compare(key, prev_index_key) <= 0)) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "table %s: key at offset %" PRIu64
                                " is outside its index range (data block at offset %" PRIu64 ")",
                                path_of(r), h->offset + di.current, h->offset);
            break;
        }
        if (buf_set(prev_key, key.data, key.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory verifying table %s", path_of(r));
            break;
        }
        (*count)++;
    }
    if (rc == WEIR_OK && (di.corrupt || di.oom)) rc = block_iter_error(r, &di, h->offset, "data");
    block_iter_free(&di);
    pin_release(&pin);
    if (rc == WEIR_OK)
        atomic_fetch_or_explicit(&r->verified[h->ordinal / 64], UINT64_C(1) << (h->ordinal % 64),
                                 memory_order_relaxed);
    return rc;
}

int sst_reader_verify(sst_reader *r) {
    int rc = verify_block(r, r->filter_off, r->filter_len, "filter");
    if (rc == WEIR_OK) rc = verify_block(r, r->index_off, r->index.size, "index");
    if (rc != WEIR_OK) return rc;
    block_iter ii;
    block_iter_init(&ii, &r->index, table_key_compare);
    buf prev_key = BUF_INIT, prev_index_key = BUF_INIT;
    uint64_t count = 0;
    for (block_iter_seek_first(&ii); block_iter_valid(&ii); block_iter_next(&ii)) {
        block_handle h;
        slice index_key = block_iter_key(&ii);
        if (index_key.len < IKEY_TAG_SIZE) {
            rc = short_key_error(r, r->index_off, "index");
            break;
        }
        if (!decode_handle(ii.value, &h)) {
            rc = bad_data_handle(r, &h);
            break;
        }
        rc = verify_data_block(r, &h, index_key, buf_slice(&prev_index_key), &prev_key, &count);
        if (rc != WEIR_OK) break;
        if (buf_set(&prev_index_key, index_key.data, index_key.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory verifying table %s", path_of(r));
            break;
        }
    }
    if (rc == WEIR_OK && (ii.corrupt || ii.oom)) rc = block_iter_error(r, &ii, r->index_off, "index");
    block_iter_free(&ii);
    buf_free(&prev_key);
    buf_free(&prev_index_key);
    if (rc == WEIR_OK && count != r->num_entries)
        rc = weir_set_error(WEIR_CORRUPTION,
                            "table %s: footer counts %" PRIu64 " entries but the blocks hold %" PRIu64,
                            path_of(r), r->num_entries, count);
    return rc;
}

uint64_t sst_reader_approximate_offset(sst_reader *r, slice ikey) {
    char scratch[GET_INDEX_SCRATCH];
    block_iter ii;
    block_iter_init_scratch(&ii, &r->index, table_key_compare, scratch, sizeof scratch);
    block_iter_seek(&ii, ikey);
    uint64_t off = r->data_end;
    block_handle h;
    if (block_iter_valid(&ii) && decode_handle(ii.value, &h)) off = h.offset;
    block_iter_free(&ii);
    return off;
}
