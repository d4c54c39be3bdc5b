#!/usr/bin/env bash
# cli_test.sh -- runs the `weir` binary through every subcommand and checks
# exit statuses, stdout and stderr: help and usage errors, text/hex round
# trips of binary data, scan options, CSV and JSON-lines loading (including
# a bad line part-way through), stats/levels/compact, the progress display
# of load and compact (off, plain lines, a bar on a terminal), dump-table,
# dump-log, and `weir check` against a flipped byte in each kind of file.
#
# Usage: cli_test.sh PATH/TO/weir      (CTest passes the built binary)
# Needs only bash, coreutils (od, dd, cp, head, wc) and script(1) for a
# pseudo-terminal (util-linux; Debian's essential bsdutils package).

set -u
WEIR=${1:?usage: cli_test.sh PATH/TO/weir}
case $WEIR in /*) ;; *) WEIR=$PWD/$WEIR ;; esac
[ -x "$WEIR" ] || { echo "cli_test.sh: $WEIR is not an executable" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/weir-cli.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 2

passed=0
failed=0
current=""

fail() {
    failed=$((failed + 1))
    echo "FAIL [$current]: $*" >&2
    if [ -s "$T/err" ]; then echo "  stderr: $(head -c 600 "$T/err")" >&2; fi
}
pass() { passed=$((passed + 1)); }

# run ARGS...: run weir; stdout -> $T/out, stderr -> $T/err, status -> $rc.
run() {
    current="weir $*"
    "$WEIR" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
# run_in FILE ARGS...: same, with stdin from FILE.
run_in() {
    local input=$1
    shift
    current="weir $* < $input"
    "$WEIR" "$@" <"$input" >"$T/out" 2>"$T/err"
    rc=$?
}

expect_rc() {
    if [ "$rc" = "$1" ]; then pass; else fail "exit status $rc, expected $1"; fi
}
# expect_out TEXT: stdout is exactly TEXT (plus the final newline).
expect_out() {
    local got
    got=$(cat "$T/out")
    if [ "$got" = "$1" ]; then pass; else fail "stdout:
$got
--- expected:
$1"; fi
}
expect_out_has() {
    if grep -qF -- "$1" "$T/out"; then pass; else fail "stdout lacks '$1'; got: $(head -c 600 "$T/out")"; fi
}
expect_out_lacks() {
    if grep -qF -- "$1" "$T/out"; then fail "stdout unexpectedly has '$1'"; else pass; fi
}
expect_err_has() {
    if grep -qF -- "$1" "$T/err"; then pass; else fail "stderr lacks '$1'"; fi
}
expect_err_lacks() {
    if grep -qF -- "$1" "$T/err"; then fail "stderr unexpectedly has '$1'"; else pass; fi
}
# expect_err_plain: stderr holds no carriage return and no escape character.
expect_err_plain() {
    if LC_ALL=C grep -q "$(printf '[\r\033]')" "$T/err"; then fail "stderr has control characters"; else pass; fi
}
# on_terminal ARGS...: run weir with a pseudo-terminal as its stdout and
# stderr (script(1), util-linux); what it wrote -> $T/tty, status -> $rc.
on_terminal() {
    current="weir $* (on a terminal)"
    local cmd="'$WEIR'" a
    for a in "$@"; do cmd="$cmd '$a'"; done
    script -qec "$cmd" /dev/null </dev/null >"$T/tty" 2>&1
    rc=$?
}
tty_has() {
    if grep -qF -- "$1" "$T/tty"; then pass; else fail "terminal output lacks '$1': $(head -c 600 "$T/tty" | od -c | head -5)"; fi
}
tty_lacks() {
    if grep -qF -- "$1" "$T/tty"; then fail "terminal output unexpectedly has '$1'"; else pass; fi
}
expect_err_empty() {
    if [ -s "$T/err" ]; then fail "stderr not empty"; else pass; fi
}
expect_same() { # expect_same NAME GOT WANT
    if [ "$2" = "$3" ]; then pass; else current=$1; fail "got '$2', expected '$3'"; fi
}

# flip FILE OFFSET: invert every bit of one byte in place.
flip() {
    local b
    b=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
    [ -n "$b" ] || { echo "flip: $1 has no byte at $2" >&2; exit 2; }
    printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# field_of TEXT PREFIX: the number after "PREFIX" in TEXT's matching line.
field_of() {
    printf '%s\n' "$1" | sed -n "s/^$2\([0-9][0-9]*\).*/\1/p" | head -1
}

COMMANDS="get put delete scan load stats levels compact checkpoint check dump-table dump-log help"

# ---------------------------------------------------------------- top level
run --help
expect_rc 0
for c in $COMMANDS; do expect_out_has "  $c "; done
run
expect_rc 2
expect_err_has "Usage: weir"
run --version
expect_rc 0
expect_out_has "weir "
run frobnicate
expect_rc 2
expect_err_has "weir: unknown command 'frobnicate'"
run --frobnicate
expect_rc 2
expect_err_has "unknown option"

# ------------------------------------------------- --help on every command
for c in $COMMANDS; do
    run "$c" --help
    expect_rc 0
    expect_out_has "Usage: weir $c"
    expect_err_empty
    run "$c" -h
    expect_rc 0
    expect_out_has "Usage: weir $c"
    if [ "$c" != help ]; then
        expect_out_has "Exit status"
        expect_out_has "Example"
        run help "$c"
        expect_rc 0
        expect_out_has "Usage: weir $c"
        # Unknown options and missing arguments are usage errors (exit 2).
        run "$c" --no-such-option x
        expect_rc 2
        expect_err_has "weir: $c: unknown option --no-such-option"
        expect_err_has "Run 'weir $c --help'"
        run "$c"
        expect_rc 2
        expect_err_has "weir: $c: expected"
    fi
done
run help nosuch
expect_rc 2

# --------------------------------------------- job: handed to weir.cluster
# `weir job` runs `$WEIR_PYTHON -m weir.cluster job ...`; what it shows is
# tested with a Redis Cluster in tests/python/test_cluster.py. Here: its help,
# its usage error, and a Python that cannot be run.
run --help
expect_out_has "  job "
run job --help
expect_rc 0
expect_out_has "Usage: weir job status JOB"
expect_out_has "Exit status"
expect_err_empty
run job
expect_rc 2
expect_err_has "Usage: weir job"
current="WEIR_PYTHON=$T/no-such-python weir job status x"
WEIR_PYTHON="$T/no-such-python" "$WEIR" job status x >"$T/out" 2>"$T/err"
rc=$?
expect_rc 1
expect_err_has "cannot run $T/no-such-python (set WEIR_PYTHON"

# ------------------------------------------------ a missing database dir
for c in get delete scan stats levels compact; do
    case $c in
    get | delete) run "$c" "$T/nope" k ;;
    *) run "$c" "$T/nope" ;;
    esac
    expect_rc 1
    expect_err_has "weir: $c: no database at $T/nope"
done
[ ! -e "$T/nope" ] && pass || { current="read commands"; fail "created $T/nope"; }
run check "$T/nope"
expect_rc 2
expect_err_has "weir: check: cannot check $T/nope"
mkdir "$T/empty"
run get "$T/empty" k
expect_rc 1
expect_err_has "not a weir database"
run check "$T/empty"
expect_rc 2
expect_err_has "is not a weir database"

# ------------------------------------------------------ put / get / delete
DB=$T/db
run put "$DB" alpha 1
expect_rc 0
expect_err_empty
run get "$DB" alpha
expect_rc 0
expect_out "1"
run put "$DB" beta 2 gamma 3 "with space" "v s"
expect_rc 0
run get "$DB" "with space"
expect_out "v s"
run put "$DB" odd
expect_rc 2
expect_err_has "KEY VALUE pairs"
run put "$DB" a b c
expect_rc 2
run get "$DB" missing
expect_rc 1
expect_err_has "weir: get: key not found: 'missing'"
run get "$DB" alpha extra
expect_rc 2

# Escaping: tab, newline, backslash and control bytes are shown escaped.
run put "$DB" esc $'a\tb\nc\\d\001e'
expect_rc 0
run get "$DB" esc
expect_out 'a\tb\nc\\d\x01e'
# UTF-8 passes through as is.
run put "$DB" "ключ" "значение ✓"
run get "$DB" "ключ"
expect_out "значение ✓"
# A key that starts with '-' goes after --.
run put "$DB" -- -dash minus
expect_rc 0
run get "$DB" -- -dash
expect_out "minus"
run get "$DB" -dash
expect_rc 2
expect_err_has "goes after '--'"

# Binary data round trip in hex.
run put --hex "$DB" 00ff0a 5c00 0001 ""
expect_rc 0
run get --hex "$DB" 00ff0a
expect_out "5c00"
run get "$DB" --hex 0001
expect_rc 0
expect_out ""
run get --hex "$DB" 00ff0a
expect_out "5c00"
run get "$DB" alpha --hex
expect_rc 2
expect_err_has "is not hex"
run get --hex "$DB" 0g
expect_rc 2
run get --hex "$DB" 616c706861
expect_out "31"
# Text output of the binary key/value is escaped, unambiguously.
run scan --prefix $'\x01' "$DB"
expect_out ""
run scan --hex --prefix 00 "$DB"
expect_out "0001	
00ff0a	5c00"
run scan --prefix "" --to a "$DB"
expect_out '\x00\x01	
\x00\xff\n	\\\x00
-dash	minus'
# --raw writes the value's exact bytes.
run get --raw --hex "$DB" 00ff0a
expect_same "get --raw bytes" "$(od -An -tx1 "$T/out" | tr -d ' \n')" "5c00"

run delete "$DB" beta never-existed
expect_rc 0
run get "$DB" beta
expect_rc 1
run delete --hex "$DB" 0001
expect_rc 0
run get --hex "$DB" 0001
expect_rc 1
run delete "$DB"
expect_rc 2

# ----------------------------------------------------------------- scan
S=$T/scan
run put "$S" a 1 b 2 ba 21 bb 22 c 3 d 4 e 5
expect_rc 0
run scan "$S"
expect_out "a	1
b	2
ba	21
bb	22
c	3
d	4
e	5"
run scan --prefix b "$S"
expect_out "b	2
ba	21
bb	22"
run scan --from b --to c "$S"
expect_out "b	2
ba	21
bb	22"
run scan --from ba --to d "$S"
expect_out "ba	21
bb	22
c	3"
run scan --reverse "$S" --from b --to d
expect_out "c	3
bb	22
ba	21
b	2"
run scan --reverse --prefix b --limit 2 "$S"
expect_out "bb	22
ba	21"
run scan --limit 2 "$S"
expect_out "a	1
b	2"
run scan --limit 0 "$S"
expect_out ""
run scan --keys-only --from d "$S"
expect_out "d
e"
run scan --count --prefix b "$S"
expect_out "3"
run scan --format hex --to b "$S"
expect_out "61	31"
run scan --format json --from e "$S"
expect_out '{"key":"e","value":"5"}'
run scan --format json --keys-only --to b "$S"
expect_out '{"key":"a"}'
run put "$S" 'q"uote' $'line\nbreak'
run scan --format json --prefix q "$S"
expect_out '{"key":"q\"uote","value":"line\nbreak"}'
run put --hex "$S" ff 80
run scan --format json --from ff --hex "$S"
expect_out '{"key_hex":"ff","value_hex":"80"}'
run scan --format xml "$S"
expect_rc 2
expect_err_has "--format must be"
run scan --limit -1 "$S"
expect_rc 2
run scan --limit lots "$S"
expect_rc 2
run scan "$S" extra
expect_rc 2

# ------------------------------------------------------------ load (CSV)
L=$T/load
printf '%s\n' 'id,name,city' '1,Alice,Paris' '2,"Bob, Jr.",Rome' \
    '3,"say ""hi""",Oslo' '4,"two' 'lines",Lima' '' '5,,Kyiv' >"$T/people.csv"
run load --header "$L" "$T/people.csv"
expect_rc 0
expect_out_has "loaded 5 records in "
expect_out_has " records/s)"
run get "$L" 2
expect_out "Bob, Jr."
run get "$L" 3
expect_out 'say "hi"'
run get "$L" 4
expect_out 'two\nlines'
run get "$L" 5
expect_rc 0
expect_out ""
run get "$L" id
expect_rc 1
run load --key-column name --value-column city "$L" "$T/people.csv"
expect_rc 0
expect_out_has "loaded 5 records"
run get "$L" Alice
expect_out "Paris"
run load --key-column 3 --value-column 1 --header "$L" "$T/people.csv"
expect_rc 0
run get "$L" Lima
expect_out "4"
run load --key-column nosuch "$L" "$T/people.csv"
expect_rc 1
expect_err_has "no column named 'nosuch'"
printf 'k1\tv1\r\nk2\tv2\r\n' >"$T/pairs.tsv"
run load "$L" "$T/pairs.tsv"
expect_rc 0
run get "$L" k2
expect_out "v2"
printf 'x1;y1\n' >"$T/semi.txt"
run load --format csv --delimiter ';' "$L" "$T/semi.txt"
expect_rc 0
run get "$L" x1
expect_out "y1"

# A bad line part-way: earlier batches stay, the batch in flight does not.
{
    for i in 1 2 3 4 5 6; do echo "bk$i,bv$i"; done
    echo 'bk7,"unterminated'
    echo 'bk8,bv8'
} >"$T/bad.csv"
run load --batch-size 4 "$L" "$T/bad.csv"
expect_rc 1
expect_err_has "$T/bad.csv:7: unterminated quoted field"
expect_err_has "4 records of earlier batches were written"
for i in 1 2 3 4; do
    run get "$L" "bk$i"
    expect_rc 0
done
for i in 5 6 8; do
    run get "$L" "bk$i"
    expect_rc 1
done
printf 'a,b\nc,"d"x\n' >"$T/afterquote.csv"
run load "$L" "$T/afterquote.csv"
expect_rc 1
expect_err_has "afterquote.csv:2: unexpected character after a closing quote"
printf 'a,b\nonlyone\n' >"$T/short.csv"
run load "$L" "$T/short.csv"
expect_rc 1
expect_err_has "short.csv:2: the record has 1 field(s)"
run get "$L" a
expect_rc 1
run load "$L" "$T/does-not-exist.csv"
expect_rc 1
expect_err_has "cannot open"
run load --format yaml "$L" "$T/people.csv"
expect_rc 2
run load --batch-size 0 "$L" "$T/people.csv"
expect_rc 2
run load --key-field id "$L" "$T/people.csv"
expect_rc 2

# ----------------------------------------------------- load (JSON lines)
J=$T/json
cat >"$T/events.jsonl" <<'EOF'
{"key": "e1", "n": 1}
{"id": 7, "key": "e2", "nested": {"a": [1, 2, {"b": null}]}, "s": "caf\u00e9 \ud83d\ude00"}

  {"key":"e3","v":"tab\there"}
EOF
run load "$J" "$T/events.jsonl"
expect_rc 0
expect_out_has "loaded 3 records"
run get "$J" e1
expect_out '{"key": "e1", "n": 1}'
run get "$J" e3
expect_out '  {"key":"e3","v":"tab\\there"}'
run load --key-field id --value-field nested "$J" "$T/events.jsonl"
expect_rc 1
expect_err_has "events.jsonl:1: the object has no \"id\" member"
run load --key-field key --value-field s --format jsonl "$J" - <"$T/events.jsonl"
expect_rc 1 # line 1 has no "s"
printf '{"id":7,"nested":{"a":[1,2]},"s":"caf\\u00e9 \\ud83d\\ude00"}\n' >"$T/one.jsonl"
run load --key-field id --value-field nested "$J" "$T/one.jsonl"
expect_rc 0
run get "$J" 7
expect_out '{"a":[1,2]}'
run load --key-field id --value-field s "$J" "$T/one.jsonl"
run get "$J" 7
expect_out "café 😀"
run_in "$T/one.jsonl" load --key-field s --format jsonl "$J" -
expect_rc 0
run get "$J" "café 😀"
expect_rc 0
{
    for i in 1 2 3 4 5; do echo "{\"key\":\"j$i\",\"v\":$i}"; done
    echo '{"key":"j6","v":}'
    echo '{"key":"j7"}'
} >"$T/bad.jsonl"
run load --batch-size 2 "$J" "$T/bad.jsonl"
expect_rc 1
expect_err_has "$T/bad.jsonl:6: column 17: "
expect_err_has "4 records of earlier batches were written"
for i in 1 2 3 4; do
    run get "$J" "j$i"
    expect_rc 0
done
for i in 5 6 7; do
    run get "$J" "j$i"
    expect_rc 1
done
for bad in '{"key":"x"} trailing' '["key"]' '{"key":true}' '{"key":"x",}' '{"key":"\q"}' \
    '{"key":"\ud800"}' '{"key":01}' 'nul'; do
    printf '%s\n' "$bad" >"$T/bad1.jsonl"
    run load "$J" "$T/bad1.jsonl"
    expect_rc 1
    expect_err_has "bad1.jsonl:1: "
done
# Invalid UTF-8 in a string, and the key named twice: refused, not guessed.
printf '{"key":"a\377","value":"1"}\n' >"$T/bad1.jsonl"
run load "$J" "$T/bad1.jsonl"
expect_rc 1
expect_err_has "not valid UTF-8"
printf '{"key":"a","key":"b","value":"1"}\n' >"$T/bad1.jsonl"
run load "$J" "$T/bad1.jsonl"
expect_rc 1
expect_err_has "appears twice"
run get "$J" b
expect_rc 1
printf '{"key":"z"}\n' >"$T/noext"
run load "$J" "$T/noext"
expect_rc 0
expect_out_has "loaded 1 records"

# ------------------------------------------------ stats, levels, compact
run stats "$S"
expect_rc 0
expect_out_has "level 0:"
run levels "$S"
expect_rc 0
expect_out_has "level 1: 0 files"
expect_out_has ".sst"
run compact "$S"
expect_rc 0
expect_out_has "compacted in "
expect_out_has "level 0: 0 files"
expect_err_has "compacting all keys"
run levels "$S"
expect_out_has "level 0: 0 files"
expect_out_lacks "level 1: 0 files"
run compact --from b --to c "$S"
expect_rc 0
expect_err_has "compacting keys from 'b' to 'c'"
run scan --count "$S"
expect_out "9"
run compact --hex --from zz "$S"
expect_rc 2

# compact's progress: nothing when stderr is not a terminal; plain lines
# with --progress (each step's start and end, no control characters); a
# bar redrawn in place on a terminal, unless TERM=dumb or --no-progress.
P=$T/progress
run put "$P" a 1
run compact "$P"
expect_rc 0
expect_err_lacks "step 1 of"
run put "$P" zz2 later
run compact --progress "$P"
expect_rc 0
expect_err_has "weir: compact: 100% step 1 of 1 (level 0 -> 1): "
expect_err_has " merged"
expect_err_plain
expect_out_has "compacted in "
run compact --progress --no-progress "$P"
expect_rc 0
expect_err_lacks "step 1 of"
on_terminal compact "$P"
expect_same "compact on a terminal: status" "$rc" 0
tty_has "100%  step 1 of 1 (level 0 -> 1)"
tty_has "$(printf '\r[')"
tty_has "$(printf '\033[K')"
tty_has "compacted in "
on_terminal compact --no-progress "$P"
tty_lacks "step 1 of"
TERM=dumb on_terminal compact "$P"
tty_lacks "step 1 of"
TERM=dumb on_terminal compact --progress "$P"
tty_has "weir: compact: 100% step 1 of 1"
tty_lacks "$(printf '\r[')"
run compact --progress --from zz "$P"
expect_rc 0
expect_err_has "compacting keys from 'zz' to the last"
expect_err_has "100% step"
run stats "$S" extra
expect_rc 2

# ------------------------------------------------------------ checkpoint
run checkpoint "$S" "$T/copy"
expect_rc 0
expect_out_has "checkpoint of $S written to $T/copy"
run scan --count "$T/copy"
expect_out "9"
run checkpoint "$S" "$T/copy"
expect_rc 1
expect_err_has "is not empty"
run checkpoint "$S"
expect_rc 2
run checkpoint "$T/no-such-db" "$T/copy2"
expect_rc 1

# ------------------------------------------ a database for the file tools
D=$T/big
{
    i=0
    while [ $i -lt 3000 ]; do
        printf 'key%05d,value %d with some padding to fill blocks\n' $i $i
        i=$((i + 1))
    done
} >"$T/big.csv"
run load "$D" "$T/big.csv"
expect_rc 0
expect_err_lacks "weir: load:"
# load's progress, asked for off a terminal: plain lines.
run load --progress "$T/big-progress" "$T/big.csv"
expect_rc 0
expect_err_has "weir: load: "
expect_err_has " records"
expect_err_plain
on_terminal load "$T/big-tty" "$T/big.csv"
expect_same "load on a terminal: status" "$rc" 0
tty_has "$(printf '\r[')"
tty_has "loaded 3000 records"
run delete "$D" key00010
run compact "$D"
expect_rc 0
# A log with many small records, left unflushed by the last command.
{
    i=0
    while [ $i -lt 200 ]; do
        printf '{"key":"log%04d","n":%d}\n' $i $i
        i=$((i + 1))
    done
} >"$T/log.jsonl"
run load --batch-size 10 "$D" "$T/log.jsonl"
expect_rc 0
SST=$(cd "$D" && ls ./*.sst | head -1)
SST=${SST#./}
LOG=$(cd "$D" && ls ./*.log | tail -1)
LOG=${LOG#./}
MAN=$(cd "$D" && ls ./MANIFEST-* | head -1)
MAN=${MAN#./}
current="database layout"
[ -n "$SST" ] && [ -n "$LOG" ] && [ -n "$MAN" ] && pass || fail "missing files in $D: $(ls "$D")"

# ---------------------------------------------------------------- dump-table
run dump-table --limit 3 "$D/$SST"
expect_rc 0
expect_out "key00000	1	PUT	value 0 with some padding to fill blocks
key00001	2	PUT	value 1 with some padding to fill blocks
key00002	3	PUT	value 2 with some padding to fill blocks"
run dump-table "$D/$SST"
expect_rc 0
expect_same "dump-table lines" "$(wc -l <"$T/out" | tr -d ' ')" 2999
run dump-table --hex --limit 1 "$D/$SST"
expect_out "6b65793030303030	1	PUT	76616c75652030207769746820736f6d652070616464696e6720746f2066696c6c20626c6f636b73"
run dump-table --stats "$D/$SST"
expect_rc 0
expect_out_has "entries: 2999"
expect_out_has "footer: offset "
expect_out_has "key range: 'key00000' @ 1 PUT .. 'key02999' @ 3000 PUT"
STATS=$(cat "$T/out")
FILTER_OFF=$(field_of "$STATS" "filter block: offset ")
INDEX_OFF=$(field_of "$STATS" "index block: offset ")
FOOTER_OFF=$(field_of "$STATS" "footer: offset ")
NBLOCKS=$(field_of "$STATS" "data blocks: ")
current="dump-table --stats offsets"
[ -n "$FILTER_OFF" ] && [ -n "$INDEX_OFF" ] && [ -n "$FOOTER_OFF" ] && [ "${NBLOCKS:-0}" -gt 3 ] &&
    pass || fail "could not parse: $STATS"
run dump-table --blocks "$D/$SST"
expect_rc 0
expect_out_has "data block 0: offset 0, "
expect_out_has "data block 1: offset "
BLOCK1=$(field_of "$(cat "$T/out")" "data block 1: offset ")
run dump-table "$D/$MAN"
expect_rc 1
expect_err_has "weir: dump-table: table $D/$MAN"
run dump-table "$D/nope.sst"
expect_rc 1
run dump-table "$D/$SST" "$D/$SST"
expect_rc 2

# ------------------------------------------------------------------ dump-log
run dump-log "$D/$LOG"
expect_rc 0
expect_out_has "record at offset 0: sequence 3002, 10 ops, "
expect_out_has "	3002	PUT	log0000	{\"key\":\"log0000\",\"n\":0}"
expect_out_has "20 records, 200 ops, sequences 3002..3201"
run dump-log --no-ops "$D/$LOG"
expect_rc 0
expect_out_lacks "PUT"
expect_same "dump-log --no-ops lines" "$(wc -l <"$T/out" | tr -d ' ')" 21
run dump-log --hex "$D/$LOG"
expect_out_has "	3002	PUT	6c6f6730303030	"
# Deletions show as DEL (this DB's log is still unflushed: nothing reopened it).
run put "$T/dl" k1 v1
run delete "$T/dl" k1 k2
DLLOG=$(cd "$T/dl" && ls ./*.log | tail -1)
run dump-log "$T/dl/${DLLOG#./}"
expect_rc 0
expect_out "record at offset 0: sequence 2, 2 ops, 20 bytes
	2	DEL	k1
	3	DEL	k2
1 records, 2 ops, sequences 2..3"
run dump-log "$D/$MAN"
expect_rc 0
expect_out_has "record at offset 0: version edit"
expect_out_has "add level 1 table $SST: "
expect_out_has "last sequence "
cp "$D/$LOG" "$T/torn.log"
truncate -s -5 "$T/torn.log"
run dump-log --no-ops "$T/torn.log"
expect_rc 0
expect_err_has "warning: torn tail: "
expect_out_has "19 records"
# Random bytes are no log at all, not a torn tail.
head -c 100000 /dev/urandom >"$T/random.log"
run dump-log "$T/random.log"
expect_rc 1
expect_err_has "no valid record in 100000 bytes"
cp "$D/$LOG" "$T/bad.log"
flip "$T/bad.log" 100
run dump-log "$T/bad.log"
expect_rc 1
expect_err_has "weir: dump-log: corrupted log record in $T/bad.log at offset 0"
run dump-log "$T/nope.log"
expect_rc 1

# --------------------------------------------------------------------- check
LISTING=$(ls -la "$D")
run check "$D"
expect_rc 0
expect_out_has "OK CURRENT (names $MAN)"
expect_out_has "OK $MAN (live; "
expect_out_has "closed cleanly"
expect_out_has "OK $SST (level 1, 2999 entries, "
expect_out_has "OK $LOG (20 record(s), 200 write(s), sequences 3002..3201)"
expect_out_has "OK database (history consistent"
expect_out_has "0 damaged, 0 unreadable"
expect_same "check changes nothing" "$(ls -la "$D")" "$LISTING"
run check "$D" extra
expect_rc 2

# check_damage NAME FILE OFFSET EXPECTED...: copy the DB, flip one byte of
# FILE at OFFSET, and expect exit 1 with a DAMAGE line for FILE holding
# each EXPECTED text.
check_damage() {
    local name=$1 file=$2 off=$3
    shift 3
    rm -rf "$T/c_$name"
    cp -r "$D" "$T/c_$name"
    flip "$T/c_$name/$file" "$off"
    run check "$T/c_$name"
    current="check, flipped byte in $name ($file @ $off)"
    expect_rc 1
    expect_out_has "DAMAGE $file: "
    local want
    for want in "$@"; do
        if grep "^DAMAGE $file: " "$T/out" | grep -qF -- "$want"; then pass; else
            fail "DAMAGE line lacks '$want': $(grep "^DAMAGE" "$T/out")"
        fi
    done
    expect_err_has "weir: check: $T/c_$name: damage found in "
}

LOG_SIZE=$(wc -c <"$D/$LOG" | tr -d ' ')
check_damage log "$LOG" $((LOG_SIZE / 2)) "corrupted log record in" "at offset "
check_damage data "$SST" 50 "checksum mismatch in data block at offset 0"
check_damage data2 "$SST" $((BLOCK1 + 20)) "checksum mismatch in data block at offset $BLOCK1"
check_damage index "$SST" $((INDEX_OFF + 5)) "index block at offset $INDEX_OFF"
check_damage filter "$SST" $((FILTER_OFF + 5)) "filter block at offset $FILTER_OFF"
check_damage footer "$SST" $((FOOTER_OFF + 3)) "footer checksum mismatch at offset $FOOTER_OFF"
check_damage magic "$SST" $((FOOTER_OFF + 60)) "bad magic number at offset"
check_damage manifest "$MAN" 10 "$MAN at offset 0"
check_damage current CURRENT 0 "does not name a manifest"
# The damaged databases above still get every other file checked.
run check "$T/c_current"
expect_out_has "$SST: 2999 entries"
expect_out_has "OK $LOG ("
# ...and check works where opening fails.
run get "$T/c_current" key00001
expect_rc 1

# After a clean close a short log is damage: close made everything durable.
rm -rf "$T/c_short"
cp -r "$D" "$T/c_short"
truncate -s -3 "$T/c_short/$LOG"
run check "$T/c_short"
expect_rc 1
expect_out_has "DAMAGE $LOG: "
expect_out_has "closed cleanly, so this is no torn write"
# Without the clean-close record (the manifest's last record, as after a
# crash), the same truncated record is a torn tail: a warning.
rm -rf "$T/c_torn"
cp -r "$D" "$T/c_torn"
run dump-log "$T/c_torn/$MAN"
SEAL=$(grep '^record at offset ' "$T/out" | tail -1 | sed 's/^record at offset \([0-9]*\):.*/\1/')
truncate -s "$SEAL" "$T/c_torn/$MAN"
truncate -s -3 "$T/c_torn/$LOG"
run check "$T/c_torn"
expect_rc 0
expect_out_has "not closed cleanly"
expect_out_has "WARN $LOG: torn tail: "
expect_out_has "0 damaged"
# A table the manifest lists but that is gone.
rm -rf "$T/c_missing"
cp -r "$D" "$T/c_missing"
rm "$T/c_missing/$SST"
run check "$T/c_missing"
expect_rc 1
expect_out_has "DAMAGE $SST: listed in the manifest (level 1"
# A table not listed in the manifest is still verified, and its damage
# loses nothing: a note, not damage.
cp "$D/$SST" "$T/c_missing/999999.sst"
flip "$T/c_missing/999999.sst" 7
run check "$T/c_missing"
expect_rc 1
expect_out_has "NOTE 999999.sst: "
expect_out_has "newer than it"
# A CURRENT that points nowhere.
rm -rf "$T/c_dangling"
cp -r "$D" "$T/c_dangling"
printf 'MANIFEST-777777\n' >"$T/c_dangling/CURRENT"
run check "$T/c_dangling"
expect_rc 1
expect_out_has "DAMAGE CURRENT: names MANIFEST-777777, which does not exist"
# No CURRENT at all, but store files.
rm "$T/c_dangling/CURRENT"
run check "$T/c_dangling"
expect_rc 1
expect_out_has "DAMAGE CURRENT: missing"
# A table whose size disagrees with the manifest.
rm -rf "$T/c_grown"
cp -r "$D" "$T/c_grown"
printf 'x' >>"$T/c_grown/$SST"
run check "$T/c_grown"
expect_rc 1
expect_out_has "but the manifest recorded"
# A deleted live log: its writes would silently revert.
rm -rf "$T/c_nolog"
cp -r "$D" "$T/c_nolog"
rm "$T/c_nolog/$LOG"
run check "$T/c_nolog"
expect_rc 1
expect_out_has "DAMAGE database: "
expect_out_has "is missing"
# Read commands open read-only: they work in a read-only directory and
# change nothing there.
rm -rf "$T/ro"
cp -r "$D" "$T/ro"
chmod -R a-w "$T/ro"
RO_LISTING=$(ls -la "$T/ro")
if [ "$(id -u)" -ne 0 ]; then
    run get "$T/ro" key00001
    expect_rc 0
fi
run scan "$T/ro" --limit 1
expect_rc 0
run check "$T/ro"
expect_rc 0
expect_same "read commands change nothing" "$(ls -la "$T/ro")" "$RO_LISTING"
chmod -R u+w "$T/ro"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
