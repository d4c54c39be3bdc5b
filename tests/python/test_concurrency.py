"""Concurrency stress at the Python level.

Many threads and asyncio tasks use one weir.DB at once for a fixed time
(``WEIR_PY_CONCURRENCY_SECONDS``, 3 s by default): gets, puts, atomic
groups written by batches, put_many and transactions, merges, iterators,
cursors, snapshots, checkpoints, flushes and compactions. Invariants are
checked on every read that sees one point in time:

- an atomic group (four keys written together) is never seen half-written;
- the sum over the bank accounts, moved about by transactions, never changes;
- the per-writer sequence a reader sees never goes backwards;
- every increment that returned is counted; scans are ordered.

Every worker runs under a deadline: a worker still running well after the
time is up is a deadlock (or a call holding the GIL), and the test fails
with every thread's stack dumped. A second test measures that the GIL is
released inside a long engine call.
"""

from __future__ import annotations

import asyncio
import faulthandler
import itertools
import os
import pathlib
import random
import sys
import threading
import time
from collections.abc import Callable

import pytest

import weir
from weir.stores import StoreBackendConfig, create_backend

SECONDS = float(os.environ.get("WEIR_PY_CONCURRENCY_SECONDS", "3"))
#: How long past the end a worker may take before it counts as stuck.
GRACE = 60.0
GROUPS = 16
GROUP_KEYS = 4
ACCOUNTS = 8
START_BALANCE = 1000


def gkey(g: int, i: int) -> bytes:
    return b"g%02d:%d" % (g, i)


def akey(a: int) -> bytes:
    return b"acct:%02d" % a


def check_group(values: list[bytes | None], where: str) -> None:
    assert len(set(values)) == 1, f"{where}: half-written group {values}"


class Stress:
    def __init__(self, db: weir.DB, tmp: pathlib.Path) -> None:
        self.db = db
        self.tmp = tmp
        self.stop_at = time.monotonic() + SECONDS
        self.errors: list[str] = []
        self.incrs = [0] * 64
        self.counts: dict[str, int] = {}
        self.checkpoints: list[str] = []
        self.lock = threading.Lock()

    def running(self) -> bool:
        return time.monotonic() < self.stop_at and not self.errors

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def guard(self, name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # reported by the test, not lost in a thread
                import traceback

                self.errors.append(f"{name}: {type(e).__name__}: {e}\n{traceback.format_exc()}")

        return run

    # ---- writers ----

    def group_writer(self, wid: int) -> None:
        rng = random.Random(wid)
        version = 0
        while self.running():
            version += 1
            g = rng.randrange(GROUPS)
            value = b"w%d:%08d" % (wid, version)
            how = rng.randrange(4)
            if how == 0:
                with self.db.write_batch() as b:
                    for i in range(GROUP_KEYS):
                        b.put(gkey(g, i), value)
            elif how == 1:
                self.db.put_many({gkey(g, i): value for i in range(GROUP_KEYS)})
            elif how == 2:
                b = weir.WriteBatch()
                for i in range(GROUP_KEYS):
                    b.put(gkey(g, i), value)
                self.db.write(b, sync=rng.choice(["none", "flush"]))
            else:

                def txn_write(t: weir.Transaction, g: int = g, value: bytes = value) -> None:
                    for i in range(GROUP_KEYS):
                        t.put(gkey(g, i), value)

                weir.retry(txn_write, db=self.db, attempts=100)
            self.db.put(b"seq:%d" % wid, b"%08d" % version)
            self.count("group writes")

    def bank_mover(self, wid: int) -> None:
        rng = random.Random(100 + wid)
        while self.running():
            a, b = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randrange(1, 50)

            def move(t: weir.Transaction, a: int = a, b: int = b, amount: int = amount) -> None:
                ba = int(t.get_for_update(akey(a)) or b"0")
                bb = int(t.get_for_update(akey(b)) or b"0")
                t.put(akey(a), b"%d" % (ba - amount))
                t.put(akey(b), b"%d" % (bb + amount))

            weir.retry(move, db=self.db, attempts=1000)
            self.count("transfers")

    def incrementer(self, wid: int) -> None:
        while self.running():
            self.db.incr(b"counter")
            self.incrs[wid] += 1
            self.db.merge(b"maxseen", "int64_max", self.incrs[wid])

    # ---- readers ----

    def snapshot_reader(self, rid: int) -> None:
        rng = random.Random(200 + rid)
        last_seq: dict[bytes, bytes] = {}
        while self.running():
            with self.db.snapshot() as snap:
                g = rng.randrange(GROUPS)
                check_group(
                    snap.get_many([gkey(g, i) for i in range(GROUP_KEYS)]), "snapshot get_many"
                )
                check_group([snap.get(gkey(g, i)) for i in range(GROUP_KEYS)], "snapshot get")
                total = sum(int(v) for v in snap.values(prefix=b"acct:"))
                assert total == ACCOUNTS * START_BALANCE, f"bank total {total} at a snapshot"
                for k, v in snap.items(prefix=b"seq:"):
                    assert v >= last_seq.get(k, b""), (
                        f"{k!r} went back from {last_seq[k]!r} to {v!r}"
                    )
                    last_seq[k] = v
                n = self.db.get_int(b"counter", snapshot=snap)
                assert n >= 0
            self.count("snapshot reads")

    def scan_reader(self, rid: int) -> None:
        rng = random.Random(300 + rid)
        while self.running():
            reverse = rng.random() < 0.5
            groups: dict[bytes, list[bytes]] = {}
            keys = []
            with self.db.items(prefix=b"g", reverse=reverse) as it:
                for k, v in it:
                    keys.append(k)
                    groups.setdefault(k[:3], []).append(v)
            assert keys == sorted(keys, reverse=reverse), "scan out of order"
            for g, vals in groups.items():
                assert len(vals) == GROUP_KEYS, f"group {g!r} has {len(vals)} keys in one scan"
                check_group(list(vals), "range scan")
            # A bounded cursor walk, both ways.
            g = rng.randrange(GROUPS)
            cur = self.db.iterator(start=gkey(g, 0), stop=gkey(g, GROUP_KEYS))
            with cur:
                seen = []
                ok = cur.seek_to_last()
                while ok:
                    seen.append(cur.value)
                    ok = cur.prev()
                if seen:
                    check_group(seen, "cursor")
            check_group(self.db.get_many([gkey(g, i) for i in range(GROUP_KEYS)]), "get_many")
            self.count("scans")

    # ---- maintenance ----

    def maintainer(self) -> None:
        rng = random.Random(400)
        n = 0
        while self.running():
            n += 1
            what = rng.randrange(4)
            if what == 0:
                self.db.flush()
                self.count("flushes")
            elif what == 1:
                self.db.compact()
                self.count("compactions")
            elif what == 2 and len(self.checkpoints) < 3:
                target = str(self.tmp / f"ckpt{n}")
                self.db.checkpoint(target)
                self.checkpoints.append(target)
                self.count("checkpoints")
            else:
                self.db.stats()
                self.db.property("weir.stats")
            time.sleep(0.05)

    def asyncio_tasks(self) -> None:
        # Tasks on one event loop calling the DB directly (each call releases
        # the GIL inside the engine) and through worker threads.
        async def task(tid: int) -> None:
            rng = random.Random(500 + tid)
            while self.running():
                g = rng.randrange(GROUPS)
                if rng.random() < 0.5:
                    vals = await asyncio.to_thread(
                        self.db.get_many, [gkey(g, i) for i in range(GROUP_KEYS)]
                    )
                else:
                    vals = self.db.get_many([gkey(g, i) for i in range(GROUP_KEYS)])
                check_group(vals, "asyncio get_many")
                self.db.put(b"task:%d" % tid, b"%d" % rng.randrange(1000))
                self.count("asyncio ops")
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(*(task(t) for t in range(8)))

        asyncio.run(main())


def run_workers(workers: list[tuple[str, Callable[[], None]]], deadline: float) -> None:
    threads = [threading.Thread(target=fn, name=name, daemon=True) for name, fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        pytest.fail(f"threads still running {GRACE:.0f} s after the end (deadlock?): {stuck}")


def test_threads_and_tasks_keep_invariants(tmp_path: pathlib.Path) -> None:
    db = weir.DB(str(tmp_path / "db"), write_buffer_size=256 * 1024, background_threads=2)
    for g in range(GROUPS):
        db.put_many({gkey(g, i): b"init" for i in range(GROUP_KEYS)})
    db.put_many({akey(a): b"%d" % START_BALANCE for a in range(ACCOUNTS)})
    s = Stress(db, tmp_path)
    workers: list[tuple[str, Callable[[], None]]] = []
    for w in range(3):
        workers.append(
            (f"group-writer-{w}", s.guard(f"group-writer-{w}", lambda w=w: s.group_writer(w)))
        )
    for w in range(2):
        workers.append((f"bank-{w}", s.guard(f"bank-{w}", lambda w=w: s.bank_mover(w))))
    for w in range(2):
        workers.append((f"incr-{w}", s.guard(f"incr-{w}", lambda w=w: s.incrementer(w))))
    for r in range(2):
        workers.append(
            (f"snap-reader-{r}", s.guard(f"snap-reader-{r}", lambda r=r: s.snapshot_reader(r)))
        )
        workers.append(
            (f"scan-reader-{r}", s.guard(f"scan-reader-{r}", lambda r=r: s.scan_reader(r)))
        )
    workers.append(("maintainer", s.guard("maintainer", s.maintainer)))
    workers.append(("asyncio", s.guard("asyncio", s.asyncio_tasks)))
    run_workers(workers, s.stop_at + GRACE)
    assert not s.errors, "\n".join(s.errors)

    # Nothing acknowledged was lost, in the live DB, after a reopen, and in
    # every checkpoint (which must hold whole groups and the bank's total).
    total_incrs = sum(s.incrs)
    assert db.get_int(b"counter") == total_incrs
    assert db.get_int(b"maxseen") == max(s.incrs)
    live = dict(db.items())
    db.close()
    with weir.DB(str(tmp_path / "db")) as again:
        assert dict(again.items()) == live
    for ck in s.checkpoints:
        with weir.DB(ck) as c:
            for g in range(GROUPS):
                check_group(c.get_many([gkey(g, i) for i in range(GROUP_KEYS)]), f"checkpoint {ck}")
            assert sum(int(v) for v in c.values(prefix=b"acct:")) == ACCOUNTS * START_BALANCE
    for what in ("group writes", "transfers", "snapshot reads", "scans", "asyncio ops"):
        assert s.counts.get(what, 0) > 0, f"no {what} ran: {s.counts}"
    print(f"concurrency: {SECONDS} s, {total_incrs} increments, {s.counts}")


def test_close_during_stress_stops_every_thread(tmp_path: pathlib.Path) -> None:
    # Closing the DB while threads are mid-call must make each of them fail
    # with ClosedError (never crash or hang), and the store must reopen whole.
    db = weir.DB(str(tmp_path / "db"))
    for g in range(GROUPS):
        db.put_many({gkey(g, i): b"init" for i in range(GROUP_KEYS)})
    started = threading.Barrier(7)
    outcomes: list[str] = []

    def worker(kind: int) -> None:
        started.wait()
        try:
            n = 0
            while True:
                n += 1
                g = n % GROUPS
                if kind == 0:
                    db.put_many({gkey(g, i): b"%d" % n for i in range(GROUP_KEYS)})
                elif kind == 1:
                    for _ in db.items():
                        pass
                elif kind == 2:
                    with db.snapshot() as snap:
                        check_group(snap.get_many([gkey(g, i) for i in range(GROUP_KEYS)]), "snap")
                elif kind == 3:
                    with db.transaction() as t:
                        t.put(b"t", b"%d" % n)
                elif kind == 4:
                    db.flush()
                else:
                    db.compact()
        except weir.ClosedError:
            outcomes.append("closed")
        except BaseException as e:
            outcomes.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(6)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.5)
    db.close()
    deadline = time.monotonic() + GRACE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        pytest.fail("a thread hung after close()")
    assert outcomes == ["closed"] * 6, outcomes
    with weir.DB(str(tmp_path / "db")) as again:
        for g in range(GROUPS):
            check_group(again.get_many([gkey(g, i) for i in range(GROUP_KEYS)]), "after close")


async def test_store_api_tasks_keep_batches_atomic(tmp_path: pathlib.Path) -> None:
    # The async store API: many tasks on one loop doing batch_set, get,
    # batch_get-like scans and deletes; a group written by one batch_set is
    # always seen whole by scans, which run in the backend's worker threads.
    store = create_backend(StoreBackendConfig(backend_type="weir", path=tmp_path / "store"))
    await store.start()
    stop_at = time.monotonic() + SECONDS
    errors: list[str] = []
    ops = [0]

    async def writer(tid: int) -> None:
        rng = random.Random(tid)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            g = rng.randrange(GROUPS)
            await store.batch_set({f"g{g:02d}:{i}": [tid, n] for i in range(GROUP_KEYS)})
            if rng.random() < 0.1:
                await store.batch_delete([f"g{g:02d}:{i}" for i in range(GROUP_KEYS)])
            ops[0] += 1

    async def reader(tid: int) -> None:
        rng = random.Random(1000 + tid)
        while time.monotonic() < stop_at:
            if rng.random() < 0.5:
                pairs = list(await store.scan(prefix="g"))
            else:
                pairs = [p async for p in store.scan(prefix="g")]
            groups: dict[str, list[object]] = {}
            for k, v in pairs:
                groups.setdefault(k[:3], []).append(v)
            # An awaited scan and a streamed one each read one point in time.
            for g, vals in groups.items():
                if len(vals) != GROUP_KEYS or any(v != vals[0] for v in vals):
                    errors.append(f"group {g} seen half-written: {vals}")
            ops[0] += 1
            await store.get(f"g{rng.randrange(GROUPS):02d}:0")

    try:
        await asyncio.wait_for(
            asyncio.gather(*(writer(t) for t in range(4)), *(reader(t) for t in range(4))),
            timeout=SECONDS + GRACE,
        )
    finally:
        await store.stop()
    assert not errors, errors[:5]
    assert ops[0] > 0


def _compaction_with_python_running(path: str, keys: int) -> tuple[float, float]:
    """(compaction seconds, longest pause of a Python loop in another thread)."""
    db = weir.DB(path, compression="none")
    value = os.urandom(64)
    step = 50_000
    for start in range(0, keys, step):
        db.put_many({b"key%08d" % i: value for i in range(start, start + step)})
    db.flush()
    for start in range(0, keys, step):  # overwrite: the compaction has work
        db.put_many({b"key%08d" % i: value[::-1] for i in range(start, start + step)})
    db.flush()
    window = {}

    def compact() -> None:
        window["start"] = time.monotonic()
        db.compact()
        window["end"] = time.monotonic()

    t = threading.Thread(target=compact)
    stamps = []
    t.start()
    while t.is_alive():
        stamps.append(time.monotonic())
        sum(range(200))
    t.join()
    db.close()
    duration = window["end"] - window["start"]
    inside = [s for s in stamps if window["start"] <= s <= window["end"]]
    gaps = [b - a for a, b in itertools.pairwise(inside)]
    return duration, max(gaps, default=duration)


def test_gil_is_released_during_a_long_engine_call(tmp_path: pathlib.Path) -> None:
    # A compaction of a few hundred thousand keys takes a good fraction of a
    # second. If the extension held the GIL through it, a pure-Python loop in
    # another thread would stall for all of that time; with the GIL released
    # its longest pause is a few switch intervals. Background compaction may
    # already have done part of the work, so the data grows until the manual
    # compaction is long enough to tell.
    keys = 300_000
    for attempt in range(4):
        duration, longest = _compaction_with_python_running(str(tmp_path / f"db{attempt}"), keys)
        if duration >= 0.1:
            break
        keys *= 2
    else:
        pytest.fail(f"the compaction of {keys // 2} keys took {duration:.3f} s: too short to tell")
    print(f"GIL: compaction {duration:.3f} s, longest Python pause {longest * 1000:.1f} ms")
    assert longest < duration * 0.75, (
        f"Python stalled {longest:.3f} s of a {duration:.3f} s compaction: the GIL was held"
    )
