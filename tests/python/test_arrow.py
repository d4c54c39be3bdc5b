"""Arrow through the C Data Interface: DB.scan_arrow, DB.put_arrow,
DB.put_batch / DB.get_batch, read by pyarrow, polars and duckdb."""

from __future__ import annotations

import pathlib
import struct
import threading
from collections.abc import Iterator

import duckdb
import msgpack
import polars as pl
import pyarrow as pa
import pytest

import weir


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[weir.DB]:
    d = weir.DB(tmp_path / "db")
    yield d
    d.close()


def fill(db: weir.DB, n: int, prefix: bytes = b"k") -> dict[bytes, bytes]:
    rows = {prefix + b"%06d" % i: b"v" * (i % 17) + b"%d" % i for i in range(n)}
    db.put_many(rows)
    return rows


# ---- scan_arrow ----------------------------------------------------------------------


def test_scan_arrow_pyarrow_round_trip(db: weir.DB) -> None:
    rows = fill(db, 1000)
    reader = pa.RecordBatchReader.from_stream(db.scan_arrow(batch_size=300))
    assert reader.schema == pa.schema(
        [
            pa.field("key", pa.binary(), nullable=False),
            pa.field("value", pa.binary(), nullable=False),
        ]
    )
    batches = list(reader)
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    table = pa.Table.from_batches(batches)
    assert dict(zip(table["key"].to_pylist(), table["value"].to_pylist(), strict=True)) == rows
    assert table["key"].to_pylist() == sorted(rows)  # key order


def test_scan_arrow_bounds_and_prefix(db: weir.DB) -> None:
    fill(db, 50, b"a")
    fill(db, 50, b"b")
    assert pa.table(db.scan_arrow(prefix=b"b")).num_rows == 50
    t = pa.table(db.scan_arrow(start=b"a000045", stop=b"b000003"))
    assert t["key"].to_pylist() == [b"a%06d" % i for i in range(45, 50)] + [
        b"b%06d" % i for i in range(3)
    ]
    assert pa.table(db.scan_arrow(prefix=bytearray(b"zz"))).num_rows == 0
    empty = pa.table(db.scan_arrow(prefix=b"zz"))
    assert empty.schema.names == ["key", "value"]


def test_scan_arrow_large_binary(db: weir.DB) -> None:
    fill(db, 10)
    t = pa.table(db.scan_arrow(large=True))
    assert t.schema.field("value").type == pa.large_binary() and t.num_rows == 10


def test_scan_arrow_splits_batches_by_bytes(db: weir.DB) -> None:
    """32-bit offsets cannot overflow: a batch stops before 64 MiB of values."""
    big = b"x" * (24 << 20)
    db.put_many([(b"a", big), (b"b", big), (b"c", big)])
    batches = list(pa.RecordBatchReader.from_stream(db.scan_arrow()))
    assert [b.num_rows for b in batches] == [2, 1]
    assert all(len(v) == len(big) for b in batches for v in b["value"].to_pylist())


def test_scan_arrow_reads_one_point_in_time(db: weir.DB) -> None:
    fill(db, 10)
    scan = db.scan_arrow()
    db.put(b"k999999", b"later")
    db.delete(b"k000000")
    first = pa.table(scan)
    second = pa.table(scan)  # each export reads the same snapshot
    assert first.num_rows == second.num_rows == 10
    assert first["key"][0].as_py() == b"k000000"


def test_scan_arrow_polars_and_duckdb(db: weir.DB) -> None:
    rows = fill(db, 200)
    df = pl.DataFrame(db.scan_arrow(batch_size=64))
    assert df.shape == (200, 2) and df["key"].to_list() == sorted(rows)
    scan = db.scan_arrow()  # noqa: F841 - duckdb finds it by name
    got = duckdb.sql("select count(*), min(key), max(key) from scan").fetchall()
    assert got == [(200, b"k000000", b"k000199")]


def test_scan_arrow_from_another_thread(db: weir.DB) -> None:
    fill(db, 500)
    reader = pa.RecordBatchReader.from_stream(db.scan_arrow(batch_size=50))
    out: list[int] = []
    th = threading.Thread(target=lambda: out.append(reader.read_all().num_rows))
    th.start()
    th.join()
    assert out == [500]


def test_scan_arrow_closed(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db")
    fill(db, 100)
    scan = db.scan_arrow()
    scan.close()
    assert scan.closed
    with pytest.raises(weir.ClosedError):
        pa.table(scan)
    scan = db.scan_arrow(batch_size=10)
    reader = pa.RecordBatchReader.from_stream(scan)
    reader.read_next_batch()
    db.close()  # the stream's engine iterator is dropped before the engine closes
    with pytest.raises(OSError, match="closed while its Arrow stream"):
        reader.read_all()
    with pytest.raises(weir.ClosedError):
        pa.table(scan)
    with pytest.raises(weir.ClosedError):
        db.scan_arrow()


def test_scan_arrow_bad_arguments(db: weir.DB) -> None:
    with pytest.raises(weir.InvalidArgumentError, match="batch_size"):
        db.scan_arrow(batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        db.scan_arrow(batch_size="10")
    with pytest.raises(TypeError, match="prefix"):
        db.scan_arrow(prefix="str")
    with pytest.raises(TypeError, match="unexpected keyword"):
        db.scan_arrow(reverse=True)
    with pytest.raises(TypeError, match="positional"):
        db.scan_arrow(b"k")


# ---- put_arrow -----------------------------------------------------------------------


def test_put_arrow_raw_value_column(db: weir.DB) -> None:
    data = pa.table({"id": ["a", "b"], "payload": [b"\x00\x01", b""]})
    assert db.put_arrow(data, key="id", value_columns="payload") == 2
    assert db.get(b"a") == b"\x00\x01" and db.get(b"b") == b""
    strings = pa.record_batch({"key": pa.array(["x"], pa.large_string()), "v": ["hé"]})
    assert db.put_arrow(strings, value_columns="v") == 1  # key defaults to "key"
    assert db.get(b"x") == "hé".encode()


def test_put_arrow_msgpack_maps_of_every_type(db: weir.DB) -> None:
    data = pa.table(
        {
            "id": pa.array([b"r1", b"r2"], pa.large_binary()),
            "i8": pa.array([-128, None], pa.int8()),
            "i64": pa.array([-(2**63), 2**62], pa.int64()),
            "u64": pa.array([2**64 - 1, 0], pa.uint64()),
            "u16": pa.array([65535, 7], pa.uint16()),
            "f32": pa.array([1.5, None], pa.float32()),
            "f64": pa.array([-0.25, 1e300], pa.float64()),
            "b": pa.array([True, False]),
            "s": pa.array(["x" * 40, None]),
            "bin": pa.array([b"\xff" * 300, b""]),
        }
    )
    assert db.put_arrow(data, key="id") == 2  # value_columns=None: every other column
    r1 = msgpack.unpackb(db.get(b"r1"))
    assert r1 == {
        "i8": -128,
        "i64": -(2**63),
        "u64": 2**64 - 1,
        "u16": 65535,
        "f32": 1.5,
        "f64": -0.25,
        "b": True,
        "s": "x" * 40,
        "bin": b"\xff" * 300,
    }
    assert list(r1) == data.column_names[1:]  # column order kept
    r2 = msgpack.unpackb(db.get(b"r2"))
    assert r2["i8"] is None and r2["f32"] is None and r2["s"] is None and r2["f64"] == 1e300
    db.put_arrow(data, key="id", value_columns=["b"], key_prefix=b"p:")
    assert msgpack.unpackb(db.get(b"p:r2")) == {"b": False}


def test_put_arrow_integer_keys_sort_numerically(db: weir.DB) -> None:
    keys = [5, -1, 0, -(2**63), 2**63 - 1, 300]
    db.put_arrow(
        pa.table({"k": pa.array(keys, pa.int64()), "v": [str(k) for k in keys]}),
        key="k",
        value_columns="v",
    )
    assert [v.decode() for v in db.values()] == [str(k) for k in sorted(keys)]
    assert db.get((5 ^ (1 << 63)).to_bytes(8, "big")) == b"5"
    db.put_arrow(
        pa.table({"k": pa.array([7], pa.uint8()), "v": ["u"]}),
        key="k",
        value_columns="v",
        key_prefix=b"u",
    )
    assert db.get(b"u" + (7).to_bytes(8, "big")) == b"u"


def test_put_arrow_accepts_every_producer(db: weir.DB) -> None:
    table = pa.table({"key": [f"k{i}" for i in range(10)], "v": [f"{i}" for i in range(10)]})
    chunked = pa.concat_tables([table.slice(0, 3), table.slice(3)])
    assert chunked["key"].num_chunks == 2
    assert db.put_arrow(chunked, value_columns="v") == 10
    assert (
        db.put_arrow(table.to_batches()[0].slice(4, 3), value_columns="v", key_prefix=b"s") == 3
    )  # a sliced batch: offsets honoured
    assert sorted(db.keys(prefix=b"s")) == [b"sk4", b"sk5", b"sk6"]
    assert db.get(b"sk5") == b"5"
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert db.put_arrow(reader, value_columns="v", key_prefix=b"r") == 10
    # polars exports string_view / binary_view columns (inline and out-of-line strings).
    frame = pl.DataFrame(
        {
            "key": ["p", "q" * 20],
            "v": ["polars", "long value " * 5],
            "n": [1, 2],
            "b": [b"short", b"binary view " * 3],
        }
    )
    assert db.put_arrow(frame, value_columns="v") == 2
    assert db.get(b"p") == b"polars" and db.get(b"q" * 20) == b"long value " * 5
    assert db.put_arrow(frame, key_prefix=b"m:") == 2
    assert msgpack.unpackb(db.get(b"m:" + b"q" * 20)) == {
        "v": "long value " * 5,
        "n": 2,
        "b": b"binary view " * 3,
    }
    assert (
        db.put_arrow(
            pa.table({"key": pa.array([], pa.string()), "v": pa.array([], pa.string())}),
            value_columns="v",
        )
        == 0
    )


def test_put_arrow_scan_arrow_round_trip(db: weir.DB, tmp_path: pathlib.Path) -> None:
    rows = fill(db, 3000)
    with weir.DB(tmp_path / "copy") as copy:
        assert copy.put_arrow(db.scan_arrow(batch_size=1000), value_columns="value") == 3000
        assert dict(copy.items()) == rows


# ---- bad input: clear errors, and the data is unchanged --------------------------------


@pytest.fixture
def seeded(db: weir.DB) -> weir.DB:
    db.put(b"existing", b"before")
    return db


def unchanged(db: weir.DB) -> bool:
    return dict(db.items()) == {b"existing": b"before"}


def test_put_arrow_missing_key_column(seeded: weir.DB) -> None:
    data = pa.table({"id": ["existing"], "v": ["after"]})
    with pytest.raises(weir.InvalidArgumentError, match=r"no key column 'key'.*'id', 'v'"):
        seeded.put_arrow(data, value_columns="v")
    with pytest.raises(weir.InvalidArgumentError, match="no value column 'nope'"):
        seeded.put_arrow(data, key="id", value_columns=["v", "nope"])
    assert unchanged(seeded)


def test_put_arrow_wrong_column_types(seeded: weir.DB) -> None:
    data = pa.table(
        {
            "f": [1.5],
            "id": ["existing"],
            "ts": pa.array([0], pa.timestamp("us")),
            "n": [1],
            "lst": [[1, 2]],
        }
    )
    with pytest.raises(TypeError, match=r"key column 'f'.*float"):
        seeded.put_arrow(data, key="f", value_columns="id")
    with pytest.raises(TypeError, match="value column 'ts' has Arrow type timestamp"):
        seeded.put_arrow(data, key="id", value_columns=["ts"])
    with pytest.raises(TypeError, match="value column 'lst' has Arrow type list"):
        seeded.put_arrow(data.drop_columns(["ts"]), key="id")
    with pytest.raises(TypeError, match=r"value column 'n'.*value_columns=\['n'\]"):
        seeded.put_arrow(data, key="id", value_columns="n")
    with pytest.raises(TypeError, match="value_columns"):
        seeded.put_arrow(data, key="id", value_columns=5)
    # A dictionary column's format is its index type: it must not be read as one.
    coded = pa.table({"id": pa.array(["existing"]).dictionary_encode(), "v": ["after"]})
    with pytest.raises(TypeError, match="key column 'id' is dictionary-encoded"):
        seeded.put_arrow(coded, key="id", value_columns="v")
    coded = pa.table({"id": ["existing"], "v": pa.array(["after"]).dictionary_encode()})
    with pytest.raises(TypeError, match="value column 'v' is dictionary-encoded"):
        seeded.put_arrow(coded, key="id", value_columns=["v"])
    with pytest.raises(TypeError, match="key must be a column name"):
        seeded.put_arrow(data, key=1)
    assert unchanged(seeded)


def test_put_arrow_null_keys_and_values_write_nothing(seeded: weir.DB) -> None:
    good = pa.record_batch({"key": ["existing", "new1"], "v": ["after", "x"]})
    bad = pa.record_batch({"key": ["new2", None], "v": ["y", "z"]})
    reader = pa.RecordBatchReader.from_batches(good.schema, [good, bad])
    with pytest.raises(weir.InvalidArgumentError, match="key column 'key' is null at row 3"):
        seeded.put_arrow(reader, value_columns="v")
    null_value = pa.record_batch({"key": ["existing", "b"], "v": ["after", None]})
    with pytest.raises(weir.InvalidArgumentError, match="value column 'v' is null at row 1"):
        seeded.put_arrow(null_value, value_columns="v")
    assert unchanged(seeded)  # not even the first batch's rows


def test_put_arrow_not_arrow_and_closed(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db")
    with pytest.raises(TypeError, match=r"needs Arrow data.*dict"):
        db.put_arrow({"key": ["a"]})
    with pytest.raises(TypeError, match=r"needs Arrow data.*list"):
        db.put_arrow([1, 2])
    with pytest.raises(weir.InvalidArgumentError, match="not a table of columns"):
        db.put_arrow(pa.array(["a"]))
    db.close()
    with pytest.raises(weir.ClosedError):
        db.put_arrow(pa.table({"key": ["a"], "v": ["b"]}), value_columns="v")
    with pytest.raises(weir.ClosedError):
        db.put_batch(b"k", pa.record_batch({"a": [1]}))
    with pytest.raises(weir.ClosedError):
        db.get_batch(b"k")


def test_put_arrow_key_too_long(seeded: weir.DB) -> None:
    data = pa.table({"key": ["ok", "x" * (weir.MAX_KEY_SIZE + 1)], "v": ["1", "2"]})
    with pytest.raises(weir.InvalidArgumentError, match="row 1"):
        seeded.put_arrow(data, value_columns="v")
    assert unchanged(seeded)


# ---- put_batch / get_batch -------------------------------------------------------------


def test_put_batch_get_batch(db: weir.DB) -> None:
    batch = pa.record_batch(
        {
            "sym": ["AAPL", "JPM", None],
            "price": [175.5, 45.25, 1.0],
            "when": pa.array([1, 2, 3], pa.timestamp("ms")),
            "tags": [["a"], [], None],
        }
    )
    db.put_batch(b"trades:1", batch)
    got = db.get_batch(b"trades:1")
    assert isinstance(got, pa.RecordBatch) and got.equals(batch)
    assert db.get_batch(b"absent") is None
    table = pa.concat_tables([pa.table(batch), pa.table(batch)])
    db.put_batch(b"table", table)  # chunks combined into one batch
    assert db.get_batch(b"table").num_rows == 6
    db.put_batch(b"empty", batch.schema.empty_table())
    assert db.get_batch(b"empty").num_rows == 0
    db.put_batch(bytearray(b"ba"), batch, sync="fsync")
    assert db.get_batch(b"ba").equals(batch)


def test_get_batch_reads_without_copying(db: weir.DB) -> None:
    batch = pa.record_batch({"x": pa.array(range(1_000_000), pa.int64())})
    db.put_batch(b"big", batch)
    before = pa.total_allocated_bytes()
    got = db.get_batch(b"big")
    # The column's 8 MB live in the bytes the DB returned, not in a new Arrow allocation.
    assert pa.total_allocated_bytes() - before < 1 << 16
    assert got["x"][999_999].as_py() == 999_999


def test_put_batch_get_batch_bad_input(db: weir.DB) -> None:
    with pytest.raises(TypeError, match="record batch"):
        db.put_batch(b"k", {"a": [1]})
    db.put(b"raw", b"not arrow at all")
    with pytest.raises(weir.InvalidArgumentError, match="not an Arrow IPC record batch"):
        db.get_batch(b"raw")
    with pytest.raises(TypeError):
        db.put_batch("str key", pa.record_batch({"a": [1]}))


def test_scan_arrow_releases_its_snapshot(db: weir.DB) -> None:
    fill(db, 100)
    assert pa.table(db.scan_arrow()).num_rows == 100
    assert db.property("weir.num-snapshots") == "0"  # the temporary scan is gone
    with db.scan_arrow() as scan:
        reader = pa.RecordBatchReader.from_stream(scan)
        assert db.property("weir.num-snapshots") == "1"
    assert db.property("weir.num-snapshots") == "0"
    assert reader.read_all().num_rows == 100  # an exported stream reads on after close()
    del reader


def test_unconsumed_stream_outlives_the_db(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db")
    fill(db, 10)
    scan = db.scan_arrow()
    capsule = scan.__arrow_c_stream__()
    del scan
    db.close()  # invalidates the stream's iterator and the snapshot
    del capsule  # releasing it afterwards touches nothing of the closed engine
    again = weir.DB(tmp_path / "db")
    assert pa.table(again.scan_arrow()).num_rows == 10
    again.close()


class OnlyArray:
    """A producer with only __arrow_c_array__ (no stream)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return self.batch.__arrow_c_array__()


class OnlyStream:
    """A producer with only __arrow_c_stream__."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.table.__arrow_c_stream__()


def test_put_arrow_through_each_capsule_protocol(seeded: weir.DB) -> None:
    batch = pa.record_batch({"key": ["a", "b", "c"], "v": ["1", "2", "3"]})
    assert seeded.put_arrow(OnlyArray(batch.slice(1)), value_columns="v") == 2
    assert seeded.get(b"b") == b"2" and seeded.get(b"a") is None
    assert seeded.put_arrow(OnlyStream(pa.table(batch)), value_columns="v", key_prefix=b"s") == 3
    assert seeded.get(b"sc") == b"3"
    bad = pa.record_batch({"key": ["x", None], "v": ["1", "2"]})
    with pytest.raises(weir.InvalidArgumentError, match="null at row 1"):
        seeded.put_arrow(OnlyArray(bad), value_columns="v")
    assert seeded.get(b"x") is None


def test_put_arrow_malformed_view_is_an_error_not_a_crash(seeded: weir.DB) -> None:
    data = pa.py_buffer(b"x" * 20)

    def view(offset: int) -> pa.Array:
        # One 16-byte string view: length 16, prefix, buffer 0, offset.
        raw = struct.pack("<i4sii", 16, b"xxxx", 0, offset)
        return pa.Array.from_buffers(pa.string_view(), 1, [None, pa.py_buffer(raw), data])

    good = pa.RecordBatch.from_arrays([pa.array(["k"]), view(2)], names=["key", "v"])
    bad = pa.RecordBatch.from_arrays([pa.array(["k2"]), view(10)], names=["key", "v"])
    with pytest.raises(weir.InvalidArgumentError, match=r"column 'v' has a malformed .* at row 1"):
        seeded.put_arrow(pa.Table.from_batches([good, bad]), value_columns="v")
    assert unchanged(seeded)
    assert seeded.put_arrow(good, value_columns="v") == 1
    assert seeded.get(b"k") == b"x" * 16
