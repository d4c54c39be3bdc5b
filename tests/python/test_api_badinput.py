"""Bad input at every public method of weir._weir, table-driven.

Each row calls one method with one invalid argument (wrong type, closed or
released handle, a key past ``weir.MAX_KEY_SIZE``, text that is not valid
UTF-8, out-of-range numbers, finished transactions, ...) and names the exact
exception class and a piece of its message. After every row the process must
still be healthy: the DB reads and writes, nothing was half-written by the
failed call, and the handles that were not meant to be finished still work.

``test_every_public_method_has_a_row`` fails when a public method or property
of DB, WriteBatch, Snapshot, Iterator, RangeIterator or Transaction (or a
module function) has no row, so a new method cannot ship without one; the C
side has the same pair of tests in ``tests/c/test_api_contract.c``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import weir

BIG = b"k" * (weir.MAX_KEY_SIZE + 1)
BIG_MSG = f"key of {weir.MAX_KEY_SIZE + 1} bytes exceeds the limit of {weir.MAX_KEY_SIZE} bytes"
NOT_BYTES = "must be bytes-like (bytes, bytearray or memoryview), not"
SURROGATE = "\udcff"  # a str that has no UTF-8 encoding


class H:
    """The handles one row runs against, made fresh for every row."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.path = str(tmp / "db")
        self.db = weir.DB(self.path)
        self.db.put_many({b"a": b"1", b"b": b"2", b"n": b"\x05" + b"\x00" * 7, b"s": b"abc"})
        self.other = weir.DB(str(tmp / "other"))
        self.closed = weir.DB(str(tmp / "closed"))
        self.closed_snap = self.closed.snapshot()
        self.closed_iter = self.closed.iterator()
        self.closed_range = self.closed.items()
        self.closed_txn = self.closed.transaction()
        self.closed_batch = self.closed.write_batch()
        self.closed_batch.put(b"pending", b"1")
        self.closed.close()
        self.snap = self.db.snapshot()
        self.released = self.db.snapshot()
        self.released.release()
        self.other_snap = self.other.snapshot()
        self.cursor = self.db.iterator()
        self.closed_cursor = self.db.iterator()
        self.closed_cursor.close()
        self.range = self.db.items()
        self.batch = self.db.write_batch()
        self.unbound = weir.WriteBatch()
        self.txn = self.db.transaction()
        self.committed = self.db.transaction()
        self.committed.commit()
        self.rolled_back = self.db.transaction()
        self.rolled_back.rollback()
        self.txn_done_range = self.db.transaction()
        self.txn_range = self.txn_done_range.items()
        self.txn_done_range.rollback()

    def close(self) -> None:
        for h in (self.snap, self.other_snap):
            h.release()
        self.cursor.close()
        self.range.close()
        if not self.txn.finished:
            self.txn.rollback()
        self.db.close()
        self.other.close()


@dataclass(frozen=True)
class Case:
    target: str  # "DB.put", "WriteBatch.commit", "weir.destroy", ...
    what: str
    call: Callable[[H], Any]
    exc: type[BaseException]
    msg: str


def c(target: str, what: str, call: Callable[[H], Any], exc: type[BaseException], msg: str) -> Case:
    return Case(target, what, call, exc, msg)


def _arrow_rows(null_key: bool = False) -> Any:
    """A two-row pyarrow table (id, v) for the Arrow rows."""
    import pyarrow as pa

    return pa.table({"id": [1, None if null_key else 2], "v": [b"a", b"b"]})


IA = weir.InvalidArgumentError
CL = weir.ClosedError


def _enc_value(value: Any, key: Any) -> bytes:
    """A value encoder for the put_encoded rows."""
    return str(value).encode()


def _enc_refuses(value: Any, key: Any) -> bytes:
    raise ValueError(f"refused {value!r} for {key!r}")


CASES: list[Case] = [
    # ---- module functions ----
    c(
        "weir.destroy",
        "int path",
        lambda h: weir.destroy(5),
        TypeError,
        "expected str, bytes or os.PathLike",
    ),
    c(
        "weir.destroy",
        "NUL in path",
        lambda h: weir.destroy(h.path + "\0x"),
        ValueError,
        "embedded null",
    ),
    c("weir.destroy", "open DB", lambda h: weir.destroy(h.path), weir.BusyError, "already open"),
    c(
        "weir.compression_supported",
        "bytes name",
        lambda h: weir.compression_supported(b"lz4"),
        TypeError,
        "codec name must be str, not bytes",
    ),
    c(
        "weir.build_info",
        "an argument",
        lambda h: weir.build_info(1),
        TypeError,
        "takes 0 positional arguments",
    ),
    # ---- DB() ----
    c(
        "DB.__init__",
        "int path",
        lambda h: weir.DB(5),
        TypeError,
        "expected str, bytes or os.PathLike",
    ),
    c(
        "DB.__init__",
        "NUL in path",
        lambda h: weir.DB(str(h.tmp / "x\0y")),
        ValueError,
        "embedded null",
    ),
    c("DB.__init__", "a file as path", lambda h: weir.DB(__file__), IA, __file__),
    c(
        "DB.__init__",
        "missing dir, create_if_missing=False",
        lambda h: weir.DB(str(h.tmp / "nope"), create_if_missing=False),
        IA,
        "does not exist",
    ),
    c(
        "DB.__init__",
        "error_if_exists",
        lambda h: weir.DB(str(h.tmp / "closed"), error_if_exists=True),
        IA,
        "exists",
    ),
    c("DB.__init__", "already open", lambda h: weir.DB(h.path), weir.BusyError, "already open"),
    c(
        "DB.__init__",
        "negative write_buffer_size",
        lambda h: weir.DB(str(h.tmp / "x"), write_buffer_size=-1),
        IA,
        "write_buffer_size=-1 is out of range",
    ),
    c(
        "DB.__init__",
        "str block_size",
        lambda h: weir.DB(str(h.tmp / "x"), block_size="4k"),
        TypeError,
        "block_size must be an int or None, not str",
    ),
    c(
        "DB.__init__",
        "huge background_threads",
        lambda h: weir.DB(str(h.tmp / "x"), background_threads=1 << 70),
        IA,
        "background_threads=",
    ),
    c(
        "DB.__init__",
        "2-tuple level0_triggers",
        lambda h: weir.DB(str(h.tmp / "x"), level0_triggers=(1, 2)),
        TypeError,
        "level0_triggers must be a (compaction, slowdown, stop) tuple of ints",
    ),
    c(
        "DB.__init__",
        "unordered level0_triggers",
        lambda h: weir.DB(str(h.tmp / "x"), level0_triggers=(10, 2, 1)),
        IA,
        "must satisfy",
    ),
    c(
        "DB.__init__",
        "unknown compression",
        lambda h: weir.DB(str(h.tmp / "x"), compression="gzip"),
        IA,
        "compression must be 'none', 'lz4' or 'zstd', not 'gzip'",
    ),
    c(
        "DB.__init__",
        "non-UTF-8 compression",
        lambda h: weir.DB(str(h.tmp / "x"), compression=SURROGATE),
        IA,
        "compression must be",
    ),
    c(
        "DB.__init__",
        "unknown sync",
        lambda h: weir.DB(str(h.tmp / "x"), sync="always"),
        IA,
        "sync must be",
    ),
    c(
        "DB.__init__",
        "negative default_ttl",
        lambda h: weir.DB(str(h.tmp / "x"), default_ttl=-1),
        IA,
        "default_ttl=-1 must be a positive",
    ),
    c(
        "DB.__init__",
        "unknown option",
        lambda h: weir.DB(str(h.tmp / "x"), colour=1),
        TypeError,
        "colour",
    ),
    c(
        "DB.__init__",
        "on an open DB",
        lambda h: h.db.__init__(h.path),
        RuntimeError,
        "called on an open DB",
    ),
    # ---- DB reads ----
    c("DB.get", "int key", lambda h: h.db.get(1), TypeError, f"key {NOT_BYTES} int"),
    c("DB.get", "str key", lambda h: h.db.get("a"), TypeError, f"key {NOT_BYTES} str"),
    c("DB.get", "oversized key", lambda h: h.db.get(BIG), IA, BIG_MSG),
    c(
        "DB.get",
        "bad snapshot type",
        lambda h: h.db.get(b"a", snapshot=1),
        TypeError,
        "snapshot must be",
    ),
    c("DB.get", "released snapshot", lambda h: h.db.get(b"a", snapshot=h.released), CL, "released"),
    c(
        "DB.get",
        "another DB's snapshot",
        lambda h: h.db.get(b"a", snapshot=h.other_snap),
        IA,
        "belongs to another DB",
    ),
    c("DB.get", "closed DB", lambda h: h.closed.get(b"a"), CL, "is closed"),
    c("DB.get", "no key", lambda h: h.db.get(), TypeError, "missing required argument 'key'"),
    c("DB.__getitem__", "oversized key", lambda h: h.db[BIG], IA, BIG_MSG),
    c("DB.__getitem__", "closed DB", lambda h: h.closed[b"a"], CL, "is closed"),
    c("DB.__contains__", "float key", lambda h: 1.5 in h.db, TypeError, f"key {NOT_BYTES} float"),
    c("DB.__contains__", "closed DB", lambda h: b"a" in h.closed, CL, "is closed"),
    c(
        "DB.get_many",
        "not iterable",
        lambda h: h.db.get_many(5),
        TypeError,
        "get_many() expects an iterable of keys",
    ),
    c("DB.get_many", "int among keys", lambda h: h.db.get_many([b"a", 2]), TypeError, "int"),
    c("DB.get_many", "oversized key", lambda h: h.db.get_many([b"a", BIG]), IA, BIG_MSG),
    c("DB.get_many", "closed DB", lambda h: h.closed.get_many([b"a"]), CL, "is closed"),
    c("DB.get_int", "not an int64", lambda h: h.db.get_int(b"s"), IA, "is 3 bytes, not an 8-byte"),
    c("DB.get_int", "oversized key", lambda h: h.db.get_int(BIG), IA, BIG_MSG),
    c("DB.get_int", "closed DB", lambda h: h.closed.get_int(b"n"), CL, "is closed"),
    c(
        "DB.get_float",
        "not a float64",
        lambda h: h.db.get_float(b"s"),
        IA,
        "not an 8-byte little-endian float64",
    ),
    c(
        "DB.get_float",
        "bytearray snapshot",
        lambda h: h.db.get_float(b"n", snapshot=bytearray()),
        TypeError,
        "snapshot must be",
    ),
    c("DB.get_list", "not a list", lambda h: h.db.get_list(b"s"), IA, "is not a list"),
    c(
        "DB.get_list",
        "None key",
        lambda h: h.db.get_list(None),
        TypeError,
        f"key {NOT_BYTES} NoneType",
    ),
    c(
        "DB.keys",
        "str prefix",
        lambda h: h.db.keys(prefix="a"),
        TypeError,
        f"prefix {NOT_BYTES} str",
    ),
    c("DB.keys", "positional", lambda h: h.db.keys(b"a"), TypeError, "positional"),
    c("DB.values", "int stop", lambda h: h.db.values(stop=3), TypeError, f"stop {NOT_BYTES} int"),
    c("DB.values", "closed DB", lambda h: h.closed.values(), CL, "is closed"),
    c("DB.items", "int start", lambda h: h.db.items(start=1), TypeError, f"start {NOT_BYTES} int"),
    c("DB.items", "released snapshot", lambda h: h.db.items(snapshot=h.released), CL, "released"),
    c(
        "DB.items",
        "unknown keyword",
        lambda h: h.db.items(limit=3),
        TypeError,
        "unexpected keyword argument 'limit'",
    ),
    c("DB.__iter__", "closed DB", lambda h: iter(h.closed), CL, "is closed"),
    c(
        "DB.iterator",
        "reverse=",
        lambda h: h.db.iterator(reverse=True),
        TypeError,
        "unexpected keyword argument 'reverse'",
    ),
    c(
        "DB.iterator",
        "list prefix",
        lambda h: h.db.iterator(prefix=[1]),
        TypeError,
        f"prefix {NOT_BYTES} list",
    ),
    c("DB.iterator", "closed DB", lambda h: h.closed.iterator(), CL, "is closed"),
    c("DB.snapshot", "an argument", lambda h: h.db.snapshot(1), TypeError, "takes no arguments"),
    c("DB.snapshot", "closed DB", lambda h: h.closed.snapshot(), CL, "is closed"),
    c("DB.stats", "closed DB", lambda h: h.closed.stats(), CL, "is closed"),
    c(
        "DB.property",
        "bytes name",
        lambda h: h.db.property(b"weir.stats"),
        TypeError,
        "property() name must be str, not bytes",
    ),
    c(
        "DB.property",
        "non-UTF-8 name",
        lambda h: h.db.property(SURROGATE),
        UnicodeEncodeError,
        "surrogates not allowed",
    ),
    c(
        "DB.property",
        "NUL in name",
        lambda h: h.db.property("weir.stats\0x"),
        ValueError,
        "must not contain a NUL",
    ),
    c("DB.property", "closed DB", lambda h: h.closed.property("weir.stats"), CL, "is closed"),
    # ---- DB writes ----
    c("DB.put", "int key", lambda h: h.db.put(1, b"v"), TypeError, f"key {NOT_BYTES} int"),
    c("DB.put", "str value", lambda h: h.db.put(b"k", "v"), TypeError, f"value {NOT_BYTES} str"),
    c("DB.put", "oversized key", lambda h: h.db.put(BIG, b"v"), IA, BIG_MSG),
    c(
        "DB.put",
        "unknown sync",
        lambda h: h.db.put(b"k", b"v", sync="sometimes"),
        IA,
        "sync must be",
    ),
    c(
        "DB.put",
        "non-UTF-8 sync",
        lambda h: h.db.put(b"k", b"v", sync=SURROGATE),
        IA,
        "sync must be",
    ),
    c("DB.put", "bool sync", lambda h: h.db.put(b"k", b"v", sync=True), TypeError, "sync must be"),
    c("DB.put", "zero ttl", lambda h: h.db.put(b"k", b"v", ttl=0), IA, "ttl=0 must be a positive"),
    c(
        "DB.put",
        "nan ttl",
        lambda h: h.db.put(b"k", b"v", ttl=float("nan")),
        IA,
        "must be a positive",
    ),
    c(
        "DB.put",
        "str ttl",
        lambda h: h.db.put(b"k", b"v", ttl="1"),
        TypeError,
        "ttl must be seconds",
    ),
    c("DB.put", "closed DB", lambda h: h.closed.put(b"k", b"v"), CL, "is closed"),
    c(
        "DB.put",
        "missing value",
        lambda h: h.db.put(b"k"),
        TypeError,
        "missing required argument 'value'",
    ),
    c("DB.__setitem__", "oversized key", lambda h: h.db.__setitem__(BIG, b"v"), IA, BIG_MSG),
    c(
        "DB.__setitem__",
        "int value",
        lambda h: h.db.__setitem__(b"k", 1),
        TypeError,
        f"value {NOT_BYTES} int",
    ),
    c("DB.__delitem__", "oversized key", lambda h: h.db.__delitem__(BIG), IA, BIG_MSG),
    c("DB.__delitem__", "closed DB", lambda h: h.closed.__delitem__(b"a"), CL, "is closed"),
    c("DB.delete", "oversized key", lambda h: h.db.delete(BIG), IA, BIG_MSG),
    c("DB.delete", "float key", lambda h: h.db.delete(3.5), TypeError, f"key {NOT_BYTES} float"),
    c("DB.delete", "closed DB", lambda h: h.closed.delete(b"a"), CL, "is closed"),
    c(
        "DB.put_many",
        "not iterable",
        lambda h: h.db.put_many(5),
        TypeError,
        "expects a mapping or an iterable of (key, value) pairs, not int",
    ),
    c(
        "DB.put_many",
        "triples",
        lambda h: h.db.put_many([(b"a", b"b", b"c")]),
        TypeError,
        "items must be (key, value) pairs, not tuple",
    ),
    c(
        "DB.put_many",
        "oversized key after a good one",
        lambda h: h.db.put_many([(b"x", b"1"), (BIG, b"v")]),
        IA,
        "exceeds the limit",
    ),
    c("DB.put_many", "closed DB", lambda h: h.closed.put_many({b"a": b"1"}), CL, "is closed"),
    c(
        "DB.delete_many",
        "int key",
        lambda h: h.db.delete_many([b"a", 1]),
        TypeError,
        f"key {NOT_BYTES} int",
    ),
    c(
        "DB.delete_many",
        "oversized key",
        lambda h: h.db.delete_many([b"a", BIG]),
        IA,
        "exceeds the limit",
    ),
    c(
        "DB.merge",
        "unknown operator",
        lambda h: h.db.merge(b"k", "avg", 1),
        IA,
        "unknown merge operator 'avg'",
    ),
    c(
        "DB.merge",
        "non-UTF-8 operator",
        lambda h: h.db.merge(b"k", SURROGATE, 1),
        IA,
        "unknown merge operator",
    ),
    c("DB.merge", "operator id 0", lambda h: h.db.merge(b"k", 0, 1), IA, "out of range [1, 255]"),
    c(
        "DB.merge",
        "float operator",
        lambda h: h.db.merge(b"k", 1.0, 1),
        TypeError,
        "merge operator must be",
    ),
    c(
        "DB.merge",
        "float int64 operand",
        lambda h: h.db.merge(b"k", "int64_add", 1.5),
        TypeError,
        "an int64 merge operand must be an int or 8 bytes, not float",
    ),
    c(
        "DB.merge",
        "operand past int64",
        lambda h: h.db.merge(b"k", "int64_add", 1 << 63),
        IA,
        "does not fit in a signed 64-bit integer",
    ),
    c(
        "DB.merge",
        "object operand",
        lambda h: h.db.merge(b"k", "bytes_max", object()),
        TypeError,
        f"operand {NOT_BYTES} object",
    ),
    c("DB.merge", "3-byte int64 operand", lambda h: h.db.merge(b"k", "int64_add", b"abc"), IA, "8"),
    c("DB.merge", "oversized key", lambda h: h.db.merge(BIG, "int64_add", 1), IA, BIG_MSG),
    c("DB.merge", "closed DB", lambda h: h.closed.merge(b"k", "int64_add", 1), CL, "is closed"),
    c(
        "DB.incr",
        "float n",
        lambda h: h.db.incr(b"k", 1.5),
        TypeError,
        "incr() n must be an int, not float",
    ),
    c(
        "DB.incr",
        "n past int64",
        lambda h: h.db.incr(b"k", 1 << 64),
        IA,
        "does not fit in a signed 64-bit",
    ),
    c("DB.incr", "oversized key", lambda h: h.db.incr(BIG), IA, BIG_MSG),
    c(
        "DB.add_float",
        "str x",
        lambda h: h.db.add_float(b"k", "1.5"),
        TypeError,
        "add_float() x must be a float or an int, not str",
    ),
    c("DB.add_float", "closed DB", lambda h: h.closed.add_float(b"k", 1.0), CL, "is closed"),
    c(
        "DB.list_append",
        "no max_items",
        lambda h: h.db.list_append(b"k", b"x"),
        TypeError,
        "max_items",
    ),
    c(
        "DB.list_append",
        "max_items 0",
        lambda h: h.db.list_append(b"k", b"x", max_items=0),
        IA,
        "max_items=0 is out of range",
    ),
    c(
        "DB.list_append",
        "str max_items",
        lambda h: h.db.list_append(b"k", b"x", max_items="3"),
        TypeError,
        "max_items must be an int",
    ),
    c(
        "DB.list_append",
        "str item",
        lambda h: h.db.list_append(b"k", "x", max_items=3),
        TypeError,
        f"{NOT_BYTES} str",
    ),
    c(
        "DB.delete_range",
        "start after end",
        lambda h: h.db.delete_range(b"z", b"a"),
        IA,
        "start is after end",
    ),
    c("DB.delete_range", "oversized end", lambda h: h.db.delete_range(b"a", BIG), IA, BIG_MSG),
    c(
        "DB.delete_range",
        "None start",
        lambda h: h.db.delete_range(None, b"z"),
        TypeError,
        f"start {NOT_BYTES} NoneType",
    ),
    c(
        "DB.delete_prefix",
        "oversized prefix",
        lambda h: h.db.delete_prefix(BIG),
        IA,
        "longer than any key",
    ),
    c(
        "DB.delete_prefix",
        "str prefix",
        lambda h: h.db.delete_prefix("a"),
        TypeError,
        f"prefix {NOT_BYTES} str",
    ),
    c("DB.delete_prefix", "closed DB", lambda h: h.closed.delete_prefix(b"a"), CL, "is closed"),
    c(
        "DB.write_batch",
        "unknown sync",
        lambda h: h.db.write_batch(sync="later"),
        IA,
        "sync must be",
    ),
    c("DB.write_batch", "closed DB", lambda h: h.closed.write_batch(), CL, "is closed"),
    c(
        "DB.write",
        "not a batch",
        lambda h: h.db.write({b"a": b"1"}),
        TypeError,
        "write() expects a weir.WriteBatch, not dict",
    ),
    c("DB.write", "closed DB", lambda h: h.closed.write(weir.WriteBatch()), CL, "is closed"),
    c("DB.flush", "an argument", lambda h: h.db.flush(True), TypeError, "takes no arguments"),
    c("DB.flush", "closed DB", lambda h: h.closed.flush(), CL, "is closed"),
    c("DB.compact", "int start", lambda h: h.db.compact(1), TypeError, f"start {NOT_BYTES} int"),
    c("DB.compact", "oversized start", lambda h: h.db.compact(BIG), IA, BIG_MSG),
    c("DB.compact", "closed DB", lambda h: h.closed.compact(), CL, "is closed"),
    c(
        "DB.checkpoint",
        "int path",
        lambda h: h.db.checkpoint(5),
        TypeError,
        "expected str, bytes or os.PathLike",
    ),
    c(
        "DB.checkpoint",
        "NUL in path",
        lambda h: h.db.checkpoint(str(h.tmp / "c\0p")),
        ValueError,
        "embedded null",
    ),
    c("DB.checkpoint", "non-empty target", lambda h: h.db.checkpoint(h.tmp), IA, "not empty"),
    c(
        "DB.checkpoint",
        "closed DB",
        lambda h: h.closed.checkpoint(str(h.tmp / "cp")),
        CL,
        "is closed",
    ),
    c(
        "DB.scan_arrow",
        "int prefix",
        lambda h: h.db.scan_arrow(prefix=1),
        TypeError,
        f"prefix {NOT_BYTES} int",
    ),
    c(
        "DB.scan_arrow",
        "batch_size 0",
        lambda h: h.db.scan_arrow(batch_size=0),
        IA,
        "batch_size must be between 1 and 2**30, not 0",
    ),
    c("DB.scan_arrow", "closed DB", lambda h: h.closed.scan_arrow(), CL, "is closed"),
    c(
        "DB.put_arrow",
        "a list, not Arrow data",
        lambda h: h.db.put_arrow([1, 2], key="id"),
        TypeError,
        "put_arrow needs Arrow data",
    ),
    c(
        "DB.put_arrow",
        "missing key column",
        lambda h: h.db.put_arrow(_arrow_rows(), key="nope"),
        IA,
        "no key column 'nope' in the data; its columns are 'id', 'v'",
    ),
    c(
        "DB.put_arrow",
        "null key",
        lambda h: h.db.put_arrow(_arrow_rows(null_key=True), key="id"),
        IA,
        "key column 'id' is null at row 1; nothing was written",
    ),
    c(
        "DB.put_arrow",
        "closed DB",
        lambda h: h.closed.put_arrow(_arrow_rows(), key="id"),
        CL,
        "is closed",
    ),
    c(
        "DB.put_batch",
        "int, not a batch",
        lambda h: h.db.put_batch(b"k", 5),
        TypeError,
        "put_batch needs a record batch",
    ),
    c(
        "DB.put_batch",
        "int key",
        lambda h: h.db.put_batch(1, _arrow_rows().to_batches()[0]),
        TypeError,
        f"key {NOT_BYTES} int",
    ),
    c(
        "DB.put_batch",
        "closed DB",
        lambda h: h.closed.put_batch(b"k", _arrow_rows().to_batches()[0]),
        CL,
        "is closed",
    ),
    c(
        "DB.get_batch",
        "value not Arrow IPC",
        lambda h: h.db.get_batch(b"s"),
        IA,
        "is not an Arrow IPC record batch",
    ),
    c("DB.get_batch", "int key", lambda h: h.db.get_batch(1), TypeError, f"key {NOT_BYTES} int"),
    c("DB.get_batch", "closed DB", lambda h: h.closed.get_batch(b"k"), CL, "is closed"),
    c("DB.transaction", "int sync", lambda h: h.db.transaction(sync=1), TypeError, "sync must be"),
    c("DB.transaction", "positional", lambda h: h.db.transaction("fsync"), TypeError, "positional"),
    c("DB.transaction", "closed DB", lambda h: h.closed.transaction(), CL, "is closed"),
    c("DB.close", "an argument", lambda h: h.db.close(1), TypeError, "takes no arguments"),
    c("DB.__enter__", "closed DB", lambda h: h.closed.__enter__(), CL, "is closed"),
    c(
        "DB.__exit__",
        "closed DB twice",
        lambda h: h.closed.__exit__(None, None, None) or h.closed.get(b"a"),
        CL,
        "is closed",
    ),
    c("DB.path", "assignment", lambda h: setattr(h.db, "path", "x"), AttributeError, "path"),
    c("DB.closed", "assignment", lambda h: setattr(h.db, "closed", True), AttributeError, "closed"),
    # ---- Snapshot ----
    c(
        "Snapshot.__new__",
        "direct construction",
        lambda h: weir.Snapshot(),
        TypeError,
        "cannot create 'weir.Snapshot' instances",
    ),
    c("Snapshot.get", "oversized key", lambda h: h.snap.get(BIG), IA, BIG_MSG),
    c(
        "Snapshot.get",
        "released",
        lambda h: h.released.get(b"a"),
        CL,
        "the snapshot has been released",
    ),
    c(
        "Snapshot.get",
        "DB closed",
        lambda h: h.closed_snap.get(b"a"),
        CL,
        "the snapshot has been released",
    ),
    c(
        "Snapshot.get",
        "snapshot= keyword",
        lambda h: h.snap.get(b"a", snapshot=h.snap),
        TypeError,
        "unexpected keyword argument 'snapshot'",
    ),
    c("Snapshot.get_many", "str keys", lambda h: h.snap.get_many(["a"]), TypeError, "str"),
    c("Snapshot.get_many", "released", lambda h: h.released.get_many([b"a"]), CL, "released"),
    c(
        "Snapshot.keys",
        "str start",
        lambda h: h.snap.keys(start="a"),
        TypeError,
        f"start {NOT_BYTES} str",
    ),
    c("Snapshot.values", "released", lambda h: h.released.values(), CL, "released"),
    c("Snapshot.items", "released", lambda h: h.released.items(), CL, "released"),
    c("Snapshot.iterator", "released", lambda h: h.released.iterator(), CL, "released"),
    c(
        "Snapshot.iterator",
        "reverse=",
        lambda h: h.snap.iterator(reverse=True),
        TypeError,
        "reverse",
    ),
    c("Snapshot.__iter__", "released", lambda h: iter(h.released), CL, "released"),
    c("Snapshot.__getitem__", "int key", lambda h: h.snap[1], TypeError, f"key {NOT_BYTES} int"),
    c("Snapshot.__getitem__", "released", lambda h: h.released[b"a"], CL, "released"),
    c("Snapshot.__contains__", "released", lambda h: b"a" in h.released, CL, "released"),
    c(
        "Snapshot.release",
        "an argument",
        lambda h: h.snap.release(1),
        TypeError,
        "takes no arguments",
    ),
    c("Snapshot.close", "an argument", lambda h: h.snap.close(1), TypeError, "takes no arguments"),
    c("Snapshot.__enter__", "released", lambda h: h.released.__enter__(), CL, "released"),
    c(
        "Snapshot.__exit__",
        "then used",
        lambda h: h.released.__exit__(None, None, None) or h.released.get(b"a"),
        CL,
        "released",
    ),
    c(
        "Snapshot.released",
        "assignment",
        lambda h: setattr(h.snap, "released", True),
        AttributeError,
        "released",
    ),
    c(
        "Snapshot.sequence",
        "assignment",
        lambda h: setattr(h.snap, "sequence", 1),
        AttributeError,
        "sequence",
    ),
    c("Snapshot.db", "assignment", lambda h: setattr(h.snap, "db", None), AttributeError, "db"),
    # ---- Iterator (cursor) ----
    c(
        "Iterator.__new__",
        "direct construction",
        lambda h: weir.Iterator(),
        TypeError,
        "cannot create 'weir.Iterator' instances",
    ),
    c("Iterator.seek", "str key", lambda h: h.cursor.seek("a"), TypeError, f"key {NOT_BYTES} str"),
    c(
        "Iterator.seek",
        "closed",
        lambda h: h.closed_cursor.seek(b"a"),
        CL,
        "the iterator is closed",
    ),
    c(
        "Iterator.seek",
        "DB closed",
        lambda h: h.closed_iter.seek(b"a"),
        CL,
        "the iterator's DB was closed",
    ),
    c(
        "Iterator.seek_for_prev",
        "None key",
        lambda h: h.cursor.seek_for_prev(None),
        TypeError,
        f"key {NOT_BYTES} NoneType",
    ),
    c(
        "Iterator.seek_for_prev",
        "closed",
        lambda h: h.closed_cursor.seek_for_prev(b"a"),
        CL,
        "closed",
    ),
    c(
        "Iterator.seek_to_first",
        "an argument",
        lambda h: h.cursor.seek_to_first(b"a"),
        TypeError,
        "takes no arguments",
    ),
    c(
        "Iterator.seek_to_first",
        "DB closed",
        lambda h: h.closed_iter.seek_to_first(),
        CL,
        "DB was closed",
    ),
    c(
        "Iterator.seek_to_last",
        "closed",
        lambda h: h.closed_cursor.seek_to_last(),
        CL,
        "the iterator is closed",
    ),
    c("Iterator.next", "closed", lambda h: h.closed_cursor.next(), CL, "the iterator is closed"),
    c(
        "Iterator.prev",
        "DB closed",
        lambda h: h.closed_iter.prev(),
        CL,
        "the iterator's DB was closed",
    ),
    c("Iterator.valid", "closed", lambda h: h.closed_cursor.valid, CL, "the iterator is closed"),
    c("Iterator.key", "DB closed", lambda h: h.closed_iter.key, CL, "the iterator's DB was closed"),
    c("Iterator.value", "closed", lambda h: h.closed_cursor.value, CL, "the iterator is closed"),
    c(
        "Iterator.closed",
        "assignment",
        lambda h: setattr(h.cursor, "closed", True),
        AttributeError,
        "closed",
    ),
    c(
        "Iterator.close",
        "an argument",
        lambda h: h.cursor.close(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "Iterator.__enter__",
        "an argument",
        lambda h: h.cursor.__enter__(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "Iterator.__exit__",
        "then used",
        lambda h: h.closed_cursor.__exit__(None, None, None) or h.closed_cursor.next(),
        CL,
        "closed",
    ),
    # ---- RangeIterator ----
    c(
        "RangeIterator.__new__",
        "direct construction",
        lambda h: weir.RangeIterator(),
        TypeError,
        "cannot create 'weir.RangeIterator' instances",
    ),
    c("RangeIterator.__next__", "DB closed", lambda h: next(h.closed_range), CL, "closed"),
    c(
        "RangeIterator.__next__",
        "transaction finished",
        lambda h: next(h.txn_range),
        IA,
        "the iterator's transaction is finished",
    ),
    c(
        "RangeIterator.__iter__",
        "an argument",
        lambda h: h.range.__iter__(1),
        TypeError,
        "argument",
    ),
    c(
        "RangeIterator.close",
        "an argument",
        lambda h: h.range.close(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "RangeIterator.__enter__",
        "an argument",
        lambda h: h.range.__enter__(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "RangeIterator.__exit__",
        "then DB closed",
        lambda h: h.closed_range.__exit__(None, None, None) or next(h.closed_range),
        CL,
        "the iterator's DB was closed",
    ),
    c(
        "RangeIterator.__class_getitem__",
        "no argument",
        lambda h: weir.RangeIterator.__class_getitem__(),
        TypeError,
        "argument",
    ),
    # ---- WriteBatch ----
    c(
        "WriteBatch.__new__",
        "int db",
        lambda h: weir.WriteBatch(5),
        TypeError,
        "db must be a weir.DB or None, not int",
    ),
    c(
        "WriteBatch.__new__",
        "unknown sync",
        lambda h: weir.WriteBatch(sync="x"),
        IA,
        "sync must be",
    ),
    c(
        "WriteBatch.put",
        "int key",
        lambda h: h.batch.put(1, b"v"),
        TypeError,
        f"key {NOT_BYTES} int",
    ),
    c("WriteBatch.put", "oversized key", lambda h: h.batch.put(BIG, b"v"), IA, BIG_MSG),
    c(
        "WriteBatch.put",
        "negative ttl",
        lambda h: h.batch.put(b"k", b"v", ttl=-1),
        IA,
        "ttl=-1 must be a positive",
    ),
    c("WriteBatch.delete", "oversized key", lambda h: h.batch.delete(BIG), IA, BIG_MSG),
    c(
        "WriteBatch.delete",
        "str key",
        lambda h: h.batch.delete("k"),
        TypeError,
        f"key {NOT_BYTES} str",
    ),
    c(
        "WriteBatch.merge",
        "unknown operator",
        lambda h: h.batch.merge(b"k", "nope", 1),
        IA,
        "unknown merge operator 'nope'",
    ),
    c(
        "WriteBatch.merge",
        "oversized key",
        lambda h: h.batch.merge(BIG, "int64_add", 1),
        IA,
        BIG_MSG,
    ),
    c(
        "WriteBatch.incr",
        "str n",
        lambda h: h.batch.incr(b"k", "1"),
        TypeError,
        "n must be an int, not str",
    ),
    c(
        "WriteBatch.delete_range",
        "oversized start",
        lambda h: h.batch.delete_range(BIG, b"z"),
        IA,
        BIG_MSG,
    ),
    c(
        "WriteBatch.delete_range",
        "int end",
        lambda h: h.batch.delete_range(b"a", 1),
        TypeError,
        f"end {NOT_BYTES} int",
    ),
    c("WriteBatch.put_many", "not iterable", lambda h: h.batch.put_many(1), TypeError, "not int"),
    c("WriteBatch.put_many", "oversized key", lambda h: h.batch.put_many({BIG: b"v"}), IA, BIG_MSG),
    c(
        "WriteBatch.put_encoded",
        "not iterable",
        lambda h: h.batch.put_encoded(1, _enc_value),
        TypeError,
        "put_encoded() expects a mapping or an iterable of (key, value) pairs, not int",
    ),
    c(
        "WriteBatch.put_encoded",
        "list pair",
        lambda h: h.batch.put_encoded([["k", 1]], _enc_value),
        TypeError,
        "put_encoded() items must be (key, value) tuples, not list",
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_value not callable",
        lambda h: h.batch.put_encoded({"k": 1}, b"x"),
        TypeError,
        "encode_value must be callable, not bytes",
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_key not callable",
        lambda h: h.batch.put_encoded({"k": 1}, _enc_value, encode_key=5),
        TypeError,
        "encode_key must be callable or None, not int",
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_value gives int",
        lambda h: h.batch.put_encoded({"k": 1}, lambda v, k: v),
        TypeError,
        "an encoded value (what encode_value returned) " + NOT_BYTES + " int",
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_key gives str",
        lambda h: h.batch.put_encoded({"k": 1}, _enc_value, encode_key=str),
        TypeError,
        "encode_key must return bytes, not str",
    ),
    c(
        "WriteBatch.put_encoded",
        "int key",
        lambda h: h.batch.put_encoded({1: 1}, _enc_value),
        TypeError,
        "without encode_key a key must be str (not a subclass) or bytes-like, not int",
    ),
    c(
        "WriteBatch.put_encoded",
        "surrogate key",
        lambda h: h.batch.put_encoded({SURROGATE: 1}, _enc_value),
        UnicodeEncodeError,
        "surrogates not allowed",
    ),
    c(
        "WriteBatch.put_encoded",
        "oversized key",
        lambda h: h.batch.put_encoded({BIG: 1}, _enc_value),
        IA,
        BIG_MSG,
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_value raises",
        lambda h: h.batch.put_encoded({"k": 1}, _enc_refuses),
        ValueError,
        "refused 1 for 'k'",
    ),
    c(
        "WriteBatch.put_encoded",
        "encode_value writes the batch",
        lambda h: h.batch.put_encoded({"k": 1}, lambda v, k: h.batch.put(b"x", b"y")),
        RuntimeError,
        "filled by put_encoded()",
    ),
    c(
        "WriteBatch.commit",
        "unbound",
        lambda h: h.unbound.commit(),
        IA,
        "not bound to a DB; use DB.write(batch)",
    ),
    c("WriteBatch.commit", "DB closed", lambda h: h.closed_batch.commit(), CL, "is closed"),
    c(
        "WriteBatch.clear",
        "an argument",
        lambda h: h.batch.clear(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "WriteBatch.__enter__",
        "an argument",
        lambda h: h.batch.__enter__(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "WriteBatch.__exit__",
        "DB closed",
        lambda h: h.closed_batch.__exit__(None, None, None),
        CL,
        "is closed",
    ),
    c("WriteBatch.__len__", "an argument", lambda h: h.batch.__len__(1), TypeError, "argument"),
    c(
        "WriteBatch.nbytes",
        "assignment",
        lambda h: setattr(h.batch, "nbytes", 1),
        AttributeError,
        "nbytes",
    ),
    c("WriteBatch.db", "assignment", lambda h: setattr(h.batch, "db", None), AttributeError, "db"),
    # ---- Transaction ----
    c(
        "Transaction.__new__",
        "direct construction",
        lambda h: weir.Transaction(),
        TypeError,
        "cannot create 'weir.Transaction' instances",
    ),
    c("Transaction.get", "oversized key", lambda h: h.txn.get(BIG), IA, BIG_MSG),
    c(
        "Transaction.get",
        "committed",
        lambda h: h.committed.get(b"a"),
        IA,
        "already committed; begin a new one",
    ),
    c(
        "Transaction.get",
        "DB closed",
        lambda h: h.closed_txn.get(b"a"),
        CL,
        "the transaction's DB was closed",
    ),
    c(
        "Transaction.get_for_update",
        "rolled back",
        lambda h: h.rolled_back.get_for_update(b"a"),
        IA,
        "rolled back; begin a new one",
    ),
    c(
        "Transaction.get_for_update",
        "int key",
        lambda h: h.txn.get_for_update(1),
        TypeError,
        f"key {NOT_BYTES} int",
    ),
    c("Transaction.put", "oversized key", lambda h: h.txn.put(BIG, b"v"), IA, BIG_MSG),
    c(
        "Transaction.put",
        "committed",
        lambda h: h.committed.put(b"a", b"b"),
        IA,
        "already committed",
    ),
    c(
        "Transaction.put",
        "sync= keyword",
        lambda h: h.txn.put(b"a", b"b", sync="fsync"),
        TypeError,
        "unexpected keyword argument 'sync'",
    ),
    c("Transaction.delete", "oversized key", lambda h: h.txn.delete(BIG), IA, BIG_MSG),
    c("Transaction.delete", "rolled back", lambda h: h.rolled_back.delete(b"a"), IA, "rolled back"),
    c(
        "Transaction.merge",
        "unknown operator",
        lambda h: h.txn.merge(b"k", "nope", 1),
        IA,
        "unknown merge operator",
    ),
    c(
        "Transaction.merge",
        "committed",
        lambda h: h.committed.merge(b"k", "int64_add", 1),
        IA,
        "already committed",
    ),
    c(
        "Transaction.incr",
        "float n",
        lambda h: h.txn.incr(b"k", 0.5),
        TypeError,
        "n must be an int, not float",
    ),
    c(
        "Transaction.keys",
        "str prefix",
        lambda h: h.txn.keys(prefix="a"),
        TypeError,
        f"prefix {NOT_BYTES} str",
    ),
    c("Transaction.values", "committed", lambda h: h.committed.values(), IA, "already committed"),
    c("Transaction.items", "DB closed", lambda h: h.closed_txn.items(), CL, "DB was closed"),
    c(
        "Transaction.items",
        "snapshot= keyword",
        lambda h: h.txn.items(snapshot=h.snap),
        TypeError,
        "unexpected keyword argument 'snapshot'",
    ),
    c("Transaction.__iter__", "committed", lambda h: iter(h.committed), IA, "already committed"),
    c("Transaction.__getitem__", "oversized key", lambda h: h.txn[BIG], IA, BIG_MSG),
    c(
        "Transaction.__setitem__",
        "str value",
        lambda h: h.txn.__setitem__(b"k", "v"),
        TypeError,
        f"value {NOT_BYTES} str",
    ),
    c(
        "Transaction.__delitem__",
        "committed",
        lambda h: h.committed.__delitem__(b"a"),
        IA,
        "already committed",
    ),
    c(
        "Transaction.__contains__",
        "int key",
        lambda h: 1 in h.txn,
        TypeError,
        f"key {NOT_BYTES} int",
    ),
    c("Transaction.commit", "twice", lambda h: h.committed.commit(), IA, "already committed"),
    c("Transaction.commit", "DB closed", lambda h: h.closed_txn.commit(), CL, "DB was closed"),
    c(
        "Transaction.rollback",
        "an argument",
        lambda h: h.txn.rollback(1),
        TypeError,
        "takes no arguments",
    ),
    c(
        "Transaction.__enter__",
        "committed",
        lambda h: h.committed.__enter__(),
        IA,
        "already committed",
    ),
    c(
        "Transaction.__exit__",
        "then used",
        lambda h: h.rolled_back.__exit__(None, None, None) or h.rolled_back.put(b"a", b"b"),
        IA,
        "rolled back",
    ),
    c(
        "Transaction.committed",
        "assignment",
        lambda h: setattr(h.txn, "committed", True),
        AttributeError,
        "committed",
    ),
    c(
        "Transaction.finished",
        "assignment",
        lambda h: setattr(h.txn, "finished", True),
        AttributeError,
        "finished",
    ),
    c("Transaction.db", "assignment", lambda h: setattr(h.txn, "db", None), AttributeError, "db"),
]


@pytest.fixture
def handles(tmp_path: pathlib.Path) -> Iterator[H]:
    h = H(tmp_path)
    yield h
    h.close()


def _healthy(h: H, before: dict[bytes, bytes]) -> None:
    # The failed call wrote nothing, and the DB and its live handles work.
    assert dict(h.db.items()) == before
    h.db.put(b"health", b"ok")
    assert h.db.get(b"health") == b"ok"
    assert h.snap.get(b"a") == b"1"
    assert h.cursor.seek_to_first() and h.cursor.key == b"a"
    assert next(h.range) == (b"a", b"1")
    h.batch.put(b"batch", b"1")
    h.txn.put(b"txn", b"1")
    assert h.txn.get(b"txn") == b"1"
    h.db.delete(b"health")


@pytest.mark.parametrize("case", CASES, ids=[f"{k.target}:{k.what}" for k in CASES])
def test_bad_input(handles: H, case: Case) -> None:
    before = dict(handles.db.items())
    msg = case.msg
    with pytest.raises(case.exc) as ei:
        case.call(handles)
    assert type(ei.value) is case.exc, f"{type(ei.value).__name__}: {ei.value}"
    assert msg in str(ei.value), f"{msg!r} not in {str(ei.value)!r}"
    if isinstance(ei.value, weir.Error):
        assert ei.value.status and ei.value.status.startswith("WEIR_")
    _healthy(handles, before)


def _public(cls: type) -> set[str]:
    names = {n for n in vars(cls) if not n.startswith("_")}
    # The protocol methods a user calls through syntax count too.
    for dunder in (
        "__new__",
        "__init__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__contains__",
        "__iter__",
        "__next__",
        "__enter__",
        "__exit__",
        "__len__",
        "__class_getitem__",
    ):
        if dunder in vars(cls):
            names.add(dunder)
    return names


def test_every_public_method_has_a_row() -> None:
    covered = {k.target for k in CASES}
    missing = []
    for cls in (
        weir.DB,
        weir.Snapshot,
        weir.Iterator,
        weir.RangeIterator,
        weir.WriteBatch,
        weir.Transaction,
    ):
        for name in sorted(_public(cls)):
            if name == "__new__" and cls in (weir.DB,):
                continue  # DB's constructor work is in __init__, which has rows
            if name == "__init__" and cls is not weir.DB:
                continue
            if f"{cls.__name__}.{name}" not in covered:
                missing.append(f"{cls.__name__}.{name}")
    for fn in ("destroy", "compression_supported", "build_info"):
        if f"weir.{fn}" not in covered:
            missing.append(f"weir.{fn}")
    assert not missing, f"public methods without a bad-input row: {missing}"


def test_bad_input_rows_leave_no_handles_behind(tmp_path: pathlib.Path) -> None:
    # Run every row in one process against one set of handles, then check the
    # store is intact and reopens: the failures left no locks, files or state.
    h = H(tmp_path)
    for case in CASES:
        with pytest.raises(case.exc):
            case.call(h)
    h.close()
    with weir.DB(h.path) as db:
        assert db.get(b"a") == b"1"
        assert db.get(b"s") == b"abc"
