#!/usr/bin/env bash
# The library boundary: libweir.a and libweir.so may define no global
# symbol whose name does not start with weir_, so a program that links
# weir statically can use any other name for its own functions. The
# internal library (what the C tests link) must still carry the engine's
# internal names, which shows the check reads real symbol tables.
#
# Usage: check_symbols.sh LIBWEIR_A LIBWEIR_SO LIBWEIR_INTERNAL_A
# (NM names the nm to use; default nm.)
set -euo pipefail
static=${1:?usage: check_symbols.sh LIBWEIR_A LIBWEIR_SO LIBWEIR_INTERNAL_A}
shared=${2:?usage}
internal=${3:?usage}
nm=${NM:-nm}
[ -n "$nm" ] || nm=nm

# Defined global (external) symbols, one name a line. Lines of an archive
# listing that are not symbols ("member.o:", blanks) have fewer fields.
defined_globals() { "$nm" "$@" --defined-only | awk 'NF >= 3 { print $3 }' | sort -u; }

status=0
report() { # LABEL LIST
    local label=$1 names=$2
    local bad
    bad=$(printf '%s\n' "$names" | grep -v '^weir_' | grep -v '^$' || true)
    local n_weir n_bad
    n_weir=$(printf '%s\n' "$names" | grep -c '^weir_' || true)
    n_bad=$(printf '%s\n' "$bad" | grep -c . || true)
    if [ "$n_weir" -lt 50 ]; then
        echo "FAIL $label: only $n_weir weir_* symbols; the public API is missing" >&2
        status=1
    fi
    if [ "$n_bad" -ne 0 ]; then
        echo "FAIL $label: $n_bad global symbols outside weir_*:" >&2
        printf '%s\n' "$bad" | head -40 | sed 's/^/  /' >&2
        status=1
    else
        echo "ok   $label: $n_weir global symbols, all weir_*"
    fi
}

static_names=$(defined_globals -g "$static")
shared_names=$(defined_globals -D "$shared")
report "$static" "$static_names"
report "$shared" "$shared_names"

# Both libraries offer the same API.
if [ "$(printf '%s\n' "$static_names" | grep '^weir_')" != "$(printf '%s\n' "$shared_names" | grep '^weir_')" ]; then
    echo "FAIL the weir_* names of $static and $shared differ:" >&2
    diff <(printf '%s\n' "$static_names" | grep '^weir_') \
         <(printf '%s\n' "$shared_names" | grep '^weir_') | head -20 >&2 || true
    status=1
fi

internal_names=$(defined_globals -g "$internal")
for name in encode_varint32 crc32c_extend arena_alloc; do
    if ! printf '%s\n' "$internal_names" | grep -qx "$name"; then
        echo "FAIL $internal: internal name $name is not global; the C tests need it" >&2
        status=1
    fi
done
[ $status -eq 0 ] && echo "ok   $internal: internal names global (encode_varint32, crc32c_extend, arena_alloc)"
exit $status
