"""Tests of weir.DB's newer features: TTL, merge operators, range and prefix
deletes, checkpoints, optimistic transactions and weir.retry. Real engine,
no mocks."""

from __future__ import annotations

import datetime
import gc
import itertools
import math
import pathlib
import random
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import weir

SHORT_TTL = 0.03  # seconds
EXPIRY_WAIT = 0.06  # seconds; > SHORT_TTL with margin for a slow clock tick


def i64(n: int) -> bytes:
    return struct.pack("<q", n)


def f64(x: float) -> bytes:
    return struct.pack("<d", x)


@pytest.fixture
def path(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "db")


@pytest.fixture
def db(path: str) -> Iterator[weir.DB]:
    d = weir.DB(path)
    yield d
    d.close()


# ---- TTL ---------------------------------------------------------------------


def test_put_ttl_expires(db: weir.DB) -> None:
    db.put(b"short", b"v", ttl=SHORT_TTL)
    db.put(b"long", b"v", ttl=60)
    db.put(b"plain", b"v")
    assert db.get(b"short") == b"v"
    time.sleep(EXPIRY_WAIT)
    assert db.get(b"short") is None
    assert b"short" not in db
    assert db.get(b"long") == b"v"
    assert list(db.keys()) == [b"long", b"plain"]
    assert db.get_many([b"short", b"long"]) == [None, b"v"]


def test_expired_value_hides_older_version(db: weir.DB) -> None:
    db.put(b"k", b"old")
    db.put(b"k", b"new", ttl=SHORT_TTL)
    assert db.get(b"k") == b"new"
    time.sleep(EXPIRY_WAIT)
    assert db.get(b"k") is None  # not b"old": expiry acts like a deletion
    db.put(b"k", b"again")
    assert db.get(b"k") == b"again"


def test_ttl_accepts_int_float_and_timedelta(db: weir.DB) -> None:
    db.put(b"a", b"1", ttl=1)
    db.put(b"b", b"2", ttl=datetime.timedelta(milliseconds=30))
    db.put(b"c", b"3", ttl=0.0001)  # rounds up to 1 ms, never to "no TTL"
    time.sleep(EXPIRY_WAIT)
    assert db.get(b"a") == b"1"
    assert db.get(b"b") is None
    assert db.get(b"c") is None


@pytest.mark.parametrize("bad", [0, -1, 0.0, -0.5, math.nan, math.inf, 1e300])
def test_ttl_out_of_range(db: weir.DB, bad: float) -> None:
    with pytest.raises(weir.InvalidArgumentError) as ei:
        db.put(b"k", b"v", ttl=bad)
    assert ei.value.status == "WEIR_INVALID"
    assert db.get(b"k") is None
    with pytest.raises(weir.InvalidArgumentError):
        db.write_batch().put(b"k", b"v", ttl=bad)


@pytest.mark.parametrize("bad", ["1", b"1", True, [1]])
def test_ttl_wrong_type(db: weir.DB, bad: object) -> None:
    with pytest.raises(TypeError):
        db.put(b"k", b"v", ttl=bad)  # type: ignore[arg-type]


def test_default_ttl(path: str) -> None:
    with weir.DB(path, default_ttl=SHORT_TTL) as db:
        db.put(b"default", b"v")
        db.put(b"own", b"v", ttl=60)  # a put's own TTL wins
        db.put_many({b"many": b"v"})
        db[b"item"] = b"v"
        assert db.get(b"default") == b"v"
        time.sleep(EXPIRY_WAIT)
        assert list(db.keys()) == [b"own"]


@pytest.mark.parametrize("bad", [0, -3, math.nan])
def test_default_ttl_invalid(path: str, bad: float) -> None:
    with pytest.raises(weir.InvalidArgumentError):
        weir.DB(path, default_ttl=bad)


def test_batch_put_ttl(db: weir.DB) -> None:
    with db.write_batch() as wb:
        wb.put(b"short", b"v", ttl=SHORT_TTL)
        wb.put(b"long", b"v", ttl=60)
        wb.put(b"plain", b"v")
    assert len(list(db.keys())) == 3
    time.sleep(EXPIRY_WAIT)
    assert list(db.keys()) == [b"long", b"plain"]


def test_ttl_across_flush_compact_and_reopen(path: str) -> None:
    with weir.DB(path) as db:
        db.put(b"short", b"v", ttl=SHORT_TTL)
        db.put(b"long", b"v", ttl=3600)
        db.flush()
        time.sleep(EXPIRY_WAIT)
        assert db.get(b"short") is None
        db.compact()
        assert db.get(b"short") is None
        assert db.get(b"long") == b"v"
    with weir.DB(path) as db:
        assert list(db.items()) == [(b"long", b"v")]


# ---- merge operators -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "operands", "read", "expected"),
    [
        ("int64_add", [5, -2, 10], "int", 13),
        ("int64_max", [5, 9, -3], "int", 9),
        ("int64_min", [5, -9, 3], "int", -9),
        ("float64_add", [1.5, 2.25, 1], "float", 4.75),
        ("float64_max", [1.5, -2.0, 7.25], "float", 7.25),
        ("float64_min", [1.5, -2.0, 7.25], "float", -2.0),
        ("bytes_max", [b"b", b"abc", b"c", b""], "bytes", b"c"),
        ("bytes_min", [b"b", b"abc", b"c"], "bytes", b"abc"),
    ],
)
def test_merge_operators(
    db: weir.DB, op: Any, operands: list[Any], read: str, expected: Any
) -> None:
    for operand in operands:
        db.merge(b"k", op, operand)
    if read == "int":
        assert db.get_int(b"k") == expected
    elif read == "float":
        assert db.get_float(b"k") == expected
    else:
        assert db.get(b"k") == expected
    # The same result after a flush and a full compaction.
    db.flush()
    db.compact()
    value = db.get(b"k")
    if read == "int":
        assert value == i64(expected)
    elif read == "float":
        assert value == f64(expected)
    else:
        assert value == expected


def test_merge_by_id_and_raw_operand(db: weir.DB) -> None:
    db.merge(b"k", 1, i64(7))  # WEIR_MERGE_INT64_ADD with an 8-byte operand
    db.merge(b"k", "int64_add", 3)
    assert db.get(b"k") == i64(10)
    db.merge(b"f", "float64_add", f64(0.5))
    db.merge(b"f", 4, 2)  # an int operand is packed as a double for float ops
    assert db.get_float(b"f") == 2.5


def test_merge_folds_onto_put_and_after_delete(db: weir.DB) -> None:
    db.put(b"k", i64(100))
    db.incr(b"k", 5)
    assert db.get_int(b"k") == 105
    db.delete(b"k")
    db.incr(b"k")
    assert db.get_int(b"k") == 1
    db.put(b"k", i64(-7))
    assert db.get_int(b"k") == -7


def test_incr_limits_and_wraparound(db: weir.DB) -> None:
    db.incr(b"k", 2**63 - 1)
    db.incr(b"k", 1)  # wraps like a 64-bit register
    assert db.get_int(b"k") == -(2**63)
    with pytest.raises(weir.InvalidArgumentError):
        db.incr(b"k", 2**63)
    with pytest.raises(TypeError):
        db.incr(b"k", 1.5)  # type: ignore[arg-type]
    assert db.get_int(b"k") == -(2**63)


def test_typed_getters(db: weir.DB) -> None:
    assert db.get_int(b"none") == 0
    assert db.get_int(b"none", None) is None
    assert db.get_float(b"none") == 0.0
    assert isinstance(db.get_float(b"none"), float)
    assert db.get_float(b"none", default=-1) == -1
    assert db.get_list(b"none") == []
    db.put(b"five", b"12345")
    with pytest.raises(weir.InvalidArgumentError) as ei:
        db.get_int(b"five")
    assert "five" in str(ei.value) and "5 bytes" in str(ei.value)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(weir.InvalidArgumentError):
        db.get_float(b"five")
    db.put(b"notalist", b"\x05ab")  # claims 5 bytes, holds 2
    with pytest.raises(weir.InvalidArgumentError) as ei:
        db.get_list(b"notalist")
    assert "notalist" in str(ei.value)


def test_typed_getters_read_snapshots(db: weir.DB) -> None:
    db.incr(b"n", 1)
    db.add_float(b"x", 1.0)
    db.list_append(b"l", b"a", max_items=10)
    with db.snapshot() as snap:
        db.incr(b"n", 1)
        db.add_float(b"x", 1.0)
        db.list_append(b"l", b"b", max_items=10)
        assert db.get_int(b"n", snapshot=snap) == 1
        assert db.get_float(b"x", snapshot=snap) == 1.0
        assert db.get_list(b"l", snapshot=snap) == [b"a"]
    assert db.get_int(b"n") == 2
    assert db.get_list(b"l") == [b"a", b"b"]


def test_list_append(db: weir.DB) -> None:
    items = [b"", b"\x00\xff", b"x" * 300, b"last"]
    for item in items:
        db.list_append(b"l", item, max_items=10)
    assert db.get_list(b"l") == items
    for i in range(20):
        db.list_append(b"l", b"%d" % i, max_items=5)
    assert db.get_list(b"l") == [b"15", b"16", b"17", b"18", b"19"]
    db.list_append(b"l", b"x", max_items=2)  # a smaller bound trims the older items
    assert db.get_list(b"l") == [b"19", b"x"]
    db.flush()
    db.compact()
    assert db.get_list(b"l") == [b"19", b"x"]


def test_list_append_arguments(db: weir.DB) -> None:
    with pytest.raises(TypeError, match="max_items"):
        db.list_append(b"l", b"x")  # type: ignore[call-arg]
    for bad in (0, -1, 1_000_001, 2**40):
        with pytest.raises(weir.InvalidArgumentError):
            db.list_append(b"l", b"x", max_items=bad)
    db.list_append(b"l", bytearray(b"ba"), max_items=1_000_000)
    assert db.get_list(b"l") == [b"ba"]


def test_merge_argument_errors(db: weir.DB) -> None:
    with pytest.raises(weir.InvalidArgumentError, match="unknown merge operator"):
        db.merge(b"k", "int64_plus", 1)  # type: ignore[arg-type]
    for bad_id in (0, 256, -1, 2**70):
        with pytest.raises(weir.InvalidArgumentError):
            db.merge(b"k", bad_id, b"x")
    with pytest.raises(weir.InvalidArgumentError, match="not registered"):
        db.merge(b"k", 200, b"x")  # user ids need an operator registered in C
    with pytest.raises(TypeError):
        db.merge(b"k", 1.0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.merge(b"k", "int64_add", 1.5)
    with pytest.raises(TypeError):
        db.merge(b"k", "bytes_max", 5)
    with pytest.raises(weir.InvalidArgumentError, match="8 bytes"):
        db.merge(b"k", "int64_add", b"123")  # refused before it is written
    with pytest.raises(weir.InvalidArgumentError):
        db.merge(b"k", "int64_add", 2**64)
    assert db.get(b"k") is None


def test_merge_mismatch_names_the_key(db: weir.DB) -> None:
    db.put(b"fiver", b"12345")
    db.incr(b"fiver")  # the write is blind; the read finds the mismatch
    db.put(b"fine", b"ok")
    for _ in range(2):
        with pytest.raises(weir.InvalidArgumentError) as ei:
            db.get(b"fiver")
        assert "fiver" in str(ei.value)
        assert ei.value.status == "WEIR_INVALID"
        with pytest.raises(weir.InvalidArgumentError):
            db.get_int(b"fiver")
        with pytest.raises(weir.InvalidArgumentError):
            list(db.items())
        assert db.get(b"fine") == b"ok"
        # A compaction leaves the unfoldable key for reads to report.
        db.flush()
        db.compact()
    db.put(b"fiver", i64(1))  # a put repairs it
    assert db.get_int(b"fiver") == 1


def test_list_append_onto_non_list_fails_on_read(db: weir.DB) -> None:
    db.put(b"l", b"\x09")  # a length prefix with no bytes behind it
    db.list_append(b"l", b"x", max_items=3)
    with pytest.raises(weir.InvalidArgumentError, match="not a list"):
        db.get_list(b"l")


def test_batch_merges(db: weir.DB) -> None:
    db.put(b"base", i64(10))
    with db.write_batch() as wb:
        wb.incr(b"base", 5)
        wb.incr(b"n")
        wb.incr(b"n", n=2)
        wb.merge(b"max", "int64_max", 3)
        wb.merge(b"max", "int64_max", 8)
        wb.merge(b"f", "float64_add", 0.25)
        wb.put(b"plain", b"v")
        assert len(wb) == 7
    assert db.get_int(b"base") == 15
    assert db.get_int(b"n") == 3
    assert db.get_int(b"max") == 8
    assert db.get_float(b"f") == 0.25
    wb2 = weir.WriteBatch()
    with pytest.raises(weir.InvalidArgumentError):
        wb2.merge(b"k", "int64_add", b"short")
    with pytest.raises(weir.InvalidArgumentError):
        wb2.merge(b"k", "nope", 1)  # type: ignore[arg-type]
    assert len(wb2) == 0


def test_batch_merge_discarded_on_exception(db: weir.DB) -> None:
    with pytest.raises(RuntimeError):
        with db.write_batch() as wb:
            wb.incr(b"n", 5)
            raise RuntimeError("boom")
    assert db.get(b"n") is None


def test_merges_across_flush_compact_and_reopen(path: str) -> None:
    expected_list: list[bytes] = []
    with weir.DB(path, write_buffer_size=64 * 1024) as db:
        for i in range(300):
            db.incr(b"counter", i)
            db.add_float(b"sum", 0.5)
            db.merge(b"hi", "int64_max", (i * 37) % 101)
            db.list_append(b"recent", b"%d" % i, max_items=50)
            expected_list = [*expected_list, b"%d" % i][-50:]
            if i % 97 == 0:
                db.flush()
            if i == 150:
                db.compact()
        assert db.get_int(b"counter") == sum(range(300))
    with weir.DB(path) as db:
        assert db.get_int(b"counter") == sum(range(300))
        assert db.get_float(b"sum") == 150.0
        assert db.get_int(b"hi") == 100
        assert db.get_list(b"recent") == expected_list
        db.compact()
        db.incr(b"counter", -1)
        assert db.get_int(b"counter") == sum(range(300)) - 1
        assert db.get_list(b"recent") == expected_list


def test_concurrent_increments_lose_nothing(db: weir.DB) -> None:
    def work() -> None:
        for _ in range(500):
            db.incr(b"hits")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.get_int(b"hits") == 2000


# ---- range and prefix deletes --------------------------------------------------------


def fill(db: weir.DB, n: int, prefix: bytes = b"k") -> list[bytes]:
    keys = [prefix + b"%03d" % i for i in range(n)]
    db.put_many({k: b"v" + k for k in keys})
    return keys


def test_delete_range(db: weir.DB) -> None:
    keys = fill(db, 100)
    db.delete_range(b"k010", b"k020")
    assert list(db.keys()) == keys[:10] + keys[20:]
    assert db.get(b"k010") is None and db.get(b"k019") is None
    assert db.get(b"k020") == b"vk020"  # end is exclusive
    db.put(b"k015", b"back")  # newer writes in the range are visible
    assert db.get(b"k015") == b"back"
    db.flush()
    db.compact()
    assert list(db.keys()) == [*keys[:10], b"k015", *keys[20:]]


def test_delete_range_bounds(db: weir.DB) -> None:
    fill(db, 10)
    db.delete_range(b"k005", b"k005")  # empty range: nothing
    assert len(list(db.keys())) == 10
    with pytest.raises(weir.InvalidArgumentError, match="start is after end"):
        db.delete_range(b"k006", b"k005")
    db.delete_range(b"", b"\xff")
    assert list(db.keys()) == []
    with pytest.raises(TypeError):
        db.delete_range("a", b"b")  # type: ignore[arg-type]


def test_delete_range_spares_snapshots(db: weir.DB) -> None:
    keys = fill(db, 50)
    with db.snapshot() as snap:
        db.delete_range(b"k000", b"k999")
        assert list(db.keys()) == []
        assert list(snap.keys()) == keys
        assert snap.get(b"k007") == b"vk007"


def test_batch_delete_range(db: weir.DB) -> None:
    fill(db, 20)
    with db.write_batch() as wb:
        wb.put(b"k005", b"before")  # earlier in the batch: deleted too
        wb.delete_range(b"k000", b"k010")
        wb.put(b"k003", b"after")  # later in the batch: survives
    assert list(db.keys(stop=b"k010")) == [b"k003"]
    assert db.get(b"k003") == b"after"
    with pytest.raises(weir.InvalidArgumentError):
        weir.WriteBatch().delete_range(b"b", b"a")


def test_delete_prefix(db: weir.DB) -> None:
    fill(db, 20, b"a")
    fill(db, 20, b"ab")
    fill(db, 20, b"b")
    db.put(b"a", b"bare")
    db.delete_prefix(b"ab")
    assert list(db.keys(prefix=b"ab")) == []
    assert len(list(db.keys(prefix=b"a"))) == 21
    db.delete_prefix(b"a")
    assert list(db.keys(prefix=b"a")) == []
    assert len(list(db.keys())) == 20


def test_delete_prefix_with_trailing_ff(db: weir.DB) -> None:
    keys = [b"a", b"a\xfe", b"a\xff", b"a\xff\x00", b"a\xff\xff\xff", b"b", b"b\x00"]
    db.put_many({k: b"v" for k in keys})
    db.delete_prefix(b"a\xff")  # the successor is b"b"
    assert list(db.keys()) == [b"a", b"a\xfe", b"b", b"b\x00"]


def test_delete_prefix_all_ff_and_empty(db: weir.DB) -> None:
    keys = [
        b"",
        b"\x00",
        b"\xfe\xff",
        b"\xff",
        b"\xff\x00",
        b"\xff\xfe",
        b"\xff\xff",
        b"\xff\xff\xff",
    ]
    db.put_many({k: b"v" for k in keys})
    db.delete_prefix(b"\xff\xff")  # no successor: the fallback path
    assert list(db.keys()) == keys[:6]
    db.delete_prefix(b"\xff")
    assert list(db.keys()) == keys[:3]
    fill(db, 30)
    db.put(b"\xff\xff\xff\xff", b"v")
    db.delete_prefix(b"")  # everything
    assert list(db.keys()) == []
    db.flush()
    db.compact()
    assert list(db.keys()) == []


def test_delete_prefix_limits(db: weir.DB) -> None:
    with pytest.raises(weir.InvalidArgumentError):
        db.delete_prefix(b"x" * (weir.MAX_KEY_SIZE + 1))
    biggest = b"\xff" * weir.MAX_KEY_SIZE
    db.put(biggest, b"v")
    db.put(b"\xff", b"v")
    db.delete_prefix(biggest)
    assert list(db.keys()) == [b"\xff"]


def test_delete_prefix_100k_keys_is_one_write(db: weir.DB) -> None:
    db.put_many({b"user:%06d" % i: b"x" * 20 for i in range(100_000)})
    db.put(b"user;", b"neighbour")
    db.put(b"user", b"neighbour")
    writes = db.stats()["writes"]
    t0 = time.perf_counter()
    db.delete_prefix(b"user:")
    elapsed = time.perf_counter() - t0
    assert db.stats()["writes"] == writes + 1
    assert elapsed < 1.0  # a single tombstone, not 100k deletes
    assert list(db.keys(prefix=b"user:")) == []
    assert db.get(b"user:050000") is None
    assert list(db.keys()) == [b"user", b"user;"]


# ---- checkpoints ------------------------------------------------------------------------


def test_checkpoint_roundtrip(db: weir.DB, tmp_path: pathlib.Path) -> None:
    keys = fill(db, 200)
    db.flush()
    db.put(b"memtable-only", b"v")  # still in the memtable: must be copied too
    db.incr(b"counter", 41)
    db.delete_range(b"k050", b"k060")
    expected = list(db.items())
    target = tmp_path / "copy"
    db.checkpoint(target)  # a PathLike is fine
    db.put(b"after", b"v")  # not in the copy
    with weir.DB(target, create_if_missing=False) as copy:
        assert list(copy.items()) == expected
        assert copy.get_int(b"counter") == 41
        copy.put(b"copy-only", b"v")  # the copy is independent
    assert db.get(b"copy-only") is None
    assert db.get(b"after") == b"v"
    assert len(keys) == 200


def test_checkpoint_into_empty_existing_dir(db: weir.DB, tmp_path: pathlib.Path) -> None:
    db.put(b"k", b"v")
    target = tmp_path / "empty"
    target.mkdir()
    db.checkpoint(str(target))
    with weir.DB(str(target)) as copy:
        assert copy.get(b"k") == b"v"


def test_checkpoint_target_not_empty(db: weir.DB, tmp_path: pathlib.Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(weir.InvalidArgumentError) as ei:
        db.checkpoint(target)
    assert ei.value.status == "WEIR_EXISTS"
    assert str(target) in str(ei.value)
    db.checkpoint(tmp_path / "first")
    with pytest.raises(weir.Error) as ei2:
        db.checkpoint(tmp_path / "first")  # a second checkpoint into the same dir
    assert ei2.value.status == "WEIR_EXISTS"


def test_checkpoint_errors(db: weir.DB, tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError):
        db.checkpoint(42)  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError):
        db.checkpoint("")
    db.close()
    with pytest.raises(weir.ClosedError):
        db.checkpoint(tmp_path / "late")


# ---- transactions --------------------------------------------------------------------------


def test_transaction_read_your_writes(db: weir.DB) -> None:
    db.put_many({b"a": b"1", b"b": b"2", b"c": b"3"})
    txn = db.transaction()
    assert txn.get(b"a") == b"1"
    txn.put(b"a", b"one")
    txn.delete(b"b")
    txn.put(b"d", b"4")
    txn.incr(b"n", 5)
    txn.incr(b"n")
    assert txn.get(b"a") == b"one"
    assert txn.get(b"b") is None
    assert txn.get(b"b", b"dflt") == b"dflt"
    assert txn.get(b"n") == i64(6)
    assert list(txn.keys()) == [b"a", b"c", b"d", b"n"]
    assert list(txn.items(start=b"b", stop=b"n")) == [(b"c", b"3"), (b"d", b"4")]
    assert list(txn.values(prefix=b"a", reverse=True)) == [b"one"]
    assert list(txn) == [b"a", b"c", b"d", b"n"]
    # Nothing reaches the DB before commit.
    assert db.get(b"a") == b"1" and db.get(b"d") is None
    txn.commit()
    assert txn.committed and txn.finished
    assert list(db.items()) == [(b"a", b"one"), (b"c", b"3"), (b"d", b"4"), (b"n", i64(6))]


def test_transaction_mapping_protocol(db: weir.DB) -> None:
    db.put(b"x", b"1")
    with db.transaction() as txn:
        assert txn[b"x"] == b"1"
        assert b"x" in txn and b"y" not in txn
        txn[b"y"] = b"2"
        del txn[b"x"]
        with pytest.raises(KeyError):
            txn[b"x"]
        assert b"y" in txn
    assert list(db.items()) == [(b"y", b"2")]


def test_transaction_merge_ops(db: weir.DB) -> None:
    db.put(b"m", i64(4))
    with db.transaction() as txn:
        txn.merge(b"m", "int64_max", 9)
        txn.merge(b"m", "int64_add", i64(1))
        txn.merge(b"s", "bytes_min", b"zz")
        txn.merge(b"s", "bytes_min", b"aa")
        assert txn.get(b"m") == i64(10)
        with pytest.raises(weir.InvalidArgumentError):
            txn.merge(b"m", "int64_add", b"bad")
        with pytest.raises(weir.InvalidArgumentError):
            txn.merge(b"m", 200, b"x")  # unregistered user operator
    assert db.get_int(b"m") == 10
    assert db.get(b"s") == b"aa"


def test_transaction_isolation(db: weir.DB) -> None:
    db.put(b"k", b"before")
    txn = db.transaction()
    db.put(b"k", b"after")
    db.put(b"new", b"v")
    assert txn.get(b"k") == b"before"  # it reads as of its start
    assert txn.get(b"new") is None
    assert list(txn.keys()) == [b"k"]
    txn.put(b"mine", b"v")
    assert db.get(b"mine") is None
    txn.commit()  # nothing it wrote or read for update changed: no conflict
    assert db.get(b"mine") == b"v"


def test_conflict_write_write(db: weir.DB) -> None:
    txn = db.transaction()
    txn.put(b"k", b"txn")
    txn.put(b"other", b"txn")
    db.put(b"k", b"outside")
    with pytest.raises(weir.ConflictError) as ei:
        txn.commit()
    assert ei.value.status == "WEIR_CONFLICT"
    assert '"k"' in str(ei.value)
    assert isinstance(ei.value, weir.Error)
    assert txn.finished and not txn.committed
    assert db.get(b"k") == b"outside"
    assert db.get(b"other") is None  # nothing of the transaction was written


def test_conflict_on_read_for_update(db: weir.DB) -> None:
    db.put(b"balance", b"100")
    t1 = db.transaction()
    assert t1.get_for_update(b"balance") == b"100"
    t1.put(b"audit", b"saw 100")
    db.put(b"balance", b"50")
    with pytest.raises(weir.ConflictError):
        t1.commit()
    # A plain get is not tracked ...
    t2 = db.transaction()
    t2.get(b"balance")
    t2.put(b"audit", b"x")
    db.put(b"balance", b"25")
    t2.commit()
    # ... unless asked for, per read or for every read.
    t3 = db.transaction()
    t3.get(b"balance", for_update=True)
    t3.put(b"audit", b"y")
    db.put(b"balance", b"10")
    with pytest.raises(weir.ConflictError):
        t3.commit()
    t4 = db.transaction(track_all_reads=True)
    assert b"balance" in t4
    t4.put(b"audit", b"z")
    db.put(b"balance", b"5")
    with pytest.raises(weir.ConflictError):
        t4.commit()
    assert db.get(b"audit") == b"x"


def test_conflict_on_absent_key_created_meanwhile(db: weir.DB) -> None:
    txn = db.transaction()
    assert txn.get_for_update(b"slot") is None
    txn.put(b"slot", b"mine")
    db.put(b"slot", b"theirs")
    with pytest.raises(weir.ConflictError):
        txn.commit()
    assert db.get(b"slot") == b"theirs"


def test_first_committer_wins(db: weir.DB) -> None:
    db.put(b"k", b"0")
    t1, t2 = db.transaction(), db.transaction()
    for t, v in ((t1, b"1"), (t2, b"2")):
        t.get_for_update(b"k")
        t.put(b"k", v)
    t1.commit()
    with pytest.raises(weir.ConflictError):
        t2.commit()
    assert db.get(b"k") == b"1"


def test_read_only_transaction_commits(db: weir.DB) -> None:
    db.put(b"k", b"v")
    txn = db.transaction()
    txn.get_for_update(b"k")
    db.put(b"k", b"changed")
    txn.commit()  # it wrote nothing, so it serializes at its start
    assert txn.committed


def test_transaction_context_manager(db: weir.DB) -> None:
    with db.transaction() as txn:
        txn.put(b"a", b"1")
    assert txn.committed and db.get(b"a") == b"1"

    with pytest.raises(KeyError):
        with db.transaction() as txn:
            txn.put(b"b", b"2")
            raise KeyError("boom")
    assert txn.finished and not txn.committed
    assert db.get(b"b") is None

    with db.transaction() as txn:
        txn.put(b"c", b"3")
        txn.rollback()  # explicit rollback: the exit does nothing
    assert db.get(b"c") is None and not txn.committed

    with db.transaction() as txn:
        txn.put(b"d", b"4")
        txn.commit()  # explicit commit: the exit does nothing
    assert db.get(b"d") == b"4"

    with pytest.raises(weir.ConflictError):
        with db.transaction() as txn:
            txn.put(b"a", b"mine")
            db.put(b"a", b"theirs")
    assert db.get(b"a") == b"theirs"


def test_finished_transaction_refuses_calls(db: weir.DB) -> None:
    txn = db.transaction()
    txn.put(b"k", b"v")
    txn.commit()
    for call in (
        lambda: txn.commit(),
        lambda: txn.put(b"k", b"v"),
        lambda: txn.get(b"k"),
        lambda: txn.delete(b"k"),
        lambda: txn.incr(b"n"),
        lambda: txn.items(),
        lambda: txn.__enter__(),
    ):
        with pytest.raises(weir.InvalidArgumentError, match="already committed"):
            call()
    txn.rollback()  # a no-op once finished, so cleanup code never masks an error
    assert txn.committed

    rolled = db.transaction()
    rolled.rollback()
    rolled.rollback()
    with pytest.raises(weir.InvalidArgumentError, match="rolled back"):
        rolled.put(b"k", b"v")

    failed = db.transaction()
    failed.put(b"k", b"mine")
    db.put(b"k", b"theirs")
    with pytest.raises(weir.ConflictError):
        failed.commit()
    with pytest.raises(weir.InvalidArgumentError, match="commit failed"):
        failed.commit()
    assert "commit failed" in repr(failed)


def test_transaction_iterators(db: weir.DB) -> None:
    db.put_many({b"k%04d" % i: b"v" for i in range(1000)})
    txn = db.transaction()
    txn.put(b"k0000a", b"mine")
    it = txn.keys()
    assert [next(it) for _ in range(3)] == [b"k0000", b"k0000a", b"k0001"]
    txn.put(b"k0002a", b"later")  # an iterator sees the writes made before it
    assert next(it) == b"k0002"
    assert next(it) == b"k0003"
    assert b"k0002a" in list(txn.keys(start=b"k0002", stop=b"k0003"))
    assert len(list(txn.items())) == 1002
    txn.commit()
    with pytest.raises(weir.InvalidArgumentError, match="transaction is finished"):
        next(it)


def test_transaction_bad_arguments(db: weir.DB) -> None:
    with pytest.raises(weir.InvalidArgumentError):
        db.transaction(sync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.transaction(True)  # type: ignore[call-arg, arg-type]
    with pytest.raises(TypeError):
        weir.Transaction()
    with db.transaction(sync="fsync") as txn:
        with pytest.raises(weir.InvalidArgumentError):
            txn.put(b"k" * (weir.MAX_KEY_SIZE + 1), b"v")
        with pytest.raises(TypeError):
            txn.put("k", b"v")  # type: ignore[arg-type]
        txn.put(b"k", b"v")
    assert db.get(b"k") == b"v"


def test_dropped_transaction_rolls_back(path: str) -> None:
    db = weir.DB(path)
    txn = db.transaction()
    txn.put(b"k", b"v")
    it = txn.keys()
    del txn, it
    gc.collect()
    assert db.get(b"k") is None
    db.close()


def test_close_invalidates_transactions(path: str) -> None:
    db = weir.DB(path)
    db.put(b"k", b"v")
    live = db.transaction()
    live.put(b"x", b"1")
    it = live.items()
    assert next(it) == (b"k", b"v")
    done = db.transaction()
    done.commit()
    in_with = db.transaction()
    in_with.__enter__()
    db.close()
    assert live.finished and not live.committed
    with pytest.raises(weir.ClosedError):
        live.get(b"k")
    with pytest.raises(weir.ClosedError):
        live.put(b"k", b"v")
    with pytest.raises(weir.ClosedError):
        live.commit()
    with pytest.raises(weir.ClosedError):
        next(it)
    live.rollback()  # nothing to discard: fine
    with pytest.raises(weir.ClosedError):
        in_with.__exit__(None, None, None)  # a clean exit must not hide lost writes
    assert done.committed
    with pytest.raises(weir.ClosedError):
        db.transaction()
    with weir.DB(path) as db2:
        assert db2.get(b"x") is None


def test_close_while_transactions_run(path: str) -> None:
    db = weir.DB(path)
    errors: list[BaseException] = []
    started = threading.Barrier(5)

    def work(n: int) -> None:
        started.wait()
        try:
            for i in range(100_000):
                with db.transaction() as txn:
                    txn.get_for_update(b"t%d" % n)
                    txn.put(b"t%d" % n, b"%d" % i)
                    list(txn.items(prefix=b"t"))
        except weir.ClosedError:
            pass
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.05)
    db.close()
    for t in threads:
        t.join()
    assert errors == []


# ---- weir.retry ---------------------------------------------------------------------------


def conflict() -> weir.ConflictError:
    return weir.ConflictError("synthetic conflict")


def test_retry_calls_again_on_conflict() -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise conflict()
        return "done"

    assert weir.retry(fn, backoff=0) == "done"
    assert len(calls) == 3


def test_retry_gives_up_after_attempts() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise conflict()

    with pytest.raises(weir.ConflictError):
        weir.retry(fn, attempts=4, backoff=0)
    assert len(calls) == 4


def test_retry_lets_other_errors_through() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        weir.retry(fn)
    assert len(calls) == 1


def test_retry_backs_off() -> None:
    calls = []

    def fn() -> None:
        calls.append(time.perf_counter())
        if len(calls) < 4:
            raise conflict()

    weir.retry(fn, backoff=0.004, max_backoff=0.008)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # Pauses of [2, 4] ms, then [4, 8] ms twice (capped): half fixed, half random.
    assert gaps[0] >= 0.002 and gaps[1] >= 0.004 and gaps[2] >= 0.004
    assert sum(gaps) < 0.5


def test_retry_arguments() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            weir.retry(lambda: None, attempts=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        weir.retry(lambda: None, backoff=-1)
    with pytest.raises(ValueError):
        weir.retry(lambda: None, max_backoff=math.nan)
    with pytest.raises(TypeError):
        weir.retry(lambda txn: None, db="not a db")  # type: ignore[call-overload]


def test_retry_decorator() -> None:
    calls = []

    @weir.retry(attempts=5, backoff=0)
    def flaky(a: int, *, b: int) -> int:
        """Docstring kept."""
        calls.append(1)
        if len(calls) % 2:
            raise conflict()
        return a + b

    assert flaky(1, b=2) == 3
    assert flaky.__name__ == "flaky" and flaky.__doc__ == "Docstring kept."
    assert len(calls) == 2


def test_retry_with_db_runs_a_transaction(db: weir.DB) -> None:
    db.put(b"k", i64(1))
    interfere = [True]

    def double(txn: weir.Transaction) -> int:
        value: int = struct.unpack("<q", txn.get_for_update(b"k") or i64(0))[0]
        if interfere[0]:
            interfere[0] = False
            db.incr(b"k", 10)  # a concurrent change: this attempt must lose
        txn.put(b"k", i64(value * 2))
        return value * 2

    assert weir.retry(double, db=db, backoff=0) == 22
    assert db.get_int(b"k") == 22

    @weir.retry(db=db, backoff=0)
    def add(txn: weir.Transaction, key: bytes, n: int) -> None:
        txn.incr(key, n)

    add(b"k", 3)
    assert db.get_int(b"k") == 25


def test_retry_with_db_rolls_back_on_error(db: weir.DB) -> None:
    def fail(txn: weir.Transaction) -> None:
        txn.put(b"k", b"v")
        raise ValueError("nope")

    with pytest.raises(ValueError):
        weir.retry(fail, db=db)
    assert db.get(b"k") is None


def test_bank_transfers(db: weir.DB) -> None:
    """Concurrent transfers with weir.retry conserve the total; conflicts do happen."""
    accounts = 200
    start = 1000
    db.put_many({b"acct:%03d" % i: i64(start) for i in range(accounts)})
    attempts = [0]
    done = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop_reader = threading.Event()

    def transfer(txn: weir.Transaction, src: bytes, dst: bytes, amount: int) -> bool:
        with lock:
            attempts[0] += 1
        a = struct.unpack("<q", txn.get_for_update(src) or b"")[0]
        b = struct.unpack("<q", txn.get_for_update(dst) or b"")[0]
        time.sleep(0.0002)  # widen the window so that transfers collide
        if a < amount:
            return False
        txn.put(src, i64(a - amount))
        txn.put(dst, i64(b + amount))
        return True

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        run = weir.retry(db=db, attempts=10_000, backoff=0.0002, max_backoff=0.005)(transfer)
        try:
            for _ in range(150):
                # Account 0 is hot: a third of the transfers touch it.
                src = 0 if rng.random() < 0.33 else rng.randrange(accounts)
                dst = rng.randrange(accounts)
                if dst == src:
                    dst = (dst + 1) % accounts
                run(b"acct:%03d" % src, b"acct:%03d" % dst, rng.randrange(1, 200))
                with lock:
                    done[0] += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        # Every transaction reads one consistent point in time.
        try:
            while not stop_reader.is_set():
                with db.transaction() as txn:
                    total = sum(struct.unpack("<q", v)[0] for v in txn.values(prefix=b"acct:"))
                assert total == accounts * start
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop_reader.set()
    r.join()
    assert errors == []
    assert done[0] == 4 * 150
    balances = [struct.unpack("<q", v)[0] for v in db.values(prefix=b"acct:")]
    assert len(balances) == accounts
    assert sum(balances) == accounts * start
    assert min(balances) >= 0
    conflicts = attempts[0] - done[0]
    assert conflicts > 0
