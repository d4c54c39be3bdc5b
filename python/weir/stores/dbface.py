"""DBFace: the :class:`~weir.stores.SyncFace` of a bare :class:`weir.DB`.

``weir.table.Table(name, db)`` reaches its DB through this face, so a
table has one code path whatever holds it. The face keeps the layout
tables over a weir.DB have always had: values are whatever payload the
caller stores (no expiry header), and a :class:`~weir.stores.CountedRange`'s
count is an ``int64_add`` merge value under its counter key (``db.incr``),
changed in the same engine write batch as the keys it counts.

A counted write checks whether its keys exist and writes in one step under
a lock that every face of the same DB in the process shares; weir lets one
process open a DB, so the counts stay exact under concurrent threads.
A counter is made the first time a face needs it, by counting its range
once. Point reads are the DB's own methods, bound at construction: a read
through the face costs what ``db.get`` costs.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence

from .. import DB
from .base import CountedRange, CountedWrite, SyncFace, check_counted_writes

__all__ = ["DBFace"]

# One lock per DB serialises the check-then-write of every counted write on it.
_DB_LOCKS: weakref.WeakKeyDictionary[DB, threading.RLock] = weakref.WeakKeyDictionary()
_DB_LOCKS_GUARD = threading.Lock()


def _db_lock(db: DB) -> threading.RLock:
    with _DB_LOCKS_GUARD:
        lock = _DB_LOCKS.get(db)
        if lock is None:
            lock = _DB_LOCKS[db] = threading.RLock()
        return lock


class DBFace(SyncFace):
    """The synchronous byte-level face of an open :class:`weir.DB` (see the
    module docs). The DB stays the caller's: the face never closes it, and
    a closed DB raises :class:`weir.ClosedError` from every method."""

    def __init__(self, db: DB) -> None:
        if not isinstance(db, DB):
            raise TypeError(f"DBFace needs a weir.DB, not {type(db).__name__}")
        self.db = db
        self._lock = _db_lock(db)
        # Counters known to exist (made or checked by this face).
        self._counted: set[bytes] = set()
        # The DB's own methods: no Python frame between a caller and the engine.
        self.read = db.get  # type: ignore[method-assign]
        self.contains = db.__contains__  # type: ignore[method-assign,assignment]

    def read(self, key: bytes) -> bytes | None:
        return self.db.get(key)

    def contains(self, key: bytes) -> bool:
        return key in self.db

    def _ensure_counter(self, rng: CountedRange) -> None:
        """Make ``rng``'s counter if it does not exist (caller holds the lock)."""
        if rng.counter in self._counted:
            return
        db = self.db
        if db.get(rng.counter) is None:
            n = 0
            with db.keys(start=rng.lower, stop=rng.upper) as it:
                for _ in it:
                    n += 1
            db.incr(rng.counter, n)
        self._counted.add(rng.counter)

    def put_counted(self, key: bytes, payload: bytes, rng: CountedRange) -> bool:
        if type(key) is not bytes or type(payload) is not bytes or not rng.holds(key):
            check_counted_writes([(key, payload, rng)])  # raises the precise error
        db = self.db
        with self._lock:
            if key in db:
                db.put(key, payload)
                return True
            self._ensure_counter(rng)
            with db.write_batch() as b:
                b.put(key, payload)
                b.incr(rng.counter, 1)
            return False

    def delete_counted(self, key: bytes, rng: CountedRange) -> bool:
        if type(key) is not bytes or not rng.holds(key):
            check_counted_writes([(key, None, rng)])
        db = self.db
        with self._lock:
            if key not in db:
                return False
            self._ensure_counter(rng)
            with db.write_batch() as b:
                b.delete(key)
                b.incr(rng.counter, -1)
            return True

    def write_counted(self, writes: Sequence[CountedWrite]) -> list[bool]:
        checked = check_counted_writes(writes)
        if not checked:
            return []
        db = self.db
        with self._lock:
            stored = db.get_many([w[0] for w in checked])
            present: dict[bytes, bool] = {}
            final: dict[bytes, tuple[bytes | None, CountedRange]] = {}
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
                final[key] = (payload, rng)
            for rng, delta in deltas.items():
                if delta:
                    self._ensure_counter(rng)
            with db.write_batch() as b:
                for key, (payload, _rng) in final.items():
                    if payload is not None:
                        b.put(key, payload)
                    elif was_stored[key]:
                        b.delete(key)
                for rng, delta in deltas.items():
                    if delta:
                        b.incr(rng.counter, delta)
            return out

    def count_range(self, rng: CountedRange) -> int:
        n = self.db.get_int(rng.counter, None)
        if n is not None:
            return n
        with self._lock:
            self._counted.discard(rng.counter)
            self._ensure_counter(rng)
            return self.db.get_int(rng.counter, 0)

    def recount_range(self, rng: CountedRange) -> int:
        db = self.db
        with self._lock:
            n = 0
            with db.keys(start=rng.lower, stop=rng.upper) as it:
                for _ in it:
                    n += 1
            with db.write_batch() as b:
                b.delete(rng.counter)
                b.incr(rng.counter, n)
            self._counted.add(rng.counter)
            return n

    def clear_range(self, rng: CountedRange) -> None:
        db = self.db
        with self._lock, db.write_batch() as b:
            if rng.upper is not None:
                b.delete_range(rng.lower, rng.upper)
            else:
                with db.keys(start=rng.lower) as it:
                    for k in it:
                        b.delete(k)
            b.delete(rng.counter)
            b.incr(rng.counter, 0)
            self._counted.add(rng.counter)

    def items(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        return self.db.items(start=lower, stop=upper)

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        return self.db.keys(start=lower, stop=upper)

    def __repr__(self) -> str:
        return f"<weir.stores.DBFace over {self.db!r}>"
