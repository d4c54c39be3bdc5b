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
deletes and a range clear (:meth:`~StoreBackend.apply`), a copy of a
key range as encoded pairs (:meth:`~StoreBackend.snapshot_range`,
:meth:`~StoreBackend.restore_range`), point reads and a chunked scan of
encoded data (:meth:`~StoreBackend.read`,
:meth:`~StoreBackend.scan_range`), *counted* writes that keep the number
of keys in a :class:`CountedRange` exact (:meth:`~StoreBackend.write_counted`,
:meth:`~StoreBackend.count_range`, ...), and, for the embedded engines, a
synchronous face (:meth:`~StoreBackend.sync_face`, a :class:`SyncFace`)
that code outside the event loop calls directly, without a thread hop.

Backend types are looked up in a registry (:func:`register_backend`); the
four of this package are registered by ``weir.stores`` itself, each
imported only when first built.
"""

from __future__ import annotations

import abc
import os
from collections.abc import (
    AsyncGenerator,
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
    "CountedRange",
    "CountedWrite",
    "ScanResult",
    "StoreBackend",
    "StoreBackendConfig",
    "SyncFace",
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

#: Pairs a scan of encoded data yields at a time (:meth:`StoreBackend.scan_range`).
SCAN_RANGE_CHUNK = 1024


@dataclass(frozen=True)
class CountedRange:
    """A key range whose live keys a store counts, and where it keeps the count.

    ``lower <= key < upper`` (encoded keys; ``upper`` None is unbounded) is
    the range; ``counter`` is the encoded key the store may keep the count
    under, which must lie outside the range. Writes through the counted
    methods (:meth:`StoreBackend.write_counted`, :meth:`SyncFace.put_counted`,
    ...) keep the count exact in the same atomic write; writes through any
    other method bypass it until :meth:`StoreBackend.recount_range`.
    ``weir.table`` gives each table one: its rows and its count key.
    """

    counter: bytes
    lower: bytes
    upper: bytes | None

    def __post_init__(self) -> None:
        for name in ("counter", "lower"):
            if type(getattr(self, name)) is not bytes:
                raise TypeError(
                    f"CountedRange.{name} must be bytes, not {type(getattr(self, name)).__name__}"
                )
        if self.upper is not None and type(self.upper) is not bytes:
            raise TypeError(
                f"CountedRange.upper must be bytes or None, not {type(self.upper).__name__}"
            )
        if self.upper is not None and self.lower >= self.upper:
            raise make_error(
                InvalidArgumentError,
                f"CountedRange: lower {self.lower[:60]!r} is not below upper {self.upper[:60]!r}",
            )
        if self.lower <= self.counter and (self.upper is None or self.counter < self.upper):
            raise make_error(
                InvalidArgumentError,
                f"CountedRange: the counter key {self.counter[:60]!r} lies inside the range "
                "it counts",
            )

    def holds(self, key: bytes) -> bool:
        """True if ``key`` is in the range."""
        return self.lower <= key and (self.upper is None or key < self.upper)


#: One write of :meth:`StoreBackend.write_counted`: ``(encoded key, value
#: payload or None to delete, the CountedRange that holds the key)``.
CountedWrite = tuple[bytes, bytes | None, CountedRange]


def check_counted_writes(writes: Iterable[Any]) -> list[CountedWrite]:
    """The writes of a counted batch as a list, checked before anything is
    written: bytes keys inside their range, bytes payloads or None."""
    out: list[CountedWrite] = []
    for w in writes:
        if type(w) is not tuple or len(w) != 3:
            raise TypeError(
                f"a counted write is a (key, payload or None, CountedRange), not {w!r:.80}"
            )
        key, payload, rng = w
        if type(key) is not bytes:
            raise TypeError(f"a key must be bytes (an encoded key), not {type(key).__name__}")
        if payload is not None and type(payload) is not bytes:
            raise TypeError(
                f"the value for key {key[:60]!r} must be bytes (a value codec payload) or None, "
                f"not {type(payload).__name__}"
            )
        if not isinstance(rng, CountedRange):
            raise TypeError(f"a counted write names a CountedRange, not {type(rng).__name__}")
        if not rng.holds(key):
            raise make_error(
                InvalidArgumentError, f"key {key[:60]!r} is outside the counted range it names"
            )
        out.append(w)
    return out


class SyncFace(abc.ABC):
    """The synchronous byte-level face of a store: what code outside the
    event loop (``weir.table``'s sync face) needs, called directly on the
    caller's thread. :meth:`StoreBackend.sync_face` returns one for the
    backends whose engine may be called from any thread (weir, RocksDB);
    :class:`weir.stores.DBFace` is one over a bare :class:`weir.DB`.

    Keys are encoded keys, values are value codec payloads (no expiry
    header), as in :meth:`StoreBackend.apply`. The counted methods have the
    semantics of the backend's async ones of the same names. A face does
    not wait for the backend's ``stop()`` or ``restore()``: a call that
    races with them may raise :class:`weir.ClosedError`.
    """

    @abc.abstractmethod
    def read(self, key: bytes) -> bytes | None:
        """The payload stored under ``key``, None if absent (or expired)."""

    @abc.abstractmethod
    def contains(self, key: bytes) -> bool:
        """True if ``key`` is present (and not expired)."""

    @abc.abstractmethod
    def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        """Store ``payload`` under ``key`` (inside ``rng``); True if the key was present."""

    @abc.abstractmethod
    def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        """Remove ``key`` (inside ``rng``); True if it was present."""

    @abc.abstractmethod
    def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        """Apply every write in one atomic write; whether each key was present."""

    @abc.abstractmethod
    def count_range(self, rng: CountedRange) -> int:
        """The number of live keys in ``rng`` (O(1) where the store keeps the counter)."""

    @abc.abstractmethod
    def recount_range(self, rng: CountedRange) -> int:
        """Count ``rng`` afresh (O(n)) and keep that as its count; returns it."""

    @abc.abstractmethod
    def clear_range(self, rng: CountedRange) -> None:
        """Remove every key of ``rng`` and zero its count, in one atomic write."""

    @abc.abstractmethod
    def items(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, payload)`` in ``[lower, upper)``, in key order, from one
        consistent view where the engine has one. The iterator has a
        ``close()``; close it when you stop early."""

    @abc.abstractmethod
    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        """The keys in ``[lower, upper)`` in key order (closeable, as :meth:`items`)."""


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

    # ---- point reads, scans and counted writes of encoded data -----------------------
    #
    # The defaults below work on any backend through apply() and
    # snapshot_range(); the backends of this package override them (one
    # engine read, one atomic counted write, a counter kept in O(1)).

    async def read(self, key: bytes) -> bytes | None:
        """The payload stored under the encoded ``key``; None if it is
        absent or expired. TypeError if ``key`` is not bytes."""
        if type(key) is not bytes:
            raise TypeError(f"a key must be bytes (an encoded key), not {type(key).__name__}")
        pairs = await self.snapshot_range(key, key + b"\x00")
        return pairs[0][1] if pairs else None

    async def contains(self, key: bytes) -> bool:
        """True if the encoded ``key`` is present (and not expired)."""
        return await self.read(key) is not None

    async def scan_range(
        self, lower: bytes | None = None, upper: bytes | None = None, *, values: bool = True
    ) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
        """``(encoded key, payload)`` pairs of ``[lower, upper)`` in key
        order, a list of up to about a thousand at a time, so a large range
        is never held whole (with ``values`` False the payloads may be
        empty). The backends of this package read each chunk off the event
        loop; this default reads the range with :meth:`snapshot_range`."""
        pairs = await self.snapshot_range(lower, upper)
        for i in range(0, len(pairs), SCAN_RANGE_CHUNK):
            yield pairs[i : i + SCAN_RANGE_CHUNK]

    async def write_counted(self, writes: Iterable[CountedWrite]) -> list[bool]:
        """One atomic write of ``(key, payload or None, CountedRange)``
        writes (None deletes; the last write of a key wins), returning
        whether each key was present before it. Every range's count changes
        by the keys the write adds to it and removes from it, in the same
        atomic write. Checked before anything is written: TypeError for a
        key or payload that is not bytes, :class:`weir.InvalidArgumentError`
        for a key outside its range.

        The backends of this package check presence and write in one step.
        This default, for other backends, reads presence first and writes
        with :meth:`apply`, keeping no counter (:meth:`count_range` counts
        the range), so concurrent writers of the same keys may see a stale
        presence."""
        checked = check_counted_writes(writes)
        present: dict[bytes, bool] = {}
        out: list[bool] = []
        final: dict[bytes, bytes | None] = {}
        for key, payload, _rng in checked:
            was = present[key] if key in present else await self.contains(key)
            out.append(was)
            present[key] = payload is not None
            final[key] = payload
        puts = [(k, p) for k, p in final.items() if p is not None]
        deletes = [k for k, p in final.items() if p is None]
        if puts or deletes:
            await self.apply(puts, deletes)
        return out

    async def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        """:meth:`write_counted` of one put; True if ``key`` was present."""
        return (await self.write_counted([(key, payload, rng)]))[0]

    async def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        """:meth:`write_counted` of one delete; True if ``key`` was present."""
        return (await self.write_counted([(key, None, rng)]))[0]

    async def count_range(self, rng: CountedRange) -> int:
        """The number of live keys in ``rng``: O(1) where the store keeps
        the range's counter (counted once, the first time it is needed),
        else a count of the range. Exact as long as every write into the
        range went through the counted methods (see :class:`CountedRange`)."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        n = 0
        async for chunk in self.scan_range(rng.lower, rng.upper, values=False):
            n += len(chunk)
        return n

    async def recount_range(self, rng: CountedRange) -> int:
        """Count ``rng`` afresh (O(n)) and keep that as its count (after
        writes that bypassed the counter); returns it."""
        return await self.count_range(rng)

    async def clear_range(self, rng: CountedRange) -> None:
        """Remove every key of ``rng`` and zero its count, in one atomic write."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        await self.apply((), (), clear_range=(rng.lower, rng.upper))

    def sync_face(self) -> SyncFace | None:
        """The backend's :class:`SyncFace` while it is started, for backends
        whose engine may be called from any thread (weir, RocksDB); None
        for the others (memory, Redis), which are reached through their
        event loop."""
        return None

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
