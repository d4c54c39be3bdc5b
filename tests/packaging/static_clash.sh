#!/usr/bin/env bash
# Links tests/packaging/clash_app.c, a program that defines its own
# encode_varint32, crc32c_extend and arena_alloc (names weir uses
# internally), statically against libweir.a, then runs it. With internal
# names left global in libweir.a the link fails ("multiple definition").
#
# Usage: static_clash.sh CC LIBWEIR_A INCLUDE_DIR WORK_DIR "CFLAGS" "LIBS"
set -euo pipefail
cc=${1:?usage: static_clash.sh CC LIBWEIR_A INCLUDE_DIR WORK_DIR CFLAGS LIBS}
lib=${2:?usage}
include=${3:?usage}
work=${4:?usage}
cflags=${5:-}
libs=${6:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
# shellcheck disable=SC2086  # the flag lists are meant to split
"$cc" -std=c11 -Wall -Wextra -Werror $cflags -I"$include" "$here/clash_app.c" "$lib" $libs \
    -o "$work/clash_app"
db=$(mktemp -d "${TMPDIR:-/tmp}/weir-clash-XXXXXX")
trap 'rm -rf "$db"' EXIT
"$work/clash_app" "$db/db"
