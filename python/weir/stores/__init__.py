"""Store backends: the async key-value API stream processors keep state in.

The names are those of the Sabot store-backend interface, so code written
against it runs on weir unchanged::

    from weir.stores import StoreBackendConfig, create_backend

    backend = create_backend(StoreBackendConfig(path="/var/lib/app/state"))
    await backend.start()
    await backend.set("user:1", {"name": "Alice"})
    user = await backend.get("user:1")
    async for key, value in backend.scan(prefix="user:", limit=100):
        ...
    await backend.stop()

``StoreBackendConfig(path=...)`` alone gives the weir backend, the
embedded default. The others, with the same behaviour (one conformance
suite runs against all four): ``MemoryBackend`` (LRU ``max_size``, TTL),
``RocksDBBackend`` (rocksdict) and ``RedisBackend`` (redis-py).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._common import TextOrBytesKeys
from ._txn import EngineTransaction, StoreTransaction
from .base import (
    BACKEND_TYPES,
    CountedRange,
    CountedWrite,
    EncodedPairs,
    EncodedRange,
    ScanResult,
    StoreBackend,
    StoreBackendConfig,
    SyncFace,
    Transaction,
    TransactionConflictError,
    backend_types,
    create_backend,
    create_backend_from_string,
    register_backend,
)
from .dbface import DBFace

if TYPE_CHECKING:
    from .memory import MemoryBackend
    from .redis import RedisBackend
    from .rocksdb import RocksDBBackend
    from .weir_backend import WeirBackend

__all__ = [
    "BACKEND_TYPES",
    "CountedRange",
    "CountedWrite",
    "DBFace",
    "EncodedPairs",
    "EncodedRange",
    "EngineTransaction",
    "MemoryBackend",
    "RedisBackend",
    "RocksDBBackend",
    "ScanResult",
    "StoreBackend",
    "StoreBackendConfig",
    "StoreTransaction",
    "SyncFace",
    "TextOrBytesKeys",
    "Transaction",
    "TransactionConflictError",
    "WeirBackend",
    "backend_types",
    "create_backend",
    "create_backend_from_string",
    "register_backend",
]

_LAZY = {
    "WeirBackend": ".weir_backend",
    "MemoryBackend": ".memory",
    "RocksDBBackend": ".rocksdb",
    "RedisBackend": ".redis",
}


def __getattr__(name: str) -> Any:
    # The RocksDB and Redis backends import their client libraries only when
    # asked for, so ``import weir.stores`` needs neither.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weir.stores' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def _register_builtin(backend_type: str, class_name: str) -> None:
    def build(config: StoreBackendConfig) -> StoreBackend:
        cls: type[StoreBackend] = __getattr__(class_name)
        return cls(config)

    register_backend(backend_type, build)


for _type, _class in (
    ("weir", "WeirBackend"),
    ("memory", "MemoryBackend"),
    ("rocksdb", "RocksDBBackend"),
    ("redis", "RedisBackend"),
):
    _register_builtin(_type, _class)
