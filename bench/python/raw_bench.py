#!/usr/bin/env python3
"""Raw, synchronous engine bindings from Python: weir vs its peers.

The same workloads on each engine, in one run, from one Python process:

* ``put``      -- N single puts in random key order (one write each)
* ``batch``    -- N puts in random order, written in batches of 1,000
* ``get``      -- N point reads of existing keys, in another random order
* ``iterate``  -- one forward scan over all N pairs

Keys are 16 bytes (zero-padded decimal), values 100 random bytes of their
own (incompressible, so the engines' default compression settings, on in
RocksDB and LevelDB and off in weir, do not skew the comparison). Peers:
rocksdict (RocksDB), plyvel (LevelDB), py-lmdb (LMDB), and tonbo's Python
binding when it can be installed. Durability is each engine's default
crash-safe-for-a-process mode: weir ``sync="flush"``, RocksDB and LevelDB
with their WAL and no fsync, LMDB with ``sync=False`` (data in the mapped
file, flushed by the OS). LMDB reads run in one read transaction, as an LMDB
program would; every other engine reads the latest state per call.

Each engine runs ``--rounds`` times (3 by default), the rounds in rotating
engine order, and every figure is the median of its rounds: single runs on
a 2-core machine vary by a fifth.

Usage: bench/python/raw_bench.py [--num N] [--rounds R] [--dir DIR]
       [--engines weir,rocksdict,...] [--no-doc]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _doc import machine, update_block

T = TypeVar("T")
KEY_LEN = 16
VALUE_LEN = 100
BATCH = 1000
WORKLOADS = ("put", "batch", "get", "iterate")


class Engine:
    """What a workload needs of an engine."""

    name = "?"
    version = "?"

    def open(self, path: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def put_each(self, pairs: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def put_batches(self, pairs: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def get_each(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def iterate(self) -> int:
        raise NotImplementedError


def chunks(items: list[T], n: int) -> Iterator[list[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Weir(Engine):
    name = "weir"

    def __init__(self) -> None:
        import weir

        self.weir = weir
        self.version = weir.__version__

    def open(self, path: str) -> None:
        self.db = self.weir.DB(path, sync="flush")

    def close(self) -> None:
        self.db.close()

    def put_each(self, pairs: list[tuple[bytes, bytes]]) -> None:
        put = self.db.put
        for k, v in pairs:
            put(k, v)

    def put_batches(self, pairs: list[tuple[bytes, bytes]]) -> None:
        put_many = self.db.put_many
        for chunk in chunks(pairs, BATCH):
            put_many(chunk)

    def get_each(self, keys: list[bytes]) -> int:
        get = self.db.get
        return sum(1 for k in keys if get(k) is not None)

    def iterate(self) -> int:
        n = 0
        for _k, _v in self.db.items():
            n += 1
        return n


class RocksDict(Engine):
    name = "rocksdict"

    def __init__(self) -> None:
        import rocksdict

        self.r = rocksdict
        from importlib.metadata import version

        self.version = version("rocksdict")

    def open(self, path: str) -> None:
        self.db = self.r.Rdict(path, self.r.Options(raw_mode=True))

    def close(self) -> None:
        self.db.close()

    def put_each(self, pairs: list[tuple[bytes, bytes]]) -> None:
        put = self.db.put
        for k, v in pairs:
            put(k, v)

    def put_batches(self, pairs: list[tuple[bytes, bytes]]) -> None:
        for chunk in chunks(pairs, BATCH):
            wb = self.r.WriteBatch(raw_mode=True)
            for k, v in chunk:
                wb.put(k, v)
            self.db.write(wb)

    def get_each(self, keys: list[bytes]) -> int:
        get = self.db.get
        return sum(1 for k in keys if get(k) is not None)

    def iterate(self) -> int:
        n = 0
        for _k, _v in self.db.items():
            n += 1
        return n


class Plyvel(Engine):
    name = "plyvel"

    def __init__(self) -> None:
        import plyvel

        self.p = plyvel
        self.version = plyvel.__version__

    def open(self, path: str) -> None:
        self.db = self.p.DB(path, create_if_missing=True)

    def close(self) -> None:
        self.db.close()

    def put_each(self, pairs: list[tuple[bytes, bytes]]) -> None:
        put = self.db.put
        for k, v in pairs:
            put(k, v)

    def put_batches(self, pairs: list[tuple[bytes, bytes]]) -> None:
        for chunk in chunks(pairs, BATCH):
            with self.db.write_batch() as wb:
                for k, v in chunk:
                    wb.put(k, v)

    def get_each(self, keys: list[bytes]) -> int:
        get = self.db.get
        return sum(1 for k in keys if get(k) is not None)

    def iterate(self) -> int:
        n = 0
        for _k, _v in self.db:
            n += 1
        return n


class Lmdb(Engine):
    name = "lmdb"

    def __init__(self) -> None:
        import lmdb

        self.lmdb = lmdb
        self.version = lmdb.__version__

    def open(self, path: str) -> None:
        self.env = self.lmdb.open(path, map_size=8 << 30, sync=False, metasync=False)

    def close(self) -> None:
        self.env.close()

    def put_each(self, pairs: list[tuple[bytes, bytes]]) -> None:
        begin = self.env.begin
        for k, v in pairs:
            with begin(write=True) as txn:
                txn.put(k, v)

    def put_batches(self, pairs: list[tuple[bytes, bytes]]) -> None:
        for chunk in chunks(pairs, BATCH):
            with self.env.begin(write=True) as txn:
                for k, v in chunk:
                    txn.put(k, v)

    def get_each(self, keys: list[bytes]) -> int:
        with self.env.begin() as txn:
            get = txn.get
            return sum(1 for k in keys if get(k) is not None)

    def iterate(self) -> int:
        n = 0
        with self.env.begin() as txn:
            for _k, _v in txn.cursor():
                n += 1
        return n


class Tonbo(Engine):
    """tonbo's Python binding (async, Arrow-typed records); only if installable."""

    name = "tonbo"

    def __init__(self) -> None:
        try:
            import tonbo  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "the tonbo package is not installed: PyPI has only an sdist of tonbo 0.1.0, "
                "whose build needs a Rust toolchain and fetches the fusio crate from GitHub "
                "(`pip install tonbo==0.1.0` fails here: no network but the package registries)"
            ) from None
        raise RuntimeError("tonbo imported, but this harness has no driver for its async API yet")


ENGINES: dict[str, Callable[[], Engine]] = {
    "weir": Weir,
    "rocksdict": RocksDict,
    "plyvel": Plyvel,
    "lmdb": Lmdb,
    "tonbo": Tonbo,
}


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
    finally:
        gc.enable()
    return {"seconds": dt, "ops_per_sec": n / dt}


def run_engine(
    engine: Engine, workdir: str, pairs: list[tuple[bytes, bytes]], reads: list[bytes]
) -> dict[str, Any]:
    n = len(pairs)
    res: dict[str, Any] = {}
    p1 = os.path.join(workdir, f"{engine.name}-put")
    engine.open(p1)
    res["put"] = timed(lambda: engine.put_each(pairs), n)
    engine.close()
    shutil.rmtree(p1, ignore_errors=True)

    p2 = os.path.join(workdir, f"{engine.name}-batch")
    engine.open(p2)
    res["batch"] = timed(lambda: engine.put_batches(pairs), n)
    engine.close()
    engine.open(p2)  # reads and scans of a reopened store, as after a restart
    found = 0

    def reads_fn() -> None:
        nonlocal found
        found = engine.get_each(reads)

    res["get"] = timed(reads_fn, n)
    if found != n:
        raise AssertionError(f"{engine.name}: found {found} of {n} keys")
    seen = 0

    def scan_fn() -> None:
        nonlocal seen
        seen = engine.iterate()

    res["iterate"] = timed(scan_fn, n)
    if seen != n:
        raise AssertionError(f"{engine.name}: iterated {seen} of {n} pairs")
    engine.close()
    res["bytes_on_disk"] = dir_bytes(p2)
    shutil.rmtree(p2, ignore_errors=True)
    return res


def median_results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per workload, the run with the median throughput (its seconds too);
    the throughput of every run is kept under ``ops_per_sec_runs``."""
    out: dict[str, Any] = {}
    for wl in WORKLOADS:
        ordered = sorted((r[wl] for r in runs), key=lambda x: x["ops_per_sec"])
        out[wl] = dict(ordered[(len(ordered) - 1) // 2])
        out[wl]["ops_per_sec_runs"] = [r[wl]["ops_per_sec"] for r in runs]
    out["bytes_on_disk"] = sorted(r["bytes_on_disk"] for r in runs)[(len(runs) - 1) // 2]
    return out


def table(results: dict[str, Any], n: int, rounds: int) -> str:
    names = [e for e in results if results[e].get("ok")]
    lines = [
        f"Raw synchronous bindings, {n:,} operations per workload, {KEY_LEN}-byte keys, "
        f"{VALUE_LEN}-byte values; median of {rounds} rounds (engines in rotating order); "
        f"{machine()}.",
        "",
        "| workload | " + " | ".join(f"{e} ops/s" for e in names) + " | weir vs best peer |",
        "|---|" + "---:|" * len(names) + "---:|",
    ]
    for wl in WORKLOADS:
        row = [f"{results[e]['results'][wl]['ops_per_sec']:,.0f}" for e in names]
        peers = [(results[e]["results"][wl]["ops_per_sec"], e) for e in names if e != "weir"]
        ratio = ""
        if "weir" in names and peers:
            best, who = max(peers)
            ratio = f"{results['weir']['results'][wl]['ops_per_sec'] / best:.2f}x ({who})"
        lines.append(f"| {wl} | " + " | ".join(row) + f" | {ratio} |")
    row = [f"{results[e]['results']['bytes_on_disk'] / 1e6:,.1f} MB" for e in names]
    lines.append("| bytes on disk | " + " | ".join(row) + " | |")
    lines.append("")
    versions = ", ".join(f"{e} {results[e]['version']}" for e in names)
    lines.append(f"Versions: {versions}.")
    for e, r in results.items():
        if not r.get("ok"):
            lines.append(f"Not measured: **{e}**: {r['error']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--num", type=int, default=1_000_000)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--rounds", type=int, default=3, help="runs per engine; medians reported")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    rng = random.Random(42)
    n = args.num
    keys = [b"%016d" % i for i in range(n)]
    rng.shuffle(keys)
    reads = keys[:]
    rng.shuffle(reads)
    # A value of its own for every key, random: compression (on by default in
    # RocksDB and LevelDB, off in weir) gains nothing, so it does not skew.
    pairs = [(k, rng.randbytes(VALUE_LEN)) for k in keys]

    workdir = args.dir or tempfile.mkdtemp(prefix="weir-raw-bench-")
    os.makedirs(workdir, exist_ok=True)
    results: dict[str, Any] = {}
    engines: dict[str, Engine] = {}
    for name in args.engines.split(","):
        try:
            engines[name] = ENGINES[name]()
        except Exception as e:  # not installable here: say why
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(f"{name}: not measured ({type(e).__name__}: {e})", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    order = list(engines)
    try:
        for rnd in range(args.rounds):
            # Each round starts one engine further on, so none always runs
            # first (right after the inputs are built) or last.
            shift = rnd % len(order) if order else 0
            for name in order[shift:] + order[:shift]:
                engine = engines[name]
                print(f"round {rnd + 1}: {name} {engine.version}: ...", end="", flush=True)
                r = run_engine(engine, workdir, pairs, reads)
                runs[name].append(r)
                print(
                    " " + ", ".join(f"{wl} {r[wl]['ops_per_sec']:,.0f}/s" for wl in WORKLOADS),
                    flush=True,
                )
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, engine in engines.items():
        medians = median_results(runs[name])
        results[name] = {"ok": True, "version": engine.version, "results": medians}
    md = table(results, n, args.rounds)
    print()
    print(md)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"num": n, "results": results}, f, indent=1)
    if not args.no_doc:
        update_block("raw_bench", "### Raw engine bindings (synchronous)\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
