#!/usr/bin/env bash
# Install what `make bench` needs on top of scripts/install-deps.sh, if it is
# missing: the peer engines weir-bench compares against (RocksDB, LevelDB and
# LMDB development packages), `du`, and matplotlib for bench/report.py's plot.
# Debian/Ubuntu only; needs root (or passwordless sudo) when something is
# missing, and does nothing when everything is already there. Kept apart
# from install-deps.sh so `make test` and CI never pull these in.
set -euo pipefail

need=()
[ -f /usr/include/rocksdb/c.h ] || need+=(librocksdb-dev)
[ -f /usr/include/leveldb/c.h ] || need+=(libleveldb-dev)
[ -f /usr/include/lmdb.h ]      || need+=(liblmdb-dev)
command -v du >/dev/null 2>&1   || need+=(coreutils)
# report.py runs under Debian's own python3 so that apt's matplotlib is the
# one it imports (a pyenv or venv python would not see it).
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || need+=(python3-matplotlib)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "install-bench-deps: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-bench-deps: missing ${need[*]} and not root; install them and retry" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}"
