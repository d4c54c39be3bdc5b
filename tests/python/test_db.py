"""Tests of weir.DB and its batches, snapshots and iterators (weir._weir)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import weir

KEY_LIMIT = 1 << 20


@pytest.fixture
def path(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "db")


@pytest.fixture
def db(path: str):
    d = weir.DB(path)
    yield d
    d.close()


def fill(db: weir.DB, n: int, width: int = 4) -> dict[bytes, bytes]:
    model = {f"k{i:0{width}d}".encode(): f"v{i}".encode() for i in range(n)}
    db.put_many(model)
    return model


# ---- basic reads and writes ------------------------------------------------


def test_put_get_delete_roundtrip(db: weir.DB) -> None:
    db.put(b"alpha", b"1")
    assert db.get(b"alpha") == b"1"
    assert type(db.get(b"alpha")) is bytes
    db.put(b"alpha", b"2")
    assert db.get(b"alpha") == b"2"
    db.delete(b"alpha")
    assert db.get(b"alpha") is None
    db.delete(b"never-existed")  # deleting an absent key is fine


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview])
def test_buffer_types_for_keys_and_values(db: weir.DB, make) -> None:
    db.put(make(b"key"), make(b"value"))
    assert db.get(make(b"key")) == b"value"
    assert make(b"key") in db
    assert db[make(b"key")] == b"value"
    db[make(b"k2")] = make(b"v2")
    assert db.get(b"k2") == b"v2"
    del db[make(b"k2")]
    assert db.get(b"k2") is None
    db.delete(make(b"key"))
    assert make(b"key") not in db


def test_other_buffers_and_memoryview_slices(db: weir.DB) -> None:
    import array

    db.put(array.array("B", b"arr"), memoryview(b"xxvaluexx")[2:7])
    assert db.get(b"arr") == b"value"


def test_empty_key_and_value(db: weir.DB) -> None:
    db.put(b"", b"empty-key")
    db.put(b"k", b"")
    assert db.get(b"") == b"empty-key"
    assert db.get(b"k") == b""
    assert b"k" in db
    assert list(db.items()) == [(b"", b"empty-key"), (b"k", b"")]


def test_missing_key_default(db: weir.DB) -> None:
    assert db.get(b"nope") is None
    assert db.get(b"nope", b"dflt") == b"dflt"
    assert db.get(b"nope", default=42) == 42
    sentinel = object()
    assert db.get(b"nope", sentinel) is sentinel
    db.put(b"yes", b"1")
    assert db.get(b"yes", b"dflt") == b"1"


def test_getitem_raises_keyerror(db: weir.DB) -> None:
    with pytest.raises(KeyError) as ei:
        db[b"absent"]
    assert ei.value.args == (b"absent",)
    db[b"present"] = b"v"
    assert db[b"present"] == b"v"
    del db[b"present"]
    with pytest.raises(KeyError):
        db[b"present"]


def test_key_size_limit(db: weir.DB) -> None:
    big = b"k" * KEY_LIMIT
    db.put(big, b"v")
    assert db.get(big) == b"v"
    assert weir.MAX_KEY_SIZE == KEY_LIMIT
    over = b"k" * (KEY_LIMIT + 1)
    with pytest.raises(weir.InvalidArgumentError) as ei:
        db.put(over, b"v")
    assert ei.value.status == "WEIR_INVALID"
    assert str(KEY_LIMIT) in str(ei.value)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(weir.InvalidArgumentError):
        db.get(over)
    with pytest.raises(weir.InvalidArgumentError):
        db.delete(over)
    with pytest.raises(weir.InvalidArgumentError):
        db.put_many([(over, b"v")])


def test_large_value_16_mib(db: weir.DB) -> None:
    value = os.urandom(1024) * (16 * 1024)
    db.put(b"big", value)
    assert db.get(b"big") == value
    db.flush()
    assert db.get(b"big") == value
    assert db.get_many([b"big"]) == [value]
    assert list(db.values()) == [value]


def test_values_just_around_the_stack_buffer(db: weir.DB) -> None:
    for n in (4095, 4096, 4097, 65536):
        db.put(b"k%d" % n, b"x" * n)
    for n in (4095, 4096, 4097, 65536):
        assert db.get(b"k%d" % n) == b"x" * n


# ---- argument errors -------------------------------------------------------


def test_wrong_key_type_message(db: weir.DB) -> None:
    with pytest.raises(TypeError) as ei:
        db.put(1, b"x")
    assert str(ei.value) == "key must be bytes-like (bytes, bytearray or memoryview), not int"
    with pytest.raises(TypeError, match=r"value must be bytes-like .* not str"):
        db.put(b"k", "text")
    with pytest.raises(TypeError, match="not str"):
        db.get("k")
    with pytest.raises(TypeError, match="not NoneType"):
        db.get(None)
    with pytest.raises(TypeError):
        db.delete(3.5)
    with pytest.raises(TypeError):
        _ = 5 in db
    with pytest.raises(TypeError, match="prefix must be bytes-like"):
        db.keys(prefix="p")
    with pytest.raises(TypeError, match="start must be bytes-like"):
        db.items(start=1)
    with pytest.raises(TypeError, match="snapshot must be"):
        db.get(b"k", snapshot=object())
    with pytest.raises(TypeError):
        db.get_many([b"a", 1])
    with pytest.raises(TypeError):
        db.get_many(5)


def test_call_signature_errors(db: weir.DB) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        db.get(b"k", colour=1)
    with pytest.raises(TypeError, match="at most 2 positional"):
        db.get(b"k", None, None)
    with pytest.raises(TypeError, match="missing required argument 'key'"):
        db.get()
    with pytest.raises(TypeError, match="multiple values"):
        db.put(b"k", b"v", key=b"k")
    with pytest.raises(TypeError):
        db.put(b"k")
    with pytest.raises(TypeError):
        db.keys(b"positional-prefix")
    db.put(key=b"kw", value=b"args", sync="none")
    assert db.get(key=b"kw") == b"args"


def test_sync_argument(db: weir.DB) -> None:
    for mode in ("none", "flush", "fsync", None):
        db.put(b"k", b"v", sync=mode)
        db.delete(b"k", sync=mode)
    with pytest.raises(weir.InvalidArgumentError, match="sync must be"):
        db.put(b"k", b"v", sync="sometimes")
    with pytest.raises(TypeError):
        db.put(b"k", b"v", sync=True)


# ---- many-key calls --------------------------------------------------------


def test_get_many(db: weir.DB) -> None:
    db.put_many({b"a": b"1", b"c": b"3"})
    assert db.get_many([b"a", b"b", bytearray(b"c"), memoryview(b"a")]) == [
        b"1",
        None,
        b"3",
        b"1",
    ]
    assert db.get_many([]) == []
    assert db.get_many(k for k in (b"c", b"a")) == [b"3", b"1"]
    assert db.get_many((b"",)) == [None]


def test_put_many_forms(db: weir.DB) -> None:
    import collections

    assert db.put_many({b"a": b"1", b"b": b"2"}) == 2
    assert db.put_many([(b"c", b"3"), [b"d", b"4"]]) == 2
    assert db.put_many((bytes([65 + i]), b"x") for i in range(3)) == 3
    assert db.put_many(collections.OrderedDict([(b"e", b"5")])) == 1

    class Mapping(collections.abc.Mapping):
        def __getitem__(self, k):
            return {b"f": b"6"}[k]

        def __iter__(self):
            return iter([b"f"])

        def __len__(self):
            return 1

    assert db.put_many(Mapping()) == 1
    assert db.put_many([]) == 0
    assert db.get_many([b"a", b"b", b"c", b"d", b"A", b"e", b"f"]) == [
        b"1",
        b"2",
        b"3",
        b"4",
        b"x",
        b"5",
        b"6",
    ]


def test_put_many_is_atomic_on_bad_input(db: weir.DB) -> None:
    with pytest.raises(TypeError, match="pairs"):
        db.put_many([(b"ok", b"1"), (b"bad",)])
    with pytest.raises(TypeError, match="value must be bytes-like"):
        db.put_many([(b"ok", b"1"), (b"bad", 5)])
    with pytest.raises(TypeError, match="mapping or an iterable"):
        db.put_many(5)
    assert db.get(b"ok") is None


def test_delete_many(db: weir.DB) -> None:
    fill(db, 10)
    assert db.delete_many([b"k0001", b"k0002", b"missing"]) == 3
    assert db.get(b"k0001") is None
    assert db.get(b"k0003") == b"v3"
    assert db.delete_many([]) == 0
    with pytest.raises(TypeError):
        db.delete_many([b"k0003", 7])
    assert db.get(b"k0003") == b"v3"


# ---- batches ---------------------------------------------------------------


def test_write_batch_commits_on_clean_exit(db: weir.DB) -> None:
    db.put(b"gone", b"x")
    with db.write_batch() as wb:
        wb.put(b"a", b"1")
        wb.put(bytearray(b"b"), memoryview(b"2"))
        wb.delete(b"gone")
        assert len(wb) == 3
        assert wb.nbytes > 0
        assert db.get(b"a") is None  # nothing applied before the commit
    assert db.get(b"a") == b"1"
    assert db.get(b"b") == b"2"
    assert db.get(b"gone") is None
    assert len(wb) == 0


def test_write_batch_discarded_on_exception(db: weir.DB) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with db.write_batch() as wb:
            wb.put(b"a", b"1")
            raise Boom
    assert db.get(b"a") is None
    assert len(wb) == 0


def test_write_batch_later_ops_win_and_clear(db: weir.DB) -> None:
    wb = db.write_batch(sync="fsync")
    wb.put(b"k", b"1")
    wb.delete(b"k")
    wb.put(b"j", b"1")
    wb.put(b"j", b"2")
    assert wb.put_many({b"m": b"3"}) == 1
    wb.commit()
    assert len(wb) == 0
    assert db.get(b"k") is None
    assert db.get(b"j") == b"2"
    wb.put(b"x", b"1")
    wb.clear()
    wb.commit()
    assert db.get(b"x") is None
    assert db.get(b"m") == b"3"


def test_unbound_write_batch_and_db_write(db: weir.DB) -> None:
    wb = weir.WriteBatch()
    wb.put(b"a", b"1")
    with pytest.raises(weir.InvalidArgumentError, match="not bound"):
        wb.commit()
    db.write(wb)
    assert db.get(b"a") == b"1"
    assert len(wb) == 1  # write() leaves the batch as it was
    db.delete(b"a")
    db.write(wb, sync="fsync")
    assert db.get(b"a") == b"1"
    with pytest.raises(TypeError):
        db.write({b"a": b"1"})
    bound = weir.WriteBatch(db)
    bound.put(b"z", b"26")
    bound.commit()
    assert db.get(b"z") == b"26"
    with pytest.raises(TypeError):
        weir.WriteBatch(db="not a db")
    with pytest.raises(TypeError):
        wb.put(1, b"x")
    with pytest.raises(weir.InvalidArgumentError):
        wb.put(b"k" * (KEY_LIMIT + 1), b"v")
    assert "1 ops" in repr(wb)


def test_batch_readers_never_see_half_a_batch(db: weir.DB) -> None:
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            a, b = db.get_many([b"a", b"b"])
            if a != b:
                errors.append(f"{a!r} != {b!r}")
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(2000):
            with db.write_batch(sync="none") as wb:
                wb.put(b"a", b"%d" % i)
                wb.put(b"b", b"%d" % i)
    finally:
        stop.set()
        t.join()
    assert errors == []


# ---- range iterators -------------------------------------------------------


def expected(model, prefix=None, start=None, stop=None, reverse=False):
    keys = sorted(model)
    out = [
        k
        for k in keys
        if (prefix is None or k.startswith(prefix))
        and (start is None or k >= start)
        and (stop is None or k < stop)
    ]
    if reverse:
        out.reverse()
    return out


def test_keys_values_items_full(db: weir.DB) -> None:
    model = fill(db, 300)  # several chunks
    keys = sorted(model)
    assert list(db.keys()) == keys
    assert list(db.values()) == [model[k] for k in keys]
    assert list(db.items()) == [(k, model[k]) for k in keys]
    assert list(db) == keys
    assert list(db.keys(reverse=True)) == keys[::-1]
    assert list(db.items(reverse=True)) == [(k, model[k]) for k in keys[::-1]]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "bounds",
    [
        {"prefix": b"k00"},
        {"prefix": b"k01", "start": b"k015"},
        {"prefix": b"k01", "stop": b"k015"},
        {"start": b"k0050", "stop": b"k0150"},
        {"start": b"k0050"},
        {"stop": b"k0007"},
        {"start": b"k0100", "stop": b"k0100"},
        {"start": b"k0200", "stop": b"k0100"},
        {"prefix": b"zzz"},
        {"prefix": b""},
        {"start": b"", "stop": b"k"},
        {"prefix": b"k0", "start": b"a", "stop": b"z"},
    ],
)
def test_range_bounds_match_model(db: weir.DB, bounds, reverse) -> None:
    model = fill(db, 200)
    want = expected(model, reverse=reverse, **bounds)
    assert list(db.keys(reverse=reverse, **bounds)) == want
    assert list(db.items(reverse=reverse, **bounds)) == [(k, model[k]) for k in want]
    assert list(db.values(reverse=reverse, **bounds)) == [model[k] for k in want]


def test_prefix_of_ff_bytes(db: weir.DB) -> None:
    db.put_many({b"\xff": b"1", b"\xff\xff": b"2", b"\xfe": b"3", b"\xff\x00": b"4"})
    assert list(db.keys(prefix=b"\xff")) == [b"\xff", b"\xff\x00", b"\xff\xff"]
    assert list(db.keys(prefix=b"\xff", reverse=True)) == [b"\xff\xff", b"\xff\x00", b"\xff"]


def test_iterator_reads_one_point_in_time(db: weir.DB) -> None:
    model = fill(db, 100)
    it = db.keys()
    first = next(it)
    db.put(b"k0050x", b"new")
    db.delete(b"k0099")
    rest = list(it)
    assert [first, *rest] == sorted(model)


def test_iterator_chunks_with_large_values(db: weir.DB) -> None:
    big = b"v" * (200 * 1024)
    db.put_many((b"k%02d" % i, big) for i in range(20))
    assert sum(len(v) for v in db.values()) == 20 * len(big)
    assert [k for k, _ in db.items(reverse=True)] == [b"k%02d" % i for i in reversed(range(20))]


def test_iterator_over_tables_and_memtable(db: weir.DB) -> None:
    model = fill(db, 500)
    db.flush()
    for i in range(0, 500, 3):
        k = b"k%04d" % i
        del model[k]
        db.delete(k)
    db.put(b"k0001", b"updated")
    model[b"k0001"] = b"updated"
    assert list(db.items()) == sorted(model.items())
    db.compact()
    assert list(db.items(reverse=True)) == sorted(model.items(), reverse=True)


def test_range_iterator_close_and_context(db: weir.DB) -> None:
    fill(db, 10)
    it = db.items()
    assert next(it) == (b"k0000", b"v0")
    it.close()
    assert list(it) == []
    with db.keys() as it2:
        assert next(it2) == b"k0000"
    assert list(it2) == []
    assert iter(it) is it
    assert weir.RangeIterator[bytes] is not None


def test_abandoned_iterators_are_freed(db: weir.DB) -> None:
    fill(db, 100)
    for _ in range(200):
        it = db.items()
        next(it)
    del it
    assert db.property("weir.num-snapshots") == "0"


# ---- cursor ----------------------------------------------------------------


def test_cursor_navigation(db: weir.DB) -> None:
    db.put_many({b"b": b"2", b"d": b"4", b"f": b"6"})
    with db.iterator() as it:
        assert not it.valid
        assert it.key is None and it.value is None
        assert it.seek_to_first() is True
        assert (it.key, it.value) == (b"b", b"2")
        assert it.next() and it.key == b"d"
        assert it.next() and it.key == b"f"
        assert it.next() is False
        assert not it.valid and it.key is None
        assert it.seek_to_last() and it.key == b"f"
        assert it.prev() and it.key == b"d"
        assert it.seek(b"c") and it.key == b"d"
        assert it.seek(b"d") and it.key == b"d"
        assert it.seek(b"g") is False
        assert it.seek_for_prev(b"c") and it.key == b"b"
        assert it.seek_for_prev(b"z") and it.key == b"f"
        assert it.seek_for_prev(b"a") is False
        assert it.seek(bytearray(b"a")) and it.key == b"b"
        assert "at b'b'" in repr(it)
        with pytest.raises(TypeError):
            it.seek("b")
    assert it.closed
    with pytest.raises(weir.ClosedError):
        it.seek_to_first()


def test_cursor_bounds_and_prefix(db: weir.DB) -> None:
    fill(db, 50)
    it = db.iterator(start=b"k0010", stop=b"k0020")
    assert it.seek_to_first() and it.key == b"k0010"
    assert it.seek_to_last() and it.key == b"k0019"
    assert it.seek(b"k0000") and it.key == b"k0010"
    assert it.seek(b"k0020") is False
    assert it.seek_for_prev(b"k0099") and it.key == b"k0019"
    it.close()
    it = db.iterator(prefix=b"k003")
    keys = []
    ok = it.seek_to_first()
    while ok:
        keys.append(it.key)
        ok = it.next()
    assert keys == [b"k%04d" % i for i in range(30, 40)]
    it.close()


# ---- snapshots -------------------------------------------------------------


def test_snapshot_isolation(db: weir.DB) -> None:
    db.put_many({b"a": b"1", b"b": b"2"})
    snap = db.snapshot()
    db.put(b"a", b"changed")
    db.delete(b"b")
    db.put(b"c", b"3")
    assert snap.get(b"a") == b"1"
    assert snap.get(b"b") == b"2"
    assert snap.get(b"c") is None
    assert snap.get(b"c", b"d") == b"d"
    assert snap[b"a"] == b"1"
    with pytest.raises(KeyError):
        snap[b"c"]
    assert b"b" in snap and b"c" not in snap
    assert db.get(b"a", snapshot=snap) == b"1"
    assert db.get_many([b"a", b"b", b"c"], snapshot=snap) == [b"1", b"2", None]
    assert snap.get_many([b"a", b"c"]) == [b"1", None]
    assert list(snap.items()) == [(b"a", b"1"), (b"b", b"2")]
    assert list(snap.keys(reverse=True)) == [b"b", b"a"]
    assert list(snap.values(prefix=b"b")) == [b"2"]
    assert list(db.keys(snapshot=snap)) == [b"a", b"b"]
    assert list(snap) == [b"a", b"b"]
    it = snap.iterator()
    assert it.seek_to_last() and it.key == b"b"
    it.close()
    assert list(db.items()) == [(b"a", b"changed"), (b"c", b"3")]
    db.flush()
    db.compact()
    assert snap.get(b"b") == b"2"  # compaction keeps what the snapshot needs
    snap.release()
    snap.release()
    assert snap.released


def test_snapshot_release_and_context(db: weir.DB) -> None:
    db.put(b"a", b"1")
    with db.snapshot() as snap:
        assert db.property("weir.num-snapshots") == "1"
        assert snap.sequence > 0
        assert snap.db is db
        it = snap.items()  # outlives the snapshot: it pinned its own state
    assert db.property("weir.num-snapshots") == "0"
    assert list(it) == [(b"a", b"1")]
    with pytest.raises(weir.ClosedError, match="released"):
        snap.get(b"a")
    with pytest.raises(weir.ClosedError):
        db.get(b"a", snapshot=snap)
    with pytest.raises(weir.ClosedError):
        snap.items()
    assert "released" in repr(snap)


def test_snapshot_of_another_db(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "one") as one, weir.DB(tmp_path / "two") as two:
        snap = one.snapshot()
        with pytest.raises(weir.InvalidArgumentError, match="another DB"):
            two.get(b"k", snapshot=snap)
        snap.release()


def test_snapshot_sequence_grows(db: weir.DB) -> None:
    s1 = db.snapshot()
    db.put(b"k", b"v")
    s2 = db.snapshot()
    assert s2.sequence > s1.sequence
    s1.release()
    s2.release()


# ---- close -----------------------------------------------------------------


def test_close_is_idempotent_and_blocks_use(path: str) -> None:
    db = weir.DB(path)
    db.put(b"k", b"v")
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    assert "closed" in repr(db)
    calls = [
        lambda: db.get(b"k"),
        lambda: db.put(b"k", b"v"),
        lambda: db.delete(b"k"),
        lambda: b"k" in db,
        lambda: db[b"k"],
        lambda: db.get_many([b"k"]),
        lambda: db.get_many([]),
        lambda: db.put_many({b"k": b"v"}),
        lambda: db.delete_many([b"k"]),
        lambda: db.write_batch(),
        lambda: db.items(),
        lambda: iter(db),
        lambda: db.iterator(),
        lambda: db.snapshot(),
        lambda: db.flush(),
        lambda: db.compact(),
        lambda: db.stats(),
        lambda: db.property("weir.stats"),
        lambda: db.__enter__(),
    ]
    for call in calls:
        with pytest.raises(weir.ClosedError) as ei:
            call()
        assert ei.value.status == "WEIR_CLOSED"
        assert path in str(ei.value)


def test_close_invalidates_iterators_snapshots_batches(path: str) -> None:
    db = weir.DB(path)
    fill(db, 200)
    items = db.items()
    assert next(items) == (b"k0000", b"v0")
    cursor = db.iterator()
    assert cursor.seek_to_first()
    snap = db.snapshot()
    batch = db.write_batch()
    batch.put(b"x", b"y")
    db.close()
    with pytest.raises(weir.ClosedError):
        next(items)
    with pytest.raises(weir.ClosedError):
        cursor.next()
    with pytest.raises(weir.ClosedError):
        _ = cursor.key
    with pytest.raises(weir.ClosedError):
        snap.get(b"k0001")
    assert snap.released
    with pytest.raises(weir.ClosedError):
        batch.commit()
    with pytest.raises(weir.ClosedError):
        with batch:
            pass
    # Reopening works: close really released the lock and the files.
    with weir.DB(path) as again:
        assert again.get(b"k0001") == b"v1"
        assert again.get(b"x") is None


def test_context_manager_closes(path: str) -> None:
    with weir.DB(path) as db:
        db.put(b"k", b"v")
    assert db.closed
    with weir.DB(path) as db2:
        assert db2.get(b"k") == b"v"


def test_data_survives_reopen(path: str) -> None:
    with weir.DB(path, sync="none") as db:
        model = fill(db, 1000)
        db.flush()
        db.put(b"after-flush", b"1")
    with weir.DB(path) as db:
        assert dict(db.items()) == {**model, b"after-flush": b"1"}


def test_unclosed_db_is_closed_when_collected(path: str) -> None:
    db = weir.DB(path)
    db.put(b"k", b"v")
    del db
    import gc

    gc.collect()
    with weir.DB(path) as again:
        assert again.get(b"k") == b"v"


# ---- open errors and options -----------------------------------------------


def test_open_accepts_pathlike_and_bytes(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "pl"
    with weir.DB(p) as db:
        assert db.path == str(p)
    with weir.DB(os.fsencode(p)) as db:
        assert db.path == str(p)
    with pytest.raises(TypeError):
        weir.DB(123)


def test_path_that_is_a_file(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "file"
    f.write_text("not a database")
    with pytest.raises(weir.InvalidArgumentError) as ei:
        weir.DB(f)
    assert str(f) in str(ei.value)


def test_create_if_missing_and_error_if_exists(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "x"
    with pytest.raises(weir.InvalidArgumentError, match="does not exist"):
        weir.DB(p, create_if_missing=False)
    weir.DB(p).close()
    with pytest.raises(weir.InvalidArgumentError) as ei:
        weir.DB(p, error_if_exists=True)
    assert ei.value.status == "WEIR_EXISTS"


def test_second_open_is_busy(path: str) -> None:
    with weir.DB(path):
        with pytest.raises(weir.BusyError) as ei:
            weir.DB(path)
        assert ei.value.status == "WEIR_BUSY"
        assert "already open" in str(ei.value)


def test_busy_from_another_process(path: str) -> None:
    script = textwrap.dedent(
        """
        import sys, weir
        try:
            weir.DB(sys.argv[1])
        except weir.BusyError as e:
            print("BusyError", e.status)
        else:
            print("opened")
        """
    )
    with weir.DB(path):
        out = subprocess.run(
            [sys.executable, "-c", script, path], capture_output=True, text=True, timeout=60
        )
    assert out.stdout.strip() == "BusyError WEIR_BUSY", out.stderr
    out = subprocess.run(
        [sys.executable, "-c", script, path], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "opened", out.stderr


def test_options_accepted(path: str) -> None:
    with weir.DB(
        path,
        write_buffer_size=1 << 20,
        block_size=8192,
        bloom_bits_per_key=12,
        max_open_files=100,
        background_threads=1,
        sync="fsync",
        target_file_size=1 << 20,
        max_bytes_for_level_base=1 << 22,
        level0_triggers=(2, 8, 12),
        compression="none",
        block_cache_size=1 << 20,
    ) as db:
        fill(db, 100)
        assert db.get(b"k0001") == b"v1"


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compression_option(path: str, codec: str) -> None:
    if not weir.compression_supported(codec):
        with pytest.raises(weir.InvalidArgumentError):
            weir.DB(path, compression=codec)
        return
    with weir.DB(path, compression=codec) as db:
        db.put_many((b"k%05d" % i, b"abc" * 50) for i in range(2000))
        db.flush()
        assert db.get(b"k00042") == b"abc" * 50
        assert db.stats()["compression"] == codec


def test_bad_options(path: str) -> None:
    with pytest.raises(weir.InvalidArgumentError, match="write_buffer_size"):
        weir.DB(path, write_buffer_size=5)
    with pytest.raises(weir.InvalidArgumentError, match="out of range"):
        weir.DB(path, block_size=-1)
    with pytest.raises(TypeError, match="block_size must be an int"):
        weir.DB(path, block_size="big")
    with pytest.raises(weir.InvalidArgumentError):
        weir.DB(path, level0_triggers=(10, 5, 1))
    with pytest.raises(TypeError, match="level0_triggers"):
        weir.DB(path, level0_triggers=(1, 2))
    with pytest.raises(weir.InvalidArgumentError):
        weir.DB(path, sync="always")
    with pytest.raises(weir.InvalidArgumentError):
        weir.DB(path, compression="snappy")
    with pytest.raises(TypeError):
        weir.DB(path, no_such_option=1)
    with pytest.raises(TypeError):
        weir.DB(path, True)
    weir.DB(path).close()  # nothing above left a lock behind


# ---- stats, properties, maintenance ----------------------------------------


def test_stats(db: weir.DB) -> None:
    fill(db, 100)
    db.get(b"k0001")
    s = db.stats()
    assert s["path"] == db.path
    assert isinstance(s["levels"], list) and len(s["levels"]) >= 2
    assert all(set(lv) == {"level", "files", "bytes"} for lv in s["levels"])
    assert [lv["level"] for lv in s["levels"]] == list(range(len(s["levels"])))
    for name in ("gets", "writes", "flushes", "memtable_bytes", "total_sst_bytes"):
        assert isinstance(s[name], int), name
    assert isinstance(s["write_amplification"], float)
    assert s["gets"] >= 1
    before = s["flushes"]
    db.flush()
    s2 = db.stats()
    assert s2["flushes"] == before + 1
    assert sum(lv["files"] for lv in s2["levels"]) >= 1
    assert s2["total_sst_bytes"] > 0


def _overlapped_db(path: str, read_triggered: bool) -> tuple[weir.DB, dict[bytes, bytes]]:
    """A store below level 0, then two level-0 files of rewrites spanning it."""
    db = weir.DB(
        path,
        write_buffer_size=1 << 20,
        level0_triggers=(8, 20, 36),
        read_triggered_compaction=read_triggered,
    )
    model = {f"k{i:06d}".encode(): f"v{i}".encode() * 8 for i in range(20000)}
    db.put_many(model)
    db.compact()
    for start in (0, 1):
        rewrite = {k: v + b"'" for k, v in list(model.items())[start::7]}
        db.put_many(rewrite)
        model.update(rewrite)
        db.flush()
    assert db.property("weir.num-files-at-level0") == "2"
    return db, model


def _seek_until_level0_empty(db: weir.DB, keys: list[bytes], seconds: float) -> None:
    it = db.iterator()
    deadline = time.monotonic() + seconds
    while db.property("weir.num-files-at-level0") != "0" and time.monotonic() < deadline:
        for k in keys[:: len(keys) // 1000 or 1]:
            assert it.seek(k) and it.key == k
            it.next()
    it.close()


@pytest.mark.parametrize("read_triggered", [True, False])
def test_read_triggered_compaction(tmp_path, read_triggered: bool) -> None:
    db, model = _overlapped_db(str(tmp_path / "db"), read_triggered)
    keys = sorted(model)
    # Seeks into two level-0 files and the level below: with the option on
    # they get the level-0 files compacted down; off, nothing moves.
    _seek_until_level0_empty(db, keys, 60.0 if read_triggered else 1.0)
    stats = db.stats()
    if read_triggered:
        assert db.property("weir.num-files-at-level0") == "0"
        assert stats["read_triggered_compactions"] >= 1
    else:
        assert db.property("weir.num-files-at-level0") == "2"
        assert stats["read_triggered_compactions"] == 0
    assert dict(db.items()) == model
    db.close()


def test_property(db: weir.DB) -> None:
    assert db.property("weir.num-files-at-level0") == "0"
    db.put(b"k", b"v")
    db.flush()
    assert db.property("weir.num-files-at-level0") == "1"
    assert "level 0" in db.property("weir.level-summary")
    assert db.property("weir.no-such-thing") is None
    assert db.property("") is None
    with pytest.raises(TypeError):
        db.property(b"weir.stats")


def test_compact_ranges(db: weir.DB) -> None:
    model = fill(db, 300)
    db.flush()
    db.compact(b"k0100", b"k0200")
    db.compact(start=b"k0250")
    db.compact(stop=b"k0010")
    db.compact()
    assert dict(db.items()) == model
    with pytest.raises(TypeError):
        db.compact(1)


def test_destroy(path: str) -> None:
    with weir.DB(path) as db:
        db.put(b"k", b"v")
        with pytest.raises(weir.BusyError):
            weir.destroy(path)
    weir.destroy(path)
    with weir.DB(path) as db:
        assert db.get(b"k") is None


def test_corruption_is_reported(path: str) -> None:
    with weir.DB(path, compression="none") as db:
        db.put_many((b"k%05d" % i, b"value-%05d" % i * 4) for i in range(2000))
        db.flush()
    tables = [f for f in os.listdir(path) if f.endswith(".sst")]
    assert tables
    table = os.path.join(path, tables[0])
    with open(table, "r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage\xff" * 8)
    with pytest.raises(weir.CorruptionError) as ei:
        with weir.DB(path) as db:
            db.get(b"k00001")
            list(db.items())
    assert ei.value.status == "WEIR_CORRUPTION"
    assert ".sst" in str(ei.value)


# ---- exceptions ------------------------------------------------------------


def test_exception_hierarchy() -> None:
    assert issubclass(weir.CorruptionError, weir.Error)
    assert issubclass(weir.StorageIOError, weir.Error)
    assert issubclass(weir.StorageIOError, OSError)
    assert issubclass(weir.NoSpaceError, weir.StorageIOError)
    assert issubclass(weir.BusyError, weir.Error)
    assert issubclass(weir.InvalidArgumentError, weir.Error)
    assert issubclass(weir.InvalidArgumentError, ValueError)
    assert issubclass(weir.ClosedError, weir.Error)
    assert issubclass(weir.Error, Exception)
    assert weir.Error("x").status is None
    assert weir.DB.__module__ == "weir"
    assert weir.Error.__module__ == "weir"


def test_version_and_build_info() -> None:
    assert weir.__version__ == weir.ENGINE_VERSION
    assert weir.__version__ in weir.build_info()
    assert weir.compression_supported("none")
    assert not weir.compression_supported("brotli")


# ---- threads ---------------------------------------------------------------


def test_threads_put_and_get_concurrently(db: weir.DB) -> None:
    errors: list[BaseException] = []

    def work(tid: int) -> None:
        try:
            for i in range(3000):
                k = b"t%d-%05d" % (tid, i)
                db.put(k, k * 3)
                if db.get(k) != k * 3:
                    raise AssertionError(k)
                if i % 500 == 0:
                    list(db.keys(prefix=b"t%d-" % tid))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(1 for _ in db.keys()) == 6 * 3000


def test_close_while_threads_are_busy(path: str) -> None:
    db = weir.DB(path, sync="none")
    fill(db, 500)
    started = threading.Barrier(5)
    outcome: list[str] = []

    def work(tid: int) -> None:
        started.wait()
        try:
            i = 0
            while True:
                db.put(b"t%d-%d" % (tid, i), b"v")
                db.get(b"k0001")
                db.get_many([b"k0001", b"k0002"])
                if i % 50 == 0:
                    for _ in db.items(prefix=b"k00"):
                        pass
                    with db.snapshot() as snap:
                        snap.get(b"k0003")
                        list(snap.keys(start=b"k0490"))
                    cursor = db.iterator()
                    cursor.seek(b"k0100")
                    cursor.next()
                    cursor.close()
                i += 1
        except weir.ClosedError:
            outcome.append("closed")
        except BaseException as e:
            outcome.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    started.wait()
    db.close()
    for t in threads:
        t.join()
    assert outcome == ["closed"] * 4


# ---- a random model test ---------------------------------------------------

KEYS = st.binary(min_size=0, max_size=3).map(lambda b: b.replace(b"\x02", b"\x01"))
VALUES = st.binary(max_size=20)


class DBModel(RuleBasedStateMachine):
    """Random operations against weir and a dict must agree, across flushes,
    compactions, batches, snapshots and reopening."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="weir-model-")
        self.db = weir.DB(self.dir, write_buffer_size=64 * 1024)
        self.model: dict[bytes, bytes] = {}
        self.snap: weir.Snapshot | None = None
        self.snap_model: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        if self.snap is not None:
            self.snap.release()
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(k=KEYS, v=VALUES)
    def put(self, k: bytes, v: bytes) -> None:
        self.db.put(k, v)
        self.model[k] = v

    @rule(k=KEYS)
    def delete(self, k: bytes) -> None:
        self.db.delete(k)
        self.model.pop(k, None)

    @rule(ops=st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=8))
    def batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        with self.db.write_batch() as wb:
            for k, v in ops:
                if v is None:
                    wb.delete(k)
                else:
                    wb.put(k, v)
        for k, v in ops:
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v

    @rule(k=KEYS)
    def get(self, k: bytes) -> None:
        assert self.db.get(k) == self.model.get(k)
        assert (k in self.db) == (k in self.model)

    @rule(
        prefix=st.none() | st.binary(max_size=2),
        start=st.none() | KEYS,
        stop=st.none() | KEYS,
        reverse=st.booleans(),
    )
    def scan(self, prefix, start, stop, reverse) -> None:
        got = list(self.db.items(prefix=prefix, start=start, stop=stop, reverse=reverse))
        want = [(k, self.model[k]) for k in expected(self.model, prefix, start, stop, reverse)]
        assert got == want

    @rule(k=KEYS)
    def cursor_seek(self, k: bytes) -> None:
        it = self.db.iterator()
        later = sorted(x for x in self.model if x >= k)
        assert it.seek(k) == bool(later)
        if later:
            assert it.key == later[0]
        earlier = sorted(x for x in self.model if x <= k)
        assert it.seek_for_prev(k) == bool(earlier)
        if earlier:
            assert it.key == earlier[-1]
        it.close()

    @rule()
    def flush(self) -> None:
        self.db.flush()

    @rule()
    def compact(self) -> None:
        self.db.compact()

    @rule()
    def reopen(self) -> None:
        if self.snap is not None:
            self.snap.release()
            self.snap = None
        self.db.close()
        self.db = weir.DB(self.dir, write_buffer_size=64 * 1024)

    @precondition(lambda self: self.snap is None)
    @rule()
    def take_snapshot(self) -> None:
        self.snap = self.db.snapshot()
        self.snap_model = dict(self.model)

    @precondition(lambda self: self.snap is not None)
    @rule()
    def check_snapshot(self) -> None:
        assert self.snap is not None
        assert dict(self.snap.items()) == self.snap_model
        self.snap.release()
        self.snap = None

    @invariant()
    def size_matches(self) -> None:
        assert sum(1 for _ in self.db.keys()) == len(self.model)


TestDBModel = DBModel.TestCase
TestDBModel.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
