/*
 * fuzz_batch.c -- libFuzzer harness for the write-batch decoder (batch.c),
 * which replays every log record at recovery: a malformed batch must fail
 * with WEIR_CORRUPTION (never read past the record), and a batch that
 * decodes must survive TTL resolution and re-decoding with the same ops.
 */
#include "batch.h"
#include "dbformat.h"
#include "fuzz_common.h"
#include "merge.h"

typedef struct counts {
    uint64_t ops;
    uint64_t bytes;
    const merge_registry *reg;
} counts;

static int count_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    counts *c = arg;
    (void)seq;
    c->ops++;
    c->bytes += key.len + value.len + (uint64_t)type;
    if (type == TYPE_MERGE) {
        int rc = merge_check_operand(c->reg, value);
        if (rc != WEIR_OK && rc != WEIR_INVALID && rc != WEIR_CORRUPTION) abort();
    }
    return WEIR_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *rec = malloc(size ? size : 1);
    if (!rec) return 0;
    memcpy(rec, data, size);
    merge_registry reg;
    memset(&reg, 0, sizeof reg);
    counts c = {0, 0, &reg};
    int rc = size < BATCH_HEADER_SIZE ? WEIR_CORRUPTION
                                      : batch_rep_iterate(slice_make(rec, size), count_op, &c);
    fuzz_expect(rc, WEIR_OK, "batch_rep_iterate");
    if (rc == WEIR_OK) {
        /* Resolving relative TTLs rewrites the batch; it must decode to
         * the same number of ops. */
        buf out = BUF_INIT;
        int rr = batch_rep_init(&out);
        if (rr == WEIR_OK) rr = batch_rep_resolve(&out, slice_make(rec, size), 1700000000000ull, 0);
        fuzz_expect(rr, WEIR_INVALID, "batch_rep_resolve");
        if (rr == WEIR_OK) {
            counts c2 = {0, 0, &reg};
            if (batch_rep_iterate(buf_slice(&out), count_op, &c2) != WEIR_OK) abort();
            if (c2.ops != c.ops) abort();
        }
        buf_free(&out);
    }
    free(rec);
    return 0;
}
