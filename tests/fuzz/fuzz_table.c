/*
 * fuzz_table.c -- libFuzzer harness for the table reader (sst_read.c):
 * footer, index, filter and data blocks. The reader maps the file and
 * hands out pointers into it, so an out-of-bounds read here would be a
 * read past the end of a mapping. The first input byte picks raw bytes or
 * fixed-up checksums (footer, filter, index and every data block the index
 * names), which lets mutations reach the block and index decoders.
 */
#include "bloom.h"
#include "dbformat.h"
#include "fuzz_common.h"
#include "sst.h"

static void on_entry(void *arg, slice ikey, slice value) {
    uint64_t *n = arg;
    *n += ikey.len + value.len;
}

static void probe(sst_reader *r, const char *ukey, size_t ulen) {
    buf ik = BUF_INIT;
    if (ikey_append(&ik, slice_make(ukey, ulen), MAX_SEQUENCE, TYPE_FOR_SEEK) != 0) return;
    uint64_t h = bloom_hash(ukey, ulen);
    (void)sst_reader_may_contain(r, h);
    uint64_t sink = 0;
    int rc = sst_reader_get(r, buf_slice(&ik), h, on_entry, &sink);
    fuzz_expect(rc, WEIR_NOT_SUPPORTED, "sst_reader_get");
    buf_free(&ik);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = size - 1;
    char *img = malloc(n ? n : 1);
    if (!img) return 0;
    memcpy(img, data + 1, n);
    if (data[0] & 1) fuzz_fix_table_crcs(img, n);
    fuzz_reset_files();
    fuzz_add_file("000007.sst", img, n);
    free(img);

    sst_reader *r;
    int rc = sst_reader_open(&fuzz_env, "/fuzz/000007.sst", n, &r);
    fuzz_expect(rc, WEIR_NOT_SUPPORTED, "sst_reader_open");
    fuzz_expect_located(rc, "sst_reader_open");
    if (rc != WEIR_OK) {
        fuzz_reset_files();
        return 0;
    }
    /* Walk forward, then backward, then seek to keys the table holds. */
    iter *it = sst_reader_iter(r, NULL, NULL);
    uint64_t count = 0;
    buf keys[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
    if (it) {
        for (iter_seek_first(it); iter_valid(it) && count < 1000000; iter_next(it)) {
            slice k = iter_key(it);
            if (count < 4) buf_set(&keys[count], k.data, k.len);
            (void)iter_value(it);
            count++;
        }
        fuzz_expect(iter_status(it), WEIR_NOT_SUPPORTED, "table iterator");
        uint64_t back = 0;
        for (iter_seek_last(it); iter_valid(it) && back < 1000000; iter_prev(it)) back++;
        fuzz_expect(iter_status(it), WEIR_NOT_SUPPORTED, "table iterator (reverse)");
        for (int i = 0; i < 4 && i < (int)count; i++) {
            iter_seek(it, buf_slice(&keys[i]));
            fuzz_expect(iter_status(it), WEIR_NOT_SUPPORTED, "table iterator seek");
        }
        iter_destroy(it);
    }
    uint64_t sink = 0;
    for (int i = 0; i < 4 && i < (int)count; i++) {
        rc = sst_reader_get(r, buf_slice(&keys[i]), 0, on_entry, &sink);
        fuzz_expect(rc, WEIR_NOT_SUPPORTED, "sst_reader_get");
        if (keys[i].len >= IKEY_TAG_SIZE) {
            slice u = ikey_user(buf_slice(&keys[i]));
            probe(r, u.data, u.len);
        }
    }
    probe(r, "k", 1);
    rc = sst_reader_verify(r);
    fuzz_expect(rc, WEIR_NOT_SUPPORTED, "sst_reader_verify");
    fuzz_expect_located(rc, "sst_reader_verify");
    (void)sst_reader_approximate_offset(r, keys[0].len ? buf_slice(&keys[0]) : slice_make("", 0));
    for (int i = 0; i < 4; i++) buf_free(&keys[i]);
    sst_reader_close(r);
    fuzz_reset_files();
    return 0;
}
