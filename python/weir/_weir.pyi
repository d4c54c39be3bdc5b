"""Type stubs of weir._weir, the C extension.

The parameter lists are the ones the extension's docstrings carry as
``__text_signature__`` (what ``inspect.signature`` reads);
tests/python/test_signatures.py checks that the two agree.
"""

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import GenericAlias, TracebackType
from typing import Any, Generic, Literal, Self, TypeAlias, TypeVar, final, overload

from typing_extensions import Buffer

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)

_BytesLike: TypeAlias = Buffer
_SyncMode: TypeAlias = Literal["none", "flush", "fsync"]
_Compression: TypeAlias = Literal["none", "lz4", "zstd"]
#: Seconds; converted to whole milliseconds (at least 1).
_TTL: TypeAlias = float | timedelta
_MergeOp: TypeAlias = (
    Literal[
        "int64_add",
        "int64_max",
        "int64_min",
        "float64_add",
        "float64_max",
        "float64_min",
        "bytes_max",
        "bytes_min",
        "list_append",
    ]
    | int
)

__version__: str
ENGINE_VERSION: str
MAX_KEY_SIZE: int
MAX_VALUE_SIZE: int

class Error(Exception):
    """Base class of weir's errors; str(e) is the engine's message."""

    status: str | None

class CorruptionError(Error): ...
class StorageIOError(Error, OSError): ...
class NoSpaceError(StorageIOError): ...
class ReadOnlyError(StorageIOError): ...
class BusyError(Error): ...
class InvalidArgumentError(Error, ValueError): ...
class ClosedError(Error): ...
class ConflictError(Error): ...

def destroy(path: str | bytes | os.PathLike[str] | os.PathLike[bytes], /) -> None: ...
def build_info() -> str: ...
def _check(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    /,
) -> tuple[str, list[tuple[int, str, str]]]: ...
def _salvage(
    src: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    dst: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    /,
) -> tuple[str, list[tuple[int, str, str]]]: ...
def compression_supported(name: str, /) -> bool: ...

class DB:
    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        *,
        create_if_missing: bool = True,
        error_if_exists: bool = False,
        read_only: bool = False,
        write_buffer_size: int | None = None,
        block_size: int | None = None,
        bloom_bits_per_key: int | None = None,
        max_open_files: int | None = None,
        background_threads: int | None = None,
        sync: _SyncMode | None = "flush",
        target_file_size: int | None = None,
        max_bytes_for_level_base: int | None = None,
        level0_triggers: tuple[int, int, int] | None = None,
        compression: _Compression | None = None,
        block_cache_size: int | None = None,
        default_ttl: _TTL | None = None,
        read_triggered_compaction: bool = True,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @overload
    def get(self, key: _BytesLike, *, snapshot: Snapshot | None = None) -> bytes | None: ...
    @overload
    def get(
        self, key: _BytesLike, default: _T, *, snapshot: Snapshot | None = None
    ) -> bytes | _T: ...
    def put(
        self,
        key: _BytesLike,
        value: _BytesLike,
        *,
        sync: _SyncMode | None = None,
        ttl: _TTL | None = None,
    ) -> None: ...
    def delete(self, key: _BytesLike, *, sync: _SyncMode | None = None) -> None: ...
    def merge(
        self,
        key: _BytesLike,
        op: _MergeOp,
        operand: _BytesLike | int | float,
        *,
        sync: _SyncMode | None = None,
    ) -> None: ...
    def incr(self, key: _BytesLike, n: int = 1, *, sync: _SyncMode | None = None) -> None: ...
    def add_float(self, key: _BytesLike, x: float, *, sync: _SyncMode | None = None) -> None: ...
    def list_append(
        self,
        key: _BytesLike,
        item: _BytesLike,
        *,
        max_items: int,
        sync: _SyncMode | None = None,
    ) -> None: ...
    @overload
    def get_int(self, key: _BytesLike, *, snapshot: Snapshot | None = None) -> int: ...
    @overload
    def get_int(
        self, key: _BytesLike, default: _T, *, snapshot: Snapshot | None = None
    ) -> int | _T: ...
    @overload
    def get_float(self, key: _BytesLike, *, snapshot: Snapshot | None = None) -> float: ...
    @overload
    def get_float(
        self, key: _BytesLike, default: _T, *, snapshot: Snapshot | None = None
    ) -> float | _T: ...
    def get_list(self, key: _BytesLike, *, snapshot: Snapshot | None = None) -> list[bytes]: ...
    def delete_range(
        self, start: _BytesLike, end: _BytesLike, *, sync: _SyncMode | None = None
    ) -> None: ...
    def delete_prefix(self, prefix: _BytesLike, *, sync: _SyncMode | None = None) -> None: ...
    def checkpoint(self, path: str | bytes | os.PathLike[str] | os.PathLike[bytes], /) -> None: ...
    def transaction(
        self, *, sync: _SyncMode | None = None, track_all_reads: bool = False
    ) -> Transaction: ...
    def get_many(
        self, keys: Iterable[_BytesLike], *, snapshot: Snapshot | None = None
    ) -> list[bytes | None]: ...
    def put_many(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[_BytesLike, _BytesLike]],
        *,
        sync: _SyncMode | None = None,
    ) -> int: ...
    def delete_many(self, keys: Iterable[_BytesLike], *, sync: _SyncMode | None = None) -> int: ...
    def write_batch(self, *, sync: _SyncMode | None = None) -> WriteBatch: ...
    def write(self, batch: WriteBatch, *, sync: _SyncMode | None = None) -> None: ...
    def keys(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
        snapshot: Snapshot | None = None,
    ) -> RangeIterator[bytes]: ...
    def values(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
        snapshot: Snapshot | None = None,
    ) -> RangeIterator[bytes]: ...
    def items(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
        snapshot: Snapshot | None = None,
    ) -> RangeIterator[tuple[bytes, bytes]]: ...
    def iterator(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        snapshot: Snapshot | None = None,
    ) -> Iterator: ...
    def snapshot(self) -> Snapshot: ...
    def flush(self) -> None: ...
    def compact(self, start: _BytesLike | None = None, stop: _BytesLike | None = None) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def property(self, name: str, /) -> str | None: ...
    def scan_arrow(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        batch_size: int = 65536,
        large: bool = False,
    ) -> ArrowScan:
        """An Arrow stream of struct<key: binary, value: binary> rows in key order."""
    def put_arrow(
        self,
        data: Any,
        *,
        key: str = "key",
        value_columns: str | Sequence[str] | None = None,
        key_prefix: _BytesLike = b"",
        sync: _SyncMode | None = None,
        progress: bool | Callable[[str, int, int | None], object] | None = None,
    ) -> int:
        """Write the rows of an Arrow record batch, table or stream in one atomic batch.

        ``progress=True`` draws a bar on stderr when it is a terminal; a
        callable is called as ``progress(stage, rows_done, rows_total)`` with
        stage "encode" (after each slice of rows), "write" (before the one
        atomic write) and "done" (after it)."""
    def put_batch(self, key: _BytesLike, batch: Any, *, sync: _SyncMode | None = None) -> None:
        """Store a record batch (or a table, combined into one) as Arrow IPC."""
    def get_batch(self, key: _BytesLike, *, snapshot: Snapshot | None = None) -> Any:
        """The pyarrow.RecordBatch stored by put_batch, or None if absent."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __getitem__(self, key: _BytesLike, /) -> bytes: ...
    def __setitem__(self, key: _BytesLike, value: _BytesLike, /) -> None: ...
    def __delitem__(self, key: _BytesLike, /) -> None: ...
    def __iter__(self) -> RangeIterator[bytes]: ...

@final
class ArrowScan:
    """What DB.scan_arrow() returns: an Arrow PyCapsule stream producer."""

    @property
    def closed(self) -> bool: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...

@final
class Snapshot:
    @property
    def released(self) -> bool: ...
    @property
    def sequence(self) -> int: ...
    @property
    def db(self) -> DB | None: ...
    @overload
    def get(self, key: _BytesLike) -> bytes | None: ...
    @overload
    def get(self, key: _BytesLike, default: _T) -> bytes | _T: ...
    def get_many(self, keys: Iterable[_BytesLike]) -> list[bytes | None]: ...
    def keys(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[bytes]: ...
    def values(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[bytes]: ...
    def items(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[tuple[bytes, bytes]]: ...
    def iterator(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
    ) -> Iterator: ...
    def release(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __getitem__(self, key: _BytesLike, /) -> bytes: ...
    def __iter__(self) -> RangeIterator[bytes]: ...

@final
class Iterator:
    """A low-level cursor; it starts unpositioned."""

    @property
    def valid(self) -> bool: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def closed(self) -> bool: ...
    def seek(self, key: _BytesLike, /) -> bool: ...
    def seek_for_prev(self, key: _BytesLike, /) -> bool: ...
    def seek_to_first(self) -> bool: ...
    def seek_to_last(self) -> bool: ...
    def next(self) -> bool: ...
    def prev(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...

@final
class RangeIterator(Generic[_T_co]):
    """What keys(), values() and items() return."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> _T_co: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...

@final
class WriteBatch:
    def __new__(cls, db: DB | None = None, *, sync: _SyncMode | None = None) -> Self: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def db(self) -> DB | None: ...
    def put(self, key: _BytesLike, value: _BytesLike, *, ttl: _TTL | None = None) -> None: ...
    def delete(self, key: _BytesLike) -> None: ...
    def merge(self, key: _BytesLike, op: _MergeOp, operand: _BytesLike | int | float) -> None: ...
    def incr(self, key: _BytesLike, n: int = 1) -> None: ...
    def delete_range(self, start: _BytesLike, end: _BytesLike) -> None: ...
    def put_many(
        self, items: Mapping[Any, Any] | Iterable[tuple[_BytesLike, _BytesLike]], /
    ) -> int: ...
    def put_encoded(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
        encode_value: Callable[[Any, Any], _BytesLike],
        *,
        encode_key: Callable[[Any], bytes] | None = None,
    ) -> int: ...
    def clear(self) -> None: ...
    def commit(self) -> None: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...

@final
class Transaction:
    """An optimistic transaction (from DB.transaction())."""

    @property
    def committed(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def db(self) -> DB | None: ...
    @overload
    def get(self, key: _BytesLike, *, for_update: bool = False) -> bytes | None: ...
    @overload
    def get(self, key: _BytesLike, default: _T, *, for_update: bool = False) -> bytes | _T: ...
    @overload
    def get_for_update(self, key: _BytesLike) -> bytes | None: ...
    @overload
    def get_for_update(self, key: _BytesLike, default: _T) -> bytes | _T: ...
    def put(self, key: _BytesLike, value: _BytesLike) -> None: ...
    def delete(self, key: _BytesLike) -> None: ...
    def merge(self, key: _BytesLike, op: _MergeOp, operand: _BytesLike | int | float) -> None: ...
    def incr(self, key: _BytesLike, n: int = 1) -> None: ...
    def keys(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[bytes]: ...
    def values(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[bytes]: ...
    def items(
        self,
        *,
        prefix: _BytesLike | None = None,
        start: _BytesLike | None = None,
        stop: _BytesLike | None = None,
        reverse: bool = False,
    ) -> RangeIterator[tuple[bytes, bytes]]: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __getitem__(self, key: _BytesLike, /) -> bytes: ...
    def __setitem__(self, key: _BytesLike, value: _BytesLike, /) -> None: ...
    def __delitem__(self, key: _BytesLike, /) -> None: ...
    def __iter__(self) -> RangeIterator[bytes]: ...
