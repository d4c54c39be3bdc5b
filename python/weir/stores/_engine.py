"""The store API over an engine with a synchronous byte-level interface.

:class:`EngineBackend` implements every method of
:class:`~weir.stores.StoreBackend` once, for the weir, RocksDB and memory
backends, in terms of a handful of byte-level hooks (get, put, delete, an
atomic write of puts and deletes, a cursor over a key range). It owns the
async policy:

* point operations (get, set, delete, exists, small batches) run inline on
  the event loop: they take microseconds, and the weir extension releases
  the GIL inside the engine;
* scans, large batches, big values, counting, backup and restore run in the
  backend's own thread pool, so the loop is never held for long;
* ``stop`` and ``restore`` raise a barrier (:class:`~._common.Gate`), wait
  for worker-thread work to finish, and only then close or swap the engine,
  so no call ever reaches a closed handle; point operations that arrive
  meanwhile wait at the barrier and then see the new state.

Writes that run in a worker thread hold ``_wlock``; a transaction commit
holds it while it checks its reads and applies its writes, inline, so no
other write of this backend can land in between. Counted writes
(:meth:`~EngineBackend.write_counted`) hold it too while they check which
keys exist and write the keys with the new counts.

Counters. Where the count of a :class:`~weir.stores.CountedRange` can stay
true (no ``ttl_seconds``, no eviction, and a value codec that stores an
``int``), it is kept as an ordinary value under the range's counter key,
encoded with the value codec, so the store's own reads see a number there;
otherwise ``count_range`` counts the range.

The sync face. :class:`EngineFace` is the :class:`~weir.stores.SyncFace`
of the engines that may be called from any thread (``native_sync_face``:
weir, RocksDB): it calls the same hooks directly on the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from .. import ClosedError, InvalidArgumentError
from ._common import (
    INLINE_BATCH_ITEMS,
    INLINE_VALUE_BYTES,
    SCAN_CHUNK,
    Gate,
    KeyEncoding,
    ValueEncoding,
    check_encoded_range,
    check_encoded_writes,
    check_limit,
    check_prefix,
    closed_error,
    iter_pairs,
    key_list,
    make_error,
    now_ms,
    prefix_bounds,
    range_bounds,
    short_repr,
)
from ._txn import StoreTransaction
from .base import (
    CountedRange,
    CountedWrite,
    EncodedPairs,
    EncodedRange,
    PathLike,
    ScanResult,
    StoreBackend,
    StoreBackendConfig,
    SyncFace,
    Transaction,
    TransactionConflictError,
    check_counted_writes,
)

T = TypeVar("T")
log = logging.getLogger("weir.stores")

#: Options every backend accepts.
COMMON_OPTIONS = frozenset({"key_codec", "value_codec", "executor_threads"})

_KEYS, _VALUES, _ITEMS, _RAW = 0, 1, 2, 3
#: Stands for a present value the engine cannot read back; live under any TTL
#: header (its expiry reads as far in the future), so it counts as present.
_UNREADABLE = b"\xff" * 8
_DELETE_CHUNK = 4096


class Cursor(Protocol):
    """A forward cursor over ``[lower, upper)`` of an engine, in key order."""

    def fetch(self, n: int | None) -> list[tuple[bytes, bytes]]:
        """Up to ``n`` more ``(key, raw value)`` pairs (all when None); [] at the end."""
        ...

    def close(self) -> None:
        """Release the engine resources; idempotent."""
        ...


def dir_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (0 if it is gone)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # deleted by a compaction while we walked
    return total


class EngineBackend(StoreBackend):
    """A store over a synchronous byte-level engine; see the module docs."""

    #: options this backend accepts besides :data:`COMMON_OPTIONS`
    engine_options: frozenset[str] = frozenset()
    #: whether large writes go to a worker thread (False: applied inline)
    writes_in_thread = True
    #: whether the data outlives the process
    persistent = True
    #: whether the engine expires values itself (then values carry no expiry header)
    engine_ttl = False
    #: whether the engine may be called from any thread (then :meth:`sync_face` has one)
    native_sync_face = False

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        opts = dict(config.options or {})
        unknown = sorted(set(opts) - COMMON_OPTIONS - self.engine_options)
        if unknown:
            allowed = ", ".join(sorted(COMMON_OPTIONS | self.engine_options))
            raise make_error(
                InvalidArgumentError,
                f"unknown option(s) {', '.join(map(repr, unknown))} for the "
                f"{self.backend_type} backend; it accepts {allowed}",
            )
        self._keys = KeyEncoding(opts.pop("key_codec", None))
        self._values = ValueEncoding(
            opts.pop("value_codec", None), None if self.engine_ttl else config.ttl_seconds
        )
        # The point operations read instance attributes that no class
        # attribute shadows: CPython specializes (caches) those reads, not
        # reads of a class attribute or of a method an instance attribute
        # overrides (as _bind does with _get and _put).
        self._encode_key = self._keys.encode
        self._plain_values = self._values.plain
        self._decode_value = self._values.codec_decode
        self._big_writes_in_thread = self.writes_in_thread
        self._point_hooks_changed()
        threads = opts.pop("executor_threads", 4)
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"executor_threads must be an int, not {type(threads).__name__}")
        if threads < 1:
            raise make_error(InvalidArgumentError, f"executor_threads must be >= 1, not {threads}")
        self._threads = threads
        self._engine_opts: dict[str, Any] = opts
        self._open = False
        self._gate = Gate()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wlock = threading.Lock()
        self._start_lock: asyncio.Lock | None = None
        self._live_cursors: set[Cursor] = set()
        self._face = EngineFace(self)
        # A counter stays true only if nothing removes keys behind the
        # counted writes' back (expiry, eviction) and the codec stores ints.
        self._keeps_counters = (
            config.ttl_seconds is None
            and (self.persistent or config.max_size is None)
            and self._codec_stores_ints()
        )

    def _codec_stores_ints(self) -> bool:
        try:
            probe = self._values.encode_plain(b"counter", -(2**40))
            return bool(self._values.decode_payload(b"counter", probe) == -(2**40))
        except Exception:
            return False

    # ---- hooks an engine implements ------------------------------------------------

    def _open_engine(self) -> None:
        """Open the engine (in a worker thread); raise weir errors on failure."""
        raise NotImplementedError

    def _close_engine(self) -> None:
        """Close the engine (in a worker thread, nothing else running)."""
        raise NotImplementedError

    def _get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        get = self._get
        return [get(k) for k in keys]

    def _put(self, key: bytes, value: bytes) -> None:
        raise NotImplementedError

    def _delete(self, key: bytes) -> None:
        raise NotImplementedError

    def _write(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear: tuple[bytes, bytes] | None = None,
    ) -> None:
        """Apply, as one atomic write, the removal of every key in
        ``clear`` (``[lower, upper)``, both given), then ``deletes``, then
        ``puts``."""
        raise NotImplementedError

    def _last_key(self) -> bytes | None:
        """The largest key, None if the engine is empty (nothing else of this
        backend writes meanwhile)."""
        raise NotImplementedError

    def _cursor(self, lower: bytes | None, upper: bytes | None, values: bool) -> Cursor:
        """A cursor over a consistent view of ``[lower, upper)``; with
        ``values`` False the raw values may be empty."""
        raise NotImplementedError

    def _engine_stats(self) -> dict[str, Any]:
        return {}

    def _bytes_on_disk(self) -> int:
        return 0

    def _backup_sync(self, path: str) -> None:
        raise NotImplementedError

    def _prepare_restore(self, path: str) -> Any:
        """Build the restored data from ``path`` without touching the live store."""
        raise NotImplementedError

    def _swap_restore(self, staged: Any) -> None:
        """Replace the live data with ``staged`` (nothing else is running)."""
        raise NotImplementedError

    def _discard_restore(self, staged: Any) -> None:
        """Clean up ``staged`` after a failed swap."""

    def _on_expired(self, key: bytes) -> None:
        """A read found ``key`` expired (inline, on the loop thread)."""

    def _point_hooks_changed(self) -> None:
        """Copy ``_get``, ``_get_many``, ``_put`` and ``_delete`` to the attributes the
        point operations call; an engine that rebinds the hooks (to a new
        handle's methods) calls this after."""
        self._engine_get = self._get
        self._engine_get_many = self._get_many
        self._engine_put = self._put
        self._engine_delete = self._delete

    # ---- plumbing ---------------------------------------------------------------------

    def _describe(self) -> str:
        return f"{self.backend_type} store {self.config.path!r}"

    async def _ready(self) -> None:
        await self._gate.wait_open()
        if not self._open:
            raise closed_error(self._describe())

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn`` in the pool; the gate counts it until the thread returns,
        even if the awaiting task is cancelled first."""
        assert self._executor is not None and self._loop is not None
        loop = self._loop
        gate = self._gate
        cf: Future[T] = self._executor.submit(fn, *args)

        def done(_: Future[T]) -> None:
            try:
                loop.call_soon_threadsafe(gate.leave)
            except RuntimeError:  # the loop is gone; nobody waits on the gate
                pass

        cf.add_done_callback(done)
        return asyncio.wrap_future(cf, loop=loop)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        await self._gate.enter()
        if not self._open:
            self._gate.leave()
            raise closed_error(self._describe())
        return await self._submit(fn, *args)

    async def _exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the pool while the barrier is up (caller holds it)."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _under_wlock(self, fn: Callable[..., T], *args: Any) -> T:
        with self._wlock:
            return fn(*args)

    def _close_cursors_and_engine(self) -> None:
        self._close_cursors()
        self._close_engine()

    def _close_cursors_and_swap(self, staged: Any) -> None:
        self._close_cursors()
        self._swap_restore(staged)

    def _close_cursors(self) -> None:
        """Close the cursors of streaming scans still open (the gate is closed,
        so none is in use): the engine handle must not be pinned by them."""
        live, self._live_cursors = self._live_cursors, set()
        for cur in live:
            cur.close()

    def _locked_write(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear: tuple[bytes, bytes] | None = None,
    ) -> None:
        with self._wlock:
            self._write(puts, deletes, clear)

    def _resolve_clear(
        self, lower: bytes | None, upper: bytes | None
    ) -> tuple[bytes, bytes] | None:
        """Concrete bounds for a range removal: an open upper end is closed
        just past the largest key (the caller keeps other writes out);
        None when nothing can be in the range."""
        begin = b"" if lower is None else lower
        if upper is None:
            last = self._last_key()
            if last is None or last < begin:
                return None
            upper = last + b"\x00"
        if begin >= upper:
            return None
        return begin, upper

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store. Idempotent; raises :class:`weir.BusyError` if another
        process (or another backend in this one) holds the path."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._open:
                return
            if self.config.max_size is not None and self.persistent:
                log.warning(
                    "%s backend ignores max_size=%s (only the memory backend evicts)",
                    self.backend_type,
                    self.config.max_size,
                )
            executor = ThreadPoolExecutor(
                self._threads, thread_name_prefix=f"weir-stores-{self.backend_type}"
            )
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(executor, self._open_engine)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor
            self._loop = loop
            self._gate = Gate()
            self._open = True

    async def stop(self) -> None:
        """Close the store after the work in worker threads has finished.
        Idempotent; later calls raise :class:`weir.ClosedError`."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._open:
                return
            await self._gate.close()
            self._open = False
            executor = self._executor
            try:
                await self._exclusive(self._under_wlock, self._close_cursors_and_engine)
            finally:
                self._gate.open()
                self._executor = None
                if executor is not None:
                    executor.shutdown(wait=False)

    @property
    def started(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._open

    # ---- point operations ---------------------------------------------------------------

    async def get(self, key: Any) -> Any:
        """The value of ``key``, or None if absent or expired."""
        # The hot path: a few attribute tests, one call to encode the key,
        # one engine call, one codec call; no suspension, no thread.
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        ek = self._encode_key(key)
        raw = self._engine_get(ek)
        if raw is None:
            return None
        if self._plain_values:
            try:
                return self._decode_value(raw)
            except Exception as e:
                raise self._values.decode_error(key, e) from e
        values = self._values
        payload = values.live_payload(raw)
        if payload is None:
            self._on_expired(ek)
            return None
        return values.decode_payload(key, payload)

    async def batch_get(self, keys: Iterable[Any]) -> list[Any]:
        """The values of ``keys`` (None for absent ones), read in one call."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        keys = keys if type(keys) is list else key_list(keys)
        eks = self._keys.encode_list(keys)
        if len(eks) > INLINE_BATCH_ITEMS:
            raws = await self._in_thread(self._engine_get_many, eks)
        else:
            raws = self._engine_get_many(eks)
        values = self._values
        if self._plain_values:
            dec = self._decode_value
            try:
                return [None if r is None else dec(r) for r in raws]
            except Exception:
                pass  # decoded again below, one key at a time, to name the key
        return [None if r is None else values.decode(k, r) for k, r in zip(keys, raws, strict=True)]

    async def set(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key``."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        ek = self._encode_key(key)
        if self._plain_values:
            try:
                ev = self._values.codec_encode(value, key)
            except (TypeError, ValueError) as e:
                raise self._values.encode_error(key, value, e) from None
        else:
            ev = self._values.encode(key, value)
        if len(ev) > INLINE_VALUE_BYTES and self._big_writes_in_thread:
            await self._in_thread(self._locked_write, [(ek, ev)], [])
        else:
            self._engine_put(ek, ev)

    async def delete(self, key: Any) -> bool:
        """Remove ``key``; True if it was present (and not expired)."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        ek = self._encode_key(key)
        try:
            raw = self._engine_get(ek)
        except InvalidArgumentError:
            # A value the engine cannot read back (a merge onto a value of
            # another type): the key holds something; deleting it is the cure.
            self._engine_delete(ek)
            return True
        if raw is None:
            return False
        self._engine_delete(ek)
        return self._values.live_payload(raw) is not None

    async def exists(self, key: Any) -> bool:
        """True if ``key`` is present and not expired."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        ek = self._encode_key(key)
        raw = self._engine_get(ek)
        if raw is None:
            return False
        if self._values.ttl_ms is None or self._values.live_payload(raw) is not None:
            return True
        self._on_expired(ek)
        return False

    # ---- batches ---------------------------------------------------------------------------

    def _encode_items(self, items: Any) -> list[tuple[bytes, bytes]]:
        enc_k = self._keys.encode
        enc_v = self._values.encode
        return [(enc_k(k), enc_v(k, v)) for k, v in iter_pairs(items)]

    # A batch_set goes through three hooks, so an engine whose binding
    # encodes a whole batch in one call (weir) can take it over: the
    # encoded batch is whatever _encode_batch returns.

    def _encode_batch(self, items: Any) -> Any:
        """Encode the pairs of ``items`` (a mapping or a list of pairs);
        raises, naming the key, before anything is written if any key or
        value cannot be encoded."""
        return self._encode_items(items)

    def _batch_bytes(self, batch: Any) -> int:
        """The bytes of the values of an encoded batch."""
        return sum(len(v) for _, v in batch)

    def _write_batch(self, batch: Any) -> None:
        """Write an encoded batch in one atomic write."""
        if batch:
            self._write(batch, [])

    def _write_batch_locked(self, batch: Any) -> None:
        with self._wlock:
            self._write_batch(batch)

    def _encode_and_write(self, items: Any) -> None:
        self._write_batch_locked(self._encode_batch(items))

    async def batch_set(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        """Store every pair in one atomic write; nothing is written if any
        key or value cannot be encoded."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        if type(items) is not dict and type(items) is not list and not isinstance(items, Sized):
            items = list(iter_pairs(items))
        if len(items) > INLINE_BATCH_ITEMS:
            if self.writes_in_thread:
                await self._in_thread(self._encode_and_write, items)
                return
            batch = await self._in_thread(self._encode_batch, items)
            if self._gate.barrier is not None or not self._open:
                await self._ready()  # stopped or restored while we encoded
        else:
            batch = self._encode_batch(items)
        if self.writes_in_thread and self._batch_bytes(batch) > INLINE_VALUE_BYTES:
            await self._in_thread(self._write_batch_locked, batch)
        else:
            self._write_batch(batch)

    def _get_many_for_delete(self, eks: list[bytes]) -> list[bytes | None]:
        """``_get_many``, but a key whose value the engine cannot read (a
        merge onto a value of another type) counts as present."""
        try:
            return self._get_many(eks)
        except InvalidArgumentError:
            pass
        out: list[bytes | None] = []
        for k in eks:
            try:
                out.append(self._get(k))
            except InvalidArgumentError:
                out.append(_UNREADABLE)
        return out

    def _delete_present(self, eks: list[bytes]) -> int:
        raws = self._get_many_for_delete(eks)
        live = self._values.live_payload
        now = now_ms()
        present = [k for k, r in zip(eks, raws, strict=True) if r is not None]
        count = sum(1 for r in raws if r is not None and live(r, now) is not None)
        if present:
            if self.writes_in_thread:
                self._locked_write([], present)
            else:
                self._write([], present)
        return count

    async def batch_delete(self, keys: Iterable[Any]) -> int:
        """Remove ``keys`` in one atomic write; returns how many were present."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        eks = list(dict.fromkeys(self._keys.encode_many(keys)))
        if len(eks) > INLINE_BATCH_ITEMS and self.writes_in_thread:
            return await self._in_thread(self._delete_present, eks)
        return self._delete_present(eks)

    # ---- scans -------------------------------------------------------------------------------

    def _collect_sync(
        self, lower: bytes | None, upper: bytes | None, limit: int | None, mode: int
    ) -> list[Any]:
        need_values = mode != _KEYS or self._values.ttl_ms is not None
        out: list[Any] = []
        now = now_ms()
        cur = self._cursor(lower, upper, need_values)
        try:
            while limit is None or len(out) < limit:
                # Expired entries are skipped, so a limited scan may need more rounds.
                chunk = cur.fetch(None if limit is None else limit - len(out))
                if not chunk:
                    break
                self._decode_into(out, chunk, mode, now, limit)
        finally:
            cur.close()
        return out

    def _decode_into(
        self,
        out: list[Any],
        chunk: list[tuple[bytes, bytes]],
        mode: int,
        now: int,
        limit: int | None,
    ) -> None:
        values = self._values
        dk = self._keys.decode
        ttl = values.ttl_ms is not None
        for k, raw in chunk:
            if limit is not None and len(out) >= limit:
                return
            if ttl:
                payload = values.live_payload(raw, now)
                if payload is None:
                    continue
            else:
                payload = raw
            if mode == _KEYS:
                out.append(dk(k))
            elif mode == _RAW:
                out.append((k, payload))
            else:
                key = dk(k)
                v = values.decode_payload(key, payload)
                out.append(v if mode == _VALUES else (key, v))

    async def _collect(
        self, lower: bytes | None, upper: bytes | None, limit: int | None, mode: int, empty: bool
    ) -> list[Any]:
        await self._ready()
        if empty or limit == 0:
            return []
        return await self._in_thread(self._collect_sync, lower, upper, limit, mode)

    async def _stream(
        self, lower: bytes | None, upper: bytes | None, limit: int | None, empty: bool
    ) -> Any:
        await self._ready()
        if empty or limit == 0:
            return
        cursors: list[Cursor] = []

        def first_chunk() -> list[tuple[bytes, bytes]]:
            cur = self._cursor(lower, upper, True)
            cursors.append(cur)
            self._live_cursors.add(cur)
            return cur.fetch(SCAN_CHUNK)

        def next_chunk() -> list[tuple[bytes, bytes]]:
            if cursors[0] not in self._live_cursors:
                raise make_error(
                    ClosedError, "the store was restored while this scan ran; its cursor is closed"
                )
            return cursors[0].fetch(SCAN_CHUNK)

        produced = 0
        try:
            chunk = await self._in_thread(first_chunk)
            while chunk:
                out: list[Any] = []
                self._decode_into(out, chunk, _ITEMS, now_ms(), None)
                for pair in out:
                    yield pair
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
                chunk = await self._in_thread(next_chunk)
        finally:
            if cursors:
                self._live_cursors.discard(cursors[0])
                cursors[0].close()

    def scan(
        self,
        start_key: Any = None,
        end_key: Any = None,
        prefix: Any = None,
        limit: int | None = None,
    ) -> ScanResult:
        """Pairs with ``start_key <= key < end_key`` that start with ``prefix``,
        in key order, at most ``limit`` of them.

        ``await backend.scan(...)`` gives an iterator over one consistent
        read; ``async for key, value in backend.scan(...)`` streams in
        chunks of a thousand, each read in a worker thread.
        """
        limit = check_limit(limit)
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(start_key, end_key, prefix)
        return ScanResult(
            lambda: self._collect(lower, upper, limit, _ITEMS, empty),
            lambda: self._stream(lower, upper, limit, empty),
        )

    async def keys(self, prefix: Any = None) -> list[Any]:
        """Every key (under ``prefix``), in key order."""
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(None, None, prefix)
        return await self._collect(lower, upper, None, _KEYS, empty)

    async def values(self) -> list[Any]:
        """Every value, in key order."""
        return await self._collect(None, None, None, _VALUES, False)

    async def items(self, prefix: Any = None) -> list[tuple[Any, Any]]:
        """Every ``(key, value)`` pair (under ``prefix``), in key order."""
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(None, None, prefix)
        return await self._collect(lower, upper, None, _ITEMS, empty)

    def _count_sync(self, lower: bytes | None = None, upper: bytes | None = None) -> int:
        values = self._values
        ttl = values.ttl_ms is not None
        now = now_ms()
        n = 0
        cur = self._cursor(lower, upper, ttl)
        try:
            while True:
                chunk = cur.fetch(65536)
                if not chunk:
                    return n
                if ttl:
                    n += sum(1 for _, raw in chunk if values.live_payload(raw, now) is not None)
                else:
                    n += len(chunk)
        finally:
            cur.close()

    async def size(self) -> int:
        """The number of live keys (an exact count: a scan of the keys)."""
        await self._ready()
        return await self._in_thread(self._count_sync)

    def _delete_range_sync(self, lower: bytes | None, upper: bytes | None) -> None:
        """Delete ``[lower, upper)`` (None: unbounded) while nothing else of
        this backend runs: one range removal in one write."""
        clear = self._resolve_clear(lower, upper)
        if clear is not None:
            self._locked_write([], [], clear)

    def _apply_sync(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear_range: EncodedRange | None,
        locked: bool,
    ) -> None:
        puts, deletes = check_encoded_writes(puts, deletes)
        ttl = self._values.ttl_ms
        if ttl is not None and puts:
            header = (now_ms() + ttl).to_bytes(8, "big")
            puts = [(k, header + v) for k, v in puts]
        clear = None if clear_range is None else self._resolve_clear(*clear_range)
        if not puts and not deletes and clear is None:
            return
        if locked:
            self._locked_write(puts, deletes, clear)
        else:
            self._write(puts, deletes, clear)

    async def _delete_range_exclusive(self, lower: bytes | None, upper: bytes | None) -> None:
        await self._ready()
        if lower is not None and upper is not None and lower >= upper:
            return
        await self._gate.close()
        try:
            if not self._open:
                raise closed_error(self._describe())
            await self._exclusive(self._delete_range_sync, lower, upper)
        finally:
            self._gate.open()

    async def clear(self) -> None:
        """Remove every key. Other operations of this backend wait until it
        is done, so none of them sees a half-cleared store."""
        await self._delete_range_exclusive(None, None)

    async def delete_range(self, start_key: Any = None, end_key: Any = None) -> None:
        """Remove every key with ``start_key <= key < end_key`` (None:
        unbounded on that side), atomically for the callers of this backend
        (their operations wait until it is done). ``start_key == end_key``
        removes nothing; ``start_key > end_key`` raises
        :class:`weir.InvalidArgumentError`."""
        lower, upper = range_bounds(self._keys, start_key, end_key)
        await self._delete_range_exclusive(lower, upper)

    async def delete_prefix(self, prefix: Any) -> None:
        """Remove every key that starts with ``prefix`` (as ``delete_range``)."""
        lower, upper = prefix_bounds(self._keys, prefix)
        await self._delete_range_exclusive(lower, upper)

    # ---- the byte-level interface ---------------------------------------------------------

    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        """One atomic write of encoded puts, deletes and a range removal
        (see :meth:`StoreBackend.apply`). Large writes, and every write with
        a ``clear_range``, run in a worker thread; a ``clear_range`` holds
        this backend's other operations back until it is done."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        puts = puts if isinstance(puts, list) else list(puts)
        deletes = deletes if isinstance(deletes, list) else list(deletes)
        if clear_range is not None:
            clear_range = check_encoded_range(clear_range)
            await self._gate.close()
            try:
                if not self._open:
                    raise closed_error(self._describe())
                await self._exclusive(self._apply_sync, puts, deletes, clear_range, True)
            finally:
                self._gate.open()
            return
        if self.writes_in_thread and len(puts) + len(deletes) > INLINE_BATCH_ITEMS:
            await self._in_thread(self._apply_sync, puts, deletes, None, True)
        else:
            self._apply_sync(puts, deletes, None, False)

    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Every live ``(encoded key, payload)`` in ``[lower, upper)``, in
        key order, from one consistent view of the engine."""
        lower, upper = check_encoded_range((lower, upper))
        await self._ready()
        if lower is not None and upper is not None and lower >= upper:
            return []
        pairs: list[tuple[bytes, bytes]] = await self._in_thread(
            self._collect_sync, lower, upper, None, _RAW
        )
        return pairs

    # ---- point reads, scans and counted writes of encoded data ---------------------------

    def _read_sync(self, key: bytes) -> bytes | None:
        if type(key) is not bytes:
            raise TypeError(f"a key must be bytes (an encoded key), not {type(key).__name__}")
        raw = self._engine_get(key)
        if raw is None or self._values.ttl_ms is None:
            return raw
        payload = self._values.live_payload(raw)
        if payload is None:
            self._on_expired(key)
        return payload

    async def read(self, key: bytes) -> bytes | None:
        """The payload under the encoded ``key`` (one engine read, inline)."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        return self._read_sync(key)

    async def contains(self, key: bytes) -> bool:
        """True if the encoded ``key`` is present and live (one engine read)."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        return self._read_sync(key) is not None

    def _live_chunk(self, chunk: list[tuple[bytes, bytes]], now: int) -> list[tuple[bytes, bytes]]:
        """A cursor chunk without its expired entries and expiry headers."""
        live = self._values.live_payload
        out: list[tuple[bytes, bytes]] = []
        for k, raw in chunk:
            payload = live(raw, now)
            if payload is not None:
                out.append((k, payload))
        return out

    async def scan_range(
        self, lower: bytes | None = None, upper: bytes | None = None, *, values: bool = True
    ) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
        """``(encoded key, payload)`` chunks of ``[lower, upper)`` in key
        order, each read in a worker thread from one engine cursor."""
        lower, upper = check_encoded_range((lower, upper))
        await self._ready()
        if lower is not None and upper is not None and lower >= upper:
            return
        ttl = self._values.ttl_ms is not None
        cursors: list[Cursor] = []

        def first_chunk() -> list[tuple[bytes, bytes]]:
            cur = self._cursor(lower, upper, values or ttl)
            cursors.append(cur)
            self._live_cursors.add(cur)
            return cur.fetch(SCAN_CHUNK)

        def next_chunk() -> list[tuple[bytes, bytes]]:
            if cursors[0] not in self._live_cursors:
                raise make_error(
                    ClosedError, "the store was restored while this scan ran; its cursor is closed"
                )
            return cursors[0].fetch(SCAN_CHUNK)

        try:
            chunk = await self._in_thread(first_chunk)
            while chunk:
                out = self._live_chunk(chunk, now_ms()) if ttl else chunk
                if out:
                    yield out
                chunk = await self._in_thread(next_chunk)
        finally:
            if cursors:
                self._live_cursors.discard(cursors[0])
                cursors[0].close()

    def _counter_value(self, raw: bytes | None) -> int | None:
        """The count a counter key holds; None if it holds none (absent, or
        not an int: then the range is counted afresh when next needed)."""
        if raw is None:
            return None
        try:
            value = self._values.decode_payload(b"", raw)
        except Exception:
            return None
        return value if type(value) is int else None

    def _write_counted_sync(self, writes: list[CountedWrite]) -> list[bool]:
        """Check which keys exist, then write the keys and the ranges' new
        counts in one engine write. The caller holds ``_wlock`` (or, for
        the memory backend, runs on the event loop)."""
        n = len(writes)
        ranges = list(dict.fromkeys(w[2] for w in writes)) if self._keeps_counters else []
        raws = self._get_many_for_delete([w[0] for w in writes] + [r.counter for r in ranges])
        live = self._values.live_payload
        now = now_ms()
        present: dict[bytes, bool] = {}
        final: dict[bytes, bytes | None] = {}
        deltas: dict[CountedRange, int] = {}
        out: list[bool] = []
        for (key, payload, rng), raw in zip(writes, raws, strict=False):
            was = present[key] if key in present else raw is not None and live(raw, now) is not None
            out.append(was)
            if was != (payload is not None):
                deltas[rng] = deltas.get(rng, 0) + (1 if payload is not None else -1)
            present[key] = payload is not None
            final[key] = payload
        ttl = self._values.ttl_ms
        header = b"" if ttl is None else (now + ttl).to_bytes(8, "big")
        puts = [(k, header + p) for k, p in final.items() if p is not None]
        deletes = [k for k, p in final.items() if p is None]
        for rng, raw in zip(ranges, raws[n:], strict=True):
            delta = deltas.get(rng, 0)
            current = self._counter_value(raw) if delta else None
            if current is not None:  # an absent counter is made by count_range
                puts.append((rng.counter, self._values.encode_plain(rng.counter, current + delta)))
        if puts or deletes:
            self._write(puts, deletes)
        return out

    def _write_counted_locked(self, writes: list[CountedWrite]) -> list[bool]:
        with self._wlock:
            return self._write_counted_sync(writes)

    async def write_counted(self, writes: Iterable[CountedWrite]) -> list[bool]:
        """One atomic counted write (see :meth:`StoreBackend.write_counted`):
        presence checked and keys and counts written under the backend's
        write lock, inline (in a worker thread when large)."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        checked = check_counted_writes(writes)
        if self.writes_in_thread and len(checked) > INLINE_BATCH_ITEMS:
            return await self._in_thread(self._write_counted_locked, checked)
        return self._write_counted_locked(checked)

    def _stored_count(self, rng: CountedRange) -> int | None:
        try:
            return self._counter_value(self._get(rng.counter))
        except InvalidArgumentError:  # a merge onto the counter: count afresh
            return None

    def _recount_locked(self, rng: CountedRange, only_if_missing: bool) -> int:
        """Count ``rng`` and store the count, holding ``_wlock`` so no
        counted write lands between the count and the store."""
        with self._wlock:
            if only_if_missing:
                n = self._stored_count(rng)
                if n is not None:
                    return n
            n = self._count_sync(rng.lower, rng.upper)
            if self._keeps_counters:
                self._write([(rng.counter, self._values.encode_plain(rng.counter, n))], [])
            return n

    def _count_range_sync(self, rng: CountedRange) -> int:
        if not self._keeps_counters:
            return self._count_sync(rng.lower, rng.upper)
        n = self._stored_count(rng)
        return n if n is not None else self._recount_locked(rng, True)

    async def count_range(self, rng: CountedRange) -> int:
        """The live keys of ``rng``: the counter, read inline, where the
        backend keeps one (made by counting the range, in a worker thread,
        the first time), else a count of the range in a worker thread."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        if self._keeps_counters:
            n = self._stored_count(rng)
            if n is not None:
                return n
        if not self.writes_in_thread:
            return self._recount_locked(rng, True)
        return await self._in_thread(self._recount_locked, rng, True)

    async def recount_range(self, rng: CountedRange) -> int:
        """Count ``rng`` afresh and store the count (in a worker thread)."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        await self._ready()
        if not self.writes_in_thread:
            return self._recount_locked(rng, False)
        return await self._in_thread(self._recount_locked, rng, False)

    def _clear_range_locked(self, rng: CountedRange) -> None:
        with self._wlock:
            clear = self._resolve_clear(rng.lower, rng.upper)
            puts = (
                [(rng.counter, self._values.encode_plain(rng.counter, 0))]
                if self._keeps_counters
                else []
            )
            if clear is not None or puts:
                self._write(puts, [], clear)

    async def clear_range(self, rng: CountedRange) -> None:
        """Remove ``rng`` and zero its count in one engine write; the
        backend's other operations wait until it is done."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        await self._ready()
        if not self.writes_in_thread:
            self._clear_range_locked(rng)
            return
        await self._gate.close()
        try:
            if not self._open:
                raise closed_error(self._describe())
            await self._exclusive(self._clear_range_locked, rng)
        finally:
            self._gate.open()

    def sync_face(self) -> SyncFace | None:
        """This backend's :class:`EngineFace` while it is started, if its
        engine may be called from any thread (weir, RocksDB); else None."""
        return self._face if self.native_sync_face and self._open else None

    # ---- stats, backup, restore ----------------------------------------------------------

    def _stats_sync(self) -> dict[str, Any]:
        return {
            "backend_type": self.backend_type,
            "keys": self._count_sync(),
            "keys_exact": True,
            "bytes_on_disk": self._bytes_on_disk(),
            "path": None if self.config.path is None else os.fspath(self.config.path),
            "key_codec": self._keys.name,
            "value_codec": self._values.name,
            "ttl_seconds": self.config.ttl_seconds,
            "max_size": self.config.max_size,
            "compression": self.config.compression,
            "engine": self._engine_stats(),
        }

    async def get_stats(self) -> dict[str, Any]:
        """``backend_type``, ``keys`` (exact, counted by a key scan:
        ``keys_exact`` is True), ``bytes_on_disk``, the codecs and settings,
        and the engine's own counters under ``engine``."""
        await self._ready()
        return await self._in_thread(self._stats_sync)

    async def backup(self, path: PathLike) -> None:
        """Write a consistent copy of the store to ``path``, which must not
        exist. Writes may continue meanwhile; the copy is of one moment."""
        await self._ready()
        target = os.fspath(path)
        if os.path.lexists(target):
            raise FileExistsError(f"backup target {target!r} already exists")
        await self._in_thread(self._backup_sync, target)

    async def restore(self, path: PathLike) -> None:
        """Replace the whole store with the backup at ``path``.

        The backup is loaded aside first; then, with the other operations of
        this backend held at the barrier, the live data is swapped for it.
        Callers see the old contents or the new, never a mix.
        """
        await self._ready()
        source = os.fspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"no backup at {source!r}")
        staged = await self._in_thread(self._prepare_restore, source)
        await self._gate.close()
        try:
            if not self._open:
                self._discard_restore(staged)
                raise closed_error(self._describe())
            await self._exclusive(self._under_wlock, self._close_cursors_and_swap, staged)
        except BaseException:
            self._discard_restore(staged)
            raise
        finally:
            self._gate.open()

    # ---- transactions ----------------------------------------------------------------------

    def transaction(self) -> StoreTransaction:
        """A new transaction; ``async with backend.transaction() as txn:``
        commits it on a clean exit and rolls it back on an exception."""
        if not self._open:
            raise closed_error(self._describe())
        return StoreTransaction(self, self._keys, self._values, self._txn_read)

    async def _txn_read(self, key: bytes) -> bytes | None:
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        return self._engine_get(key)

    async def begin_transaction(self) -> StoreTransaction:
        """Start an optimistic transaction (see :class:`StoreTransaction`)."""
        await self._ready()
        return self.transaction()

    def _own(self, txn: Any) -> StoreTransaction:
        if not isinstance(txn, Transaction):
            raise TypeError(f"expected a Transaction, not {type(txn).__name__}")
        if not isinstance(txn, StoreTransaction) or txn.backend is not self:
            raise make_error(InvalidArgumentError, "the transaction belongs to another backend")
        return txn

    async def commit_transaction(self, transaction: Any) -> None:
        """Apply the transaction's writes atomically if nothing it read has
        changed; else raise :class:`TransactionConflictError` and write nothing."""
        txn = self._own(transaction)
        txn._check_active()
        await self._ready()
        values = self._values
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        if values.ttl_ms is None:
            for k, payload in txn.writes.items():
                if payload is None:
                    deletes.append(k)
                else:
                    puts.append((k, payload))
        else:
            header = (now_ms() + values.ttl_ms).to_bytes(8, "big")
            for k, payload in txn.writes.items():
                if payload is None:
                    deletes.append(k)
                else:
                    puts.append((k, header + payload))
        with self._wlock:
            # Read-only transactions are checked too: success then means
            # every value read was current at one moment, the commit.
            if txn.reads:
                keys = list(txn.reads)
                now = now_ms()
                for k, raw in zip(keys, self._get_many(keys), strict=True):
                    current = None if raw is None else values.live_payload(raw, now)
                    if current != txn.reads[k]:
                        txn.state = "rolled back"
                        raise make_error(
                            TransactionConflictError,
                            f"transaction conflict: key {short_repr(self._keys.decode(k))} "
                            "changed after the transaction read it; nothing was written",
                            "WEIR_CONFLICT",
                        )
            if puts or deletes:
                self._write(puts, deletes)
        txn.state = "committed"

    async def rollback_transaction(self, transaction: Any) -> None:
        """Discard the transaction's writes. Rolling back a finished
        transaction does nothing."""
        txn = self._own(transaction)
        if txn.state == "active":
            txn.writes.clear()
            txn.state = "rolled back"


class EngineFace(SyncFace):
    """The :class:`~weir.stores.SyncFace` of an engine backend: the
    backend's own hooks, called on the caller's thread. Counted writes,
    recounts and each scan chunk hold the backend's write lock, which
    ``stop()`` and ``restore()`` hold while they close or swap the engine;
    point reads take no lock."""

    __slots__ = ("_backend",)

    def __init__(self, backend: EngineBackend) -> None:
        self._backend = backend

    def _open(self) -> EngineBackend:
        b = self._backend
        if not b._open:
            raise closed_error(b._describe())
        return b

    def read(self, key: bytes) -> bytes | None:
        return self._open()._read_sync(key)

    def contains(self, key: bytes) -> bool:
        return self._open()._read_sync(key) is not None

    def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        b = self._open()
        return b._write_counted_locked(check_counted_writes([(key, payload, rng)]))[0]

    def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        b = self._open()
        return b._write_counted_locked(check_counted_writes([(key, None, rng)]))[0]

    def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        b = self._open()
        return b._write_counted_locked(check_counted_writes(writes))

    def count_range(self, rng: CountedRange) -> int:
        return self._open()._count_range_sync(rng)

    def recount_range(self, rng: CountedRange) -> int:
        return self._open()._recount_locked(rng, False)

    def clear_range(self, rng: CountedRange) -> None:
        self._open()._clear_range_locked(rng)

    def _chunks(
        self, lower: bytes, upper: bytes | None, values: bool
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        b = self._open()
        ttl = b._values.ttl_ms is not None
        with b._wlock:
            cur = b._cursor(lower, upper, values or ttl)
            b._live_cursors.add(cur)
        try:
            while True:
                with b._wlock:
                    if cur not in b._live_cursors:
                        raise make_error(
                            ClosedError,
                            "the store was stopped or restored while this scan ran",
                        )
                    chunk = cur.fetch(SCAN_CHUNK)
                if not chunk:
                    return
                yield b._live_chunk(chunk, now_ms()) if ttl else chunk
        finally:
            b._live_cursors.discard(cur)
            cur.close()

    def items(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        for chunk in self._chunks(lower, upper, True):
            yield from chunk

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        for chunk in self._chunks(lower, upper, False):
            for k, _v in chunk:
                yield k
