"""The store-backend API: configuration, the abstract backend, transactions.

These are the names stream-processing code written against the Sabot
``StoreBackend`` interface imports (``StoreBackendConfig``, ``StoreBackend``,
``Transaction``, ``create_backend``, ``create_backend_from_string``), so a
backend from :mod:`weir.stores` is a drop-in replacement for the backends of
that interface.

Semantics shared by every backend in this package (the conformance suite in
``tests/python/test_stores.py`` holds all four to them):

* Keys are ``str`` (stored as UTF-8) or bytes-like by default; other key
  types raise ``TypeError`` (use ``options={"key_codec": "key"}`` for ``int``
  and ``tuple`` keys). Keys come back as ``str`` when their bytes are valid
  UTF-8 and as ``bytes`` otherwise. A key is at most 1 MiB once encoded.
* Values go through a value codec (msgpack by default:
  :class:`weir.codecs.DefaultValueCodec`, which also reads the JSON earlier
  versions stored by default), so a value read
  back is a fresh object, never the one that was stored, and an unencodable
  value raises ``TypeError`` naming the key and the type before anything is
  written.
* Key order, for ``keys``, ``items`` and ``scan``, is the byte order of the
  encoded keys; ``start_key`` is inclusive, ``end_key`` exclusive;
  ``limit=0`` returns nothing.
* ``batch_set`` and ``batch_delete`` are atomic: all of the batch or none of
  it is applied, across a crash for the persistent backends.
* After ``stop()`` every operation raises :class:`weir.ClosedError`;
  ``start()`` may be called again.

Besides the Sabot names, :class:`StoreBackend` has the byte-level methods
the layers above it (``weir.table``, ``weir.stream``, ``weir.cluster``)
need, so none of them reaches into a backend: the codecs
(:attr:`~StoreBackend.key_codec`, :meth:`~StoreBackend.encode_key`,
:meth:`~StoreBackend.encode_value`, ...), an atomic write of encoded puts,
deletes and a range clear (:meth:`~StoreBackend.apply`), and a copy of a
key range as encoded pairs (:meth:`~StoreBackend.snapshot_range`,
:meth:`~StoreBackend.restore_range`).

Backend types are looked up in a registry (:func:`register_backend`); the
four of this package are registered by ``weir.stores`` itself, each
imported only when first built.
"""

from __future__ import annotations

import abc
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import unquote

from .. import ConflictError, InvalidArgumentError
from ._common import make_error

if TYPE_CHECKING:
    from types import TracebackType

    from ..codecs import Codec
    from ._common import KeyEncoding, ValueEncoding

__all__ = [
    "BACKEND_TYPES",
    "ScanResult",
    "StoreBackend",
    "StoreBackendConfig",
    "Transaction",
    "TransactionConflictError",
    "backend_types",
    "create_backend",
    "create_backend_from_string",
    "register_backend",
]

#: The backend types of this package, in order of preference.
BACKEND_TYPES = ("weir", "memory", "rocksdb", "redis")

PathLike = Union[str, "os.PathLike[str]"]
#: What :meth:`StoreBackend.apply` and :meth:`StoreBackend.restore_range`
#: take: ``(encoded key, value codec payload)`` pairs.
EncodedPairs = Sequence[tuple[bytes, bytes]]
#: ``[lower, upper)`` of encoded keys; None is unbounded on that side.
EncodedRange = tuple[bytes | None, bytes | None]

BackendFactory = Callable[["StoreBackendConfig"], "StoreBackend"]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(backend_type: str, factory: BackendFactory) -> None:
    """Make :func:`create_backend` build ``factory(config)`` for
    ``config.backend_type == backend_type`` (lower case). Registering a
    name again replaces its factory."""
    if not isinstance(backend_type, str) or not backend_type.strip():
        raise TypeError(f"backend_type must be a non-empty str, not {backend_type!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, not {type(factory).__name__}")
    _REGISTRY[backend_type.strip().lower()] = factory


def backend_types() -> list[str]:
    """Every backend type :func:`create_backend` can build, this package's first."""
    ours = [t for t in BACKEND_TYPES if t in _REGISTRY]
    return ours + [t for t in _REGISTRY if t not in BACKEND_TYPES]


class TransactionConflictError(ConflictError):
    """A transaction's commit found that a key it read (or, on the weir
    backend, wrote) was changed since.

    Nothing of the transaction was written; retry it from the beginning. It
    is a :class:`weir.ConflictError` (and so a :class:`weir.Error`), and
    ``e.status`` is ``"WEIR_CONFLICT"``.
    """


@dataclass
class StoreBackendConfig:
    """How to build a store backend.

    ``backend_type`` is one of ``"weir"`` (the embedded default),
    ``"memory"``, ``"rocksdb"`` or ``"redis"``. ``path`` is the store's
    directory for ``weir`` and ``rocksdb``; for ``redis`` it may hold
    ``host:port/db`` (see :func:`create_backend_from_string`).

    ``max_size`` caps the number of keys of the ``memory`` backend, which
    then evicts the least recently used key; the persistent backends do not
    evict and log a warning if it is set. ``ttl_seconds`` makes every value
    expire that long after it was last written, on every backend; expired
    values are invisible at once and their space is reclaimed lazily.
    ``compression`` is ``None``, ``"none"``, ``"lz4"`` or ``"zstd"`` for the
    on-disk backends.

    ``options`` holds the rest: ``key_codec`` and ``value_codec`` (names
    from :mod:`weir.codecs` or codec objects; by default str-or-bytes keys
    and :class:`weir.codecs.DefaultValueCodec` values, msgpack),
    ``executor_threads`` (default 4), and backend-specific settings listed in
    each backend's documentation. Unknown options raise
    :class:`weir.InvalidArgumentError`, so a misspelt option is not silently
    ignored.
    """

    backend_type: str = "weir"
    path: PathLike | None = None
    max_size: int | None = None
    ttl_seconds: float | None = None
    compression: str | None = None
    options: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.backend_type, str):
            raise TypeError(f"backend_type must be a str, not {type(self.backend_type).__name__}")
        self.backend_type = self.backend_type.strip().lower()
        if self.path is not None and not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(self.path).__name__}")
        if self.max_size is not None:
            if isinstance(self.max_size, bool) or not isinstance(self.max_size, int):
                raise TypeError(
                    f"max_size must be an int or None, not {type(self.max_size).__name__}"
                )
            if self.max_size <= 0:
                raise InvalidArgumentError(f"max_size must be positive, not {self.max_size}")
        if self.ttl_seconds is not None:
            if isinstance(self.ttl_seconds, bool) or not isinstance(self.ttl_seconds, (int, float)):
                raise TypeError(
                    f"ttl_seconds must be a number or None, not {type(self.ttl_seconds).__name__}"
                )
            if not self.ttl_seconds > 0 or self.ttl_seconds != self.ttl_seconds:
                raise InvalidArgumentError(f"ttl_seconds must be positive, not {self.ttl_seconds}")
        if self.compression is not None:
            if not isinstance(self.compression, str):
                raise TypeError(
                    f"compression must be a str or None, not {type(self.compression).__name__}"
                )
            self.compression = self.compression.lower()
            if self.compression not in ("none", "lz4", "zstd"):
                raise InvalidArgumentError(
                    f"compression must be None, 'none', 'lz4' or 'zstd', not {self.compression!r}"
                )
        if self.options is None:
            self.options = {}
        elif not isinstance(self.options, Mapping):
            raise TypeError(f"options must be a dict or None, not {type(self.options).__name__}")
        else:
            self.options = dict(self.options)


class Transaction(abc.ABC):
    """A set of reads and writes that commit together or not at all."""

    @abc.abstractmethod
    async def get(self, key: Any) -> Any | None:
        """Read ``key``, seeing this transaction's own uncommitted writes."""

    @abc.abstractmethod
    async def set(self, key: Any, value: Any) -> None:
        """Buffer a write of ``key``; it is applied at commit."""

    @abc.abstractmethod
    async def delete(self, key: Any) -> bool:
        """Buffer a delete of ``key``; True if the key existed."""


class StoreBackend(abc.ABC):
    """The interface every store backend implements.

    All data methods are coroutines; ``scan`` returns an object that can be
    awaited (an iterator of ``(key, value)`` tuples, as the Sabot interface
    returns) or consumed lazily with ``async for``. A backend is also an
    async context manager that starts and stops it.
    """

    #: "weir", "memory", "rocksdb" or "redis" for the backends of this package.
    backend_type: str = "abstract"

    def __init__(self, config: StoreBackendConfig) -> None:
        if not isinstance(config, StoreBackendConfig):
            raise TypeError(f"config must be a StoreBackendConfig, not {type(config).__name__}")
        self.config = config

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the store; raises :class:`weir.BusyError` if another holds it."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close the store; idempotent. Data of persistent backends stays."""

    @abc.abstractmethod
    async def get(self, key: Any) -> Any | None:
        """The value of ``key``, or None if it is absent or expired."""

    async def batch_get(self, keys: Iterable[Any]) -> list[Any]:
        """The values of ``keys`` (None for absent ones), in order. The
        backends of this package read them in one call; this default reads
        them one by one."""
        return [await self.get(k) for k in keys]

    @abc.abstractmethod
    async def set(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key``."""

    @abc.abstractmethod
    async def delete(self, key: Any) -> bool:
        """Remove ``key``; True if it was present."""

    @abc.abstractmethod
    async def exists(self, key: Any) -> bool:
        """True if ``key`` is present (a stored None counts)."""

    @abc.abstractmethod
    async def keys(self, prefix: Any | None = None) -> list[Any]:
        """Every key, or every key starting with ``prefix``, in key order."""

    @abc.abstractmethod
    async def values(self) -> list[Any]:
        """Every value, in key order."""

    @abc.abstractmethod
    async def items(self, prefix: Any | None = None) -> list[tuple[Any, Any]]:
        """Every ``(key, value)`` pair, optionally under ``prefix``, in key order."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Remove every key."""

    @abc.abstractmethod
    async def size(self) -> int:
        """The number of keys present."""

    @abc.abstractmethod
    def scan(
        self,
        start_key: Any | None = None,
        end_key: Any | None = None,
        prefix: Any | None = None,
        limit: int | None = None,
    ) -> Awaitable[Iterator[tuple[Any, Any]]]:
        """Pairs with ``start_key <= key < end_key`` under ``prefix``, at most ``limit``."""

    @abc.abstractmethod
    async def batch_set(self, items: Mapping[Any, Any]) -> None:
        """Store every pair of ``items`` in one atomic write."""

    @abc.abstractmethod
    async def batch_delete(self, keys: Iterable[Any]) -> int:
        """Remove ``keys`` in one atomic write; returns how many were present."""

    @abc.abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """At least ``backend_type``, ``keys``, ``keys_exact``, ``bytes_on_disk``."""

    @abc.abstractmethod
    async def backup(self, path: PathLike) -> None:
        """Write a consistent copy of the store to ``path`` (which must not exist)."""

    @abc.abstractmethod
    async def restore(self, path: PathLike) -> None:
        """Replace the store's contents with the backup at ``path``."""

    @abc.abstractmethod
    async def delete_range(self, start_key: Any | None = None, end_key: Any | None = None) -> None:
        """Remove every key with ``start_key <= key < end_key`` (None: unbounded)
        in one atomic write. ``start_key > end_key`` raises
        :class:`weir.InvalidArgumentError`."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: Any) -> None:
        """Remove every key that starts with ``prefix`` in one atomic write."""

    @abc.abstractmethod
    async def begin_transaction(self) -> Transaction:
        """Begin a transaction (see :class:`Transaction`)."""

    @abc.abstractmethod
    async def commit_transaction(self, transaction: Transaction) -> None:
        """Apply a transaction's writes atomically."""

    @abc.abstractmethod
    async def rollback_transaction(self, transaction: Transaction) -> None:
        """Discard a transaction's writes."""

    # ---- the byte-level interface of the layers above --------------------------------
    #
    # Subclasses set ``_keys`` and ``_values`` (the encodings of
    # :mod:`weir.stores._common`) in ``__init__``; the codec methods below
    # are theirs. ``apply``, ``snapshot_range`` and ``started`` each backend
    # implements.

    _keys: KeyEncoding
    _values: ValueEncoding

    @property
    @abc.abstractmethod
    def started(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""

    @property
    def key_codec(self) -> Codec[Any]:
        """The codec that turns keys into the bytes the store orders by
        (``options["key_codec"]``; by default str as UTF-8, bytes as is)."""
        codec: Codec[Any] = self._keys.codec
        return codec

    @property
    def value_codec(self) -> Codec[Any]:
        """The codec values are stored with (``options["value_codec"]``;
        by default :class:`weir.codecs.DefaultValueCodec`, msgpack)."""
        codec: Codec[Any] = self._values.codec
        return codec

    def encode_key(self, key: Any) -> bytes:
        """The stored bytes of ``key``: TypeError for a key of the wrong
        type, :class:`weir.InvalidArgumentError` for one over 1 MiB."""
        return self._keys.encode(key)

    def decode_key(self, data: bytes) -> Any:
        """The key whose stored bytes are ``data``."""
        return self._keys.decode(data)

    def encode_value(self, key: Any, value: Any) -> bytes:
        """The value codec's bytes (the *payload*) of ``value``; ``key``
        only names it in the TypeError an unencodable value raises."""
        return self._values.encode_plain(key, value)

    def decode_value(self, key: Any, payload: bytes) -> Any:
        """The value a payload encodes; :class:`weir.CorruptionError`
        (naming ``key``) if the codec cannot read it."""
        return self._values.decode_payload(key, payload)

    @abc.abstractmethod
    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        """One atomic write of encoded data: first every key in
        ``clear_range`` (``[lower, upper)``, None unbounded) is removed,
        then ``deletes``, then ``puts`` (encoded keys with value payloads,
        as :meth:`encode_key` and :meth:`encode_value` make them; a store
        with ``ttl_seconds`` starts each value's lifetime now). Other
        callers see all of it or none; the persistent backends keep all of
        it or none across a crash. TypeError for a key or value that is not
        bytes, :class:`weir.InvalidArgumentError` for a key over 1 MiB or a
        range whose lower bound is above its upper; nothing is written
        then."""

    @abc.abstractmethod
    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Every live ``(encoded key, value payload)`` with ``lower <= key
        < upper`` (None: unbounded), in key order, read as of one moment:
        what :meth:`restore_range` takes back."""

    async def restore_range(
        self, lower: bytes | None, upper: bytes | None, pairs: EncodedPairs
    ) -> None:
        """Make ``[lower, upper)`` hold exactly ``pairs`` (what
        :meth:`snapshot_range` returned), in one atomic write. Pairs outside
        the range raise :class:`weir.InvalidArgumentError` before anything
        is written."""
        pairs = list(pairs)
        for k, _v in pairs:
            if not isinstance(k, bytes):
                raise TypeError(f"keys must be bytes, not {type(k).__name__}")
            if (lower is not None and k < lower) or (upper is not None and k >= upper):
                raise make_error(
                    InvalidArgumentError,
                    f"restore_range: key {k[:60]!r} is outside [{lower!r}, {upper!r})",
                )
        await self.apply(pairs, (), clear_range=(lower, upper))

    async def __aenter__(self) -> StoreBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} path={self.config.path!r}>"


class ScanResult(Awaitable[Iterator[tuple[Any, Any]]]):
    """What ``scan`` returns: await it for an iterator, or ``async for`` over it.

    Awaiting runs the whole scan as one consistent read in a worker thread.
    ``async for`` streams the pairs in chunks, each fetched in a worker
    thread, so a large scan never holds the event loop or much memory.
    """

    __slots__ = ("_collect", "_stream")

    def __init__(
        self,
        collect: Callable[[], Awaitable[list[tuple[Any, Any]]]],
        stream: Callable[[], AsyncIterator[tuple[Any, Any]]],
    ) -> None:
        self._collect = collect
        self._stream = stream

    def __await__(self) -> Generator[Any, None, Iterator[tuple[Any, Any]]]:
        return self._as_iterator().__await__()

    async def _as_iterator(self) -> Iterator[tuple[Any, Any]]:
        return iter(await self._collect())

    def __aiter__(self) -> AsyncIterator[tuple[Any, Any]]:
        return self._stream()


def create_backend(config: StoreBackendConfig) -> StoreBackend:
    """Build the backend ``config.backend_type`` names (not yet started)."""
    if not isinstance(config, StoreBackendConfig):
        raise TypeError(f"config must be a StoreBackendConfig, not {type(config).__name__}")
    factory = _REGISTRY.get(config.backend_type)
    if factory is None:
        raise InvalidArgumentError(
            f"unknown backend_type {config.backend_type!r}; choose one of "
            f"{', '.join(map(repr, backend_types()))}"
        )
    return factory(config)


def create_backend_from_string(spec: str, **kwargs: Any) -> StoreBackend:
    """Build a backend from a URL-like string.

    ``"weir:///var/lib/app/state"`` and ``"rocksdb:///path"`` name a
    directory (``"weir://relative/dir"`` a relative one); ``"memory://"`` an
    in-memory store; ``"redis://host:port/db"`` a Redis server (the
    namespace comes from ``options={"namespace": ...}``). A bare type
    (``"memory"``) works too. ``kwargs`` become the other
    :class:`StoreBackendConfig` fields.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, not {type(spec).__name__}")
    if "path" in kwargs or "backend_type" in kwargs:
        raise TypeError("give the backend type and path in spec, not as keyword arguments")
    kind, sep, rest = spec.partition("://")
    kind = kind.strip().lower()
    if not sep:
        return create_backend(StoreBackendConfig(backend_type=kind, **kwargs))
    config = StoreBackendConfig(backend_type=kind, **kwargs)
    if rest:
        config.path = rest if kind == "redis" else Path(unquote(rest))
    return create_backend(config)
