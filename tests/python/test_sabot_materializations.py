"""weir.sabot.materializations: Sabot's dimension tables and analytical views.

From Sabot's materialization tests and engine: the engine's populate /
lookup ({column: [value]}) / contains / scan(limit) / enrich_batch /
num_rows / schema / version, the enums' values, the Python API's
operators (dim[key], key in dim, len, get, dim @ stream), list_names, and
FileNotFoundError / KeyError. weir adds: persistence across a reopen,
analytical views that really aggregate, refresh from the source file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest

from weir.materialize import LoadError, SchemaError
from weir.sabot._c import materialization_engine as engine_path
from weir.sabot.materializations import (
    AnalyticalViewAPI,
    DimensionTableView,
    EnrichedStream,
    Materialization,
    MaterializationBackend,
    MaterializationEngine,
    MaterializationError,
    MaterializationManager,
    PopulationStrategy,
    get_materialization_manager,
)

SECURITIES = {
    "security_id": ["SEC001", "SEC002", "SEC003", "SEC004", "SEC005"],
    "name": ["Apple Inc.", "Microsoft Corp.", "Google LLC", "Amazon.com Inc.", "Tesla Inc."],
    "ticker": ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"],
    "price": [150.25, 380.50, 145.75, 175.00, 250.00],
    "sector": ["Technology", "Technology", "Technology", "Consumer", "Automotive"],
}


@pytest.fixture
def arrow_file(tmp_path: Path) -> Path:
    path = tmp_path / "securities.arrow"
    feather.write_feather(pa.Table.from_pydict(SECURITIES), path, compression="zstd")
    return path


@pytest.fixture
def mgr() -> Any:
    m = MaterializationManager(default_backend="memory")
    yield m
    m.close()


def quotes() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "quote_id": [1, 2, 3, 4],
            "security_id": ["SEC001", "SEC002", "SEC999", "SEC003"],
            "price": [151.0, 381.0, 1.0, 146.0],
        }
    )


# ---- the engine --------------------------------------------------------------------------------


def test_enums_have_sabots_values() -> None:
    assert (MaterializationBackend.ROCKSDB.value, MaterializationBackend.TONBO.value) == (0, 1)
    assert MaterializationBackend.MEMORY.value == 2
    assert [s.value for s in PopulationStrategy] == [0, 1, 2, 3]
    assert engine_path.MaterializationManager is MaterializationEngine
    assert engine_path.Materialization is Materialization


def test_engine_dimension_table(arrow_file: Path) -> None:
    eng = MaterializationEngine(default_backend="memory")
    dim = eng.create_dimension_table(name="securities", key_column="security_id", backend="memory")
    assert dim.version() == 0 and dim.schema() is None
    with pytest.raises(MaterializationError, match="no data"):
        dim.build_index()
    with pytest.raises(MaterializationError, match="no data"):
        dim.scan()
    dim.populate_from_arrow_file(str(arrow_file))
    dim.build_index()
    assert dim.num_rows() == 5 and dim.version() == 1
    assert dim.lookup("SEC001") == {
        "security_id": ["SEC001"],
        "name": ["Apple Inc."],
        "ticker": ["AAPL"],
        "price": [150.25],
        "sector": ["Technology"],
    }
    assert dim.lookup("SEC999") is None
    assert dim.contains("SEC002") and not dim.contains("SEC999")
    assert dim.scan(limit=3).num_rows == 3
    assert dim.scan().num_rows == 5
    tech = dim.scan(filter_expr=pc.field("sector") == "Technology")
    assert tech.column("ticker").to_pylist() == ["AAPL", "MSFT", "GOOGL"]
    with pytest.raises(TypeError, match="Expression"):
        dim.scan(filter_expr="sector = 'Technology'")
    with pytest.raises(TypeError, match="limit"):
        dim.scan(limit="3")  # type: ignore[arg-type]
    assert eng.list_names() == ["securities"] and eng.has("securities")
    assert eng.get("securities") is dim
    eng.close()


def test_populate_replaces_and_update_upserts() -> None:
    eng = MaterializationEngine()
    dim = eng.create_dimension_table("d", "security_id")
    dim.populate_from_arrow_batch(pa.Table.from_pydict(SECURITIES).to_batches()[0])
    dim.populate_from_arrow_batch(
        pa.RecordBatch.from_pydict({k: v[:2] for k, v in SECURITIES.items()})
    )
    assert dim.num_rows() == 2  # replaced, as Sabot's populate does
    dim.update_batch([{**{k: v[4] for k, v in SECURITIES.items()}}])
    assert dim.num_rows() == 3 and dim.version() == 3
    with pytest.raises(TypeError):
        dim.populate_from_arrow_batch(None)
    with pytest.raises(SchemaError):
        dim.update_batch([{"security_id": "X"}])  # columns differ from the stored schema
    assert dim.num_rows() == 3
    eng.close()


def test_enrich_batch_is_a_left_join() -> None:
    eng = MaterializationEngine()
    dim = eng.create_dimension_table("d", "security_id")
    dim.populate_from_arrow_batch(pa.Table.from_pydict(SECURITIES))
    out = dim.enrich_batch(quotes(), "security_id")
    assert out.num_rows == 4
    got = out.to_pydict()
    assert got["name"] == ["Apple Inc.", "Microsoft Corp.", None, "Google LLC"]
    assert got["price"] == [151.0, 381.0, 1.0, 146.0]  # the stream's own column
    assert got["price_dim"] == [150.25, 380.5, None, 145.75]
    with pytest.raises(SchemaError, match="no column 'nope'"):
        dim.enrich_batch(quotes(), "nope")
    eng.close()


def test_missing_and_damaged_files(tmp_path: Path) -> None:
    eng = MaterializationEngine()
    dim = eng.create_dimension_table("d", "security_id")
    with pytest.raises(FileNotFoundError):
        dim.populate_from_arrow_file("/nonexistent/path/file.arrow")
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"not arrow")
    with pytest.raises(LoadError, match=r"bad\.arrow"):
        dim.populate_from_arrow_file(bad)
    assert dim.num_rows() == 0
    eng.close()


def test_bad_engine_arguments(tmp_path: Path) -> None:
    eng = MaterializationEngine()
    with pytest.raises(ValueError, match="backend must be"):
        eng.create_dimension_table("d", "k", backend="cassandra")
    with pytest.raises(TypeError):
        eng.create_dimension_table("d", "")
    with pytest.raises(ValueError, match="group_by"):
        eng.create_analytical_view("v", None, {"x": "sum"})
    with pytest.raises(ValueError, match="unknown aggregate"):
        eng.create_analytical_view("v", ["k"], {"x": "median"})
    with pytest.raises(MaterializationError, match="path"):
        eng.create_dimension_table("d", "k", backend="tonbo")
    with pytest.raises(ValueError):
        MaterializationEngine(default_backend="nope")
    assert MaterializationEngine(default_backend=1).default_backend is MaterializationBackend.TONBO
    eng.close()
    with pytest.raises(MaterializationError, match="closed"):
        eng.create_analytical_view("v", ["k"], {"x": "sum"})


# ---- the Python API ----------------------------------------------------------------------------


def test_dimension_table_view_operators(mgr: MaterializationManager, arrow_file: Path) -> None:
    dim = mgr.dimension_table(name="securities", source=str(arrow_file), key="security_id")
    assert isinstance(dim, DimensionTableView) and dim.name == "securities"
    assert dim["SEC001"]["name"] == "Apple Inc."
    row = dim["SEC001"]
    row["name"] = "changed"  # a copy: the table is unchanged
    assert dim.lookup("SEC001")["name"] == "Apple Inc."
    assert "SEC001" in dim and "SEC999" not in dim
    assert len(dim) == dim.num_rows() == 5
    assert dim.get("SEC999", {"name": "Not Found"}) == {"name": "Not Found"}
    with pytest.raises(KeyError, match="SEC999"):
        dim["SEC999"]
    assert [f.name for f in dim.schema()] == list(SECURITIES)
    assert dim.scan(limit=2).num_rows == 2
    assert sorted(dim) == SECURITIES["security_id"]
    assert dim._cython_mat.enrich_batch(quotes(), "security_id").num_rows == 4
    assert mgr.list_names() == ["securities"]
    assert mgr.get("securities") is dim and mgr.get("nope") is None


async def test_matmul_enriches_batches_records_and_streams(mgr: MaterializationManager) -> None:
    dim = mgr.dimension_table("sec", pa.Table.from_pydict(SECURITIES), key="security_id")
    only = quotes().drop_columns(["price"])
    assert (dim @ only).column("ticker").to_pylist() == ["AAPL", "MSFT", None, "GOOGL"]
    assert (dim @ {"security_id": "SEC005", "qty": 1})["ticker"] == "TSLA"
    stream = dim @ [{"security_id": "SEC002"}, {"security_id": "SEC004"}]
    assert isinstance(stream, EnrichedStream)
    assert [r["ticker"] for r in stream] == ["MSFT", "AMZN"]

    async def source() -> AsyncIterator[dict[str, Any]]:
        for sid in ("SEC003", "SEC001"):
            yield {"security_id": sid}

    assert [r["ticker"] async for r in dim @ source()] == ["GOOGL", "AAPL"]
    assert [r["ticker"] async for r in dim @ [{"security_id": "SEC001"}]] == ["AAPL"]
    with pytest.raises(TypeError):
        dim @ 5  # type: ignore[operator]


async def test_sources_of_a_dimension_table(mgr: MaterializationManager, tmp_path: Path) -> None:
    records = [{"id": i, "v": i * i} for i in range(3)]
    assert len(mgr.dimension_table("records", records, key="id")) == 3
    batches = [pa.RecordBatch.from_pylist(records[:2]), pa.RecordBatch.from_pylist(records[1:])]
    assert len(mgr.dimension_table("iterable", iter(batches), key="id")) == 3
    csv = tmp_path / "rows.csv"
    csv.write_text("id,v\n1,10\n2,20\n")
    assert mgr.dimension_table("csv", csv, key="id")[2]["v"] == 20
    empty = mgr.dimension_table("later", None, key="id")
    assert len(empty) == 0

    async def updates() -> AsyncIterator[dict[str, int]]:
        yield {"id": 9, "v": 81}

    assert await empty.aconsume(updates()) == 1
    assert empty[9] == {"id": 9, "v": 81}
    with pytest.raises(TypeError, match="async stream"):
        mgr.dimension_table("astream", updates(), key="id")
    assert mgr.get("astream") is None and "astream" not in mgr.list_names()
    with pytest.raises(TypeError, match="source must be"):
        mgr.dimension_table("bad", 42, key="id")
    with pytest.raises(FileNotFoundError):
        mgr.dimension_table("missing", tmp_path / "missing.arrow", key="id")


def test_analytical_views(mgr: MaterializationManager) -> None:
    trades = pa.table(
        {
            "sector": ["Tech", "Tech", "Finance", "Tech"],
            "volume": [100, 200, 50, 300],
            "price": [10.0, 20.0, 5.0, 30.0],
        }
    )
    view = mgr.analytical_view(
        "sector_metrics",
        source=trades,
        group_by=["sector"],
        aggregations={"volume": "sum", "price": "avg", "trades": "count"},
    )
    assert isinstance(view, AnalyticalViewAPI)
    assert len(view) == 2 and "Tech" in view
    assert view["Tech"] == {"volume": 600, "price": 20.0, "trades": 3}
    with pytest.raises(KeyError):
        view["Energy"]
    assert view.get("Energy") is None
    assert list(view) == [
        {"sector": "Finance", "volume": 50, "price": 5.0, "trades": 1},
        {"sector": "Tech", "volume": 600, "price": 20.0, "trades": 3},
    ]
    assert view[:1].num_rows == 1
    assert view.query(pc.field("volume") > 100).column("sector").to_pylist() == ["Tech"]
    assert view.update([{"sector": "Energy", "volume": 7, "price": 1.0}]) == 1
    assert view.consume([[{"sector": "Energy", "volume": 3, "price": 3.0}]]) == 1
    assert view["Energy"] == {"volume": 10, "price": 2.0, "trades": 2}
    assert view.to_arrow().num_rows == 3
    assert view.to_pandas().shape == (3, 4)
    mat = view._cython_mat
    assert mat.lookup("Energy") == {
        "sector": ["Energy"],
        "volume": [10],
        "price": [2.0],
        "trades": [2],
    }
    with pytest.raises(MaterializationError, match="analytical view"):
        mat.enrich_batch(quotes(), "sector")
    with pytest.raises(ValueError, match="view\\[:n\\]"):
        view[1:3]


def test_persistent_materializations_survive_a_reopen(arrow_file: Path, tmp_path: Path) -> None:
    with MaterializationManager(default_backend="tonbo", path=tmp_path / "db") as mgr:
        dim = mgr.dimension_table("securities", str(arrow_file), key="security_id")
        dim.update([{**{k: v[0] for k, v in SECURITIES.items()}, "price": 1.0}])
        view = mgr.analytical_view("by_sector", None, ["sector"], {"price": "max"})
        view.update(pa.Table.from_pydict(SECURITIES))
    with MaterializationManager(default_backend="weir", path=tmp_path / "db") as mgr:
        dim = mgr.dimension_table("securities", None, key="security_id")
        assert len(dim) == 5 and dim["SEC001"]["price"] == 1.0
        view = mgr.analytical_view("by_sector", None, ["sector"], {"price": "max"})
        assert view["Technology"] == {"price": 380.5}
    with MaterializationManager() as mgr:
        with pytest.raises(MaterializationError, match="path"):
            mgr.dimension_table("x", None, key="k", backend="rocksdb")


def test_memory_views_use_a_private_directory_removed_at_close() -> None:
    mgr = MaterializationManager()
    mgr.analytical_view("v", [{"k": "a", "n": 1}], ["k"], {"n": "sum"})
    scratch = mgr.engine._scratch_dir
    assert scratch is not None and Path(scratch).is_dir()
    mgr.close()
    assert not Path(scratch).exists()


def test_refresh_from_the_source_file(tmp_path: Path) -> None:
    path = tmp_path / "dim.arrow"
    feather.write_feather(pa.table({"id": [1], "v": ["one"]}), path)
    with MaterializationManager() as mgr:
        dim = mgr.dimension_table("d", str(path), key="id")
        feather.write_feather(pa.table({"id": [1, 2], "v": ["uno", "dos"]}), path)
        dim.refresh()
        assert dim[1]["v"] == "uno" and len(dim) == 2
        assert dim.materialization.version() == 2
        records = mgr.dimension_table("r", [{"id": 1}], key="id")
        with pytest.raises(MaterializationError, match="not populated from a file"):
            records.refresh()
        with pytest.raises(ValueError, match="file source"):
            mgr.dimension_table("x", [{"id": 1}], key="id", refresh_interval=1)
        with pytest.raises(ValueError, match="positive"):
            mgr.dimension_table("x", str(path), key="id", refresh_interval=0)


def test_refresh_interval_reloads_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "dim.arrow"
    feather.write_feather(pa.table({"id": [1], "v": ["old"]}), path)
    with MaterializationManager() as mgr:
        dim = mgr.dimension_table("d", str(path), key="id", refresh_interval=0.05)
        tmp = tmp_path / "new.arrow"
        feather.write_feather(pa.table({"id": [1], "v": ["new"]}), tmp)
        tmp.replace(path)
        deadline = time.monotonic() + 10
        while dim[1]["v"] != "new" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dim[1]["v"] == "new"
    version = dim.materialization.version()
    time.sleep(0.2)
    assert dim.materialization.version() == version  # stopped at close()


async def test_concurrent_lookups_during_refresh(tmp_path: Path) -> None:
    path = tmp_path / "dim.arrow"
    feather.write_feather(pa.table({"id": list(range(1000)), "v": list(range(1000))}), path)
    with MaterializationManager() as mgr:
        dim = mgr.dimension_table("d", str(path), key="id")

        def lookups() -> int:
            return sum(dim[i % 1000]["v"] == i % 1000 for i in range(5000))

        async def refreshes() -> None:
            for _ in range(10):
                await asyncio.to_thread(dim.refresh)

        ok, _ = await asyncio.gather(asyncio.to_thread(lookups), refreshes())
        assert ok == 5000


def test_manager_keeps_the_app_and_replaces_names() -> None:
    class App:
        pass

    app = App()
    mgr = get_materialization_manager(app)
    assert get_materialization_manager(app) is mgr and mgr.app is app
    first = mgr.dimension_table("n", [{"id": 1}], key="id")
    mgr.analytical_view("n", [{"id": 1, "x": 2}], ["id"], {"x": "sum"})
    assert isinstance(mgr.get("n"), AnalyticalViewAPI)
    assert mgr.list_names() == ["n"]
    with pytest.raises(TypeError):
        DimensionTableView(mgr.get("n")._cython_mat, "n")  # type: ignore[union-attr]
    assert first.name == "n"
    mgr.close()
