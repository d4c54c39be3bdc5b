"""DBFace: the :class:`~weir.stores.SyncFace` of a bare :class:`weir.DB`.

``weir.table.Table(name, db)`` reaches its DB through this face, so a
table has one code path whatever holds it. The face keeps the layout
tables over a weir.DB have always had: values are whatever payload the
caller stores (no expiry header), and a :class:`~weir.stores.CountedRange`'s
count is an ``int64_add`` merge value under its counter key: each counted
write adds its change with ``incr`` in the same engine write batch as the
keys it counts (a recount or a clear writes the whole number).

A counted write checks whether its keys exist and writes in one step under
a lock that every face of the same DB in the process shares; weir lets one
process open a DB, so the counts stay exact under concurrent threads. The
faces of a DB also share the counts as last written (read from the DB, or
counted from the keys if it holds none, the first time a range is used),
so ``count_range`` is a dictionary lookup: reading the counter from the DB
would apply every merge operand written since the last compaction. A write
of a counter key by other means (it lies in a table's reserved key space)
is not seen by the faces of a DB already open.
"""

from __future__ import annotations

import struct
import threading
import weakref
from collections.abc import Iterator, Sequence

from .. import DB, ClosedError
from .base import CountedRange, CountedWrite, SyncFace, check_counted_writes

__all__ = ["DBFace"]

#: A whole count as the DB stores it: the int64 of the int64_add merge
#: operator, so ``db.get_int`` reads it and ``db.incr`` adds to it.
_INT64 = struct.Struct("<q")


class _Shared:
    """What every face of one DB shares: the lock that serialises the
    check-then-write of every counted write on it, and the counts as last
    written (counter key -> count), so a write need not read its count."""

    __slots__ = ("counts", "lock")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.counts: dict[bytes, int] = {}


_SHARED: weakref.WeakKeyDictionary[DB, _Shared] = weakref.WeakKeyDictionary()
_SHARED_GUARD = threading.Lock()


def _shared(db: DB) -> _Shared:
    with _SHARED_GUARD:
        shared = _SHARED.get(db)
        if shared is None:
            shared = _SHARED[db] = _Shared()
        return shared


class DBFace(SyncFace):
    """The synchronous byte-level face of an open :class:`weir.DB` (see the
    module docs). The DB stays the caller's: the face never closes it, and
    a closed DB raises :class:`weir.ClosedError` from every method."""

    def __init__(self, db: DB) -> None:
        if not isinstance(db, DB):
            raise TypeError(f"DBFace needs a weir.DB, not {type(db).__name__}")
        self.db = db
        shared = _shared(db)
        self._lock = shared.lock
        self._counts = shared.counts
        # The DB's own methods: no Python frame between a caller and the engine.
        self.read = db.get  # type: ignore[method-assign]
        self.contains = db.__contains__  # type: ignore[method-assign,assignment]

    def read(self, key: bytes) -> bytes | None:
        return self.db.get(key)

    def contains(self, key: bytes) -> bool:
        return key in self.db

    def _load(self, rng: CountedRange) -> int:
        """The range's count as stored (caller holds the lock), made from
        the keys and stored first when the DB holds none, and kept in the
        shared counts from then on."""
        db = self.db
        n = db.get_int(rng.counter, None)
        if n is None:
            n = 0
            with db.keys(start=rng.lower, stop=rng.upper) as it:
                for _ in it:
                    n += 1
            db.put(rng.counter, _INT64.pack(n))
        self._counts[rng.counter] = n
        return n

    def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        # The checks inline: this is the path of every ``table[k] = v``.
        if (
            type(key) is not bytes
            or type(payload) is not bytes
            or not (rng.lower <= key and (rng.upper is None or key < rng.upper))
        ):
            check_counted_writes([(key, payload, rng)])  # raises the precise error
        db = self.db
        with self._lock:
            if key in db:
                db.put(key, payload)
                return True
            counter = rng.counter
            n = self._counts.get(counter)
            if n is None:
                n = self._load(rng)
            with db.write_batch() as b:
                b.put(key, payload)
                b.incr(counter, 1)
            self._counts[counter] = n + 1  # only once the batch is written
            return False

    def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        if type(key) is not bytes or not rng.holds(key):
            check_counted_writes([(key, None, rng)])
        db = self.db
        with self._lock:
            if key not in db:
                return False
            counter = rng.counter
            n = self._counts.get(counter)
            if n is None:
                n = self._load(rng)
            with db.write_batch() as b:
                b.delete(key)
                b.incr(counter, -1)
            self._counts[counter] = n - 1
            return True

    def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        checked = check_counted_writes(writes)
        if not checked:
            return []
        db = self.db
        with self._lock:
            stored = db.get_many([w[0] for w in checked])
            present: dict[bytes, bool] = {}
            final: dict[bytes, bytes | None] = {}
            was_stored: dict[bytes, bool] = {}
            deltas: dict[CountedRange, int] = {}
            out: list[bool] = []
            for (key, payload, rng), old in zip(checked, stored, strict=True):
                was = present.get(key, old is not None)
                was_stored.setdefault(key, old is not None)
                out.append(was)
                if was != (payload is not None):
                    deltas[rng] = deltas.get(rng, 0) + (1 if payload is not None else -1)
                present[key] = payload is not None
                final[key] = payload
            counts: dict[bytes, tuple[int, int]] = {}  # counter -> (count after, delta)
            for rng, delta in deltas.items():
                if delta:
                    n = self._counts.get(rng.counter)
                    if n is None:
                        n = self._load(rng)
                    counts[rng.counter] = (n + delta, delta)
            with db.write_batch() as b:
                for key, payload in final.items():
                    if payload is not None:
                        b.put(key, payload)
                    elif was_stored[key]:
                        b.delete(key)
                for counter, (_n, delta) in counts.items():
                    b.incr(counter, delta)
            for counter, (n, _delta) in counts.items():
                self._counts[counter] = n
            return out

    def count_range(self, rng: CountedRange) -> int:
        n = self._counts.get(rng.counter)
        if n is not None:
            if self.db.closed:
                raise ClosedError(f"{self.db!r} is closed")
            return n
        with self._lock:
            n = self._counts.get(rng.counter)
            return self._load(rng) if n is None else n

    def recount_range(self, rng: CountedRange) -> int:
        db = self.db
        with self._lock:
            n = 0
            with db.keys(start=rng.lower, stop=rng.upper) as it:
                for _ in it:
                    n += 1
            db.put(rng.counter, _INT64.pack(n))
            self._counts[rng.counter] = n
            return n

    def clear_range(self, rng: CountedRange) -> None:
        db = self.db
        with self._lock:
            with db.write_batch() as b:
                if rng.upper is not None:
                    b.delete_range(rng.lower, rng.upper)
                else:
                    with db.keys(start=rng.lower) as it:
                        for k in it:
                            b.delete(k)
                b.put(rng.counter, _INT64.pack(0))
            self._counts[rng.counter] = 0

    def items(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        return self.db.items(start=lower, stop=upper)

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        return self.db.keys(start=lower, stop=upper)

    def __repr__(self) -> str:
        return f"<weir.stores.DBFace over {self.db!r}>"
