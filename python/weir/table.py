"""weir.table: named, dict-like tables of keyed state.

A :class:`Table` is a :class:`collections.abc.MutableMapping` (``t[k]``,
``t[k] = v``, ``del t[k]``, ``k in t``, ``len(t)``, iteration, ``get``,
``setdefault``, ``update``, ``pop``, ``clear`` and ``keys/values/items``
with an optional ``prefix=``) with an async face for stream code
(``await t.aget(k)``, ``aset``, ``adelete``, ``acontains``, ``alen``,
``aclear``, ``async for k, v in t.aitems()``)::

    db = weir.DB("/var/lib/app/state")
    customers = Table("customers", db)
    orders = Table("orders", db)          # same DB, its own key space
    customers["C001"] = {"name": "Acme Corp", "tier": "gold"}
    with weir.table.batch(customers, orders) as b:   # one atomic write
        b[customers]["C002"] = {"name": "Initech", "tier": "silver"}
        b[orders]["O-1"] = {"customer": "C002", "total": 99.5}

The store is a :class:`weir.DB` (shared by several tables), a path (the
table opens and owns a weir DB there), or any :mod:`weir.stores` backend
(weir, memory, RocksDB, Redis), started or not.

One code path. Every method is written once, against the byte-level face
of :mod:`weir.stores`: point reads, counted writes (a put or delete that
keeps the table's row count exact in the same atomic write), a count, a
range clear and a range scan of encoded keys and value payloads. The sync
methods call a :class:`weir.stores.SyncFace`: :class:`weir.stores.DBFace`
over a weir.DB, the backend's own face for the engines that may be called
from any thread (weir, RocksDB), or, for the loop-bound backends (memory,
Redis), an adapter that runs the backend's async methods on its event
loop. The async methods call the same face inline when it is a direct one
(scans read chunks in a worker thread) and the backend's coroutines
otherwise.

Key spaces. Table ``name`` owns every key that starts with
``b"\\x00T" + len(name).to_bytes(2, "big") + name`` (the name as UTF-8):
length-prefixed, so no table's key space contains another's (``"a"`` and
``"ab"``, or a name containing separators, cannot collide). Under that,
``\\x01`` + the encoded key holds the rows and ``\\x00`` starts the table's
own metadata (its row count, ``\\x00n``). Keys of a DB that start with
``b"\\x00T"`` are reserved for tables.

Length. The rows and the count key form a :class:`weir.stores.CountedRange`;
``len(t)`` is that range's count. On a :class:`weir.DB` it is O(1): every
write of the table checks whether its key exists and updates an
``int64_add`` counter in the same atomic write batch (a process-wide lock
per DB serialises the table writes of that DB, and weir lets one process
open a DB, so the count is exact), and ``len`` reads the count the DB's
tables share in memory. The weir, RocksDB and memory backends
keep the count as a value of their own (O(1)) unless values expire
(``ttl_seconds``) or the memory backend evicts (``max_size``); Redis counts
the table's keys in its index (``ZLEXCOUNT``, O(log n)); where no count can
stay true ``len`` counts the rows (O(n)). Raw writes to a table's key
space, or a DB opened with ``default_ttl``, bypass the count;
:meth:`Table.recount` rebuilds it.

Sync face over loop-bound backends. The memory and Redis backends are
asyncio objects bound to the loop they were started on. A table given an
*unstarted* backend starts it on a private event loop in a daemon thread:
the weir and RocksDB backends are then called directly from the caller's
thread, the others through that loop, and both faces work from any thread,
inside or outside a running loop. A table given a *started* memory or
Redis backend must be built inside the loop that started it; its async
face then runs directly on that loop, and its sync face works from other
threads but raises :class:`SyncInLoopError` when called from that loop
itself (blocking it would deadlock): use the async face there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
    ValuesView,
)
from itertools import islice
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from . import DB, ClosedError, InvalidArgumentError
from . import codecs as _codecs
from .stores import (
    CountedRange,
    CountedWrite,
    DBFace,
    StoreBackend,
    StoreBackendConfig,
    SyncFace,
    create_backend,
)

__all__ = ["SyncInLoopError", "Table", "TableBatch", "batch", "key_space"]

T = TypeVar("T")

_RESERVED = b"\x00T"
_ROWS = b"\x01"
_COUNT = b"\x00n"
_CHUNK = 1024
_MISSING: Any = object()


class SyncInLoopError(RuntimeError):
    """A sync Table method was called on the event loop its store backend
    runs on; blocking there would deadlock. Use the async face
    (``await t.aget(k)``, ...) or call from another thread."""


def key_space(name: str) -> bytes:
    """The key prefix of table ``name`` (see the module docs)."""
    if not isinstance(name, str):
        raise TypeError(f"a table name must be a str, not {type(name).__name__}")
    raw = name.encode("utf-8")
    if not raw:
        raise InvalidArgumentError("a table name must not be empty")
    if len(raw) > 0xFFFF:
        raise InvalidArgumentError(f"a table name is at most 65535 bytes, not {len(raw)}")
    return _RESERVED + len(raw).to_bytes(2, "big") + raw


def _successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix``."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


# ---- a loop-bound backend's home loop ------------------------------------------------


class _Home:
    """The event loop a store backend lives on, and how to reach it.

    ``portal`` is set when the tables started the backend on a loop of their
    own (a daemon thread); it is stopped, with the backend, when the last
    table using it closes.
    """

    def __init__(
        self, backend: StoreBackend, loop: asyncio.AbstractEventLoop | None, portal: bool
    ) -> None:
        self.backend = backend
        self.loop = loop
        self.thread: threading.Thread | None = None
        self.portal = portal
        self.users = 0

    @classmethod
    def start_portal(cls, backend: StoreBackend) -> _Home:
        loop = asyncio.new_event_loop()
        home = cls(backend, loop, portal=True)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        home.thread = threading.Thread(target=run, name="weir-table-loop", daemon=True)
        home.thread.start()
        ready.wait()
        try:
            asyncio.run_coroutine_threadsafe(backend.start(), loop).result()
        except BaseException:
            home.stop_portal()
            raise
        return home

    def live(self) -> bool:
        return self.loop is not None and not self.loop.is_closed()

    def stop_portal(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join()
        loop.close()

    def _loop(self, blocking: bool) -> asyncio.AbstractEventLoop:
        loop = self.loop
        assert loop is not None
        if loop.is_closed() or not loop.is_running():
            raise ClosedError("the event loop the store backend was started on is not running")
        if blocking:
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                raise SyncInLoopError(
                    "a sync Table call would block the event loop its store backend runs on; "
                    "use the async face (await table.a...) on this loop"
                )
        return loop

    def call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        loop = self._loop(True)
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), loop).result()

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if asyncio.get_running_loop() is self.loop:
            return await fn(*args)
        loop = self._loop(False)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_call(fn, *args), loop))


async def _call(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)


_HOMES: weakref.WeakKeyDictionary[StoreBackend, _Home] = weakref.WeakKeyDictionary()
_HOMES_GUARD = threading.Lock()


def _home_for(backend: StoreBackend) -> _Home:
    """The backend's home, shared by the tables over it: the loop it was
    started on, or a portal loop that starts it now. A started backend
    with a sync face needs no loop (``loop`` None)."""
    with _HOMES_GUARD:
        home = _HOMES.get(backend)
        if home is not None and (home.live() or (home.loop is None and backend.started)):
            home.users += 1
            return home
        if backend.started:
            if backend.sync_face() is not None:
                home = _Home(backend, None, portal=False)
            else:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    raise InvalidArgumentError(
                        "this store backend is already started on an event loop: build the "
                        "Table inside that loop, or pass an unstarted backend (the Table then "
                        "starts it on a loop of its own)"
                    ) from None
                home = _Home(backend, loop, portal=False)
        else:
            home = _Home.start_portal(backend)
        home.users = 1
        _HOMES[backend] = home
        return home


def _release_home(home: _Home) -> None:
    with _HOMES_GUARD:
        home.users -= 1
        if home.users > 0:
            return
        if _HOMES.get(home.backend) is home:  # not a newer home of a restarted backend
            del _HOMES[home.backend]
        if not home.portal:
            return  # the backend belongs to whoever started it
    assert home.loop is not None
    try:
        asyncio.run_coroutine_threadsafe(home.backend.stop(), home.loop).result()
    finally:
        home.stop_portal()


# ---- the faces a table calls ---------------------------------------------------------


class _LoopFace(SyncFace):
    """The :class:`~weir.stores.SyncFace` of a loop-bound backend: each
    call runs the backend's coroutine on its home loop and waits."""

    def __init__(self, home: _Home) -> None:
        self._home = home
        self._backend = home.backend

    def read(self, key: bytes) -> bytes | None:
        return self._home.call_sync(self._backend.read, key)

    def contains(self, key: bytes) -> bool:
        return self._home.call_sync(self._backend.contains, key)

    def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        return self._home.call_sync(self._backend.put_counted, key, payload, rng)

    def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        return self._home.call_sync(self._backend.delete_counted, key, rng)

    def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        return self._home.call_sync(self._backend.write_counted, writes)

    def count_range(self, rng: CountedRange) -> int:
        return self._home.call_sync(self._backend.count_range, rng)

    def recount_range(self, rng: CountedRange) -> int:
        return self._home.call_sync(self._backend.recount_range, rng)

    def clear_range(self, rng: CountedRange) -> None:
        self._home.call_sync(self._backend.clear_range, rng)

    def _chunks(
        self, lower: bytes, upper: bytes | None, values: bool
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        home = self._home
        agen = home.call_sync(_open_scan, self._backend, lower, upper, values)
        try:
            while True:
                chunk = home.call_sync(_next_chunk, agen)
                if chunk is None:
                    return
                yield chunk
        finally:
            if home.live() and home.loop is not None and home.loop.is_running():
                asyncio.run_coroutine_threadsafe(agen.aclose(), home.loop).result()

    def items(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        for chunk in self._chunks(lower, upper, True):
            yield from chunk

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        for chunk in self._chunks(lower, upper, False):
            for k, _v in chunk:
                yield k


async def _open_scan(
    backend: StoreBackend, lower: bytes, upper: bytes | None, values: bool
) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
    # Made on the home loop, so the backend's async generator runs there.
    return backend.scan_range(lower, upper, values=values)


async def _next_chunk(
    agen: AsyncGenerator[list[tuple[bytes, bytes]], None],
) -> list[tuple[bytes, bytes]] | None:
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return None


class _AsyncFace:
    """What the async methods call: the sync face inline when it is a
    direct one (a call takes microseconds), the backend's coroutines on
    its home loop otherwise. Every method has the face's semantics."""

    def __init__(self, face: SyncFace, home: _Home | None) -> None:
        self._face = face
        self._home = home if isinstance(face, _LoopFace) else None

    async def read(self, key: bytes) -> bytes | None:
        if self._home is None:
            return self._face.read(key)
        return await self._home.call_async(self._home.backend.read, key)

    async def contains(self, key: bytes) -> bool:
        if self._home is None:
            return self._face.contains(key)
        return await self._home.call_async(self._home.backend.contains, key)

    async def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        if self._home is None:
            return self._face.put_counted(key, payload, rng)
        return await self._home.call_async(self._home.backend.put_counted, key, payload, rng)

    async def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        if self._home is None:
            return self._face.delete_counted(key, rng)
        return await self._home.call_async(self._home.backend.delete_counted, key, rng)

    async def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        if self._home is None:
            return self._face.write_counted(writes)
        return await self._home.call_async(self._home.backend.write_counted, writes)

    async def count_range(self, rng: CountedRange) -> int:
        if self._home is None:
            return self._face.count_range(rng)
        return await self._home.call_async(self._home.backend.count_range, rng)

    async def clear_range(self, rng: CountedRange) -> None:
        if self._home is None:
            self._face.clear_range(rng)
            return
        await self._home.call_async(self._home.backend.clear_range, rng)

    async def chunks(
        self, lower: bytes, upper: bytes | None
    ) -> AsyncIterator[list[tuple[bytes, bytes]]]:
        """``(key, payload)`` chunks of ``[lower, upper)``, none read on the loop."""
        home = self._home
        if home is None:
            it = self._face.items(lower, upper)
            try:
                while True:
                    chunk = await asyncio.to_thread(lambda: list(islice(it, _CHUNK)))
                    if chunk:
                        yield chunk
                    if len(chunk) < _CHUNK:
                        return
            finally:
                it.close()  # type: ignore[attr-defined]
        agen = await home.call_async(_open_scan, home.backend, lower, upper, True)
        try:
            while True:
                got = await home.call_async(_next_chunk, agen)
                if got is None:
                    return
                yield got
        finally:
            await home.call_async(agen.aclose)


# ---- the table -----------------------------------------------------------------------


class Table(MutableMapping[Any, Any]):
    """A named dict-like table over a weir DB or a store backend.

    ``store``: a :class:`weir.DB` (several tables may share it), a path (a
    weir DB is opened there and closed by :meth:`close`), a
    :class:`weir.stores.StoreBackend` or a
    :class:`weir.stores.StoreBackendConfig`. ``key_codec`` (default
    ``"str"``; ``"bytes"``, ``"key"`` for ints and tuples, or a codec
    object) turns keys into bytes. ``value_codec`` (default: the one default
    codec, :class:`weir.codecs.DefaultValueCodec`, msgpack) encodes values
    on a weir DB; a store backend uses its own value codec
    (``StoreBackendConfig.options["value_codec"]``), so passing one there is
    an error.
    """

    def __init__(
        self,
        name: str,
        store: Any,
        *,
        key_codec: str | _codecs.Codec[Any] | None = "str",
        value_codec: str | _codecs.Codec[Any] | None = None,
    ) -> None:
        self._space = key_space(name)
        self.name = name
        self._rows = self._space + _ROWS
        self._rows_end = _successor(self._rows)
        self._range = CountedRange(self._space + _COUNT, self._rows, self._rows_end)
        self._keys = _codecs.get_codec(key_codec if key_codec is not None else "str")
        self._owns_db = False
        self._home: _Home | None = None
        self._closed = False
        self._backend: StoreBackend | None = None
        face: SyncFace
        if isinstance(store, (str, os.PathLike)):
            store = DB(store)
            self._owns_db = True
        if isinstance(store, DB):
            # The default codec's msgpack, reading every stored value as
            # msgpack: tables over a weir.DB always stored plain msgpack.
            values: Any = (
                _codecs.get_codec(value_codec)
                if value_codec is not None
                else _codecs.DefaultValueCodec(legacy="msgpack")
            )
            self._encode: Callable[[Any, Any], bytes] = values.encode
            self._decode: Callable[[bytes], Any] = values.decode
            face = DBFace(store)
            self._store: Any = store
        else:
            if isinstance(store, StoreBackendConfig):
                store = create_backend(store)
            if not isinstance(store, StoreBackend):
                raise TypeError(
                    "store must be a weir.DB, a path, a weir.stores.StoreBackend or a "
                    f"StoreBackendConfig, not {type(store).__name__}"
                )
            if value_codec is not None:
                raise InvalidArgumentError(
                    "a Table over a store backend stores values with the backend's value codec; "
                    "set StoreBackendConfig(options={'value_codec': ...}) instead of value_codec"
                )
            backend = store
            self._backend = backend
            self._encode = lambda value, key: backend.encode_value(key, value)
            self._decode = backend.value_codec.decode
            self._home = _home_for(backend)
            face = backend.sync_face() or _LoopFace(self._home)
            self._store = backend
        self._face = face
        self._async = _AsyncFace(face, self._home)
        # The hottest calls, bound once (for a DB, read is the engine's own get).
        self._read = face.read
        self._put = face.put_counted

    # ---- plumbing ------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The :class:`weir.DB` or the store backend the table lives in."""
        return self._store

    @property
    def key_prefix(self) -> bytes:
        """The bytes every stored key of this table starts with (rows and metadata)."""
        return self._space

    @property
    def row_prefix(self) -> bytes:
        """The bytes every row's stored key starts with; the encoded key follows."""
        return self._rows

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")

    def _dk(self, key: Any) -> bytes:
        return self._rows + self._keys.encode(key)

    def _value(self, key: Any, payload: bytes) -> Any:
        try:
            return self._decode(payload)
        except Exception as e:
            self._bad_value(key, payload, e)

    def _bad_value(self, key: Any, payload: bytes, error: Exception) -> NoReturn:
        """Raise the error of an undecodable stored value: on a store
        backend its CorruptionError naming the key, else the codec's own."""
        if self._backend is not None:
            self._backend.decode_value(key, payload)
        raise error

    def _bounds(self, prefix: Any) -> tuple[bytes, bytes | None]:
        if prefix is None:
            return self._rows, self._rows_end
        if isinstance(prefix, str):
            p = prefix.encode("utf-8")
        elif isinstance(prefix, (bytes, bytearray, memoryview)):
            p = bytes(prefix)
        else:
            raise TypeError(f"prefix must be a str or bytes, not {type(prefix).__name__}")
        lo = self._rows + p
        return lo, _successor(lo)

    def recount(self) -> int:
        """Rebuild the row count from the rows themselves (O(n)); returns it.

        Needed only after raw writes into the table's key space (e.g.
        ``db.put_arrow(..., key_prefix=t.row_prefix)``).
        """
        self._check_open()
        return self._face.recount_range(self._range)

    # ---- the mapping -------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        self._check_open()
        raw = self._read(self._dk(key))
        if raw is None:
            raise KeyError(key)
        try:
            return self._decode(raw)
        except Exception as e:
            self._bad_value(key, raw, e)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_open()
        self._put(self._dk(key), self._encode(value, key), self._range)

    def __delitem__(self, key: Any) -> None:
        self._check_open()
        if not self._face.delete_counted(self._dk(key), self._range):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self._check_open()
        return self._face.contains(self._dk(key))

    def __len__(self) -> int:
        self._check_open()
        return self._face.count_range(self._range)

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs(None, values=False))

    def _pairs(self, prefix: Any, values: bool = True) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs (value None when not ``values``) in key order."""
        self._check_open()
        lo, hi = self._bounds(prefix)
        kdec, dec, skip = self._keys.decode, self._decode, len(self._rows)
        if values:
            items = self._face.items(lo, hi)
            try:
                for k, v in items:
                    key = kdec(k[skip:])
                    try:
                        value = dec(v)
                    except Exception as e:
                        self._bad_value(key, v, e)
                    yield key, value
            finally:
                items.close()  # type: ignore[attr-defined]
        else:
            keys = self._face.keys(lo, hi)
            try:
                for k in keys:
                    yield kdec(k[skip:]), None
            finally:
                keys.close()  # type: ignore[attr-defined]

    def keys(self, prefix: Any = None) -> KeysView[Any]:
        """The keys (those whose encoded form starts with ``prefix``), in key order."""
        return _Keys(self, prefix)

    def values(self, prefix: Any = None) -> ValuesView[Any]:
        """The values, in key order (optionally under ``prefix``)."""
        return _Values(self, prefix)

    def items(self, prefix: Any = None) -> ItemsView[Any, Any]:
        """``(key, value)`` pairs in key order; with ``prefix`` (str as UTF-8, or
        bytes), only keys whose encoded bytes start with it."""
        return _Items(self, prefix)

    def get(self, key: Any, default: Any = None) -> Any:
        """``t[key]``, or ``default`` if the key is absent (one read)."""
        self._check_open()
        raw = self._read(self._dk(key))
        if raw is None:
            return default
        try:
            return self._decode(raw)
        except Exception as e:
            self._bad_value(key, raw, e)

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """Write every pair of ``other`` (and ``kwds``) in one atomic batch."""
        self._check_open()
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        pairs.extend(kwds.items())
        with batch(self) as b:
            view = b[self]
            for k, v in pairs:
                view[k] = v

    def clear(self) -> None:
        """Remove every row of this table and zero its count (one atomic write)."""
        self._check_open()
        self._face.clear_range(self._range)

    # ---- the async face -----------------------------------------------------------

    async def aget(self, key: Any, default: Any = None) -> Any:
        """``t.get(key, default)`` for async code."""
        self._check_open()
        raw = await self._async.read(self._dk(key))
        return default if raw is None else self._value(key, raw)

    async def aset(self, key: Any, value: Any) -> None:
        """``t[key] = value`` for async code."""
        self._check_open()
        await self._async.put_counted(self._dk(key), self._encode(value, key), self._range)

    async def adelete(self, key: Any) -> bool:
        """Remove ``key``; True if it was present (no KeyError, unlike ``del``)."""
        self._check_open()
        return await self._async.delete_counted(self._dk(key), self._range)

    async def acontains(self, key: Any) -> bool:
        """``key in t`` for async code."""
        self._check_open()
        return await self._async.contains(self._dk(key))

    async def alen(self) -> int:
        """``len(t)`` for async code."""
        self._check_open()
        return await self._async.count_range(self._range)

    async def aclear(self) -> None:
        """``t.clear()`` for async code."""
        self._check_open()
        await self._async.clear_range(self._range)

    async def aitems(self, prefix: Any = None) -> AsyncIterator[tuple[Any, Any]]:
        """``(key, value)`` pairs in key order, read in chunks off the event loop."""
        self._check_open()
        lo, hi = self._bounds(prefix)
        kdec, skip = self._keys.decode, len(self._rows)
        async for chunk in self._async.chunks(lo, hi):
            for k, v in chunk:
                key = kdec(k[skip:])
                yield key, self._value(key, v)

    # ---- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Detach the table; closes the DB it opened itself, and stops a backend
        it started once no other table uses it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_db:
            self._store.close()
        if self._home is not None:
            _release_home(self._home)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "weir.DB" if isinstance(self._store, DB) else type(self._store).__name__
        return f"<weir.table.Table {self.name!r} on {where}{' (closed)' if self._closed else ''}>"


class _Keys(KeysView[Any]):
    def __init__(self, table: Table, prefix: Any) -> None:
        super().__init__(table)
        self._table = table
        self._prefix = prefix

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._table._pairs(self._prefix, values=False))

    def __len__(self) -> int:
        if self._prefix is None:
            return len(self._table)
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if key not in self._table:
            return False
        lo, _ = self._table._bounds(self._prefix)
        return self._table._dk(key).startswith(lo)


class _Items(ItemsView[Any, Any]):
    def __init__(self, table: Table, prefix: Any) -> None:
        super().__init__(table)
        self._table = table
        self._prefix = prefix

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._table._pairs(self._prefix)

    def __len__(self) -> int:
        return len(_Keys(self._table, self._prefix))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        if key not in _Keys(self._table, self._prefix):
            return False
        return bool(self._table.get(key, _MISSING) == value)


class _Values(ValuesView[Any]):
    def __init__(self, table: Table, prefix: Any) -> None:
        super().__init__(table)
        self._table = table
        self._prefix = prefix

    def __iter__(self) -> Iterator[Any]:
        return (v for _, v in self._table._pairs(self._prefix))

    def __len__(self) -> int:
        return len(_Keys(self._table, self._prefix))


# ---- atomic writes across tables -----------------------------------------------------


class _BatchView(MutableMapping[Any, Any]):
    """``b[table]``: write-only dict face of one table inside a batch."""

    def __init__(self, b: TableBatch, table: Table) -> None:
        self._b = b
        self._table = table

    def __setitem__(self, key: Any, value: Any) -> None:
        self._b.set(self._table, key, value)

    def __delitem__(self, key: Any) -> None:
        self._b.delete(self._table, key)

    def __getitem__(self, key: Any) -> Any:
        raise TypeError("a batch is write-only: read from the table itself")

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a batch is write-only: iterate the table itself")

    def __len__(self) -> int:
        return sum(1 for t, _v in self._b._ops.values() if t is self._table)


class TableBatch:
    """Writes to several tables of one store, applied in one atomic write.

    Build it with :func:`batch`. ``b.set(t, k, v)`` / ``b[t][k] = v`` and
    ``b.delete(t, k)`` / ``del b[t][k]`` record writes (encoded at once, so
    an unencodable value raises there); the last write of a key wins.
    Leaving the ``with`` block commits (``async with`` for async code); an
    exception discards everything. A delete of an absent key is not an
    error in a batch. The commit is one counted write of the store
    (:meth:`weir.stores.StoreBackend.write_counted`): one engine write
    batch, row counts included, on a weir DB and the engine backends, one
    Lua script on Redis.
    """

    def __init__(self, tables: Iterable[Table]) -> None:
        self._tables = list(tables)
        if not self._tables:
            raise InvalidArgumentError("batch() needs at least one table")
        for t in self._tables:
            if not isinstance(t, Table):
                raise TypeError(f"batch() takes Tables, not {type(t).__name__}")
            t._check_open()
        store = self._tables[0].store
        for t in self._tables[1:]:
            if t.store is not store:
                raise InvalidArgumentError(
                    f"tables {self._tables[0].name!r} and {t.name!r} live in different stores; "
                    "one atomic batch needs them in the same weir.DB or store backend"
                )
        #: stored key -> (table, value payload, or None to delete). Tables are
        #: mappings, hence unhashable: the stored key is unique.
        self._ops: dict[bytes, tuple[Table, bytes | None]] = {}
        self._done = False

    def _table(self, table: Table) -> Table:
        if self._done:
            raise ClosedError("this batch was already committed or discarded")
        if not any(table is t for t in self._tables):
            raise InvalidArgumentError(
                f"table {getattr(table, 'name', table)!r} is not part of this batch; "
                "pass it to batch(...)"
            )
        return table

    def __getitem__(self, table: Table) -> _BatchView:
        return _BatchView(self, self._table(table))

    def set(self, table: Table, key: Any, value: Any) -> None:
        """Record ``table[key] = value``."""
        t = self._table(table)
        self._ops[t._dk(key)] = (t, t._encode(value, key))

    def delete(self, table: Table, key: Any) -> None:
        """Record the removal of ``key`` from ``table`` (absent keys are fine)."""
        t = self._table(table)
        self._ops[t._dk(key)] = (t, None)

    def __len__(self) -> int:
        return len(self._ops)

    def discard(self) -> None:
        """Drop the recorded writes; the batch cannot be used again."""
        self._ops.clear()
        self._done = True

    def _take(self) -> list[CountedWrite]:
        if self._done:
            raise ClosedError("this batch was already committed or discarded")
        self._done = True
        ops, self._ops = self._ops, {}
        for t in self._tables:
            t._check_open()
        return [(dk, payload, t._range) for dk, (t, payload) in ops.items()]

    def commit(self) -> None:
        """Apply every recorded write atomically."""
        writes = self._take()
        if writes:
            self._tables[0]._face.write_counted(writes)

    async def acommit(self) -> None:
        """:meth:`commit` for async code."""
        writes = self._take()
        if writes:
            await self._tables[0]._async.write_counted(writes)

    def __enter__(self) -> TableBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    async def __aenter__(self) -> TableBatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.acommit()
        else:
            self.discard()


def batch(*tables: Table) -> TableBatch:
    """One atomic write across ``tables`` (which must share one store)::

    with weir.table.batch(customers, orders) as b:
        b[customers]["C001"] = {...}
        b.delete(orders, "O-7")
    """
    return TableBatch(tables)
