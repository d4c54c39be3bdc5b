"""Sabot's store-backend base module: the config, the backend interface and
the factories, over :mod:`weir.stores`.

The interface (``StoreBackend``, ``Transaction``) is weir's own: Sabot's
was the model for it. What this module adds is Sabot's side of the names:

- :class:`StoreBackendConfig` defaults to ``backend_type="memory"`` (weir's
  to ``"weir"``) and accepts ``compression="gzip"``, which the engine
  backends store as zstd (weir's engine has lz4 and zstd; see
  docs/SABOT.md).
- :class:`SabotStoreBackend` is the base of the Sabot-named backends: a thin
  shell over a :mod:`weir.stores` backend that keeps Sabot's defaults
  (pickled values, ``str``/``int``/tuple keys without options), reports
  the ``get_stats()`` keys Sabot's callers read, and returns scans as
  :class:`ScanItems`, which both iterate and have a ``len``.
- :func:`create_backend` and :func:`create_backend_from_string` know
  Sabot's backend names: ``memory``, ``tonbo``, ``marbledb``, ``weir``,
  ``rocksdb``, ``redis`` and ``arrow_files``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ... import InvalidArgumentError
from ...codecs import Codec
from ...stores import (
    EncodedPairs,
    EncodedRange,
    StoreBackend,
    Transaction,
    TransactionConflictError,
)
from ...stores import StoreBackendConfig as EngineConfig
from ...stores import create_backend as create_engine_backend
from .._keys import SABOT_KEYS

__all__ = [
    "BACKEND_TYPES",
    "SabotStoreBackend",
    "ScanItems",
    "ScanPairs",
    "StoreBackend",
    "StoreBackendConfig",
    "Transaction",
    "TransactionConflictError",
    "create_backend",
    "create_backend_from_string",
]

#: The backend names :func:`create_backend` knows.
BACKEND_TYPES = ("memory", "tonbo", "marbledb", "weir", "rocksdb", "redis", "arrow_files")

PathLike = str | Path


@dataclass
class StoreBackendConfig(EngineConfig):
    """How to build a store backend, with Sabot's defaults.

    The fields are :class:`weir.stores.StoreBackendConfig`'s (it is one, so
    weir's layers accept it): ``backend_type`` (default ``"memory"``, as in
    Sabot), ``path``, ``max_size``, ``ttl_seconds``, ``compression``
    (``None``, ``"none"``, ``"lz4"``, ``"zstd"`` or Sabot's ``"gzip"``) and
    ``options``. Options a backend does not know are refused when the
    backend is built, so a misspelt one is not silently ignored.
    """

    backend_type: str = "memory"

    def __post_init__(self) -> None:
        gzip = isinstance(self.compression, str) and self.compression.strip().lower() == "gzip"
        if gzip:
            self.compression = None
        super().__post_init__()
        if gzip:
            self.compression = "gzip"

    def copy(self) -> StoreBackendConfig:
        """A copy whose ``options`` dict can be changed independently."""
        return dataclasses.replace(self, options=dict(self.options or {}))


def engine_compression(compression: str | None) -> str | None:
    """The compression weir's engines use for a Sabot compression name."""
    return "zstd" if compression == "gzip" else compression


class ScanItems(list[tuple[Any, Any]]):
    """The ``(key, value)`` pairs a scan found, in key order.

    Sabot's backends disagree on what a scan returns (the memory backend an
    iterator, others a list); this is both: a list (``len``, indexing,
    repeated iteration) that is also an iterator, whose ``next()`` hands out
    the pairs it has not handed out yet.
    """

    _taken = 0

    def __next__(self) -> tuple[Any, Any]:
        if self._taken >= len(self):
            raise StopIteration
        item = self[self._taken]
        self._taken += 1
        return item


class ScanPairs(Awaitable[ScanItems]):
    """What a Sabot-named backend's ``scan`` returns: await it for
    :class:`ScanItems`, or ``async for`` over it to stream the pairs (in
    chunks, as weir's :class:`~weir.stores.ScanResult`)."""

    __slots__ = ("_collect", "_stream")

    def __init__(
        self,
        collect: Callable[[], Awaitable[Iterable[tuple[Any, Any]]]],
        stream: Callable[[], AsyncIterator[tuple[Any, Any]]],
    ) -> None:
        self._collect = collect
        self._stream = stream

    def __await__(self) -> Generator[Any, None, ScanItems]:
        return self._items().__await__()

    async def _items(self) -> ScanItems:
        return ScanItems(await self._collect())

    def __aiter__(self) -> AsyncIterator[tuple[Any, Any]]:
        return self._stream()


class SabotStoreBackend(StoreBackend):
    """A backend under Sabot's name over a :mod:`weir.stores` backend.

    Subclasses set :attr:`backend_type` (the Sabot name, what ``get_stats``
    reports) and :attr:`engine_type` (the weir backend that holds the data).
    Values are pickled and keys may be ``str``, bytes, ``int``, ``None`` or
    tuples (see :mod:`weir.sabot._keys`) unless ``options`` names other
    codecs (``key_codec``, ``value_codec``). Every operation is the weir
    backend's, with its guarantees: atomic batches, ``ClosedError`` after
    ``stop()`` (except on the memory backend, which Sabot code uses without
    ``start()``), typed errors for bad keys and values.
    """

    backend_type = "abstract"
    #: the :mod:`weir.stores` backend type that holds the data
    engine_type = "memory"
    #: the value codec when ``options`` names none
    default_value_codec = "pickle"

    def __init__(self, config: EngineConfig | None = None) -> None:
        if config is None:
            config = StoreBackendConfig(backend_type=self.backend_type)
        super().__init__(config)
        self._inner: StoreBackend = create_engine_backend(self._engine_config(config))
        self._running = False

    # ---- configuration --------------------------------------------------------------

    def _engine_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Sabot's options for this backend turned into weir's (a hook)."""
        return options

    def _engine_config(self, config: EngineConfig) -> EngineConfig:
        options = self._engine_options(dict(config.options or {}))
        options.setdefault("key_codec", SABOT_KEYS)
        options.setdefault("value_codec", self.default_value_codec)
        return EngineConfig(
            backend_type=self.engine_type,
            path=config.path,
            max_size=config.max_size,
            ttl_seconds=config.ttl_seconds,
            compression=engine_compression(config.compression),
            options=options,
        )

    @property
    def engine(self) -> StoreBackend:
        """The :mod:`weir.stores` backend holding the data."""
        return self._inner

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._running

    async def _ready(self) -> None:
        """Called before every data operation (the memory backend starts here)."""

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._inner.start()
        self._running = True

    async def stop(self) -> None:
        self._running = False
        await self._inner.stop()

    # ---- data ------------------------------------------------------------------------

    async def get(self, key: Any) -> Any | None:
        await self._ready()
        return await self._inner.get(key)

    async def set(self, key: Any, value: Any) -> None:
        await self._ready()
        await self._inner.set(key, value)

    async def delete(self, key: Any) -> bool:
        await self._ready()
        return await self._inner.delete(key)

    async def exists(self, key: Any) -> bool:
        await self._ready()
        return await self._inner.exists(key)

    async def keys(self, prefix: Any | None = None) -> list[Any]:
        await self._ready()
        return await self._inner.keys(prefix)

    async def values(self) -> list[Any]:
        await self._ready()
        return await self._inner.values()

    async def items(self, prefix: Any | None = None) -> list[tuple[Any, Any]]:
        await self._ready()
        return await self._inner.items(prefix)

    async def clear(self) -> None:
        await self._ready()
        await self._inner.clear()

    async def size(self) -> int:
        await self._ready()
        return await self._inner.size()

    def scan(
        self,
        start_key: Any | None = None,
        end_key: Any | None = None,
        prefix: Any | None = None,
        limit: int | None = None,
    ) -> ScanPairs:
        """Pairs with ``start_key <= key < end_key`` under ``prefix``, at most
        ``limit``, in key order: await for :class:`ScanItems` (a list that is
        also an iterator) or ``async for`` to stream them."""

        async def collect() -> Iterable[tuple[Any, Any]]:
            await self._ready()
            return await self._inner.scan(start_key, end_key, prefix, limit)

        async def stream() -> AsyncIterator[tuple[Any, Any]]:
            await self._ready()
            async for pair in self._inner.scan(start_key, end_key, prefix, limit):  # type: ignore[attr-defined]
                yield pair

        return ScanPairs(collect, stream)

    async def batch_set(self, items: Mapping[Any, Any]) -> None:
        await self._ready()
        await self._inner.batch_set(items)

    async def batch_delete(self, keys: Iterable[Any]) -> int:
        await self._ready()
        return await self._inner.batch_delete(keys)

    async def delete_range(self, start_key: Any | None = None, end_key: Any | None = None) -> None:
        await self._ready()
        await self._inner.delete_range(start_key, end_key)

    async def delete_prefix(self, prefix: Any) -> None:
        await self._ready()
        await self._inner.delete_prefix(prefix)

    async def backup(self, path: Any) -> None:
        await self._ready()
        await self._inner.backup(path)

    async def restore(self, path: Any) -> None:
        await self._ready()
        await self._inner.restore(path)

    async def batch_get(self, keys: Iterable[Any]) -> list[Any]:
        await self._ready()
        return await self._inner.batch_get(keys)

    async def begin_transaction(self) -> Transaction:
        await self._ready()
        return await self._inner.begin_transaction()

    async def commit_transaction(self, transaction: Transaction) -> None:
        await self._inner.commit_transaction(transaction)

    async def rollback_transaction(self, transaction: Transaction) -> None:
        await self._inner.rollback_transaction(transaction)

    # ---- the byte-level interface of weir's layers (the engine's own) -----------------

    @property
    def key_codec(self) -> Codec[Any]:
        return self._inner.key_codec

    @property
    def value_codec(self) -> Codec[Any]:
        return self._inner.value_codec

    def encode_key(self, key: Any) -> bytes:
        return self._inner.encode_key(key)

    def decode_key(self, data: bytes) -> Any:
        return self._inner.decode_key(data)

    def encode_value(self, key: Any, value: Any) -> bytes:
        return self._inner.encode_value(key, value)

    def decode_value(self, key: Any, payload: bytes) -> Any:
        return self._inner.decode_value(key, payload)

    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        await self._ready()
        await self._inner.apply(puts, deletes, clear_range=clear_range)

    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        await self._ready()
        return await self._inner.snapshot_range(lower, upper)

    # ---- statistics ------------------------------------------------------------------

    def _memory_usage(self, engine_stats: Mapping[str, Any]) -> int:
        """Bytes of process memory the data takes (a hook; 0 when remote)."""
        return 0

    async def get_stats(self) -> dict[str, Any]:
        """weir's statistics plus the keys Sabot's callers read: ``size``
        (the number of keys), ``memory_usage_bytes``, ``backend_type`` (the
        Sabot name; the weir backend's is ``engine_backend``), ``max_size``
        and ``ttl_seconds``."""
        await self._ready()
        stats = dict(await self._inner.get_stats())
        engine = stats.get("engine")
        stats["engine_backend"] = stats.get("backend_type")
        stats["backend_type"] = self.backend_type
        if stats.get("keys_exact") and isinstance(stats.get("keys"), int):
            stats["size"] = stats["keys"]
        else:
            stats["size"] = await self._inner.size()
        stats["memory_usage_bytes"] = self._memory_usage(engine if isinstance(engine, dict) else {})
        stats["max_size"] = self.config.max_size
        stats["ttl_seconds"] = self.config.ttl_seconds
        stats["compression"] = self.config.compression
        return stats

    def __repr__(self) -> str:
        return f"<weir.sabot {type(self).__name__} path={self.config.path!r}>"


def _backend_class(kind: str) -> type[StoreBackend]:
    if kind == "memory":
        from .memory import MemoryBackend

        return MemoryBackend
    if kind == "tonbo":
        from .tonbo import TonboBackend

        return TonboBackend
    if kind == "marbledb":
        from .marbledb import MarbleDBStoreBackend

        return MarbleDBStoreBackend
    if kind == "weir":
        from .engine import WeirBackend

        return WeirBackend
    if kind == "rocksdb":
        from .rocksdb import RocksDBBackend

        return RocksDBBackend
    if kind == "redis":
        from .redis import RedisBackend

        return RedisBackend
    if kind == "arrow_files":
        from .arrow_files import ArrowFileBackend

        return ArrowFileBackend
    raise InvalidArgumentError(
        f"unknown backend_type {kind!r}; choose one of {', '.join(map(repr, BACKEND_TYPES))} "
        "(Sabot's kafka state backend has no weir counterpart)"
    )


def create_backend(config: EngineConfig) -> StoreBackend:
    """Build the backend ``config.backend_type`` names (not yet started)."""
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be a StoreBackendConfig, not {type(config).__name__}")
    return _backend_class(config.backend_type)(config)


def create_backend_from_string(backend_spec: str, **kwargs: Any) -> StoreBackend:
    """Build a backend from ``"kind://path"`` (``"memory://"``,
    ``"tonbo:///var/lib/app"``, ``"arrow_files://data"``, ``"redis://host:port/db"``)
    or a bare kind (``"memory"``). ``kwargs`` become the other
    :class:`StoreBackendConfig` fields."""
    if not isinstance(backend_spec, str):
        raise TypeError(f"backend_spec must be a str, not {type(backend_spec).__name__}")
    if "path" in kwargs or "backend_type" in kwargs:
        raise TypeError("give the backend type and path in backend_spec, not as keyword arguments")
    kind, sep, rest = backend_spec.partition("://")
    config = StoreBackendConfig(backend_type=kind.strip().lower(), **kwargs)
    if sep and rest:
        if config.backend_type == "redis":
            options = dict(config.options or {})
            options.setdefault("url", f"redis://{rest}")
            config.options = options
        else:
            config.path = Path(unquote(rest))
    return create_backend(config)
