"""weir.table: named, dict-like tables of keyed state.

A :class:`Table` is a :class:`collections.abc.MutableMapping` (``t[k]``,
``t[k] = v``, ``del t[k]``, ``k in t``, ``len(t)``, iteration, ``get``,
``setdefault``, ``update``, ``pop``, ``clear`` and ``keys/values/items``
with an optional ``prefix=``) with an async face for stream code
(``await t.aget(k)``, ``aset``, ``adelete``, ``acontains``, ``alen``,
``async for k, v in t.aitems()``)::

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

Key spaces. Table ``name`` owns every key that starts with
``b"\\x00T" + len(name).to_bytes(2, "big") + name`` (the name as UTF-8):
length-prefixed, so no table's key space contains another's (``"a"`` and
``"ab"``, or a name containing separators, cannot collide). Under that,
``\\x01`` + the encoded key holds the rows and ``\\x00`` starts the table's
own metadata (its row count). Keys of a DB that start with ``b"\\x00T"``
are reserved for tables.

Length. On a :class:`weir.DB`, ``len(t)`` is O(1): every write of the
table checks whether its key exists and updates a counter in the same
atomic write batch (a process-wide lock per DB serialises the table writes
of that DB, and weir lets one process open a DB, so the count is exact).
Raw writes to a table's key space, or a DB opened with ``default_ttl``,
bypass the count; :meth:`Table.recount` rebuilds it. On a store backend
``len`` counts the table's keys (O(n)): backends evict (memory
``max_size``), expire (TTL) or are shared between processes (Redis), so a
stored count could not be kept true.

Sync face over async backends. Store backends are asyncio objects bound to
the loop they were started on. A table given an *unstarted* backend starts
it on a private event loop in a daemon thread and runs every call there:
both faces then work from any thread, inside or outside a running loop. A
table given a *started* backend must be built inside the loop that started
it; its async face then runs directly on that loop, and its sync face
works from other threads but raises :class:`SyncInLoopError` when called
from that loop itself (blocking it would deadlock): use the async face
there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from itertools import islice
from types import TracebackType
from typing import Any, TypeVar

from . import DB, ClosedError, InvalidArgumentError
from . import codecs as _codecs

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


# One lock per DB serialises the read-check-write of every table on it.
_DB_LOCKS: weakref.WeakKeyDictionary[DB, threading.RLock] = weakref.WeakKeyDictionary()
_DB_LOCKS_GUARD = threading.Lock()


def _db_lock(db: DB) -> threading.RLock:
    with _DB_LOCKS_GUARD:
        lock = _DB_LOCKS.get(db)
        if lock is None:
            lock = _DB_LOCKS[db] = threading.RLock()
        return lock


class _Home:
    """The event loop a store backend lives on, and how to reach it.

    ``portal`` is set when the tables started the backend on a loop of their
    own (a daemon thread); it is stopped, with the backend, when the last
    table using it closes.
    """

    def __init__(self, backend: Any, loop: asyncio.AbstractEventLoop, portal: bool) -> None:
        self.backend = backend
        self.loop = loop
        self.thread: threading.Thread | None = None
        self.portal = portal
        self.users = 0
        self.lock = threading.Lock()

    @classmethod
    def start_portal(cls, backend: Any) -> _Home:
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

    def stop_portal(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join()
        loop.close()

    def call_sync(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise SyncInLoopError(
                f"Table.{what} would block the event loop its store backend runs on; "
                f"use the async face (await table.a...) on this loop"
            )
        if self.loop.is_closed() or not self.loop.is_running():
            raise ClosedError(
                f"Table.{what}: the event loop the store backend was started on is not running"
            )
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop).result()

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if asyncio.get_running_loop() is self.loop:
            return await fn(*args)
        if self.loop.is_closed() or not self.loop.is_running():
            raise ClosedError("the event loop the store backend was started on is not running")
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop)
        )


async def _call(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)


_HOMES: weakref.WeakKeyDictionary[Any, _Home] = weakref.WeakKeyDictionary()
_HOMES_GUARD = threading.Lock()


def _home_for(backend: Any) -> _Home:
    with _HOMES_GUARD:
        home = _HOMES.get(backend)
        if home is not None and not home.loop.is_closed():
            home.users += 1
            return home
        if getattr(backend, "started", False):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise InvalidArgumentError(
                    "this store backend is already started on an event loop: build the Table "
                    "inside that loop, or pass an unstarted backend (the Table then starts it "
                    "on a loop of its own)"
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
        _HOMES.pop(home.backend, None)
        if not home.portal:
            return  # the backend belongs to whoever started it
    try:
        asyncio.run_coroutine_threadsafe(home.backend.stop(), home.loop).result()
    finally:
        home.stop_portal()


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
        self._count_key = self._space + _COUNT
        self._keys = _codecs.get_codec(key_codec if key_codec is not None else "str")
        self._db: DB | None = None
        self._owns_db = False
        self._home: _Home | None = None
        self._closed = False
        if isinstance(store, DB):
            self._db = store
        elif isinstance(store, (str, os.PathLike)):
            self._db = DB(store)
            self._owns_db = True
        else:
            from .stores import StoreBackend, StoreBackendConfig, create_backend

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
            self._home = _home_for(store)
        if self._db is not None:
            # The default codec's msgpack, reading every stored value as
            # msgpack: tables over a weir.DB always stored plain msgpack.
            self._values = (
                _codecs.get_codec(value_codec)
                if value_codec is not None
                else _codecs.DefaultValueCodec(legacy="msgpack")
            )
            self._lock = _db_lock(self._db)
            try:
                self._init_count()
            except BaseException:
                if self._owns_db:
                    self._db.close()
                raise

    # ---- plumbing ------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The :class:`weir.DB` or the store backend the table lives in."""
        return self._db if self._db is not None else self._home.backend  # type: ignore[union-attr]

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

    def _user_key(self, stored: Any) -> Any:
        raw = stored if isinstance(stored, bytes) else str(stored).encode("utf-8")
        return self._keys.decode(raw[len(self._rows) :])

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

    def _sync(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        assert self._home is not None
        return self._home.call_sync(what, fn, *args)

    # ---- weir DB: the count ------------------------------------------------------

    def _init_count(self) -> None:
        db = self._db
        assert db is not None
        with self._lock:
            if db.get(self._count_key) is not None:
                return
            n = sum(1 for _ in db.keys(start=self._rows, stop=self._rows_end))
            db.incr(self._count_key, n)

    def recount(self) -> int:
        """Rebuild the row count from the rows themselves (O(n)); returns it.

        Needed only after raw writes into the table's key space (e.g.
        ``db.put_arrow(..., key_prefix=t.row_prefix)``). On a store backend
        this is ``len(t)``.
        """
        self._check_open()
        if self._db is None:
            return len(self)
        db = self._db
        with self._lock:
            n = sum(1 for _ in db.keys(start=self._rows, stop=self._rows_end))
            with db.write_batch() as b:
                b.delete(self._count_key)
                b.incr(self._count_key, n)
            return n

    # ---- the mapping -------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        self._check_open()
        if self._db is not None:
            raw = self._db.get(self._dk(key))
            if raw is None:
                raise KeyError(key)
            return self._values.decode(raw)
        value = self._sync("__getitem__", self._aget_backend, self._dk(key), _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_open()
        dk = self._dk(key)
        if self._db is None:
            self._sync("__setitem__", self._home.backend.set, dk, value)  # type: ignore[union-attr]
            return
        ev = self._values.encode(value, key)
        db = self._db
        with self._lock:
            if dk in db:
                db.put(dk, ev)
            else:
                with db.write_batch() as b:
                    b.put(dk, ev)
                    b.incr(self._count_key, 1)

    def __delitem__(self, key: Any) -> None:
        self._check_open()
        dk = self._dk(key)
        if self._db is None:
            if not self._sync("__delitem__", self._home.backend.delete, dk):  # type: ignore[union-attr]
                raise KeyError(key)
            return
        db = self._db
        with self._lock:
            if dk not in db:
                raise KeyError(key)
            with db.write_batch() as b:
                b.delete(dk)
                b.incr(self._count_key, -1)

    def __contains__(self, key: object) -> bool:
        self._check_open()
        dk = self._dk(key)
        if self._db is not None:
            return dk in self._db
        home = self._home
        assert home is not None
        return bool(home.call_sync("__contains__", home.backend.exists, dk))

    def __len__(self) -> int:
        self._check_open()
        if self._db is not None:
            return self._db.get_int(self._count_key, 0)
        return self._sync("__len__", self._alen_backend, None)

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs(None, values=False))

    def _pairs(self, prefix: Any, values: bool = True) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs (value None when not ``values``) in key order."""
        self._check_open()
        lo, hi = self._bounds(prefix)
        uk = self._user_key
        if self._db is not None:
            # The engine returns bytes: strip the row prefix without _user_key's checks.
            dec, kdec, skip = self._values.decode, self._keys.decode, len(self._rows)
            if values:
                with self._db.items(start=lo, stop=hi) as it:
                    for k, v in it:
                        yield kdec(k[skip:]), dec(v)
            else:
                with self._db.keys(start=lo, stop=hi) as kit:
                    for k in kit:
                        yield kdec(k[skip:]), None
            return
        home = self._home
        assert home is not None
        agen = home.backend.scan(start_key=lo, end_key=hi).__aiter__()
        try:
            while True:
                chunk = home.call_sync("items", _take, agen, _CHUNK)
                for k, v in chunk:
                    yield uk(k), v
                if len(chunk) < _CHUNK:
                    return
        finally:
            if not home.loop.is_closed() and home.loop.is_running():
                asyncio.run_coroutine_threadsafe(agen.aclose(), home.loop).result()

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
        if self._db is not None:
            raw = self._db.get(self._dk(key))
            return default if raw is None else self._values.decode(raw)
        return self._sync("get", self._aget_backend, self._dk(key), default)

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
        """Remove every row of this table (one write on a weir DB)."""
        self._check_open()
        if self._db is None:
            keys = [k for k, _ in self._pairs(None, values=False)]
            with batch(self) as b:
                for k in keys:
                    b.delete(self, k)
            return
        db = self._db
        with self._lock, db.write_batch() as b:
            if self._rows_end is not None:
                b.delete_range(self._rows, self._rows_end)
            b.delete(self._count_key)
            b.incr(self._count_key, 0)

    # ---- the async face -----------------------------------------------------------

    async def _aget_backend(self, dk: bytes, default: Any) -> Any:
        backend = self._home.backend  # type: ignore[union-attr]
        value = await backend.get(dk)
        if value is None and not await backend.exists(dk):
            return default
        return value

    async def _alen_backend(self, _: Any) -> int:
        lo, hi = self._bounds(None)
        n = 0
        async for _pair in self._home.backend.scan(start_key=lo, end_key=hi):  # type: ignore[union-attr]
            n += 1
        return n

    async def aget(self, key: Any, default: Any = None) -> Any:
        """``t.get(key, default)`` for async code."""
        self._check_open()
        if self._db is not None:
            return self.get(key, default)
        return await self._home.call_async(self._aget_backend, self._dk(key), default)  # type: ignore[union-attr]

    async def aset(self, key: Any, value: Any) -> None:
        """``t[key] = value`` for async code."""
        self._check_open()
        if self._db is not None:
            self[key] = value
            return
        await self._home.call_async(self._home.backend.set, self._dk(key), value)  # type: ignore[union-attr]

    async def adelete(self, key: Any) -> bool:
        """Remove ``key``; True if it was present (no KeyError, unlike ``del``)."""
        self._check_open()
        if self._db is not None:
            try:
                del self[key]
            except KeyError:
                return False
            return True
        home = self._home
        assert home is not None
        return bool(await home.call_async(home.backend.delete, self._dk(key)))

    async def acontains(self, key: Any) -> bool:
        """``key in t`` for async code."""
        self._check_open()
        if self._db is not None:
            return key in self
        home = self._home
        assert home is not None
        return bool(await home.call_async(home.backend.exists, self._dk(key)))

    async def alen(self) -> int:
        """``len(t)`` for async code."""
        self._check_open()
        if self._db is not None:
            return len(self)
        return await self._home.call_async(self._alen_backend, None)  # type: ignore[union-attr]

    async def aitems(self, prefix: Any = None) -> AsyncIterator[tuple[Any, Any]]:
        """``(key, value)`` pairs in key order, read in chunks off the event loop."""
        self._check_open()
        lo, hi = self._bounds(prefix)
        uk = self._user_key
        if self._db is not None:
            dec = self._values.decode
            it = self._db.items(start=lo, stop=hi)
            try:
                while True:
                    chunk = await asyncio.to_thread(lambda: list(islice(it, _CHUNK)))
                    for k, v in chunk:
                        yield uk(k), dec(v)
                    if len(chunk) < _CHUNK:
                        return
            finally:
                it.close()
        home = self._home
        assert home is not None
        agen = home.backend.scan(start_key=lo, end_key=hi).__aiter__()
        try:
            while True:
                chunk = await home.call_async(_take, agen, _CHUNK)
                for k, v in chunk:
                    yield uk(k), v
                if len(chunk) < _CHUNK:
                    return
        finally:
            await home.call_async(agen.aclose)

    # ---- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Detach the table; closes the DB it opened itself, and stops a backend
        it started once no other table uses it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_db and self._db is not None:
            self._db.close()
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
        where = "weir.DB" if self._db is not None else type(self.store).__name__
        return f"<weir.table.Table {self.name!r} on {where}{' (closed)' if self._closed else ''}>"


async def _take(agen: AsyncIterator[T], n: int) -> list[T]:
    out: list[T] = []
    async for item in agen:
        out.append(item)
        if len(out) >= n:
            break
    return out


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
    error in a batch. On a weir DB the batch is one engine write batch,
    row counts included; on a store backend it is one store transaction.
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
        self._store = store
        #: stored key -> (table, encoded value (DB) / value (backend), or _MISSING to
        #: delete). Tables are mappings, hence unhashable: the stored key is unique.
        self._ops: dict[bytes, tuple[Table, Any]] = {}
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
        dk = t._dk(key)
        self._ops[dk] = (t, t._values.encode(value, key) if t._db is not None else value)

    def delete(self, table: Table, key: Any) -> None:
        """Record the removal of ``key`` from ``table`` (absent keys are fine)."""
        t = self._table(table)
        self._ops[t._dk(key)] = (t, _MISSING)

    def __len__(self) -> int:
        return len(self._ops)

    def discard(self) -> None:
        """Drop the recorded writes; the batch cannot be used again."""
        self._ops.clear()
        self._done = True

    def commit(self) -> None:
        """Apply every recorded write atomically."""
        if self._done:
            raise ClosedError("this batch was already committed or discarded")
        self._done = True
        ops, self._ops = self._ops, {}
        if not ops:
            return
        if isinstance(self._store, DB):
            self._commit_db(self._store, ops)
        else:
            home = self._tables[0]._home
            assert home is not None
            home.call_sync("batch commit", self._commit_backend, ops)

    async def acommit(self) -> None:
        """:meth:`commit` for async code."""
        if self._done:
            raise ClosedError("this batch was already committed or discarded")
        if isinstance(self._store, DB):
            self.commit()
            return
        self._done = True
        ops, self._ops = self._ops, {}
        if ops:
            home = self._tables[0]._home
            assert home is not None
            await home.call_async(self._commit_backend, ops)

    @staticmethod
    def _commit_db(db: DB, ops: dict[bytes, tuple[Table, Any]]) -> None:
        with _db_lock(db):
            present = db.get_many(list(ops))
            deltas: dict[bytes, int] = {}  # count key -> change
            with db.write_batch() as wb:
                for (dk, (table, ev)), old in zip(ops.items(), present, strict=True):
                    ck = table._count_key
                    if ev is _MISSING:
                        if old is not None:
                            wb.delete(dk)
                            deltas[ck] = deltas.get(ck, 0) - 1
                    else:
                        wb.put(dk, ev)
                        if old is None:
                            deltas[ck] = deltas.get(ck, 0) + 1
                for ck, d in deltas.items():
                    if d:
                        wb.incr(ck, d)

    async def _commit_backend(self, ops: dict[bytes, tuple[Table, Any]]) -> None:
        backend = self._store
        txn = await backend.begin_transaction()
        try:
            for dk, (_table, value) in ops.items():
                if value is _MISSING:
                    await txn.delete(dk)
                else:
                    await txn.set(dk, value)
        except BaseException:
            await backend.rollback_transaction(txn)
            raise
        await backend.commit_transaction(txn)

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
