/*
 * fuzz_keys.c -- libFuzzer harness for weir's small codecs: varints and
 * length-prefixed strings, internal keys, file names, prefix-compressed
 * block entries (the key codec of every table block), bloom filter probes,
 * merge operands and values, and list values. Decoders must stay inside
 * their input and report malformed data, never trust it.
 */
#include "bloom.h"
#include "dbformat.h"
#include "filename.h"
#include "fuzz_common.h"
#include "merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *d = malloc(size ? size : 1);
    if (!d) return 0;
    memcpy(d, data, size);
    const char *end = d + size;

    /* Varints and length-prefixed strings from every offset. */
    for (size_t i = 0; i < size && i < 64; i++) {
        uint32_t v32;
        uint64_t v64;
        const char *p = decode_varint32(d + i, end, &v32);
        if (p && (p <= d + i || p > end)) abort();
        p = decode_varint64(d + i, end, &v64);
        if (p && (p <= d + i || p > end)) abort();
        if (p) {
            char enc[10];
            char *e = encode_varint64(enc, v64);
            if (e - enc != varint_length(v64)) abort();
        }
        slice s;
        p = decode_length_prefixed(d + i, end, &s);
        if (p && (s.data < d || s.data + s.len > end || p > end)) abort();
    }

    /* Internal keys. */
    slice user;
    uint64_t seq;
    int type;
    if (ikey_parse(slice_make(d, size), &user, &seq, &type)) {
        if (user.len != size - IKEY_TAG_SIZE || type > TYPE_MAX_VALID) abort();
        buf k = BUF_INIT;
        if (ikey_append(&k, user, seq, type) == 0 && (k.len != size || memcmp(k.data, d, size) != 0)) abort();
        buf_free(&k);
    }

    /* File names (as a string). */
    char name[80];
    size_t nl = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, d, nl);
    name[nl] = '\0';
    uint64_t number = 0;
    enum file_kind kind = parse_file_name(name, &number);
    if (kind < FILE_LOG || kind > FILE_UNKNOWN) abort();

    /* A block: restart array, prefix-compressed entries, forward, backward
     * and seeks. */
    block b;
    int rc = block_parse(&b, d, size);
    fuzz_expect(rc, WEIR_OK, "block_parse");
    if (rc == WEIR_OK) {
        block_iter it;
        block_iter_init(&it, &b, slice_compare);
        int n = 0;
        for (block_iter_seek_first(&it); block_iter_valid(&it) && n < 100000; block_iter_next(&it)) {
            slice k = block_iter_key(&it);
            if (k.len > size * 64 + 64) abort(); /* keys are built from input bytes */
            n++;
        }
        fuzz_expect(block_iter_status(&it), WEIR_NO_MEMORY, "block iterator");
        for (block_iter_seek_last(&it); block_iter_valid(&it) && n < 200000; block_iter_prev(&it)) n++;
        block_iter_seek(&it, slice_make(d, size < 16 ? size : 16));
        fuzz_expect(block_iter_status(&it), WEIR_NO_MEMORY, "block seek");
        block_iter_free(&it);
    }

    /* Bloom filter probes on arbitrary filter bytes. */
    (void)bloom_may_contain(d, size, bloom_hash(d, size));
    (void)bloom_may_contain(d, size, 0x9e3779b97f4a7c15ull);

    /* Merge operands and values: the first byte picks the operator. */
    if (size >= 2) {
        merge_registry reg;
        memset(&reg, 0, sizeof reg);
        size_t half = size / 2;
        slice ops[3] = {slice_make(d, half), slice_make(d + half, size - half), slice_make(d, size)};
        rc = merge_check_operand(&reg, ops[0]);
        if (rc != WEIR_OK && rc != WEIR_INVALID) abort();
        buf out = BUF_INIT;
        rc = merge_full(&reg, slice_make("key", 3), 1, ops[1], ops, 3, &out);
        if (rc != WEIR_OK && rc != WEIR_INVALID && rc != WEIR_NO_MEMORY) abort();
        buf_clear(&out);
        rc = merge_full(&reg, slice_make("key", 3), 0, slice_make(NULL, 0), ops, 2, &out);
        if (rc != WEIR_OK && rc != WEIR_INVALID && rc != WEIR_NO_MEMORY) abort();
        buf_clear(&out);
        (void)merge_partial(ops, 3, &out);
        buf_free(&out);
    }

    /* List values. */
    size_t off = 0;
    const void *item;
    size_t ilen;
    int items = 0;
    while (weir_list_next(d, size, &off, &item, &ilen)) {
        if ((const char *)item < d || (const char *)item + ilen > end || off > size) abort();
        if (++items > (int)size + 1) abort();
    }
    free(d);
    return 0;
}
