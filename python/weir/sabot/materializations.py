"""Sabot's materializations (dimension tables and analytical views) over
:mod:`weir.materialize`.

Two levels, as in Sabot:

- The engine: :class:`MaterializationEngine` (Sabot's Cython
  ``MaterializationManager(default_backend)``, also importable under that
  name from ``weir.sabot._c.materialization_engine``) makes
  :class:`Materialization` objects: ``populate_from_arrow_file`` /
  ``populate_from_arrow_batch``, ``lookup`` (a row as ``{column: [value]}``),
  ``contains``, ``scan(limit=...)`` (a RecordBatch), ``enrich_batch(batch,
  key)`` (a left join adding the dimension's columns), ``num_rows()``,
  ``schema()``, ``version()``.
- The Python API: :class:`MaterializationManager` with
  ``dimension_table(name, source, key, backend=...)``,
  ``analytical_view(name, source, group_by, aggregations)``, ``get`` and
  ``list_names``; a :class:`DimensionTableView` answers ``dim[key]`` (a
  row dict), ``key in dim``, ``len(dim)`` and ``dim @ stream``.

A dimension table is a :class:`weir.materialize.DimensionTable` (rows as
Arrow batches in memory with a C hash index over the key, joins in C); an
analytical view is a :class:`weir.materialize.AggregateView` (count, sum,
min, max, mean per group, kept with weir's merge operators). Backends:
``"memory"`` keeps a dimension in memory only (an analytical view in a
weir database in a private temporary directory, removed at ``close()``);
``"rocksdb"``, ``"tonbo"`` and ``"weir"`` persist it in the weir database
at the manager's ``path`` (required for them), so it is back after a
restart. The differences from Sabot's engine are in docs/SABOT.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.ipc as pa_ipc
    import pyarrow.parquet as pa_parquet
except ImportError as e:  # pragma: no cover - pyarrow is in the test extras
    raise ImportError(
        "weir.sabot.materializations needs pyarrow: pip install 'weirdb[arrow]' (or pyarrow)"
    ) from e

from .. import DB
from ..materialize import AggregateView, DimensionTable, LoadError

__all__ = [
    "AnalyticalViewAPI",
    "DimensionTableView",
    "EnrichedStream",
    "Materialization",
    "MaterializationBackend",
    "MaterializationEngine",
    "MaterializationError",
    "MaterializationManager",
    "PopulationStrategy",
    "get_materialization_manager",
]

log = logging.getLogger("weir.sabot.materializations")


class MaterializationBackend(Enum):
    """Where a materialization is kept (Sabot's values; ``WEIR`` is weir's).
    ROCKSDB, TONBO and WEIR all persist in the weir engine."""

    ROCKSDB = 0
    TONBO = 1
    MEMORY = 2
    WEIR = 3


class PopulationStrategy(Enum):
    """How a materialization is filled (Sabot's values): from a stream, a
    batch file, an operator's output or change data capture."""

    STREAM = 0
    BATCH = 1
    OPERATOR = 2
    CDC = 3


class MaterializationError(RuntimeError):
    """A materialization was used in a way its kind or state does not allow
    (scanning one with no data yet, joining on an analytical view...)."""


_BACKEND_NAMES = {
    "memory": MaterializationBackend.MEMORY,
    "rocksdb": MaterializationBackend.ROCKSDB,
    "tonbo": MaterializationBackend.TONBO,
    "weir": MaterializationBackend.WEIR,
}
_AGG_ALIASES = {"avg": "mean", "average": "mean"}


def _backend(value: Any) -> MaterializationBackend:
    if isinstance(value, MaterializationBackend):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return MaterializationBackend(value)
        except ValueError:
            pass
    elif isinstance(value, str) and value.lower() in _BACKEND_NAMES:
        return _BACKEND_NAMES[value.lower()]
    raise ValueError(
        f"backend must be one of {', '.join(map(repr, _BACKEND_NAMES))} "
        f"(or a MaterializationBackend), not {value!r}"
    )


def _file_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext in (".parquet", ".pq"):
        return "parquet"
    return "ipc"  # Sabot reads any other file as Arrow IPC


def _read_file(path: str) -> pa.Table:
    """A file's rows as a Table (for analytical views; dimension tables
    read files through DimensionTable.load)."""
    fmt = _file_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    try:
        if fmt == "csv":
            parse = pa_csv.ParseOptions(delimiter="\t") if path.lower().endswith(".tsv") else None
            return pa_csv.read_csv(path, parse_options=parse)
        if fmt == "parquet":
            return pa_parquet.read_table(path)
        with pa.memory_map(path) as source:
            try:
                return pa_ipc.open_file(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa_ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise LoadError(f"{path}: cannot read as {fmt}: {e}", path=path) from e


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_pylist([], schema=table.schema)


class Materialization:
    """One dimension table (``key_column`` given) or analytical view
    (``group_by`` and ``aggregations`` given), at the engine level.

    ``store`` is the weir database a persistent materialization lives in
    (a :class:`weir.DB`, or None to keep a dimension table in memory only).
    ``dimension`` / ``view`` give weir's object for everything else it does.
    """

    def __init__(
        self,
        name: str,
        backend_type: Any = MaterializationBackend.MEMORY,
        key_column: str | None = None,
        *,
        group_by: Iterable[str] | str | None = None,
        aggregations: Mapping[str, Any] | None = None,
        store: DB | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a materialization name must be a non-empty str, not {name!r}")
        self._name = name
        self._backend = _backend(backend_type)
        self._version = 0
        self._source: str | None = None
        self._lock = threading.RLock()
        self.dimension: DimensionTable | None = None
        self.view: AggregateView | None = None
        if key_column is not None:
            if group_by is not None or aggregations is not None:
                raise ValueError(
                    "a materialization is a dimension table (key_column) or an "
                    "analytical view (group_by, aggregations), not both"
                )
            self.dimension = DimensionTable(name, key_column, store=store)
        else:
            if not group_by or not aggregations:
                raise ValueError(
                    f"analytical view {name!r} needs group_by columns and aggregations "
                    "(e.g. group_by=['user_id'], aggregations={'amount': 'sum'})"
                )
            if store is None:
                raise TypeError("an analytical view needs a store (a weir.DB)")
            aggs = {
                out: (_AGG_ALIASES.get(spec, spec) if isinstance(spec, str) else spec)
                for out, spec in aggregations.items()
            }
            columns = group_by if isinstance(group_by, str) else list(group_by)
            self.view = AggregateView(name, columns, aggs, store=store)

    # ---- identity --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def backend(self) -> MaterializationBackend:
        return self._backend

    @property
    def key_column(self) -> str | None:
        return self.dimension.key if self.dimension is not None else None

    @property
    def is_dimension(self) -> bool:
        return self.dimension is not None

    def _dim(self, what: str) -> DimensionTable:
        if self.dimension is None:
            raise MaterializationError(
                f"{what} needs a dimension table; {self._name!r} is an analytical view"
            )
        return self.dimension

    # ---- population --------------------------------------------------------------------

    def populate_from_arrow_batch(self, batch: Any) -> None:
        """Replace a dimension's rows with ``batch`` (a RecordBatch or Table;
        also a record or a list of records), or fold it into a view."""
        if batch is None:
            raise TypeError("expected a pyarrow RecordBatch or Table, not None")
        with self._lock:
            if self.dimension is not None:
                self.dimension.replace(batch)
            else:
                assert self.view is not None
                self.view.update(batch)
            self._version += 1

    def populate_from_arrow_file(self, path: str | os.PathLike[str]) -> None:
        """Load an Arrow IPC file (Feather v2 included; also Parquet or CSV by
        extension): replaces a dimension's rows, or is folded into a view.
        FileNotFoundError if it is missing, LoadError if it does not parse."""
        spath = os.fspath(path)
        if not os.path.exists(spath):
            raise FileNotFoundError(f"Arrow file not found: {spath}")
        with self._lock:
            if self.dimension is not None:
                self.dimension.load(spath, format=_file_format(spath), replace=True)  # type: ignore[arg-type]
            else:
                assert self.view is not None
                self.view.update(_read_file(spath))
            self._source = spath
            self._version += 1

    def update_batch(self, batch: Any) -> None:
        """Upsert rows into a dimension by key (or fold them into a view)."""
        with self._lock:
            if self.dimension is not None:
                self.dimension.upsert(batch)
            else:
                assert self.view is not None
                self.view.update(batch)
            self._version += 1

    def refresh(self) -> None:
        """Reload from the file it was last populated from (a dimension's rows
        are replaced; a view is cleared and refolded)."""
        if self._source is None:
            raise MaterializationError(
                f"{self._name!r} was not populated from a file, so there is nothing to refresh from"
            )
        with self._lock:
            if self.view is not None:
                table = _read_file(self._source)
                self.view.clear()
                self.view.update(table)
                self._version += 1
            else:
                self.populate_from_arrow_file(self._source)

    def build_index(self) -> None:
        """Sabot builds its hash index here; weir's is kept up to date on every
        change, so this only checks there is data to index."""
        dim = self._dim("build_index")
        if dim.schema is None:
            raise MaterializationError(f"cannot index {self._name!r}: it holds no data yet")

    # ---- access ---------------------------------------------------------------------------

    def _row_lists(self, row: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {k: [v] for k, v in row.items()}

    def lookup(self, key: Any) -> dict[str, list[Any]] | None:
        """The row of ``key`` as ``{column: [value]}`` (Sabot's one-row
        ``to_pydict()``), or None. On a view, ``key`` is a group (a tuple for
        several group_by columns) and the row holds its aggregates."""
        if self.dimension is not None:
            row = self.dimension.get(key)
            return None if row is None else self._row_lists(row)
        assert self.view is not None
        aggs = self.view.get(key)
        if aggs is None:
            return None
        group = key if isinstance(key, tuple) else (key,)
        return self._row_lists({**dict(zip(self.view.group_by, group, strict=True)), **aggs})

    def contains(self, key: Any) -> bool:
        if self.dimension is not None:
            return key in self.dimension
        assert self.view is not None
        return key in self.view

    def to_arrow(self) -> pa.Table:
        """Every row as a Table (MaterializationError when there is no data yet)."""
        if self.dimension is not None:
            if self.dimension.schema is None:
                raise MaterializationError(f"{self._name!r} holds no data yet")
            return self.dimension.to_arrow()
        assert self.view is not None
        return self.view.to_arrow()

    def scan(self, filter_expr: Any = None, limit: int = -1) -> pa.RecordBatch:
        """The rows as one RecordBatch: those matching ``filter_expr`` (a
        ``pyarrow.compute.Expression``, e.g. ``pc.field("price") > 100``),
        at most ``limit`` (-1 or None: all)."""
        if limit is None:
            limit = -1
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        table = self.to_arrow()
        if filter_expr is not None:
            if not isinstance(filter_expr, pc.Expression):
                raise TypeError(
                    "filter_expr must be a pyarrow.compute.Expression (e.g. "
                    f"pc.field('price') > 100), not {type(filter_expr).__name__}"
                )
            table = table.filter(filter_expr)
        if limit >= 0:
            table = table.slice(0, limit)
        return _one_batch(table)

    def enrich_batch(self, stream_batch: Any, join_key: str) -> Any:
        """A left join of ``stream_batch`` (RecordBatch or Table) on its column
        ``join_key`` against the dimension's key: every stream row, with the
        dimension's other columns (null where the key is absent). A column
        the stream already has comes back with the suffix ``_dim``."""
        dim = self._dim("enrich_batch")
        return dim.enrich(stream_batch, on=join_key, how="left", suffix="_dim")

    def num_rows(self) -> int:
        if self.dimension is not None:
            return len(self.dimension)
        assert self.view is not None
        return len(self.view)

    def version(self) -> int:
        """How many times this materialization was (re)populated or updated."""
        return self._version

    def schema(self) -> pa.Schema | None:
        """The rows' Arrow schema (None for a dimension with no data yet)."""
        if self.dimension is not None:
            return self.dimension.schema
        return self.to_arrow().schema

    def close(self) -> None:
        if self.dimension is not None:
            self.dimension.close()
        if self.view is not None:
            self.view.close()

    def __repr__(self) -> str:
        kind = "dimension" if self.dimension is not None else "view"
        return f"<Materialization {self._name!r} {kind} {self._backend.name}>"


class MaterializationEngine:
    """Sabot's engine-level manager (its Cython ``MaterializationManager``).

    ``default_backend``: ``"memory"``, ``"rocksdb"``, ``"tonbo"`` or
    ``"weir"``. ``path``: the directory of the weir database that
    persistent materializations live in (required for those backends).
    """

    def __init__(
        self, default_backend: str = "memory", *, path: str | os.PathLike[str] | None = None
    ) -> None:
        self.default_backend = _backend(default_backend)
        self.path = None if path is None else Path(os.fspath(path))
        self._materializations: dict[str, Materialization] = {}
        self._db: DB | None = None
        self._scratch: DB | None = None
        self._scratch_dir: str | None = None
        self._closed = False

    def _store(self, backend: MaterializationBackend, kind: str) -> DB | None:
        if self._closed:
            raise MaterializationError("this materialization manager is closed")
        if backend is MaterializationBackend.MEMORY:
            if kind == "dimension":
                return None
            # weir's views live in a database: a private one, removed at close().
            if self._scratch is None:
                self._scratch_dir = tempfile.mkdtemp(prefix="weir-sabot-views-")
                self._scratch = DB(os.path.join(self._scratch_dir, "db"))
                weakref.finalize(self, _remove_scratch, self._scratch, self._scratch_dir)
            return self._scratch
        if self.path is None:
            raise MaterializationError(
                f"a {backend.name.lower()} materialization is kept in a weir database: "
                "give the manager a directory (path=...)"
            )
        if self._db is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = DB(str(self.path))
        return self._db

    def _register(self, mat: Materialization) -> Materialization:
        old = self._materializations.get(mat.name)
        if old is not None:
            old.close()
        self._materializations[mat.name] = mat
        return mat

    def create_dimension_table(
        self, name: str, key_column: str, backend: Any = None
    ) -> Materialization:
        """A dimension table ``name`` keyed by ``key_column`` (replacing any
        materialization of that name in this manager). A persistent one comes
        back with what was stored under ``name``."""
        if not isinstance(key_column, str) or not key_column:
            raise TypeError(f"key_column must be a non-empty str, not {key_column!r}")
        kind = self.default_backend if backend is None else _backend(backend)
        mat = Materialization(name, kind, key_column, store=self._store(kind, "dimension"))
        return self._register(mat)

    def create_analytical_view(
        self,
        name: str,
        group_by_keys: Iterable[str] | str | None = None,
        aggregations: Mapping[str, Any] | None = None,
        backend: Any = None,
    ) -> Materialization:
        """An analytical view: per group of ``group_by_keys``, the
        ``aggregations`` (output column -> ``"count"``, ``"sum"``, ``"min"``,
        ``"max"``, ``"mean"``/``"avg"``, or ``(aggregate, column)``)."""
        kind = self.default_backend if backend is None else _backend(backend)
        mat = Materialization(
            name,
            kind,
            group_by=group_by_keys,
            aggregations=aggregations,
            store=self._store(kind, "view"),
        )
        return self._register(mat)

    def get(self, name: str) -> Materialization | None:
        return self._materializations.get(name)

    def has(self, name: str) -> bool:
        return name in self._materializations

    def list_names(self) -> list[str]:
        return list(self._materializations)

    def close(self) -> None:
        """Close every materialization and the databases this manager opened."""
        if self._closed:
            return
        self._closed = True
        for mat in self._materializations.values():
            mat.close()
        if self._db is not None:
            self._db.close()
        if self._scratch is not None:
            _remove_scratch(self._scratch, self._scratch_dir)
            self._scratch = None


def _remove_scratch(db: DB, directory: str | None) -> None:
    if not db.closed:
        db.close()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


# ---- the Python API -------------------------------------------------------------------------


def _populate(mat: Materialization, source: Any) -> None:
    """Fill a new materialization from ``source`` (see dimension_table)."""
    if source is None:
        return
    if isinstance(source, str | os.PathLike):
        mat.populate_from_arrow_file(source)
    elif isinstance(source, pa.RecordBatchReader):
        mat.populate_from_arrow_batch(source.read_all())
    elif isinstance(source, pa.Table | pa.RecordBatch | Mapping | list):
        mat.populate_from_arrow_batch(source)
    elif isinstance(source, AsyncIterable):
        raise TypeError(
            "an async stream cannot be read here; create the materialization without a source "
            "and feed it with `await view.aconsume(stream)`"
        )
    elif isinstance(source, Iterable) and not isinstance(source, str | bytes):
        for item in source:
            mat.update_batch(item)
    else:
        raise TypeError(
            "source must be a file path, pyarrow data, a record, a list of records or an "
            f"iterable of them, not {type(source).__name__}"
        )


class EnrichedStream:
    """``dim @ stream`` for a stream: iterate it (``for``, or ``async for``
    over an async stream) to get each item enriched by the dimension (a
    left join on the key column: batches, tables and records alike)."""

    def __init__(self, dim: DimensionTable, stream: Any, dim_name: str) -> None:
        self._dim = dim
        self._stream = stream
        self.dim_name = dim_name

    def __iter__(self) -> Iterator[Any]:
        if not isinstance(self._stream, Iterable):
            raise TypeError(f"{type(self._stream).__name__} is not iterable; use async for")
        return self._dim.enrich_stream(self._stream)

    def __aiter__(self) -> AsyncIterator[Any]:
        if isinstance(self._stream, AsyncIterable):
            return self._dim.aenrich_stream(self._stream)
        return self._dim.aenrich_stream(_as_async(self._stream))


async def _as_async(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class DimensionTableView:
    """A dimension table with Sabot's operators: ``dim[key]`` (the row as a
    dict; KeyError if absent), ``key in dim``, ``len(dim)``, ``dim @ x``
    (``x`` a batch, table or record: enriched now; a stream: an
    :class:`EnrichedStream`)."""

    def __init__(self, cython_mat: Materialization, name: str) -> None:
        if cython_mat.dimension is None:
            raise TypeError(f"{name!r} is not a dimension table")
        #: the engine-level materialization (Sabot's attribute name)
        self._cython_mat = cython_mat
        self.name = name

    @property
    def materialization(self) -> Materialization:
        return self._cython_mat

    @property
    def dimension(self) -> DimensionTable:
        """weir's :class:`~weir.materialize.DimensionTable` underneath."""
        dim = self._cython_mat.dimension
        assert dim is not None
        return dim

    def __getitem__(self, key: Any) -> dict[str, Any]:
        try:
            return dict(self.dimension[key])
        except KeyError:
            raise KeyError(f"key {key!r} not found in dimension table {self.name!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.dimension

    def __len__(self) -> int:
        return len(self.dimension)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.dimension)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, pa.RecordBatch | pa.Table | Mapping):
            return self.dimension.enrich(other)
        if isinstance(other, Iterable | AsyncIterable) and not isinstance(other, str | bytes):
            return EnrichedStream(self.dimension, other, self.name)
        return NotImplemented

    def lookup(self, key: Any) -> dict[str, Any]:
        """``self[key]``."""
        return self[key]

    def get(self, key: Any, default: Any = None) -> Any:
        row = self.dimension.get(key)
        return default if row is None else dict(row)

    def refresh(self) -> None:
        self._cython_mat.refresh()

    def num_rows(self) -> int:
        return len(self.dimension)

    def schema(self) -> pa.Schema | None:
        return self._cython_mat.schema()

    def scan(self, limit: int | None = None) -> pa.RecordBatch:
        return self._cython_mat.scan(limit=limit if limit else -1)

    def enrich_batch(self, batch: Any, key: str) -> Any:
        return self._cython_mat.enrich_batch(batch, key)

    def populate_from_arrow_file(self, path: str | os.PathLike[str]) -> None:
        self._cython_mat.populate_from_arrow_file(path)

    def update(self, data: Any) -> None:
        """Upsert rows by key."""
        self._cython_mat.update_batch(data)

    async def aconsume(self, stream: AsyncIterable[Any]) -> int:
        """Upsert every item (batch, table, record, list of records) of an
        async stream; returns how many items were applied."""
        n = 0
        async for item in stream:
            self._cython_mat.update_batch(item)
            n += 1
        return n

    def to_arrow(self) -> pa.Table:
        return self._cython_mat.to_arrow()

    def __repr__(self) -> str:
        return f"<DimensionTableView {self.name!r} rows={len(self)}>"


class AnalyticalViewAPI:
    """An analytical view: iterate it for row dicts (group columns and
    aggregates), ``len`` counts groups, ``view[group]`` is a group's
    aggregates (KeyError if absent), ``view[:n]`` the first ``n`` rows."""

    def __init__(self, cython_mat: Materialization, name: str) -> None:
        if cython_mat.view is None:
            raise TypeError(f"{name!r} is not an analytical view")
        self._cython_mat = cython_mat
        self.name = name

    @property
    def view(self) -> AggregateView:
        """weir's :class:`~weir.materialize.AggregateView` underneath."""
        view = self._cython_mat.view
        assert view is not None
        return view

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.view.to_arrow().to_pylist()

    def __len__(self) -> int:
        return len(self.view)

    def __contains__(self, group: object) -> bool:
        return group in self.view

    def __getitem__(self, key_or_slice: Any) -> Any:
        if isinstance(key_or_slice, slice):
            if key_or_slice.start not in (None, 0) or key_or_slice.step not in (None, 1):
                raise ValueError("only view[:n] slices are supported")
            return self.scan(limit=key_or_slice.stop)
        return self.view[key_or_slice]

    def get(self, group: Any, default: Any = None) -> Any:
        return self.view.get(group, default)

    def scan(self, limit: int | None = None) -> pa.RecordBatch:
        return self._cython_mat.scan(limit=limit if limit is not None else -1)

    def query(self, filter_expr: Any) -> pa.RecordBatch:
        """The rows matching a ``pyarrow.compute.Expression``."""
        return self._cython_mat.scan(filter_expr=filter_expr)

    def update(self, data: Any) -> int:
        """Fold rows (batch, table, record or list of records) into the view."""
        n = self.view.update(data)
        self._cython_mat._version += 1
        return n

    def consume(self, stream: Iterable[Any]) -> int:
        return sum(self.update(item) for item in stream)

    async def aconsume(self, stream: AsyncIterable[Any]) -> int:
        total = 0
        async for item in stream:
            total += self.update(item)
        return total

    def to_pandas(self) -> Any:
        return self.view.to_pandas()

    def to_arrow(self) -> pa.Table:
        return self.view.to_arrow()

    def __repr__(self) -> str:
        return f"<AnalyticalViewAPI {self.name!r} groups={len(self)}>"


class MaterializationManager:
    """Dimension tables and analytical views (Sabot's Python API).

    ``app`` is kept as ``self.app`` for Sabot code that passes its App
    (nothing else uses it); ``default_backend`` is used when a call names
    none; ``path`` is the directory of the weir database that persistent
    (``rocksdb``/``tonbo``/``weir``) materializations are kept in.
    """

    def __init__(
        self,
        app: Any = None,
        default_backend: str = "memory",
        *,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.default_backend = default_backend
        self._engine = MaterializationEngine(default_backend, path=path)
        self._dim_tables: dict[str, DimensionTableView] = {}
        self._analytical_views: dict[str, AnalyticalViewAPI] = {}
        self._refreshers: list[tuple[threading.Event, threading.Thread]] = []

    @property
    def engine(self) -> MaterializationEngine:
        return self._engine

    def dimension_table(
        self,
        name: str,
        source: Any,
        key: str,
        backend: str | None = None,
        refresh_interval: float | None = None,
    ) -> DimensionTableView:
        """A dimension table ``name`` keyed by column ``key``.

        ``source``: a file (Arrow IPC / Feather, Parquet or CSV by extension),
        pyarrow data, a record or a list of records (the table's content:
        a persistent table's stored rows are replaced), an iterable of those
        (upserted one after another), or None (fill it later with
        ``update`` / ``aconsume``). A file source is reloaded every
        ``refresh_interval`` seconds when that is given.
        """
        if refresh_interval is not None:
            if isinstance(refresh_interval, bool) or not isinstance(refresh_interval, int | float):
                raise TypeError("refresh_interval must be a number of seconds or None")
            if not refresh_interval > 0:
                raise ValueError(f"refresh_interval must be positive, not {refresh_interval}")
            if not isinstance(source, str | os.PathLike):
                raise ValueError("refresh_interval needs a file source to reload")
        mat = self._engine.create_dimension_table(name, key, backend)
        try:
            _populate(mat, source)
        except BaseException:
            mat.close()
            self._engine._materializations.pop(name, None)
            raise
        view = DimensionTableView(mat, name)
        self._analytical_views.pop(name, None)
        self._dim_tables[name] = view
        if refresh_interval is not None:
            self._start_refresher(mat, float(refresh_interval))
        return view

    def analytical_view(
        self,
        name: str,
        source: Any = None,
        group_by: list[str] | str | None = None,
        aggregations: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> AnalyticalViewAPI:
        """An analytical view ``name``: per group of ``group_by``, the
        ``aggregations`` (Sabot's form ``{column: "sum"}``, or weir's
        ``{output: ("sum", column)}``; ``count``, ``sum``, ``min``, ``max``,
        ``mean``/``avg``). ``source`` as for :meth:`dimension_table`."""
        mat = self._engine.create_analytical_view(name, group_by, aggregations, backend)
        try:
            _populate(mat, source)
        except BaseException:
            mat.close()
            self._engine._materializations.pop(name, None)
            raise
        view = AnalyticalViewAPI(mat, name)
        self._dim_tables.pop(name, None)
        self._analytical_views[name] = view
        return view

    def get(self, name: str) -> DimensionTableView | AnalyticalViewAPI | None:
        return self._dim_tables.get(name) or self._analytical_views.get(name)

    def list_names(self) -> list[str]:
        return self._engine.list_names()

    def _start_refresher(self, mat: Materialization, interval: float) -> None:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    mat.refresh()
                except Exception:
                    log.exception("refreshing %r from %s failed", mat.name, mat._source)

        thread = threading.Thread(target=run, name=f"weir.sabot refresh {mat.name}", daemon=True)
        thread.start()
        self._refreshers.append((stop, thread))

    def close(self) -> None:
        """Stop refreshes and close every materialization and database."""
        for stop, _ in self._refreshers:
            stop.set()
        for _, thread in self._refreshers:
            thread.join()
        self._refreshers.clear()
        self._engine.close()

    def __enter__(self) -> MaterializationManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_materialization_manager(
    app: Any, default_backend: str = "memory"
) -> MaterializationManager:
    """The materialization manager kept on ``app`` (made on first call)."""
    mgr = getattr(app, "_weir_sabot_materializations", None)
    if mgr is None:
        mgr = MaterializationManager(app, default_backend)
        app._weir_sabot_materializations = mgr
    return mgr
