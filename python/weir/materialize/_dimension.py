"""DimensionTable: a keyed table held in memory as Arrow record batches,
with a C hash index over the key column (``weir._enrich``) for lookups and
enrichment joins, persisted as an Arrow IPC log in a weir DB so it is
rebuilt on restart. See docs/MATERIALIZE.md."""

from __future__ import annotations

import json
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Literal

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.ipc as pa_ipc
    import pyarrow.parquet as pa_parquet
except ImportError as e:  # pragma: no cover - pyarrow is in the test extras
    raise ImportError(
        "weir.materialize needs pyarrow: pip install 'weirdb[arrow]' (or pyarrow)"
    ) from e


from .. import WriteBatch
from .._enrich import KeyIndex
from ._common import (
    _BLOCK,
    _BLOCK_BITS,
    _CPUS,
    _ENTRY_ROWS,
    _FORMAT,
    _MAX_THREADS,
    _ROOT,
    _ROWS_PER_THREAD,
    KeyTypeError,
    LoadError,
    NullKeyError,
    PathLike,
    SchemaError,
    Store,
    _as_table,
    _check_name,
    _describe_differences,
    _first_problem_column,
    _ipc_bytes,
    _ipc_read,
    _is_int_type,
    _is_str_type,
    _open_store,
    _prefix_end,
    _read_csv,
    _ReadOnly,
    _RWLock,
    _schema_from_text,
    _schema_to_text,
    _widening_ok,
)

__all__ = ["DimensionTable"]


class DimensionTable(KeyIndex):
    """A keyed table held in memory for lookups and enrichment joins,
    persisted in weir.

    ``DimensionTable(name, key="symbol", store=db)`` reloads what was stored
    under ``name`` (a ``weir.DB``, or a path to open one; ``None`` keeps the
    table in memory only). Rows are upserted by key: a later row replaces
    the earlier one with the same key. ``key in dim`` and ``len(dim)`` are
    answered by the C index directly.
    """

    def __init__(
        self,
        name: str,
        key: str,
        *,
        store: Store | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        self._name = name
        self._prefix = _ROOT + b"dim/" + _check_name("DimensionTable", name) + b"/"
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a column name, not {key!r}")
        self._key = key
        self._db, self._owns_db = _open_store(store)
        self._schema: pa.Schema | None = None
        self._batches: list[pa.RecordBatch] = []
        self._chunked: pa.Table | None = None
        self._combined: pa.Table | None = None
        self._blocks: dict[int, list[dict[str, Any]]] = {}
        self._next_seq = 0
        self._log_entries = 0
        self._lock = _RWLock()
        # Odd while rows are being renumbered (compaction, replace); the
        # lock-free single-key lookups check it to notice they raced one.
        self._generation = 0
        try:
            self._reload(schema)
        except BaseException:
            self.close()
            raise

    # ---- persistence -------------------------------------------------------

    def _meta_key(self) -> bytes:
        return self._prefix + b"meta"

    def _log_prefix(self) -> bytes:
        return self._prefix + b"log/"

    def _reload(self, schema: pa.Schema | None) -> None:
        if schema is not None:
            self._check_new_schema(schema)
            i = schema.get_field_index(self._key)
            t = schema.field(i).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if _is_int_type(t):
                t = pa.int64()
            schema = schema.set(i, schema.field(i).with_type(t))
        if self._db is None:
            self._schema = schema
            return
        raw = self._db.get(self._meta_key())
        if raw is None:
            self._schema = schema
            return
        meta = json.loads(raw)
        if meta.get("format") != _FORMAT:
            raise SchemaError(
                f"dimension {self._name!r} was stored in format {meta.get('format')}, "
                f"this weir reads format {_FORMAT}"
            )
        if meta["key"] != self._key:
            raise SchemaError(
                f"dimension {self._name!r} was stored with key column {meta['key']!r}, "
                f"not {self._key!r}",
                column=self._key,
            )
        stored = _schema_from_text(meta["schema"])
        if schema is not None and not schema.equals(stored):
            raise SchemaError(
                f"dimension {self._name!r}: the schema changed since it was stored: "
                + _describe_differences(stored, schema),
                column=_first_problem_column(stored, schema),
            )
        self._schema = stored
        for k, v in self._db.items(prefix=self._log_prefix()):
            seq = int.from_bytes(k[len(self._log_prefix()) : -1], "big")
            kind = k[-1:]
            table = _ipc_read(v)
            if kind == b"U":
                self._append_memory(table)
            else:
                self._remove_memory(table.column(0).combine_chunks())
            self._next_seq = seq + 1
            self._log_entries += 1

    def _log_key(self, seq: int, kind: bytes) -> bytes:
        return self._log_prefix() + seq.to_bytes(8, "big") + kind

    def _persist(self, batch: WriteBatch | None, entries: list[tuple[bytes, pa.Table]]) -> None:
        """Writes log entries (and the meta record) in one atomic batch."""
        if self._db is None:
            return
        assert self._schema is not None
        own = batch is None
        wb = self._db.write_batch() if own else batch
        assert wb is not None
        meta = {"format": _FORMAT, "key": self._key, "schema": _schema_to_text(self._schema)}
        wb.put(self._meta_key(), json.dumps(meta).encode())
        seq = self._next_seq
        for kind, table in entries:
            for rb in table.to_batches(max_chunksize=_ENTRY_ROWS) or [
                pa.RecordBatch.from_pylist([], schema=table.schema)
            ]:
                wb.put(self._log_key(seq, kind), _ipc_bytes(rb))
                seq += 1
        if own:
            wb.commit()
        self._log_entries += seq - self._next_seq
        self._next_seq = seq

    # ---- validation ----------------------------------------------------------

    def _check_new_schema(self, schema: pa.Schema) -> None:
        if self._key not in schema.names:
            raise SchemaError(
                f"dimension {self._name!r}: key column {self._key!r} is missing "
                f"(columns: {', '.join(schema.names)})",
                column=self._key,
            )
        t = schema.field(self._key).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (_is_int_type(t) or _is_str_type(t)):
            raise KeyTypeError(
                f"dimension {self._name!r}: key column {self._key!r} is {t}; "
                "keys must be integers or strings",
                column=self._key,
            )

    def _normalize_new(self, table: pa.Table) -> pa.Table:
        """The first data fixes the schema: integer keys become int64 and
        dictionary-encoded keys are decoded."""
        self._check_new_schema(table.schema)
        i = table.schema.get_field_index(self._key)
        t = table.schema.field(i).type
        if pa.types.is_dictionary(t):
            table = table.set_column(i, self._key, table.column(i).cast(t.value_type))
            t = t.value_type
        if _is_int_type(t) and t != pa.int64():
            try:
                table = table.set_column(i, self._key, table.column(i).cast(pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise KeyTypeError(
                    f"dimension {self._name!r}: key column {self._key!r} does not fit int64: {e}",
                    column=self._key,
                ) from e
        return table

    def _conform(self, table: pa.Table) -> pa.Table:
        """``table`` in the stored schema's column order and types, or a
        SchemaError naming the column that does not fit."""
        if self._schema is None:
            return self._normalize_new(table)
        stored = self._schema
        if self._key not in table.schema.names:
            raise SchemaError(
                f"dimension {self._name!r}: key column {self._key!r} is missing "
                f"(columns: {', '.join(table.schema.names)})",
                column=self._key,
            )
        if set(table.schema.names) != set(stored.names) or len(table.schema.names) != len(
            stored.names
        ):
            raise SchemaError(
                f"dimension {self._name!r}: columns differ from the stored schema: "
                + _describe_differences(stored, table.schema),
                column=_first_problem_column(stored, table.schema),
            )
        table = table.select(stored.names)
        for i, f in enumerate(stored):
            got = table.schema.field(i).type
            if pa.types.is_dictionary(got):
                got = got.value_type
                table = table.set_column(i, f.name, table.column(i).cast(got))
            if got == f.type:
                continue
            kind = KeyTypeError if f.name == self._key else SchemaError
            if not _widening_ok(got, f.type):
                raise kind(
                    f"dimension {self._name!r}: column {f.name!r} is {got}, stored as {f.type}",
                    column=f.name,
                )
            try:
                table = table.set_column(i, f, table.column(i).cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise kind(
                    f"dimension {self._name!r}: column {f.name!r} ({got}) does not fit "
                    f"{f.type}: {e}",
                    column=f.name,
                ) from e
        return table.cast(stored)

    def _check_null_keys(self, keys: pa.ChunkedArray | pa.Array) -> None:
        if keys.null_count:
            mask = pc.is_null(keys)
            row = int(pc.index(mask, True).as_py())
            raise NullKeyError(
                f"dimension {self._name!r}: key column {self._key!r} is null at row {row}",
                column=self._key,
                row=row,
            )

    def _keys_array(self, keys: Any) -> pa.Array:
        """Keys to delete or look up in bulk, as an Arrow array of the key type."""
        if isinstance(keys, pa.ChunkedArray):
            arr = keys.combine_chunks()
        elif isinstance(keys, pa.Array):
            arr = keys
        else:
            if isinstance(keys, str | bytes | int):
                keys = [keys]
            arr = pa.array(list(keys))
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        return self._cast_probe_keys(arr, self._key)

    def _cast_probe_keys(self, arr: pa.Array, column: str) -> pa.Array:
        assert self._schema is not None
        want = self._schema.field(self._key).type
        got = arr.type
        if pa.types.is_dictionary(got):
            arr = arr.dictionary_decode()
            got = arr.type
        if pa.types.is_null(got):
            return pa.nulls(len(arr), want)
        if want == pa.int64():
            if got == pa.int64():
                return arr
            if _is_int_type(got):
                try:
                    return arr.cast(pa.int64())
                except pa.ArrowInvalid as e:
                    raise KeyTypeError(
                        f"column {column!r} ({got}) does not fit the dimension's int64 keys: {e}",
                        column=column,
                    ) from e
        elif _is_str_type(want) and _is_str_type(got):
            want_text = pa.types.is_string(want) or pa.types.is_large_string(want)
            got_text = pa.types.is_string(got) or pa.types.is_large_string(got)
            if want_text == got_text:
                return arr
        raise KeyTypeError(
            f"column {column!r} is {got} but dimension {self._name!r} has {want} keys "
            f"(column {self._key!r})",
            column=column,
        )

    # ---- in-memory state -----------------------------------------------------

    def _invalidate(self) -> None:
        self._chunked = None
        self._combined = None

    def _append_memory(self, table: pa.Table) -> None:
        """Adds rows, then points the index at them: a lookup without the
        lock never sees a row number the batches do not hold yet."""
        table = table.combine_chunks()
        if self._schema is None:
            self._schema = table.schema
        keys = table.column(self._key)
        arr = keys.chunk(0) if keys.num_chunks else pa.array([], keys.type)
        batches = table.to_batches()
        before = len(self._batches)
        self._batches.extend(batches)
        self._invalidate()
        # A cached partial block ending at the old last row is now short.
        self._blocks.pop(int(self._n_rows) // _BLOCK, None)
        try:
            self._append(arr)
        except BaseException:
            del self._batches[before:]
            self._invalidate()
            raise

    def _remove_memory(self, keys: pa.Array) -> int:
        return int(self._remove(keys))

    def _table(self) -> pa.Table:
        """Every stored row (live or replaced) in row-number order."""
        if self._chunked is None:
            assert self._schema is not None
            self._chunked = pa.Table.from_batches(self._batches, schema=self._schema)
        return self._chunked

    def _single_chunk(self) -> pa.Table:
        if self._combined is None:
            self._combined = self._table().combine_chunks()
        return self._combined

    def _dead_rows(self) -> int:
        return int(self._n_rows) - len(self)

    def _maybe_compact(self) -> None:
        dead = self._dead_rows()
        if (dead > 4096 and dead > len(self)) or self._log_entries > 4096:
            self.compact()

    # ---- public API: changes ------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def key(self) -> str:
        """The key column's name."""
        return self._key

    @property
    def schema(self) -> pa.Schema | None:
        """The rows' schema (None until the first data arrives)."""
        return self._schema

    def upsert(self, data: Any) -> int:
        """Inserts or replaces rows by key: a pyarrow Table, RecordBatch or
        RecordBatchReader, one record (a mapping) or a list of records.
        Within ``data`` a later row with the same key wins. Atomic: on any
        error nothing is stored. Returns the number of rows written."""
        table = _as_table(data, "upsert")
        with self._lock.write():  # the schema check too: the first data fixes it
            table = self._conform(table)
            self._check_null_keys(table.column(self._key))
            old_schema = self._schema
            if self._schema is None:
                self._schema = table.schema
            try:
                self._persist(None, [(b"U", table)])
            except BaseException:
                self._schema = old_schema
                raise
            self._append_memory(table)
        self._maybe_compact()
        return int(table.num_rows)

    def delete(self, keys: Any) -> int:
        """Removes keys (one key, an iterable of keys or an Arrow array);
        absent keys are ignored. Returns how many were present."""
        with self._lock.write():
            if self._schema is None:
                return 0
            arr = self._keys_array(keys)
            if arr.null_count:
                row = int(pc.index(pc.is_null(arr), True).as_py())
                raise NullKeyError(
                    f"dimension {self._name!r}: key to delete is null at position {row}",
                    column=self._key,
                    row=row,
                )
            self._persist(None, [(b"D", pa.table({self._key: arr}))])
            removed = self._remove_memory(arr)
        self._maybe_compact()
        return removed

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self.delete([key])

    def load(
        self,
        source: Any,
        *,
        format: Literal["parquet", "ipc", "csv"] | None = None,
        replace: bool = False,
        **csv_options: Any,
    ) -> int:
        """Loads rows from a pyarrow Table/RecordBatch/RecordBatchReader or a
        file (Parquet, Arrow IPC file or stream, CSV; by ``format`` or the
        file's extension). ``replace=True`` swaps the whole content
        atomically (a refresh); otherwise rows are upserted. CSV columns are
        parsed as the stored schema's types when there is one; a CSV that
        does not parse raises LoadError naming the line. Returns the number
        of rows read."""
        if isinstance(source, str | os.PathLike):
            table = self._read_file(source, format, csv_options)
        else:
            if csv_options:
                raise TypeError("CSV options apply to CSV files only")
            table = _as_table(source, "load")
        if not replace:
            return self.upsert(table)
        self.replace(table)
        return int(table.num_rows)

    def _read_file(self, path: PathLike, fmt: str | None, csv_options: dict[str, Any]) -> pa.Table:
        spath = os.fspath(path)
        if fmt is None:
            ext = os.path.splitext(spath)[1].lower()
            fmt = {
                ".parquet": "parquet",
                ".pq": "parquet",
                ".arrow": "ipc",
                ".feather": "ipc",
                ".ipc": "ipc",
                ".arrows": "ipc",
                ".csv": "csv",
                ".tsv": "csv",
            }.get(ext)
            if fmt is None:
                raise ValueError(
                    f"{spath}: cannot tell the format from the extension; pass format="
                )
        if fmt != "csv" and csv_options:
            raise TypeError("CSV options apply to CSV files only")
        if fmt == "csv":
            if spath.lower().endswith(".tsv") and "parse_options" not in csv_options:
                csv_options["parse_options"] = pa_csv.ParseOptions(delimiter="\t")
            return _read_csv(spath, self._schema, **csv_options)
        try:
            if fmt == "parquet":
                return pa_parquet.read_table(spath)
            if fmt == "ipc":
                try:
                    with pa.memory_map(spath) as source:
                        return pa_ipc.open_file(source).read_all()
                except pa.ArrowInvalid:
                    with pa.memory_map(spath) as source:
                        return pa_ipc.open_stream(source).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise LoadError(f"{spath}: cannot read as {fmt}: {e}", path=spath) from e
        raise ValueError(f"format must be 'parquet', 'ipc' or 'csv', not {fmt!r}")

    def replace(self, data: Any) -> None:
        """Replaces the whole content with ``data`` in one atomic step."""
        table = _as_table(data, "replace")
        with self._lock.write():
            table = self._conform(table)
            self._check_null_keys(table.column(self._key))
            old_schema = self._schema
            if self._schema is None:
                self._schema = table.schema
            try:
                self._rewrite([table])
            except BaseException:
                self._schema = old_schema
                raise

    def _rewrite(self, tables: list[pa.Table]) -> None:
        """Persists ``tables`` as the entire log (atomically) and renumbers
        the rows in memory. The caller holds the write lock."""
        if self._db is not None:
            wb = self._db.write_batch()
            wb.delete_range(self._log_prefix(), _prefix_end(self._log_prefix()))
            saved = self._next_seq, self._log_entries
            self._log_entries = 0
            try:
                self._persist(wb, [(b"U", t) for t in tables])
                wb.commit()
            except BaseException:
                self._next_seq, self._log_entries = saved
                raise
        assert self._schema is not None
        table = pa.Table.from_batches(
            [b for t in tables for b in t.combine_chunks().to_batches()], schema=self._schema
        ).combine_chunks()
        keys = table.column(self._key)
        arr = keys.chunk(0) if keys.num_chunks else pa.array([], keys.type)
        self._generation += 1
        try:
            self._batches = table.to_batches()
            self._blocks = {}
            self._invalidate()
            self._reset(arr)  # swaps the index in one step
        finally:
            self._generation += 1

    def compact(self) -> None:
        """Drops replaced and deleted rows from memory and rewrites the
        stored log as one snapshot (done automatically when garbage
        outweighs live rows)."""
        if self._schema is None:
            return
        with self._lock.write():
            self._rewrite([self._live_table()])

    def clear(self) -> None:
        """Removes every row (the schema is kept)."""
        if self._schema is None:
            return
        with self._lock.write():
            self._rewrite([])

    def apply(self, changes: Iterable[tuple[str, Any]], *, batch_size: int = 1024) -> int:
        """Applies a stream of changes: ``("upsert", row_or_rows_or_batch)``
        and ``("delete", key_or_keys)``. Consecutive single-record upserts
        (and single-key deletes) are grouped up to ``batch_size`` per write;
        order is kept. Returns the number of changes applied."""
        count = 0
        pending_kind: str | None = None
        pending: list[Any] = []

        def flush() -> None:
            nonlocal pending_kind, pending
            if pending_kind == "upsert":
                self.upsert(pending)
            elif pending_kind == "delete":
                self.delete(pending)
            pending_kind, pending = None, []

        for position, change in enumerate(changes):
            op, payload = self._parse_change(change, position)
            single = isinstance(payload, Mapping) if op == "upsert" else not _is_many(payload)
            if not single:
                flush()
                (self.upsert if op == "upsert" else self.delete)(payload)
            else:
                if pending_kind != op or len(pending) >= batch_size:
                    flush()
                    pending_kind = op
                pending.append(payload)
            count += 1
        flush()
        return count

    async def apply_async(self, changes: AsyncIterable[tuple[str, Any]]) -> int:
        """Applies changes from an async stream as they arrive (one write
        per change, so each is visible as soon as it is applied)."""
        count = 0
        position = 0
        async for change in changes:
            op, payload = self._parse_change(change, position)
            if op == "upsert":
                self.upsert(payload)
            else:
                self.delete(payload if _is_many(payload) else [payload])
            count += 1
            position += 1
        return count

    @staticmethod
    def _parse_change(change: Any, position: int) -> tuple[str, Any]:
        if not (isinstance(change, tuple) and len(change) == 2):
            raise ValueError(
                f"change {position}: expected ('upsert', rows) or ('delete', keys), "
                f"not {change!r:.80}"
            )
        op, payload = change
        if op not in ("upsert", "delete"):
            raise ValueError(f"change {position}: unknown operation {op!r}")
        return op, payload

    # ---- public API: reads -----------------------------------------------------

    def _row(self, row: int) -> dict[str, Any]:
        block, i = divmod(row, _BLOCK)
        rows = self._blocks.get(block)
        # A block cached while rows were being appended to it may be short.
        if rows is None or i >= len(rows):
            rows = self._table().slice(block * _BLOCK, _BLOCK).to_pylist()
            self._blocks[block] = rows
        return rows[i]

    def _lookup(self, key: Any) -> dict[str, Any] | None:
        """The cached row of ``key`` (not a copy), or None. Lock-free: a
        lookup that raced a renumbering (the generation moved or is odd)
        is redone under the lock."""
        generation = self._generation
        try:
            row = self._find(key)
            value = self._row(row) if row >= 0 else None
        except IndexError:
            if generation == self._generation and not generation & 1:
                raise
            value = None
        if generation != self._generation or generation & 1:
            with self._lock.read():
                row = self._find(key)
                value = self._row(row) if row >= 0 else None
        return value

    def __getitem__(self, key: Any) -> Mapping[str, Any]:
        """The row with ``key``, as a read-only mapping (``dict(dim[key])``
        for a copy to modify); KeyError when absent. Rows change only
        through upserts, so the mapping is shared rather than copied:
        copying touches every value, which costs more than the lookup."""
        # The hot path of _lookup, inlined: dim[key] is called per event.
        generation = self._generation
        row = self._find(key)
        if row >= 0:
            rows = self._blocks.get(row >> _BLOCK_BITS)
            i = row & (_BLOCK - 1)
            if (
                rows is not None
                and i < len(rows)
                and generation == self._generation
                and not generation & 1
            ):
                return _ReadOnly(rows[i])
        value = self._lookup(key)
        if value is None:
            raise KeyError(key)
        return _ReadOnly(value)

    def get(self, key: Any, default: Any = None) -> Any:
        """The row with ``key`` as a read-only mapping, or ``default``."""
        value = self._lookup(key)
        return default if value is None else _ReadOnly(value)

    def __iter__(self) -> Iterator[Any]:
        if self._schema is None:
            return iter(())
        return iter(self.to_arrow().column(self._key).to_pylist())

    def keys(self) -> list[Any]:
        """Every key, in the order the rows were written."""
        return list(self)

    def to_arrow(self) -> pa.Table:
        """The live rows as a pyarrow Table, in the order they were written."""
        if self._schema is None:
            raise SchemaError(f"dimension {self._name!r} has no data (and so no schema) yet")
        with self._lock.read():
            return self._live_table()

    def _live_table(self) -> pa.Table:
        table = self._table()
        if self._dead_rows() == 0:
            return table
        bits = self._live_bitmap()
        mask = pa.Array.from_buffers(pa.bool_(), int(self._n_rows), [None, pa.py_buffer(bits)])
        return table.filter(mask)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored rows in memory (Arrow buffers) plus the index."""
        return int(self._table().nbytes if self._schema is not None else 0) + int(self.index_nbytes)

    def __repr__(self) -> str:
        return f"DimensionTable({self._name!r}, key={self._key!r}, rows={len(self)})"

    # ---- enrichment ------------------------------------------------------------

    def _resolve_columns(
        self, existing: Sequence[str], columns: Sequence[str] | None, suffix: str | None
    ) -> list[tuple[str, str]]:
        """[(dimension column, output name)]."""
        assert self._schema is not None
        if columns is None:
            columns = [n for n in self._schema.names if n != self._key]
        elif isinstance(columns, str):
            columns = [columns]
        out = []
        for c in columns:
            if c not in self._schema.names:
                raise SchemaError(
                    f"dimension {self._name!r} has no column {c!r} "
                    f"(columns: {', '.join(self._schema.names)})",
                    column=c,
                )
            name = c
            if name in existing:
                if suffix is None:
                    raise SchemaError(
                        f"column {c!r} is in both the batch and dimension {self._name!r}; "
                        "pass columns= to leave it out or suffix= to rename it",
                        column=c,
                    )
                name = c + suffix
            out.append((c, name))
        return out

    def enrich(
        self,
        batch: Any,
        on: str | None = None,
        columns: Sequence[str] | None = None,
        how: Literal["left", "inner"] = "left",
        suffix: str | None = None,
        *,
        threads: int | None = None,
    ) -> Any:
        """Attaches the dimension's ``columns`` (default: all but the key)
        to ``batch``, matching ``batch[on]`` (default: the key column's
        name) against the key. ``how="left"`` keeps every row (nulls where
        the key is absent or null); ``"inner"`` keeps matching rows only.
        A RecordBatch or Table comes back as the same type; a record (a
        mapping) as a dict (None when an inner join drops it); a list of
        records as a list of dicts. ``threads`` caps the threads the C
        probe uses (default: one per 256K rows, at most the CPU count)."""
        if how not in ("left", "inner"):
            raise ValueError(f"how must be 'left' or 'inner', not {how!r}")
        if threads is not None and not 1 <= threads <= _MAX_THREADS:
            raise ValueError(f"threads must be between 1 and {_MAX_THREADS}, not {threads!r}")
        on = self._key if on is None else on
        if self._schema is None:
            raise SchemaError(f"dimension {self._name!r} has no data (and so no schema) yet")
        if isinstance(batch, pa.RecordBatch):
            return self._enrich_batch(batch, on, columns, how, suffix, threads)
        if isinstance(batch, pa.Table):
            pairs = self._resolve_columns(batch.schema.names, columns, suffix)
            if on not in batch.schema.names:
                raise SchemaError(
                    f"the batch has no column {on!r} to join on "
                    f"(columns: {', '.join(batch.schema.names)})",
                    column=on,
                )
            batches = [
                self._enrich_batch(b, on, [c for c, _ in pairs], how, suffix, threads)
                for b in batch.to_batches()
            ]
            if not batches:
                empty = pa.RecordBatch.from_pylist([], schema=batch.schema)
                return pa.Table.from_batches(
                    [self._enrich_batch(empty, on, [c for c, _ in pairs], how, suffix)]
                )
            return pa.Table.from_batches(batches)
        if isinstance(batch, Mapping):
            return self._enrich_record(batch, on, columns, how, suffix)
        if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
            out = []
            for r in batch:
                if not isinstance(r, Mapping):
                    raise TypeError("enrich: a list must hold records (mappings)")
                e = self._enrich_record(r, on, columns, how, suffix)
                if e is not None:
                    out.append(e)
            return out
        raise TypeError(
            "enrich: expected a pyarrow RecordBatch or Table, a record or a list of records, "
            f"not {type(batch).__name__}"
        )

    def _enrich_record(
        self,
        record: Mapping[str, Any],
        on: str,
        columns: Sequence[str] | None,
        how: str,
        suffix: str | None,
    ) -> dict[str, Any] | None:
        if on not in record:
            raise SchemaError(f"the record has no field {on!r} to join on", column=on)
        pairs = self._resolve_columns(list(record), columns, suffix)
        key = record[on]
        values = None if key is None else self._lookup(key)
        if values is None:
            if key is not None and not self._key_matches_python(key):
                raise KeyTypeError(
                    f"field {on!r} is {type(key).__name__} but dimension {self._name!r} "
                    f"has {self._schema.field(self._key).type if self._schema else '?'} keys",
                    column=on,
                )
            if how == "inner":
                return None
            out = dict(record)
            for _, name in pairs:
                out[name] = None
            return out
        out = dict(record)
        for c, name in pairs:
            out[name] = values[c]
        return out

    def _key_matches_python(self, key: Any) -> bool:
        assert self._schema is not None
        t = self._schema.field(self._key).type
        if t == pa.int64():
            return (isinstance(key, int) and not isinstance(key, bool)) or hasattr(key, "__index__")
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return isinstance(key, str)
        return isinstance(key, bytes)

    def _enrich_batch(
        self,
        batch: pa.RecordBatch,
        on: str,
        columns: Sequence[str] | None,
        how: str,
        suffix: str | None,
        threads: int | None = None,
    ) -> pa.RecordBatch:
        with self._lock.read():
            return self._enrich_batch_locked(batch, on, columns, how, suffix, threads)

    def _enrich_batch_locked(
        self,
        batch: pa.RecordBatch,
        on: str,
        columns: Sequence[str] | None,
        how: str,
        suffix: str | None,
        threads: int | None,
    ) -> pa.RecordBatch:
        if on not in batch.schema.names:
            raise SchemaError(
                f"the batch has no column {on!r} to join on "
                f"(columns: {', '.join(batch.schema.names)})",
                column=on,
            )
        pairs = self._resolve_columns(batch.schema.names, columns, suffix)
        keys = self._cast_probe_keys(batch.column(on), on)
        dim = self._single_chunk()
        n_rows = int(self._n_rows)
        dim_cols = []
        fast: list[int] = []
        for j, (c, _) in enumerate(pairs):
            col = dim.column(c)
            arr = col.chunk(0) if col.num_chunks else pa.array([], col.type)
            dim_cols.append(arr)
            t = arr.type
            if (pa.types.is_integer(t) or pa.types.is_floating(t)) and arr.null_count == 0:
                fast.append(j)
        inner = how == "inner"
        need_take = inner or len(fast) < len(pairs)
        if n_rows == 0:
            # Nothing can match: a left join gets all-null columns, an
            # inner join no rows.
            m = 0 if inner else len(batch)
            take_buf: Any = bytearray(4 * m)
            valid_buf: Any = None if inner else bytearray((m + 7) // 8)
            misses = len(batch)
            selection: Any = bytearray() if inner else None
            gathered: tuple[Any, ...] = tuple(
                bytearray(m * dim_cols[j].type.bit_width // 8) for j in fast
            )
        else:
            threads = threads or min(_CPUS, max(1, len(batch) // _ROWS_PER_THREAD), _MAX_THREADS)
            take_buf, valid_buf, misses, selection, gathered = self._probe(
                keys, inner, [dim_cols[j] for j in fast], need_take, threads
            )
            m = len(batch) - misses if inner else len(batch)
        validity = None if valid_buf is None else pa.py_buffer(valid_buf)
        null_count = misses if validity is not None else 0
        out_cols: list[Any] = [None] * len(pairs)
        for j, g in zip(fast, gathered, strict=True):
            out_cols[j] = pa.Array.from_buffers(
                dim_cols[j].type, m, [validity, pa.py_buffer(g)], null_count=null_count
            )
        take = None
        for j in range(len(pairs)):
            if out_cols[j] is None:
                if take is None:
                    take = pa.Array.from_buffers(
                        pa.int32(), m, [validity, pa.py_buffer(take_buf)], null_count=null_count
                    )
                out_cols[j] = dim_cols[j].take(take) if n_rows else pa.nulls(m, dim_cols[j].type)
        base = batch
        if inner and selection is not None:
            base = batch.take(pa.Array.from_buffers(pa.int32(), m, [None, pa.py_buffer(selection)]))
        assert self._schema is not None
        fields = list(base.schema) + [
            self._schema.field(c).with_name(name).with_nullable(True) for c, name in pairs
        ]
        return pa.RecordBatch.from_arrays(
            list(base.columns) + out_cols, schema=pa.schema(fields, metadata=base.schema.metadata)
        )

    def enrich_stream(
        self,
        stream: Iterable[Any],
        on: str | None = None,
        columns: Sequence[str] | None = None,
        how: Literal["left", "inner"] = "left",
        suffix: str | None = None,
    ) -> Iterator[Any]:
        """Enriches every item of a stream of batches or records (inner
        joins skip records that do not match)."""
        for item in stream:
            out = self.enrich(item, on, columns, how, suffix)
            if out is not None:
                yield out

    async def aenrich_stream(
        self,
        stream: AsyncIterable[Any],
        on: str | None = None,
        columns: Sequence[str] | None = None,
        how: Literal["left", "inner"] = "left",
        suffix: str | None = None,
    ) -> AsyncIterator[Any]:
        """The async form of enrich_stream."""
        async for item in stream:
            out = self.enrich(item, on, columns, how, suffix)
            if out is not None:
                yield out

    def __matmul__(self, other: Any) -> Any:
        """``dim @ x``: a left join on the key column with every dimension
        column. A batch, table or record is enriched at once; an iterable
        or async iterable of them becomes a (async) generator."""
        if isinstance(other, pa.RecordBatch | pa.Table | Mapping):
            return self.enrich(other)
        if hasattr(other, "__aiter__"):
            return self.aenrich_stream(other)
        if isinstance(other, Iterable) and not isinstance(other, str | bytes):
            return self.enrich_stream(other)
        return NotImplemented

    # ---- lifetime ------------------------------------------------------------

    def drop(self) -> None:
        """Deletes everything stored under this dimension's name and empties it."""
        with self._lock.write():
            if self._db is not None:
                self._db.delete_prefix(self._prefix)
            self._generation += 1
            self._clear()
            self._batches = []
            self._blocks = {}
            self._schema = None
            self._next_seq = self._log_entries = 0
            self._invalidate()
            self._generation += 1

    def close(self) -> None:
        """Closes the DB if this table opened it from a path."""
        if self._owns_db and self._db is not None:
            self._db.close()
        self._owns_db = False

    def __enter__(self) -> DimensionTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_many(payload: Any) -> bool:
    return isinstance(payload, pa.Array | pa.ChunkedArray) or (
        isinstance(payload, Iterable) and not isinstance(payload, str | bytes)
    )
