/*
 * sst_build.c -- writes immutable sorted table files (layout in sst.h):
 * cuts data blocks at the target size, collects bloom hashes of user keys,
 * builds the index with short separator keys, and writes the filter, index
 * and footer at finish, then makes the file durable.
 */
#include "sst.h"

#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "compress.h"
#include "crc32c.h"
#include "status.h"

#define DEFAULT_BLOCK_SIZE 4096
/* Keeps a data block (one entry past the target at most) addressable with
 * the block format's 32-bit offsets. */
#define MAX_BLOCK_SIZE (UINT32_C(1) << 30)
/* Every index entry is a restart point, so a lookup binary-searches the
 * index without scanning. */
#define INDEX_RESTART_INTERVAL 1

struct sst_builder {
    weir_env *env;
    env_writable *file;
    size_t block_size;
    int bloom_bits;
    block_builder data;
    block_builder index;
    bloom_builder bloom;
    uint64_t offset;      /* bytes handed to the file so far */
    uint64_t num_entries;
    uint32_t num_blocks;
    buf last_key;         /* last internal key added */
    uint64_t user_hash;   /* bloom_hash of its user key */
    /* The last flushed block's index entry waits for the next key so its
     * separator can be as short as possible. */
    int pending_index;
    uint64_t pending_offset;
    uint64_t pending_size;
    buf scratch;          /* separator keys, handles, the filter */
    int compression;      /* codec for data blocks */
    uint32_t codecs_used; /* footer flags */
    buf compressed;       /* the current block, compressed */
    int failed;           /* a write failed: the file is unusable */
    weir_error error;     /* that failure, re-raised on every later call */
};

int sst_builder_open(weir_env *env, const char *path, const sst_build_options *opts,
                     sst_builder **out) {
    *out = NULL;
    sst_builder *b = calloc(1, sizeof *b);
    if (!b) return weir_set_error(WEIR_NO_MEMORY, "out of memory creating table %s", path);
    int rc = env->ops->new_writable(env, path, &b->file);
    if (rc != WEIR_OK) {
        free(b);
        return rc;
    }
    b->env = env;
    b->block_size = opts && opts->block_size ? opts->block_size : DEFAULT_BLOCK_SIZE;
    if (b->block_size > MAX_BLOCK_SIZE) b->block_size = MAX_BLOCK_SIZE;
    b->bloom_bits = opts && opts->bloom_bits_per_key > 0 ? opts->bloom_bits_per_key : 0;
    b->compression = opts ? opts->compression : SST_COMPRESSION_NONE;
    if (!codec_supported(b->compression)) {
        env->ops->close_writable(b->file);
        env->ops->remove_file(env, path);
        free(b);
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "compression %s is not compiled into this build (have: %s)",
                              codec_name(opts->compression), codec_list());
    }
    block_builder_init_hashed(&b->data, opts && opts->restart_interval > 0 ? opts->restart_interval : 16);
    block_builder_init(&b->index, INDEX_RESTART_INTERVAL);
    bloom_builder_init(&b->bloom, b->bloom_bits);
    *out = b;
    return WEIR_OK;
}

static void builder_free(sst_builder *b) {
    block_builder_free(&b->data);
    block_builder_free(&b->index);
    bloom_builder_free(&b->bloom);
    buf_free(&b->last_key);
    buf_free(&b->scratch);
    buf_free(&b->compressed);
    free(b);
}

/* Remember the first failure so later calls report it, not a new symptom. */
static int fail(sst_builder *b, int code) {
    b->failed = 1;
    weir_error_save(&b->error, code);
    return code;
}

static int oom(sst_builder *b) {
    return fail(b, weir_set_error(WEIR_NO_MEMORY, "out of memory building table %s",
                                  b->file->path));
}

/* Append contents plus its trailer; report where it went and how many
 * bytes it took (compression may shrink it). */
static int write_block(sst_builder *b, slice contents, int compressible, uint64_t *offset,
                       uint64_t *stored_size) {
    char trailer[SST_TRAILER_SIZE];
    trailer[0] = SST_COMPRESSION_NONE;
    if (compressible && b->compression != SST_COMPRESSION_NONE &&
        codec_compress(b->compression, contents, &b->compressed) == 0 &&
        b->compressed.len < contents.len - contents.len / 8) {
        /* Worth it only if it saves an eighth: decompressing costs reads. */
        contents = buf_slice(&b->compressed);
        trailer[0] = (char)b->compression;
        b->codecs_used |= UINT32_C(1) << b->compression;
    }
    if (stored_size) *stored_size = contents.len;
    uint32_t crc = crc32c_extend(crc32c_value(contents.data, contents.len), trailer, 1);
    encode_fixed32(trailer + 1, crc32c_mask(crc));
    int rc = env_append(b->file, contents.data, contents.len);
    if (rc == WEIR_OK) rc = env_append(b->file, trailer, sizeof trailer);
    if (rc != WEIR_OK) return fail(b, rc);
    *offset = b->offset;
    b->offset += contents.len + SST_TRAILER_SIZE;
    return WEIR_OK;
}

/* Append an index entry mapping `key` to the pending block. */
static int add_index_entry(sst_builder *b, slice key) {
    char handle[2 * VARINT64_MAX_BYTES + VARINT32_MAX_BYTES];
    char *p = encode_varint64(handle, b->pending_offset);
    p = encode_varint64(p, b->pending_size);
    p = encode_varint32(p, b->num_blocks - 1);
    if (block_builder_add(&b->index, key, slice_make(handle, (size_t)(p - handle))) != 0)
        return oom(b);
    b->pending_index = 0;
    return WEIR_OK;
}

static int flush_data_block(sst_builder *b) {
    if (block_builder_empty(&b->data)) return WEIR_OK;
    slice contents = block_builder_finish(&b->data);
    if (!contents.data) return oom(b);
    int rc = write_block(b, contents, 1, &b->pending_offset, &b->pending_size);
    if (rc != WEIR_OK) return rc;
    b->pending_index = 1;
    b->num_blocks++;
    block_builder_reset(&b->data);
    return WEIR_OK;
}

/* Put into b->scratch an internal key k with last <= k < next, as short as
 * we can make it: the shortest user key strictly between the two user keys,
 * tagged to sort before every real entry of that user key. Falls back to
 * `last` itself (always correct) when nothing shorter exists. */
static int make_separator(sst_builder *b, slice last, slice next) {
    slice lu = ikey_user(last), nu = ikey_user(next);
    size_t n = lu.len < nu.len ? lu.len : nu.len;
    size_t i = 0;
    while (i < n && lu.data[i] == nu.data[i]) i++;
    buf_clear(&b->scratch);
    if (i < n) {
        /* lu[i] < nu[i]. Bumping any byte of lu at or after i yields a key
         * above lu; bumping at i needs room below nu[i], after i the
         * prefix up to i already keeps it below nu. */
        unsigned char c = (unsigned char)lu.data[i];
        size_t cut = SIZE_MAX;
        if (c + 1 < (unsigned char)nu.data[i]) {
            cut = i;
        } else {
            for (size_t j = i + 1; j < lu.len; j++) {
                if ((unsigned char)lu.data[j] != 0xff) {
                    cut = j;
                    break;
                }
            }
        }
        if (cut != SIZE_MAX && cut + 1 < lu.len) {
            if (buf_append(&b->scratch, lu.data, cut + 1) != 0) return -1;
            b->scratch.data[cut]++;
            if (buf_put_fixed64(&b->scratch, pack_tag(MAX_SEQUENCE, TYPE_FOR_SEEK)) != 0) return -1;
            return 0;
        }
    }
    return buf_set(&b->scratch, last.data, last.len);
}

/* Like make_separator with no upper bound (the table's last block). */
static int make_successor(sst_builder *b, slice last) {
    slice lu = ikey_user(last);
    buf_clear(&b->scratch);
    for (size_t j = 0; j + 1 < lu.len; j++) {
        if ((unsigned char)lu.data[j] != 0xff) {
            if (buf_append(&b->scratch, lu.data, j + 1) != 0) return -1;
            b->scratch.data[j]++;
            return buf_put_fixed64(&b->scratch, pack_tag(MAX_SEQUENCE, TYPE_FOR_SEEK));
        }
    }
    return buf_set(&b->scratch, last.data, last.len);
}

int sst_builder_add(sst_builder *b, slice ikey, slice value) {
    if (b->failed) return weir_error_raise(&b->error);
    if (ikey.len < IKEY_TAG_SIZE || ikey.len - IKEY_TAG_SIZE > WEIR_MAX_KEY_SIZE)
        return weir_set_error(WEIR_INVALID, "table %s: internal key of %zu bytes is malformed",
                              b->file->path, ikey.len);
    if (value.len > WEIR_MAX_VALUE_SIZE)
        return weir_set_error(WEIR_INVALID, "table %s: value of %zu bytes is too large",
                              b->file->path, value.len);
    int same_user = 0;
    if (b->num_entries > 0) {
        slice last = buf_slice(&b->last_key);
        if (ikey_compare(ikey, last) <= 0)
            return weir_set_error(WEIR_INVALID,
                                  "table %s: keys added out of order (entry %llu)",
                                  b->file->path, (unsigned long long)b->num_entries);
        same_user = slice_equal(ikey_user(ikey), ikey_user(last));
    }

    if (b->pending_index) {
        if (make_separator(b, buf_slice(&b->last_key), ikey) != 0) return oom(b);
        int rc = add_index_entry(b, buf_slice(&b->scratch));
        if (rc != WEIR_OK) return rc;
    }
    /* Versions of one user key share a filter entry. The same hash picks
     * the key's bucket in the data block's hash index. */
    if (!same_user || b->num_entries == 0) {
        slice u = ikey_user(ikey);
        b->user_hash = bloom_hash(u.data, u.len);
        if (b->bloom_bits && bloom_builder_add(&b->bloom, b->user_hash) != 0) return oom(b);
    }
    if (block_builder_add_hashed(&b->data, ikey, value, b->user_hash) != 0) return oom(b);
    if (buf_set(&b->last_key, ikey.data, ikey.len) != 0) return oom(b);
    b->num_entries++;
    if (block_builder_size_estimate(&b->data) >= b->block_size) return flush_data_block(b);
    return WEIR_OK;
}

uint64_t sst_builder_num_entries(const sst_builder *b) { return b->num_entries; }

uint64_t sst_builder_file_size(const sst_builder *b) {
    return b->offset + (block_builder_empty(&b->data) ? 0 : block_builder_size_estimate(&b->data));
}

static int finish(sst_builder *b, uint64_t *file_size) {
    if (b->failed) return weir_error_raise(&b->error);
    int rc = flush_data_block(b);
    if (rc != WEIR_OK) return rc;
    if (b->pending_index) {
        if (make_successor(b, buf_slice(&b->last_key)) != 0) return oom(b);
        rc = add_index_entry(b, buf_slice(&b->scratch));
        if (rc != WEIR_OK) return rc;
    }

    uint64_t filter_off, index_off;
    buf_clear(&b->scratch);
    if (b->bloom_bits && bloom_builder_finish(&b->bloom, &b->scratch) != 0) return oom(b);
    uint64_t filter_size = b->scratch.len;
    rc = write_block(b, buf_slice(&b->scratch), 0, &filter_off, NULL);
    if (rc != WEIR_OK) return rc;

    slice index = block_builder_finish(&b->index);
    if (!index.data) return oom(b);
    rc = write_block(b, index, 0, &index_off, NULL);
    if (rc != WEIR_OK) return rc;

    char footer[SST_FOOTER_SIZE];
    encode_fixed64(footer, filter_off);
    encode_fixed64(footer + 8, filter_size);
    encode_fixed64(footer + 16, index_off);
    encode_fixed64(footer + 24, index.len);
    encode_fixed64(footer + 32, b->num_entries);
    encode_fixed32(footer + 40, SST_FORMAT_VERSION);
    encode_fixed32(footer + 44, b->codecs_used);
    encode_fixed32(footer + 48, crc32c_mask(crc32c_value(footer, 48)));
    encode_fixed32(footer + 52, 0);
    encode_fixed64(footer + 56, SST_MAGIC);
    rc = env_append(b->file, footer, sizeof footer);
    if (rc == WEIR_OK) rc = env_sync(b->file);
    if (rc != WEIR_OK) return fail(b, rc);
    b->offset += sizeof footer;
    if (file_size) *file_size = b->offset;
    return WEIR_OK;
}

int sst_builder_finish(sst_builder *b, uint64_t *file_size) {
    int rc = finish(b, file_size);
    env_writable *f = b->file;
    b->file = NULL;
    if (rc == WEIR_OK) {
        rc = env_close_writable(f);
    } else {
        /* Keep the first error's message, not the close's. */
        weir_error saved;
        weir_error_save(&saved, rc);
        env_close_writable(f);
        weir_error_raise(&saved);
    }
    builder_free(b);
    return rc;
}

void sst_builder_abandon(sst_builder *b) {
    if (!b) return;
    weir_error saved;
    weir_error_save(&saved, WEIR_OK);
    env_close_writable(b->file);
    weir_error_raise(&saved); /* closing must not clobber the caller's error */
    builder_free(b);
}
