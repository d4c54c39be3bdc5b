"""What weir.materialize's dimension tables and aggregate views share:
the error types, the store argument, the key layout under which both
persist in a weir DB, and the Arrow helpers (schemas, IPC, type checks,
turning records into tables, reading CSV with line numbers in errors)."""

from __future__ import annotations

import base64
import csv
import os
import re
import threading
import types
from collections.abc import (
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from typing import Any, TypeAlias

try:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.ipc as pa_ipc
except ImportError as e:  # pragma: no cover - pyarrow is in the test extras
    raise ImportError(
        "weir.materialize needs pyarrow: pip install 'weirdb[arrow]' (or pyarrow)"
    ) from e

from .. import DB

PathLike: TypeAlias = str | os.PathLike[str]
Store: TypeAlias = DB | str | os.PathLike[str]
Batch: TypeAlias = pa.RecordBatch | pa.Table
Record: TypeAlias = Mapping[str, Any]

_ROOT = b"__weir_materialize__/"
_FORMAT = 1
# One persisted log entry holds at most this many rows, far below weir's
# value-size limit for any realistic row width.
_ENTRY_ROWS = 262_144
# The C probe splits a batch over threads of its own, one per this many rows.
_ROWS_PER_THREAD = 262_144
_MAX_THREADS = 8
_CPUS = max(1, min(len(os.sched_getaffinity(0)), _MAX_THREADS))
# Rows are turned into Python dicts for dim[key] this many at a time.
_BLOCK_BITS = 10
_BLOCK = 1 << _BLOCK_BITS


class MaterializeError(ValueError):
    """Base class of weir.materialize's input errors. ``column`` names the
    column concerned, when there is one."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class SchemaError(MaterializeError):
    """A column is missing or has the wrong type, or the data's schema
    differs from the one the dimension/view was stored with."""


class KeyTypeError(SchemaError, TypeError):
    """A key column's type does not match the dimension's key type (or is
    not an integer or string type at all)."""


class NullKeyError(MaterializeError):
    """A row to be stored has a null key. ``row`` is its position."""

    def __init__(self, message: str, *, column: str, row: int) -> None:
        super().__init__(message, column=column)
        self.row = row


class LoadError(MaterializeError):
    """A file could not be read or parsed. ``path`` and, when known,
    ``line`` (1-based, counting the header) say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, column=column)
        self.path = path
        self.line = line


class _RWLock:
    """Many readers (enrichment joins, which release the GIL in C) or one
    writer (a change to the rows and the index together). A waiting writer
    holds back new readers, so a steady flow of joins cannot starve it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_ReadOnly = types.MappingProxyType


def _check_name(kind: str, name: str) -> bytes:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{kind} name must be a non-empty str without '/', not {name!r}")
    return name.encode()


def _open_store(store: Store | None) -> tuple[DB | None, bool]:
    """(db, owned): a path opens a DB that close() closes."""
    if store is None or isinstance(store, DB):
        return store, False
    if isinstance(store, str | os.PathLike):
        return DB(os.fspath(store)), True
    raise TypeError(f"store must be a weir.DB, a path or None, not {type(store).__name__}")


def _schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _schema_from_text(text: str) -> pa.Schema:
    return pa_ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _ipc_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa_ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def _ipc_read(data: bytes) -> pa.Table:
    return pa_ipc.open_stream(pa.py_buffer(data)).read_all()


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key above every key starting with ``prefix`` (whose last
    byte is '/', so the increment never carries)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _is_int_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t))


def _is_str_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _describe_differences(stored: pa.Schema, got: pa.Schema) -> str:
    parts = []
    missing = [n for n in stored.names if n not in got.names]
    extra = [n for n in got.names if n not in stored.names]
    if missing:
        parts.append("missing column(s) " + ", ".join(repr(n) for n in missing))
    if extra:
        parts.append("new column(s) " + ", ".join(repr(n) for n in extra))
    for f in stored:
        if f.name in got.names and got.field(f.name).type != f.type:
            parts.append(f"column {f.name!r} is {got.field(f.name).type}, stored as {f.type}")
    return "; ".join(parts)


def _first_problem_column(stored: pa.Schema, got: pa.Schema) -> str | None:
    for n in stored.names:
        if n not in got.names or got.field(n).type != stored.field(n).type:
            return str(n)
    for n in got.names:
        if n not in stored.names:
            return str(n)
    return None


def _widening_ok(src: pa.DataType, dst: pa.DataType) -> bool:
    """Type changes applied silently (by a safe cast) when data meets a
    stored schema: integer to wider integer or float, float to float,
    string to string, binary to binary."""
    if _is_int_type(src):
        return bool(_is_int_type(dst) or pa.types.is_floating(dst))
    if pa.types.is_floating(src):
        return bool(pa.types.is_floating(dst))
    if pa.types.is_string(src) or pa.types.is_large_string(src):
        return bool(pa.types.is_string(dst) or pa.types.is_large_string(dst))
    if pa.types.is_binary(src) or pa.types.is_large_binary(src):
        return bool(pa.types.is_binary(dst) or pa.types.is_large_binary(dst))
    return False


def _as_table(data: Any, what: str) -> pa.Table:
    """Records, a record, a RecordBatch or anything Arrow-tabular, as a Table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, Mapping):
        return pa.Table.from_pylist([dict(data)])
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not all(isinstance(r, Mapping) for r in data):
            raise TypeError(f"{what}: a list must hold records (mappings)")
        return pa.Table.from_pylist([dict(r) for r in data])
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return pa.table(data)
    raise TypeError(
        f"{what}: expected a pyarrow Table/RecordBatch/RecordBatchReader, a record or a "
        f"list of records, not {type(data).__name__}"
    )


_CONVERSION = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.S)


def _locate_csv_error(
    path: str, message: str, options: dict[str, Any]
) -> tuple[int | None, int | None]:
    """(line, column index) of the problem pyarrow reported without a line
    number, found by re-reading the file with the csv module."""
    parse = options.get("parse_options")
    delimiter = parse.delimiter if parse is not None else ","
    conversion = _CONVERSION.search(message)
    expected = re.search(r"Expected (\d+) columns, got (\d+)", message)
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return None, None
            for row in reader:
                if expected and len(row) != int(expected.group(1)):
                    return reader.line_num, None
                if conversion:
                    col = int(conversion.group(1))
                    if col < len(row) and row[col] == conversion.group(2):
                        return reader.line_num, col
    except OSError:
        return None, None
    return None, int(conversion.group(1)) if conversion else None


def _read_csv(path: PathLike, schema: pa.Schema | None, **options: Any) -> pa.Table:
    spath = os.fspath(path)
    if schema is not None and "convert_options" not in options:
        options["convert_options"] = pa_csv.ConvertOptions(
            column_types={f.name: f.type for f in schema}
        )
    try:
        return pa_csv.read_csv(spath, **options)
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        message = str(e)
        line, col = _locate_csv_error(spath, message, options)
        header: list[str] = []
        try:
            with open(spath, newline="", encoding="utf-8", errors="replace") as f:
                header = next(csv.reader(f), [])
        except OSError:
            pass
        column = header[col] if col is not None and col < len(header) else None
        where = f"{spath}" + (f", line {line}" if line is not None else "")
        if column is not None:
            where += f", column {column!r}"
        raise LoadError(f"{where}: {message}", path=spath, line=line, column=column) from e
