"""The memory backend: a store in this process's memory, gone at exit.

It holds encoded keys and values (so it behaves exactly like the persistent
backends: values come back as fresh objects, unencodable ones are refused)
in an insertion-ordered dict that doubles as the LRU list.

* ``max_size`` caps the number of keys; writing a new key beyond it evicts
  the least recently used one (reads and writes both count as use).
* ``ttl_seconds`` hides a value that long after its last write; an expired
  key is dropped when a read finds it, and a sweep on every write drops the
  oldest expired ones, so memory does not fill with dead keys.
* Range scans use a sorted list of the keys, rebuilt in a worker thread
  only after the set of keys has changed. Scans are not snapshots: a key
  written while a long scan runs may or may not be seen.

The data lives as long as the backend is started: ``stop()`` drops it.
All mutation happens on the event loop thread; worker threads only read
(dict reads are atomic under the GIL), so no lock is needed.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from ._common import (
    EXPIRY_HEADER,
    check_encoded_range,
    now_ms,
    read_dump_file,
    write_dump_file,
)
from ._engine import _RAW, EngineBackend
from .base import EncodedPairs, EncodedRange, StoreBackendConfig


class _MemoryCursor:
    __slots__ = ("_data", "_i", "_keys", "_stop")

    def __init__(
        self,
        data: OrderedDict[bytes, bytes],
        keys: list[bytes],
        lower: bytes | None,
        upper: bytes | None,
    ) -> None:
        self._data = data
        self._keys = keys
        self._i = 0 if lower is None else bisect.bisect_left(keys, lower)
        self._stop = len(keys) if upper is None else bisect.bisect_left(keys, upper)

    def fetch(self, n: int | None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        get = self._data.get
        keys = self._keys
        while self._i < self._stop and (n is None or len(out) < n):
            k = keys[self._i]
            self._i += 1
            v = get(k)
            if v is not None:  # deleted since the key list was taken
                out.append((k, v))
        return out

    def close(self) -> None:
        self._i = self._stop


class MemoryBackend(EngineBackend):
    """Store backend in process memory, with optional LRU size cap and TTL."""

    backend_type = "memory"
    writes_in_thread = False
    persistent = False

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        self._data: OrderedDict[bytes, bytes] = OrderedDict()
        self._max = config.max_size
        self._gen = 0  # bumped whenever the set of keys changes
        self._sorted: list[bytes] = []
        self._sorted_gen = -1
        self._expiries: deque[tuple[int, bytes]] = deque()
        self.evictions = 0
        self.expirations = 0
        self.hits = 0
        self.misses = 0

    # ---- engine hooks --------------------------------------------------------------------

    def _open_engine(self) -> None:
        pass

    def _close_engine(self) -> None:
        # Nothing else runs now (the gate is closed): dropping the data here
        # is safe, and frees the memory as stop() should.
        self._data = OrderedDict()
        self._expiries = deque()
        self._gen += 1

    def _get(self, key: bytes) -> bytes | None:
        data = self._data
        v = data.get(key)
        if v is None:
            self.misses += 1
            return None
        self.hits += 1
        if self._max is not None:
            data.move_to_end(key)
        return v

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        get = self._data.get
        return [get(k) for k in keys]

    def _sweep(self, now: int) -> None:
        exp = self._expiries
        data = self._data
        while exp and exp[0][0] <= now:
            _, key = exp.popleft()
            v = data.get(key)
            # Only if it was not rewritten since (a rewrite has a later expiry).
            if v is not None and int.from_bytes(v[:EXPIRY_HEADER], "big") <= now:
                del data[key]
                self._gen += 1
                self.expirations += 1

    def _put(self, key: bytes, value: bytes) -> None:
        data = self._data
        if key in data:
            data[key] = value
            if self._max is not None:
                data.move_to_end(key)
        else:
            data[key] = value
            self._gen += 1
            if self._max is not None and len(data) > self._max:
                data.popitem(last=False)
                self.evictions += 1
        if self._values.ttl_ms is not None:
            self._expiries.append((int.from_bytes(value[:EXPIRY_HEADER], "big"), key))
            self._sweep(now_ms())

    def _delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            self._gen += 1

    def _write(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear: tuple[bytes, bytes] | None = None,
    ) -> None:
        # Inline on the loop thread with no await: nothing can observe a
        # partial batch. Encoding already succeeded, and dict stores cannot
        # fail, so the batch is all-or-nothing.
        if clear is not None:
            self._clear(*clear)
        for k in deletes:
            self._delete(k)
        put = self._put
        for k, v in puts:
            put(k, v)

    def _on_expired(self, key: bytes) -> None:
        raw = self._data.get(key)
        if raw is not None and self._values.live_payload(raw) is None:
            del self._data[key]
            self._gen += 1
            self.expirations += 1

    def _sorted_keys(self) -> list[bytes]:
        gen = self._gen
        if self._sorted_gen != gen:
            # sorted() over a dict runs in C under the GIL: a consistent copy.
            keys = sorted(self._data)
            self._sorted, self._sorted_gen = keys, gen
        return self._sorted

    def _cursor(self, lower: bytes | None, upper: bytes | None, values: bool) -> _MemoryCursor:
        return _MemoryCursor(self._data, self._sorted_keys(), lower, upper)

    def _count_sync(self, lower: bytes | None = None, upper: bytes | None = None) -> int:
        if self._values.ttl_ms is None and lower is None and upper is None:
            return len(self._data)
        return super()._count_sync(lower, upper)

    def _engine_stats(self) -> dict[str, Any]:
        data = self._data
        return {
            "entries": len(data),
            "bytes_in_memory": sum(len(k) + len(v) for k, v in list(data.items())),
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "expirations": self.expirations,
        }

    def _last_key(self) -> bytes | None:
        keys = self._sorted_keys()
        return keys[-1] if keys else None

    def _clear(self, lower: bytes | None, upper: bytes | None) -> None:
        if lower in (None, b"") and upper is None:
            self._data = OrderedDict()
            self._expiries.clear()
            self._gen += 1
            return
        if lower is not None and upper is not None and lower >= upper:
            return
        keys = self._sorted_keys()
        i = 0 if lower is None else bisect.bisect_left(keys, lower)
        j = len(keys) if upper is None else bisect.bisect_left(keys, upper)
        if i >= j:
            return
        data = self._data
        for k in keys[i:j]:
            data.pop(k, None)
        self._gen += 1

    async def _delete_range_exclusive(self, lower: bytes | None, upper: bytes | None) -> None:
        # Inline on the loop thread with no await after the check: no other
        # operation can observe a partly deleted range.
        await self._ready()
        self._clear(lower, upper)

    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        """One atomic write of encoded data (see :meth:`StoreBackend.apply`),
        inline on the event loop, where nothing can see half of it."""
        if self._gate.barrier is not None or not self._open:
            await self._ready()
        if clear_range is not None:
            clear_range = check_encoded_range(clear_range)
        self._apply_sync(list(puts), list(deletes), clear_range, False)

    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Every live ``(encoded key, payload)`` in ``[lower, upper)``, read
        inline on the event loop (so as of one moment)."""
        lower, upper = check_encoded_range((lower, upper))
        await self._ready()
        if lower is not None and upper is not None and lower >= upper:
            return []
        pairs: list[tuple[bytes, bytes]] = self._collect_sync(lower, upper, None, _RAW)
        return pairs

    # ---- backup and restore --------------------------------------------------------------

    async def backup(self, path: Any) -> None:
        """Write every key to the dump file ``path`` (which must not exist),
        as of one moment: the copy is taken inline, the file is written in a
        worker thread."""
        await self._ready()
        target = os.fspath(path)
        if os.path.lexists(target):
            raise FileExistsError(f"backup target {target!r} already exists")
        snapshot = list(self._data.items())
        await self._in_thread(self._write_dump, target, snapshot)

    def _write_dump(self, target: str, snapshot: list[tuple[bytes, bytes]]) -> None:
        ttl = self._values.ttl_ms is not None
        records = (
            (k, v[EXPIRY_HEADER:], int.from_bytes(v[:EXPIRY_HEADER], "big")) if ttl else (k, v, -1)
            for k, v in snapshot
        )
        write_dump_file(target, records)

    def _prepare_restore(self, path: str) -> OrderedDict[bytes, bytes]:
        records = read_dump_file(path, "memory")
        ttl = self._values.ttl_ms
        default_expiry = None if ttl is None else now_ms() + ttl
        staged: OrderedDict[bytes, bytes] = OrderedDict()
        for k, v, expires in records:
            if ttl is None:
                staged[k] = v
            else:
                when = default_expiry if expires < 0 else expires
                staged[k] = int(when or 0).to_bytes(EXPIRY_HEADER, "big") + v
        if self._max is not None:
            while len(staged) > self._max:
                staged.popitem(last=False)
        return staged

    def _swap_restore(self, staged: Any) -> None:
        raise AssertionError("unreachable: restore() swaps inline for memory")

    async def restore(self, path: Any) -> None:
        """Replace every key with the dump at ``path``, in one step."""
        await self._ready()
        source = os.fspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"no backup at {source!r}")
        staged = await self._in_thread(self._prepare_restore, source)
        await self._ready()
        self._data = staged
        self._expiries = deque(
            sorted((int.from_bytes(v[:EXPIRY_HEADER], "big"), k) for k, v in staged.items())
            if self._values.ttl_ms is not None
            else ()
        )
        self._gen += 1
