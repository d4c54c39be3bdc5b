#!/usr/bin/env python3
"""Transactions, merges and range deletes from Python, next to the plain
operations they replace (the Python side of bench/txn_bench.c).

* ``txn``     -- N commits of ``with db.transaction() as t: t.put(k, v)``
                 vs N ``with db.write_batch() as b: b.put(k, v)``; and N
                 read-modify-writes: ``get_for_update`` + ``put`` + commit vs
                 ``db.get`` + ``db.put`` (distinct keys, no contention)
* ``incr``    -- N ``db.incr(k)`` (an int64 merge) vs N ``db.get`` + unpack +
                 ``db.put`` on 1,000 hot counters, and on 100,000 counters
                 whose values are in tables; with ``sync="none"`` and
                 ``sync="flush"``
* ``delete``  -- removing N keys (in tables): one ``db.delete_range`` vs N
                 ``db.delete`` calls vs one ``db.delete_many`` batch

Keys are 16 bytes, values 100 bytes. Each figure is the median of --reps
runs, each on a fresh database, the sides interleaved. Progress goes to
stderr; the table (Markdown) to stdout.

Usage: bench/python/txn_bench.py [--num N] [--reps R] [--dir DIR] [--only txn,incr,delete]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable

import weir

VALUE = b"v" * 100
_I64 = struct.Struct("<q")


def key(i: int) -> bytes:
    return b"%016d" % i


class Bench:
    def __init__(self, root: str, reps: int) -> None:
        self.root = root
        self.reps = reps
        self.runs = 0
        self.rows: list[tuple[str, str, int, float, str]] = []

    def fresh(self, sync: str = "flush") -> weir.DB:
        self.runs += 1
        return weir.DB(os.path.join(self.root, f"run{self.runs}"), sync=sync)  # type: ignore[arg-type]

    def drop(self, db: weir.DB) -> None:
        path = db.path
        db.close()
        shutil.rmtree(path, ignore_errors=True)

    def measure(self, sides: dict[str, Callable[[], float]]) -> dict[str, float]:
        """Median seconds of each side over the reps, sides interleaved."""
        times: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for r in range(self.reps):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                print(f"  {name} (run {r + 1}/{self.reps})", file=sys.stderr, flush=True)
                times[name].append(sides[name]())
        return {name: statistics.median(v) for name, v in times.items()}


def load(db: weir.DB, n: int, value: bytes = VALUE) -> None:
    for start in range(0, n, 10_000):
        db.put_many([(key(i), value) for i in range(start, min(n, start + 10_000))], sync="none")
    db.flush()


def bench_txn(b: Bench, n: int) -> None:
    print("txn: transactions vs batches", file=sys.stderr)

    def blind_txn() -> float:
        db = b.fresh()
        load(db, n)
        t0 = time.perf_counter()
        for i in range(n):
            with db.transaction() as t:
                t.put(key(i), VALUE)
        dt = time.perf_counter() - t0
        b.drop(db)
        return dt

    def blind_batch() -> float:
        db = b.fresh()
        load(db, n)
        t0 = time.perf_counter()
        for i in range(n):
            with db.write_batch() as wb:
                wb.put(key(i), VALUE)
        dt = time.perf_counter() - t0
        b.drop(db)
        return dt

    def rmw_txn() -> float:
        db = b.fresh()
        load(db, n)
        t0 = time.perf_counter()
        for i in range(n):
            k = key(i)
            with db.transaction() as t:
                v = t.get_for_update(k)
                t.put(k, v[:99] + b"x" if v else VALUE)
        dt = time.perf_counter() - t0
        b.drop(db)
        return dt

    def rmw_plain() -> float:
        db = b.fresh()
        load(db, n)
        t0 = time.perf_counter()
        for i in range(n):
            k = key(i)
            v = db.get(k)
            db.put(k, v[:99] + b"x" if v else VALUE)
        dt = time.perf_counter() - t0
        b.drop(db)
        return dt

    m = b.measure({"txn": blind_txn, "batch": blind_batch})
    b.rows.append(("txn", "transaction: put + commit", n, m["txn"], _rate(m["batch"], m["txn"])))
    b.rows.append(("txn", "write_batch: put + write", n, m["batch"], ""))
    m = b.measure({"txn": rmw_txn, "plain": rmw_plain})
    b.rows.append(
        (
            "txn",
            "transaction: get_for_update + put + commit",
            n,
            m["txn"],
            _rate(m["plain"], m["txn"]),
        )
    )
    b.rows.append(("txn", "plain: get + put", n, m["plain"], ""))


def _rate(base: float, this: float) -> str:
    return f"rate {100 * base / this:.0f}% of the next row"


def bench_incr(b: Bench, n: int) -> None:
    for counters, cold in ((1000, False), (100_000, True)):
        for sync in ("none", "flush"):
            _incr_case(b, n, counters, cold, sync)


def _incr_case(b: Bench, n: int, counters: int, cold: bool, sync: str) -> None:
    where = "in tables" if cold else "hot"
    print(f"incr: {counters} counters ({where}), sync={sync}", file=sys.stderr)
    rng = random.Random(42)
    seq = [key(rng.randrange(counters)) for _ in range(n)]

    def prepared() -> weir.DB:
        db = b.fresh(sync)
        if cold:
            load(db, counters, _I64.pack(0))
        return db

    def finish(db: weir.DB) -> None:
        assert sum(db.get_int(key(c)) for c in range(counters)) == n
        b.drop(db)

    def merge() -> float:
        db = prepared()
        incr = db.incr
        t0 = time.perf_counter()
        for k in seq:
            incr(k)
        dt = time.perf_counter() - t0
        finish(db)
        return dt

    def rmw() -> float:
        db = prepared()
        get, put, unpack, pack = db.get, db.put, _I64.unpack, _I64.pack
        t0 = time.perf_counter()
        for k in seq:
            v = get(k)
            put(k, pack((unpack(v)[0] if v else 0) + 1))
        dt = time.perf_counter() - t0
        finish(db)
        return dt

    m = b.measure({"merge": merge, "rmw": rmw})
    label = f"{counters:,} counters {where}, sync={sync}"
    faster = f"{m['rmw'] / m['merge']:.2f}x faster"
    b.rows.append(("incr", f"db.incr ({label})", n, m["merge"], faster))
    b.rows.append(("incr", f"db.get + db.put ({label})", n, m["rmw"], ""))


def bench_delete(b: Bench, n: int) -> None:
    print("delete: range vs one by one", file=sys.stderr)

    def run(how: str) -> float:
        db = b.fresh()
        load(db, n, b"v" * 16)
        t0 = time.perf_counter()
        if how == "range":
            db.delete_range(key(0), key(n))
        elif how == "each":
            delete = db.delete
            for i in range(n):
                delete(key(i))
        else:
            db.delete_many([key(i) for i in range(n)])
        dt = time.perf_counter() - t0
        with db.keys() as it:
            assert next(it, None) is None
        b.drop(db)
        return dt

    m = b.measure({h: (lambda h=h: run(h)) for h in ("range", "each", "many")})  # type: ignore[misc]
    b.rows.append(("delete", f"delete_range over {n:,} keys", 1, m["range"], ""))
    b.rows.append(
        ("delete", f"{n:,} x db.delete", n, m["each"], f"{m['each'] / m['range']:,.0f}x the range")
    )
    b.rows.append(
        (
            "delete",
            "db.delete_many (one batch)",
            n,
            m["many"],
            f"{m['many'] / m['range']:,.0f}x the range",
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--num", type=int, default=100_000, help="operations per workload (100000)")
    ap.add_argument("--delete-num", type=int, default=1_000_000, help="keys to delete (1000000)")
    ap.add_argument("--reps", type=int, default=3, help="runs per figure; the median is kept (3)")
    ap.add_argument("--dir", help="where to create the databases (a temporary directory)")
    ap.add_argument("--only", default="txn,incr,delete", help="comma-separated workloads")
    args = ap.parse_args()
    if args.num < 1 or args.delete_num < 1 or args.reps < 1:
        ap.error("--num, --delete-num and --reps must be positive")
    only = set(args.only.split(","))
    unknown = only - {"txn", "incr", "delete"}
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    root = tempfile.mkdtemp(prefix="weir-txn-bench-py-", dir=args.dir)
    b = Bench(root, args.reps)
    try:
        if "txn" in only:
            bench_txn(b, args.num)
        if "incr" in only:
            bench_incr(b, args.num)
        if "delete" in only:
            bench_delete(b, args.delete_num)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"weir {weir.__version__}, Python {sys.version.split()[0]}; median of {args.reps} runs\n")
    print("| group | workload | ops | seconds | ops/s | us/op | note |")
    print("|---|---|---:|---:|---:|---:|---|")
    for group, name, ops, secs, note in b.rows:
        print(
            f"| {group} | {name} | {ops:,} | {secs:.3f} | {ops / secs:,.0f} "
            f"| {secs * 1e6 / ops:.2f} | {note} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
