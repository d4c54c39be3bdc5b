"""weir: a crash-safe embedded key-value store.

``weir.DB`` is the C extension type itself (no Python wrapper on the hot
path). Keys and values are bytes-like; ``weir.codecs`` turns Python objects
into bytes for the layers above. ``weir.retry`` re-runs optimistic
transactions that lose a conflict. ``weir.table.Table`` is a dict-like table
over a DB or a store backend; ``DB.scan_arrow`` / ``DB.put_arrow`` move Arrow
data in and out. See docs/PYTHON.md.
"""

from . import codecs
from ._inspect import CheckReport, Finding, SalvageReport, check, salvage
from ._retry import retry
from ._weir import (
    DB,
    ENGINE_VERSION,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    ArrowScan,
    BusyError,
    ClosedError,
    ConflictError,
    CorruptionError,
    Error,
    InvalidArgumentError,
    Iterator,
    NoSpaceError,
    RangeIterator,
    ReadOnlyError,
    Snapshot,
    StorageIOError,
    Transaction,
    WriteBatch,
    __version__,
    build_info,
    compression_supported,
    destroy,
)

__all__ = [
    "DB",
    "ENGINE_VERSION",
    "MAX_KEY_SIZE",
    "MAX_VALUE_SIZE",
    "ArrowScan",
    "BusyError",
    "CheckReport",
    "ClosedError",
    "ConflictError",
    "CorruptionError",
    "Error",
    "Finding",
    "InvalidArgumentError",
    "Iterator",
    "NoSpaceError",
    "RangeIterator",
    "ReadOnlyError",
    "SalvageReport",
    "Snapshot",
    "StorageIOError",
    "Transaction",
    "WriteBatch",
    "__version__",
    "build_info",
    "check",
    "codecs",
    "compression_supported",
    "destroy",
    "retry",
    "salvage",
]
