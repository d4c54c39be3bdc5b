"""weir: a crash-safe embedded key-value store.

``weir.DB`` is the C extension type itself (no Python wrapper on the hot
path). Keys and values are bytes-like; ``weir.codecs`` turns Python objects
into bytes for the layers above.
"""

from . import codecs
from ._weir import (
    DB,
    ENGINE_VERSION,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    BusyError,
    ClosedError,
    CorruptionError,
    Error,
    InvalidArgumentError,
    Iterator,
    NoSpaceError,
    RangeIterator,
    Snapshot,
    StorageIOError,
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
    "BusyError",
    "ClosedError",
    "CorruptionError",
    "Error",
    "InvalidArgumentError",
    "Iterator",
    "NoSpaceError",
    "RangeIterator",
    "Snapshot",
    "StorageIOError",
    "WriteBatch",
    "__version__",
    "build_info",
    "codecs",
    "compression_supported",
    "destroy",
]
