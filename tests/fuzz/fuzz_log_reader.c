/*
 * fuzz_log_reader.c -- libFuzzer harness for the log reader (wal.c), which
 * reads both write-ahead logs and manifests: any byte string must come
 * back as whole records, a torn tail, or WEIR_CORRUPTION naming the
 * offset. The first input byte picks raw bytes (checksums as given) or
 * fixed-up fragment checksums, which reach the framing logic behind them.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int fix = data[0] & 1;
    char *img = malloc(size);
    if (!img) return 0;
    memcpy(img, data + 1, size - 1);
    if (fix) fuzz_fix_log_crcs(img, size - 1);
    fuzz_reset_files();
    fuzz_add_file("000001.log", img, size - 1);
    free(img);

    log_reader *r;
    int rc = log_reader_open(&fuzz_env, "/fuzz/000001.log", &r);
    if (rc != WEIR_OK) abort(); /* the file exists: opening cannot fail */
    buf scratch = BUF_INIT;
    slice rec;
    uint64_t records = 0, bytes = 0;
    while ((rc = log_reader_next(r, &scratch, &rec)) == WEIR_OK) {
        /* Records never exceed the file and do not overlap. */
        if (rec.len > size) abort();
        bytes += rec.len;
        if (++records > size) abort();
    }
    fuzz_expect(rc, WEIR_OK, "log_reader_next");
    fuzz_expect_located(rc, "log_reader_next");
    if (log_reader_valid_end(r) > size - 1) abort();
    /* Once done, it stays done. */
    if (log_reader_next(r, &scratch, &rec) != rc) abort();
    (void)bytes;
    buf_free(&scratch);
    log_reader_close(r);
    fuzz_reset_files();
    return 0;
}
