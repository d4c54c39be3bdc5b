"""Sabot's store backends, state tables and checkpoints, on weir.

The names of ``sabot.stores``::

    from weir.sabot.stores import MemoryBackend, StoreBackendConfig, StateStoreManager

Backends (thin over :mod:`weir.stores`; values pickled, ``str``/``int``/
tuple keys without options): ``MemoryBackend``, ``TonboBackend``,
``MarbleDBStoreBackend`` and ``WeirBackend`` (all three the weir engine),
``RocksDBBackend`` (rocksdict), ``RedisBackend`` (redis-py; Sabot's
``host``/``port`` options) and ``ArrowFileBackend`` (Arrow IPC files; needs
pyarrow). ``create_backend_auto("memory://")`` builds one from a string.

The ``*_AVAILABLE`` flags say what can be used here: ``ROCKSDB_AVAILABLE``
(rocksdict installed), ``ARROW_AVAILABLE`` (pyarrow installed); Tonbo and
MarbleDB are always available (they are the weir engine); ``CYTHON_AVAILABLE``
is False, since weir has no Cython variants of Sabot's backends (its engine
is C already).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ..checkpoint import CheckpointConfig, CheckpointManager, CheckpointMetadata
from .base import (
    BACKEND_TYPES,
    ScanItems,
    StoreBackend,
    StoreBackendConfig,
    Transaction,
    create_backend,
    create_backend_from_string,
)
from .engine import WeirBackend
from .manager import (
    BackendType,
    StateIsolation,
    StateMetrics,
    StateStoreConfig,
    StateStoreManager,
    StateTable,
)
from .marbledb import MarbleDBStoreBackend
from .memory import MemoryBackend
from .redis import RedisBackend
from .rocksdb import RocksDBBackend
from .tonbo import TonboBackend

#: rocksdict (RocksDB) is installed
ROCKSDB_AVAILABLE = importlib.util.find_spec("rocksdict") is not None
#: pyarrow is installed (the Arrow-files backend and materializations need it)
ARROW_AVAILABLE = importlib.util.find_spec("pyarrow") is not None
#: the Tonbo and MarbleDB names are the weir engine, always here
TONBO_AVAILABLE = True
MARBLEDB_AVAILABLE = True
#: weir has no Cython variants of Sabot's backends
CYTHON_AVAILABLE = False

__all__ = [
    "ARROW_AVAILABLE",
    "BACKEND_TYPES",
    "CYTHON_AVAILABLE",
    "MARBLEDB_AVAILABLE",
    "ROCKSDB_AVAILABLE",
    "TONBO_AVAILABLE",
    "ArrowFileBackend",
    "BackendType",
    "CheckpointConfig",
    "CheckpointManager",
    "CheckpointMetadata",
    "MarbleDBStoreBackend",
    "MemoryBackend",
    "RedisBackend",
    "RocksDBBackend",
    "ScanItems",
    "StateIsolation",
    "StateMetrics",
    "StateStoreConfig",
    "StateStoreManager",
    "StateTable",
    "StoreBackend",
    "StoreBackendConfig",
    "TonboBackend",
    "Transaction",
    "WeirBackend",
    "create_backend",
    "create_backend_auto",
    "create_backend_from_string",
]


def create_backend_auto(backend_spec: str, use_cython: bool = True, **kwargs: Any) -> StoreBackend:
    """Sabot's factory with a Cython preference: builds the backend
    ``backend_spec`` names (as :func:`create_backend_from_string`).
    ``use_cython`` is accepted and has nothing to choose between: every
    weir backend runs on the C engine or the client library it names."""
    if not isinstance(use_cython, bool):
        raise TypeError(f"use_cython must be a bool, not {type(use_cython).__name__}")
    return create_backend_from_string(backend_spec, **kwargs)


def __getattr__(name: str) -> Any:
    # The Arrow-files backend imports pyarrow; only load it when asked for.
    if name == "ArrowFileBackend":
        from .arrow_files import ArrowFileBackend

        globals()[name] = ArrowFileBackend
        return ArrowFileBackend
    raise AttributeError(f"module 'weir.sabot.stores' has no attribute {name!r}")
