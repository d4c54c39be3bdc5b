"""weir.materialize: dimension tables, enrichment joins and aggregate views.

The seed's materialization scenario (securities dimension, trade
enrichment, sector metrics), its customer and daily-metrics examples, reload
after reopen, the index kept in sync through upserts and deletes, bad input,
and a property test against pyarrow's own join.
"""

from __future__ import annotations

import asyncio
import pathlib
import random
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pa_parquet
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weir
from weir.materialize import (
    AggregateView,
    DimensionTable,
    KeyTypeError,
    LoadError,
    NullKeyError,
    SchemaError,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

SECURITIES = pa.table(
    {
        "symbol": ["AAPL", "GOOGL", "JPM", "BAC"],
        "name": ["Apple Inc", "Alphabet Inc", "JPMorgan Chase", "Bank of America"],
        "sector": ["Technology", "Technology", "Finance", "Finance"],
        "exchange": ["NASDAQ", "NASDAQ", "NYSE", "NYSE"],
    }
)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[weir.DB]:
    d = weir.DB(tmp_path / "db")
    yield d
    d.close()


def reopen(db: weir.DB) -> weir.DB:
    path = db.path
    db.close()
    return weir.DB(path)


def seed_trades() -> pa.Table:
    """Trades whose sector totals are the seed's sector metrics:
    Technology 1,500,000 shares in 4,500 trades at $175.50 on average,
    Finance 890,000 shares in 3,200 trades at $45.25."""
    rows: list[dict[str, Any]] = []
    for i in range(4500):
        rows.append(
            {
                "symbol": "AAPL" if i % 3 else "GOOGL",
                "qty": 300 if i < 3000 else 400,
                "price": 170.0 if i % 2 else 181.0,
            }
        )
    for i in range(3200):
        rows.append(
            {
                "symbol": "JPM" if i % 2 else "BAC",
                "qty": 275 if i < 2700 else 295,
                "price": 40.0 if i % 4 < 2 else 50.5,
            }
        )
    random.Random(7).shuffle(rows)
    return pa.Table.from_pylist(rows)


def sector_view(db: weir.DB) -> AggregateView:
    return AggregateView(
        "sector_metrics",
        group_by=["sector"],
        aggregations={"volume": ("sum", "qty"), "trades": "count", "avg_price": ("mean", "price")},
        store=db,
    )


# ---- the seed's scenario ---------------------------------------------------


def test_seed_materialization_scenario(db: weir.DB) -> None:
    dim = DimensionTable("securities", key="symbol", store=db)
    assert dim.load(SECURITIES) == 4
    assert len(dim) == 4

    # The seed's three enriched trades.
    trades = pa.record_batch(
        {"symbol": ["AAPL", "JPM", "GOOGL"], "qty": [100, 50, 10], "price": [178.2, 151.1, 139.95]}
    )
    enriched = dim.enrich(trades, columns=["name", "sector"])
    assert enriched.schema.names == ["symbol", "qty", "price", "name", "sector"]
    assert [(r["symbol"], r["name"], r["sector"]) for r in enriched.to_pylist()] == [
        ("AAPL", "Apple Inc", "Technology"),
        ("JPM", "JPMorgan Chase", "Finance"),
        ("GOOGL", "Alphabet Inc", "Technology"),
    ]

    # The analytical view, fed with enriched trades in batches.
    view = sector_view(db)
    for batch in seed_trades().to_batches(max_chunksize=1000):
        view.update(dim.enrich(batch, columns=["sector"]))
    assert view["Technology"] == {"volume": 1_500_000, "trades": 4_500, "avg_price": 175.50}
    assert view["Finance"] == {"volume": 890_000, "trades": 3_200, "avg_price": 45.25}
    assert len(view) == 2

    # Both survive a restart.
    db2 = reopen(db)
    try:
        dim2 = DimensionTable("securities", key="symbol", store=db2)
        assert dim2["JPM"]["name"] == "JPMorgan Chase"
        view2 = sector_view(db2)
        table = view2.to_arrow()
        assert table.to_pylist() == [
            {"sector": "Finance", "volume": 890_000, "trades": 3_200, "avg_price": 45.25},
            {"sector": "Technology", "volume": 1_500_000, "trades": 4_500, "avg_price": 175.5},
        ]
        frame = view2.to_pandas()
        assert list(frame["sector"]) == ["Finance", "Technology"]
        assert list(frame["trades"]) == [3200, 4500]
    finally:
        db2.close()


def test_seed_example_runs(tmp_path: pathlib.Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "materialize.py"), "--db", str(tmp_path / "ex")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "Enriched AAPL: Apple Inc (Technology)" in out.stdout
    assert "Volume: 1,500,000" in out.stdout
    assert "Avg Price: $45.25" in out.stdout
    helped = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "materialize.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--db" in helped.stdout


def test_seed_customer_example(db: weir.DB) -> None:
    customers = DimensionTable("customers", key="customer_id", store=db)
    customers.upsert(
        {"customer_id": "C001", "name": "Acme Corp", "tier": "gold", "region": "US-WEST"}
    )
    customer = customers["C001"]
    assert (customer["name"], customer["tier"]) == ("Acme Corp", "gold")
    event = {"customer_id": "C001", "amount": 42.0}
    assert {**event, **customer}["region"] == "US-WEST"
    assert customers.enrich(event) == {
        "customer_id": "C001",
        "amount": 42.0,
        "name": "Acme Corp",
        "tier": "gold",
        "region": "US-WEST",
    }

    with pytest.raises(TypeError):
        customer["tier"] = "platinum"  # type: ignore[index]  # rows are read-only
    customer = dict(customer)
    customer["tier"] = "platinum"  # a copy: the table is unchanged until upserted
    assert customers["C001"]["tier"] == "gold"
    customers.upsert(customer)
    assert customers["C001"]["tier"] == "platinum"
    assert len(customers) == 1

    db2 = reopen(db)
    try:
        again = DimensionTable("customers", key="customer_id", store=db2)
        assert again["C001"]["tier"] == "platinum"
        assert again.get("C999") is None
    finally:
        db2.close()


def test_seed_daily_metrics_example(db: weir.DB) -> None:
    daily = AggregateView(
        "daily",
        group_by=["date", "metric"],
        aggregations={"total": ("sum", "value"), "count": "count", "avg": ("mean", "value")},
        store=db,
    )
    orders = [{"date": "2025-10-06", "metric": "revenue", "value": 277} for _ in range(449)]
    orders.append({"date": "2025-10-06", "metric": "revenue", "value": 125_000 - 449 * 277})
    orders += [{"date": "2025-10-07", "metric": "revenue", "value": 10}] * 3
    for i in range(0, len(orders), 100):
        daily.update(orders[i : i + 100])  # records, incrementally
    m = daily["2025-10-06", "revenue"]
    assert (m["total"], m["count"], round(m["avg"], 2)) == (125_000, 450, 277.78)
    assert daily.get(("2025-10-08", "revenue")) is None
    assert ("2025-10-07", "revenue") in daily
    assert list(daily) == [("2025-10-06", "revenue"), ("2025-10-07", "revenue")]


# ---- dimension tables --------------------------------------------------------


def test_int_keys_lookup_and_enrich(db: weir.DB) -> None:
    dim = DimensionTable("accounts", key="id", store=db)
    dim.upsert(
        pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int32()),
                "score": [0.5, 1.5, 2.5],
                "rank": pa.array([3, 2, 1], pa.int16()),
                "label": ["a", None, "c"],
            }
        )
    )
    assert dim.schema is not None and dim.schema.field("id").type == pa.int64()
    assert 2 in dim and 4 not in dim and "2" not in dim and 2**70 not in dim
    assert dim[3] == {"id": 3, "score": 2.5, "rank": 1, "label": "c"}
    with pytest.raises(KeyError):
        dim[4]
    assert dim.get(4, "none") == "none"

    probe = pa.record_batch({"id": pa.array([3, None, 9, 1], pa.uint8()), "x": [1, 2, 3, 4]})
    left = dim.enrich(probe)
    assert left.schema.field("rank").type == pa.int16()
    assert left.to_pylist() == [
        {"id": 3, "x": 1, "score": 2.5, "rank": 1, "label": "c"},
        {"id": None, "x": 2, "score": None, "rank": None, "label": None},
        {"id": 9, "x": 3, "score": None, "rank": None, "label": None},
        {"id": 1, "x": 4, "score": 0.5, "rank": 3, "label": "a"},
    ]
    inner = dim.enrich(probe, how="inner", columns=["label"])
    assert inner.to_pylist() == [{"id": 3, "x": 1, "label": "c"}, {"id": 1, "x": 4, "label": "a"}]
    # A table with several chunks comes back as a table.
    table = pa.Table.from_batches([probe, probe])
    assert dim.enrich(table, how="inner").num_rows == 4
    # Column clashes need a suffix.
    clash = pa.record_batch({"id": [1], "score": [9.0]})
    with pytest.raises(SchemaError, match="score"):
        dim.enrich(clash)
    assert dim.enrich(clash, suffix="_dim").column("score_dim").to_pylist() == [0.5]


def test_string_keys_large_strings_and_binary(db: weir.DB) -> None:
    dim = DimensionTable("words", key="w", store=db)
    words = [f"word-{i}-" + "x" * (i % 40) for i in range(2000)]
    dim.upsert(pa.table({"w": pa.array(words, pa.large_string()), "n": list(range(2000))}))
    assert all(w in dim for w in words[::37])
    assert "nope" not in dim and b"word-1-x" not in dim
    probe = pa.record_batch({"w": pa.array([words[5], "missing", words[1999]], pa.string())})
    assert dim.enrich(probe).column("n").to_pylist() == [5, None, 1999]
    dict_probe = pa.record_batch({"w": pa.array([words[7], words[7]]).dictionary_encode()})
    assert dim.enrich(dict_probe).column("n").to_pylist() == [7, 7]

    blobs = DimensionTable("blobs", key="k", store=db)
    blobs.upsert(pa.table({"k": pa.array([b"\x00a", b""], pa.binary()), "v": [1, 2]}))
    assert b"" in blobs and blobs[b"\x00a"]["v"] == 1
    assert blobs.enrich(pa.record_batch({"k": pa.array([b""], pa.binary())})).column(
        "v"
    ).to_pylist() == [2]


def test_upserts_and_deletes_keep_the_index_in_sync(db: weir.DB) -> None:
    rng = random.Random(11)
    dim = DimensionTable("sync", key="k", store=db)
    model: dict[int, int] = {}
    version = 0
    for _step in range(60):
        if rng.random() < 0.65 or not model:
            keys = [rng.randrange(400) for _ in range(rng.randrange(1, 80))]
            rows = []
            for k in keys:
                version += 1
                rows.append({"k": k, "v": version})
                model[k] = version
            dim.upsert(rows)
        else:
            keys = [*rng.sample(sorted(model), min(len(model), rng.randrange(1, 40))), 10_000]
            removed = dim.delete(keys)
            assert removed == len(keys) - 1
            for k in keys:
                model.pop(k, None)
        assert len(dim) == len(model)
    for k in range(401):
        assert (k in dim) == (k in model)
        assert dim.get(k, {}).get("v") == model.get(k)
    probe = pa.record_batch({"k": pa.array(range(401), pa.int64())})
    assert dim.enrich(probe).column("v").to_pylist() == [model.get(k) for k in range(401)]
    assert sorted(dim.to_arrow().to_pylist(), key=lambda r: r["k"]) == [
        {"k": k, "v": v} for k, v in sorted(model.items())
    ]
    del dim[next(iter(model))]
    model.pop(next(iter(model)))
    with pytest.raises(KeyError):
        del dim[10_000]

    db2 = reopen(db)
    try:
        again = DimensionTable("sync", key="k", store=db2)
        assert len(again) == len(model)
        assert again.enrich(probe).column("v").to_pylist() == [model.get(k) for k in range(401)]
        # Compaction drops replaced rows, is persisted, and keeps the content.
        again.compact()
        assert int(again._n_rows) == len(model)
        db3 = reopen(db2)
        try:
            third = DimensionTable("sync", key="k", store=db3)
            assert sorted(third.keys()) == sorted(model)
        finally:
            db3.close()
    finally:
        if not db2.closed:
            db2.close()


def test_automatic_compaction_bounds_garbage() -> None:
    dim = DimensionTable("hot", key="k")  # in memory only
    for i in range(30):
        dim.upsert(pa.table({"k": pa.array(range(1000), pa.int64()), "v": [i] * 1000}))
    assert len(dim) == 1000
    assert int(dim._n_rows) <= 6000
    assert set(dim.to_arrow().column("v").to_pylist()) == {29}


def test_stream_of_changes_and_enrich_streams(db: weir.DB) -> None:
    dim = DimensionTable("live", key="sym", store=db)
    changes = [
        ("upsert", {"sym": "A", "px": 1.0}),
        ("upsert", {"sym": "B", "px": 2.0}),
        ("delete", "A"),
        ("upsert", [{"sym": "C", "px": 3.0}, {"sym": "B", "px": 2.5}]),
        ("upsert", {"sym": "A", "px": 1.5}),
        ("delete", ["C"]),
    ]
    assert dim.apply(changes, batch_size=2) == 6
    assert sorted(dim.to_arrow().to_pylist(), key=lambda r: r["sym"]) == [
        {"sym": "A", "px": 1.5},
        {"sym": "B", "px": 2.5},
    ]
    with pytest.raises(ValueError, match="change 1: unknown operation 'merge'"):
        dim.apply([("upsert", {"sym": "D", "px": 4.0}), ("merge", {})])

    async def source() -> AsyncIterator[tuple[str, Any]]:
        yield ("upsert", {"sym": "E", "px": 5.0})
        yield ("delete", "B")

    assert asyncio.run(dim.apply_async(source())) == 2
    assert "E" in dim and "B" not in dim

    batches = [pa.record_batch({"sym": ["A", "B"]}), pa.record_batch({"sym": ["E"]})]
    out = list(dim @ batches)
    assert [b.column("px").to_pylist() for b in out] == [[1.5, None], [5.0]]
    assert (dim @ {"sym": "A", "q": 1}) == {"sym": "A", "q": 1, "px": 1.5}
    assert list(dim @ iter([{"sym": "Z"}])) == [{"sym": "Z", "px": None}]
    assert dim.enrich([{"sym": "Z"}, {"sym": "E"}], how="inner") == [{"sym": "E", "px": 5.0}]

    async def batches_async() -> AsyncIterator[pa.RecordBatch]:
        for b in batches:
            yield b

    async def collect() -> list[pa.RecordBatch]:
        return [b async for b in dim @ batches_async()]

    assert [b.num_rows for b in asyncio.run(collect())] == [2, 1]


def test_load_from_files_and_refresh(db: weir.DB, tmp_path: pathlib.Path) -> None:
    table = pa.table(
        {"id": pa.array(range(100), pa.int64()), "name": [f"n{i}" for i in range(100)]}
    )
    pa_parquet.write_table(table, tmp_path / "d.parquet")
    with pa_ipc.new_file(tmp_path / "d.arrow", table.schema) as w:
        w.write_table(table)
    with pa_ipc.new_stream(tmp_path / "d.arrows", table.schema) as w:
        w.write_table(table)
    pa_csv.write_csv(table, tmp_path / "d.csv")

    for name in ("d.parquet", "d.arrow", "d.arrows", "d.csv"):
        dim = DimensionTable(name.replace(".", "_"), key="id", store=db)
        assert dim.load(tmp_path / name) == 100
        assert dim.to_arrow().equals(table), name
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))
    dim = DimensionTable("from_reader", key="id", store=db)
    dim.load(reader)
    assert len(dim) == 100

    # A refresh swaps the whole content atomically.
    dim.load(table.slice(0, 10), replace=True)
    assert len(dim) == 10 and 50 not in dim
    db2 = reopen(db)
    try:
        assert len(DimensionTable("from_reader", key="id", store=db2)) == 10
    finally:
        db2.close()


def test_concurrent_enrich_and_upserts() -> None:
    dim = DimensionTable("conc", key="k")
    dim.upsert(pa.table({"k": pa.array(range(5000), pa.int64()), "v": list(range(5000))}))
    probe = pa.record_batch({"k": pa.array(range(0, 5000, 3), pa.int64())})
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                out = dim.enrich(probe).column("v").to_pylist()
                assert all(
                    v is not None and v % 5000 == k
                    for v, k in zip(out, range(0, 5000, 3), strict=True)
                )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(1, 40):
        ks = [(i * 97 + j) % 5000 for j in range(200)]
        dim.upsert([{"k": k, "v": k + 5000 * i} for k in ks])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(dim) == 5000


def test_index_memory_per_row() -> None:
    dim = DimensionTable("mem", key="k")
    dim.upsert(pa.table({"k": pa.array(range(100_000), pa.int64())}))
    assert dim.index_nbytes / len(dim) <= 43


# ---- bad input -----------------------------------------------------------------


def stored_state(dim: DimensionTable) -> list[dict[str, Any]]:
    return dim.to_arrow().to_pylist()


def test_missing_key_column(db: weir.DB) -> None:
    dim = DimensionTable("bad", key="id", store=db)
    with pytest.raises(SchemaError, match="'id' is missing") as e:
        dim.upsert(pa.table({"ident": [1]}))
    assert e.value.column == "id"
    assert dim.schema is None and db.get(b"__weir_materialize__/dim/bad/meta") is None
    dim.upsert(pa.table({"id": [1], "v": ["a"]}))
    with pytest.raises(SchemaError, match="'id' is missing"):
        dim.upsert(pa.table({"v": ["b"]}))
    with pytest.raises(SchemaError, match="no column 'id' to join on") as e2:
        dim.enrich(pa.record_batch({"ident": [1]}))
    assert e2.value.column == "id"
    with pytest.raises(SchemaError, match="no column 'ref' to join on"):
        dim.enrich(pa.record_batch({"ident": [1]}), on="ref")
    with pytest.raises(SchemaError, match="no column 'nope'"):
        dim.enrich(pa.record_batch({"id": [1]}), columns=["nope"])
    assert stored_state(dim) == [{"id": 1, "v": "a"}]


def test_key_type_mismatch(db: weir.DB) -> None:
    dim = DimensionTable("typed", key="id", store=db)
    dim.upsert(pa.table({"id": [1, 2], "v": ["a", "b"]}))
    with pytest.raises(KeyTypeError, match="'id' is string but dimension 'typed' has int64") as e:
        dim.enrich(pa.record_batch({"id": ["1"]}))
    assert e.value.column == "id"
    with pytest.raises(KeyTypeError, match="column 'id' is string, stored as int64"):
        dim.upsert(pa.table({"id": ["3"], "v": ["c"]}))
    with pytest.raises(KeyTypeError, match="does not fit"):
        dim.enrich(pa.record_batch({"id": pa.array([2**64 - 1], pa.uint64())}))
    with pytest.raises(KeyTypeError, match="'id'"):
        dim.enrich({"id": "1"})
    with pytest.raises(KeyTypeError, match="keys must be integers or strings"):
        DimensionTable("floaty", key="f", store=db).upsert(pa.table({"f": [1.5]}))
    with pytest.raises(SchemaError, match="column 'v' is int64, stored as string"):
        dim.upsert(pa.table({"id": [3], "v": [3]}))
    assert stored_state(dim) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_null_keys(db: weir.DB) -> None:
    dim = DimensionTable("nulls", key="id", store=db)
    dim.upsert(pa.table({"id": ["a"], "v": [1]}))
    with pytest.raises(NullKeyError, match="key column 'id' is null at row 2") as e:
        dim.upsert(pa.table({"id": ["b", "c", None], "v": [2, 3, 4]}))
    assert (e.value.column, e.value.row) == ("id", 2)
    with pytest.raises(NullKeyError):
        dim.delete(pa.array(["a", None]))
    with pytest.raises(NullKeyError):
        dim.load(pa.table({"id": [None, "z"], "v": [0, 0]}), replace=True)
    assert stored_state(dim) == [{"id": "a", "v": 1}]
    db2 = reopen(db)
    try:
        assert stored_state(DimensionTable("nulls", key="id", store=db2)) == [{"id": "a", "v": 1}]
    finally:
        db2.close()


def test_schema_change_on_reload(db: weir.DB) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    dim = DimensionTable("evolving", key="id", store=db, schema=schema)
    dim.upsert([{"id": 1, "v": "a"}])
    db2 = reopen(db)
    try:
        changed = pa.schema([("id", pa.int64()), ("v", pa.int32())])
        with pytest.raises(SchemaError, match="column 'v' is int32, stored as string") as e:
            DimensionTable("evolving", key="id", store=db2, schema=changed)
        assert e.value.column == "v"
        with pytest.raises(SchemaError, match="new column\\(s\\) 'w'"):
            DimensionTable(
                "evolving", key="id", store=db2, schema=schema.append(pa.field("w", pa.int8()))
            )
        with pytest.raises(SchemaError, match="stored with key column 'id', not 'v'"):
            DimensionTable("evolving", key="v", store=db2)
        same = DimensionTable("evolving", key="id", store=db2, schema=schema)
        assert stored_state(same) == [{"id": 1, "v": "a"}]
    finally:
        db2.close()


def test_csv_that_does_not_parse(db: weir.DB, tmp_path: pathlib.Path) -> None:
    dim = DimensionTable("csv", key="id", store=db)
    good = tmp_path / "good.csv"
    good.write_text("id,name,score\n1,a,0.5\n2,b,1.5\n")
    dim.load(good)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,name,score\n3,c,2.5\n4,d\n5,e,3.5\n")
    with pytest.raises(LoadError, match=r"ragged\.csv, line 3") as e:
        dim.load(ragged)
    assert e.value.line == 3
    badvalue = tmp_path / "badvalue.csv"
    badvalue.write_text("id,name,score\n3,c,2.5\n4,d,1.0\n5,e,lots\n")
    with pytest.raises(LoadError, match="line 4, column 'score'") as e2:
        dim.load(badvalue)
    assert (e2.value.line, e2.value.column) == (4, "score")
    assert stored_state(dim) == [
        {"id": 1, "name": "a", "score": 0.5},
        {"id": 2, "name": "b", "score": 1.5},
    ]
    with pytest.raises(ValueError, match="cannot tell the format"):
        dim.load(tmp_path / "x.bin")
    notparquet = tmp_path / "x.parquet"
    notparquet.write_bytes(b"not parquet at all")
    with pytest.raises(LoadError, match="cannot read as parquet"):
        dim.load(notparquet)
    assert len(dim) == 2


def test_bad_names_and_options(db: weir.DB) -> None:
    with pytest.raises(ValueError, match="without '/'"):
        DimensionTable("a/b", key="k", store=db)
    dim = DimensionTable("opts", key="k", store=db)
    with pytest.raises(SchemaError, match="no data"):
        dim.enrich(pa.record_batch({"k": [1]}))
    dim.upsert({"k": 1, "v": 2})
    with pytest.raises(ValueError, match="how must be"):
        dim.enrich(pa.record_batch({"k": [1]}), how="outer")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a pyarrow"):
        dim.upsert(42)
    with pytest.raises(ValueError, match="unknown aggregate 'median'"):
        AggregateView("v", ["k"], {"x": "median"}, store=db)


def test_empty_and_fully_deleted_dimension(db: weir.DB) -> None:
    dim = DimensionTable("gone", key="k", store=db)
    dim.upsert(pa.table({"k": [1, 2], "v": [1.0, 2.0], "s": ["a", "b"]}))
    dim.delete([1, 2])
    probe = pa.record_batch({"k": [1, 2, 3]})
    assert dim.enrich(probe).column("s").to_pylist() == [None, None, None]
    assert dim.enrich(probe, how="inner").num_rows == 0
    dim.clear()
    assert int(dim._n_rows) == 0
    assert dim.enrich(probe).column("v").to_pylist() == [None, None, None]
    assert dim.enrich(probe, how="inner").num_rows == 0
    assert dim.to_arrow().num_rows == 0
    dim.drop()
    assert dim.schema is None and not list(db.keys(prefix=b"__weir_materialize__/dim/gone/"))


def test_aggregate_view_bad_input_leaves_it_unchanged(db: weir.DB) -> None:
    view = AggregateView("v", ["g"], {"total": ("sum", "x"), "hi": ("max", "x")}, store=db)
    view.update(pa.table({"g": ["a", "a"], "x": [1, 5]}))
    with pytest.raises(SchemaError, match="group_by column 'g' is missing") as e:
        view.update(pa.table({"h": ["a"], "x": [1]}))
    assert e.value.column == "g"
    with pytest.raises(SchemaError, match="column 'x' is string; sum needs numbers"):
        view.update(pa.table({"g": ["a"], "x": ["1"]}))
    with pytest.raises(SchemaError, match="'x' is double but 'total' was stored from int"):
        view.update(pa.table({"g": ["a"], "x": [1.5]}))
    with pytest.raises(SchemaError, match="group_by column 'g' is int64, stored as string"):
        view.update(pa.table({"g": [1], "x": [1]}))
    assert view["a"] == {"total": 6, "hi": 5}
    db2 = reopen(db)
    try:
        with pytest.raises(SchemaError, match="cannot be reopened"):
            AggregateView("v", ["g"], {"total": ("sum", "x")}, store=db2)
        again = AggregateView("v", ["g"], {"total": ("sum", "x"), "hi": ("max", "x")}, store=db2)
        again.update({"g": "b", "x": None})
        assert again["b"] == {"total": None, "hi": None}
        assert again.to_arrow().to_pylist() == [
            {"g": "a", "total": 6, "hi": 5},
            {"g": "b", "total": None, "hi": None},
        ]
        again.clear()
        assert len(again) == 0
    finally:
        db2.close()


def test_to_pandas_without_pandas(db: weir.DB, monkeypatch: pytest.MonkeyPatch) -> None:
    view = AggregateView("p", "g", {"n": "count"}, store=db)
    view.update({"g": 1})
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        view.to_pandas()


# ---- property test: the same answer as pyarrow's join ----------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dim_keys=st.lists(st.integers(-50, 50), max_size=60),
    probe_keys=st.lists(st.one_of(st.none(), st.integers(-60, 60)), max_size=120),
    string_keys=st.booleans(),
    how=st.sampled_from(["left", "inner"]),
)
def test_enrich_matches_pyarrow_join(
    dim_keys: list[int], probe_keys: list[int | None], string_keys: bool, how: str
) -> None:
    def conv(k: int | None) -> Any:
        return None if k is None else (f"k{k}" if string_keys else k)

    rows = [{"k": conv(k), "v": i, "s": f"s{i}"} for i, k in enumerate(dim_keys)]
    dim = DimensionTable("prop", key="k")
    ktype = pa.string() if string_keys else pa.int64()
    schema = pa.schema([("k", ktype), ("v", pa.int64()), ("s", pa.string())])
    dim.upsert(pa.Table.from_pylist(rows, schema=schema))
    probe = pa.table(
        {
            "k": pa.array([conv(k) for k in probe_keys], ktype),
            "row": pa.array(range(len(probe_keys)), pa.int64()),
        }
    )
    got = dim.enrich(probe, how=how)  # type: ignore[arg-type]
    if len(dim):
        expected = probe.join(
            dim.to_arrow(), "k", join_type=f"{how} outer" if how == "left" else "inner"
        )
    else:
        expected = probe.append_column("v", pa.nulls(len(probe), pa.int64())).append_column(
            "s", pa.nulls(len(probe), pa.string())
        )
        if how == "inner":
            expected = expected.slice(0, 0)
    key = lambda r: r["row"]  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(
        expected.select(got.schema.names).to_pylist(), key=key
    )


@pytest.mark.parametrize("key_type", ["int64", "string"])
def test_threaded_probe_matches_single_threaded(key_type: str) -> None:
    rng = random.Random(5)
    n_dim, n_probe = 3000, 10_000

    def conv(k: int | None) -> Any:
        return None if k is None else (k if key_type == "int64" else f"key-{k}")

    ktype = pa.int64() if key_type == "int64" else pa.string()
    dim = DimensionTable("threads", key="k")
    dim.upsert(
        pa.table(
            {
                "k": pa.array([conv(i) for i in range(n_dim)], ktype),
                "v": pa.array(range(n_dim), pa.int32()),
                "s": [f"s{i}" for i in range(n_dim)],
            }
        )
    )
    keys = [
        None if rng.random() < 0.05 else rng.randrange(int(n_dim * 1.3)) for _ in range(n_probe)
    ]
    probe = pa.record_batch({"k": pa.array([conv(k) for k in keys], ktype)})
    for how in ("left", "inner"):
        single = dim.enrich(probe, how=how, threads=1)  # type: ignore[arg-type]
        expected = [
            (conv(k), k, f"s{k}") for k in keys if (k is not None and k < n_dim) or how == "left"
        ]
        expected = [
            (
                ck,
                v if v is not None and v < n_dim else None,
                s if v is not None and v < n_dim else None,
            )
            for ck, v, s in expected
        ]
        got = list(zip(*(single.column(c).to_pylist() for c in ("k", "v", "s")), strict=True))
        assert got == expected
        for threads in (2, 3, 8):
            assert dim.enrich(probe, how=how, threads=threads).equals(single)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads must be between 1 and 8"):
        dim.enrich(probe, threads=0)


def test_large_outputs_stay_valid_while_buffers_are_reused() -> None:
    dim = DimensionTable("big", key="k")
    dim.upsert(pa.table({"k": pa.array(range(1000), pa.int64()), "v": pa.array(range(1000))}))
    n = 700_000  # 5.6 MB per gathered int64 column: the large-buffer path
    probe = pa.record_batch({"k": pa.array([i % 1100 for i in range(n)], pa.int64())})
    first = dim.enrich(probe, threads=2)
    expected = first.column("v").to_pylist()
    assert expected[:3] == [0, 1, 2] and expected[1000] is None
    for _ in range(3):  # the outputs of later joins reuse freed buffers, never live ones
        again = dim.enrich(probe)
        assert again.equals(first)
        del again
    assert first.column("v").to_pylist() == expected


def test_string_index_grows_across_large_allocations() -> None:
    dim = DimensionTable("grow", key="k")
    total = 0
    for chunk in range(4):  # offsets and key bytes pass 4 MiB: the huge-page path
        keys = [f"key-{chunk}-{i}" for i in range(160_000)]
        dim.upsert(pa.table({"k": keys, "v": pa.array(range(total, total + len(keys)))}))
        total += len(keys)
    assert len(dim) == total
    assert dim.index_nbytes > 8 << 20
    probe = pa.record_batch({"k": ["key-0-0", "key-3-159999", "key-2-77", "nope"]})
    assert dim.enrich(probe).column("v").to_pylist() == [0, total - 1, 2 * 160_000 + 77, None]
    assert all(f"key-1-{i}" in dim for i in range(0, 160_000, 997))


def test_sliced_probe_batches() -> None:
    dim = DimensionTable("sliced", key="k")
    dim.upsert(pa.table({"k": ["a", "b", "c"], "v": [1, 2, 3], "s": ["x", "y", "z"]}))
    probe = pa.record_batch({"k": ["c", None, "b", "q", "a", "c", "b", "zz", "a"] * 3})
    for start, length in ((1, 7), (9, 9), (13, 14)):
        part = probe.slice(start, length)
        keys = part.column("k").to_pylist()
        rows = {"a": (1, "x"), "b": (2, "y"), "c": (3, "z")}
        got = dim.enrich(part)
        assert got.column("v").to_pylist() == [rows.get(k, (None,))[0] for k in keys]
        assert got.column("s").to_pylist() == [rows[k][1] if k in rows else None for k in keys]
        inner = dim.enrich(part, how="inner")
        assert inner.column("k").to_pylist() == [k for k in keys if k in rows]


@settings(max_examples=80, deadline=None)
@given(
    keys=st.lists(st.text(max_size=40), max_size=50, unique=True),
    extra=st.lists(st.text(max_size=40), max_size=30),
)
def test_any_text_keys_round_trip(keys: list[str], extra: list[str]) -> None:
    dim = DimensionTable("text", key="k")
    dim.upsert(pa.table({"k": pa.array(keys, pa.string()), "i": pa.array(range(len(keys)))}))
    position = {k: i for i, k in enumerate(keys)}
    probe = keys + extra
    got = dim.enrich(pa.record_batch({"k": pa.array(probe, pa.string())}))
    assert got.column("i").to_pylist() == [position.get(k) for k in probe]
    assert all((k in dim) == (k in position) for k in probe)
    half = keys[: len(keys) // 2]
    dim.delete(half)
    assert all((k in dim) == (k in position and k not in half) for k in probe)
