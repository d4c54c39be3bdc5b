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
    compression_supported,
    destroy,
)
from ._weir import build_info as _engine_build_info

#: The block compression codecs a complete build has (besides "none").
_CODECS = ("lz4", "zstd")


def build_info() -> str:
    """One line describing this build: the engine version, the CRC32C
    implementation and the compression codecs compiled in, e.g.
    ``weir 0.1.0 (crc32c: sse4.2; compression: none lz4 zstd)``.

    A build that lacks lz4 or zstd cannot open a DB whose tables use it, so
    the line then ends with a warning that names the missing codecs.
    ``python -m weir`` prints it.
    """
    info = _engine_build_info()
    missing = [codec for codec in _CODECS if not compression_supported(codec)]
    if missing:
        info += (
            f" WARNING: built without {' and '.join(missing)}; DBs that use "
            f"{'it' if len(missing) == 1 else 'them'} cannot be opened by this build"
        )
    return info


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
