"""Keyed state handles and the operator-side state cache.

Every keyed state handle (:class:`ValueState`, :class:`MapState`,
:class:`CounterState`) keeps its values in a plain dict in the operator
(the *cache*); reading or writing state for the current key is a dict
access. Changed keys are remembered in a *dirty* set and written to the
store only at a checkpoint, in the one atomic write that also records the
source offsets and sink positions (see :mod:`weir.stream._checkpoint`).

A checkpoint must see every value as it was at the barrier, while the
pipeline keeps running and user code keeps mutating state objects in place.
So at the barrier the dirty set becomes the *frozen* set; the values of
frozen keys are encoded a slice at a time between micro-batches, and a
frozen key the operator touches before its slice comes is encoded first
(copy-on-write by serialisation). The pause a checkpoint costs is therefore
bounded by the slice length, not by the number of dirty keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")

#: Marks, in a cache, a key that the store does not hold.
ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "ABSENT"})()

Encoder = Callable[[str, Any], bytes]


class StateHandle:
    """Shared machinery of the keyed state handles (not used directly).

    The runtime binds a handle to an operator and a store key prefix, then
    sets :attr:`key` before each call of the operator's function; the
    handle's methods act on the state of that key.
    """

    __slots__ = (
        "_cache",
        "_deletes",
        "_dirty",
        "_encode",
        "_encode_key",
        "_frozen",
        "_puts",
        "key",
        "name",
        "prefix",
    )

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"state name must be a non-empty str without ':', not {name!r}")
        self.name = name
        #: the current key, set by the runtime before each call
        self.key: str = ""
        #: the store key of ``k`` is ``prefix + k``; set when bound
        self.prefix = ""
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()
        #: keys whose barrier-time value is still to be encoded (None: no checkpoint running)
        self._frozen: set[str] | None = None
        #: the running checkpoint's encoded writes
        self._puts: list[tuple[bytes, bytes]] = []
        self._deletes: list[bytes] = []
        self._encode: Encoder | None = None
        self._encode_key: Callable[[str], bytes] | None = None

    # ---- runtime side ---------------------------------------------------------------

    def bind(self, prefix: str, encode_key: Callable[[str], bytes], encode: Encoder) -> None:
        """Attach the handle to its place in the store (done by the runtime):
        ``encode_key(store_key)`` and ``encode(store_key, value)`` give the
        bytes the store holds."""
        self.prefix = prefix
        self._encode_key = encode_key
        self._encode = encode

    def missing(self, keys: list[str]) -> list[str]:
        """Those of ``keys`` not in the cache (to fetch before a micro-batch)."""
        cache = self._cache
        return list({k: None for k in keys if k not in cache})

    def fill(self, keys: list[str], values: list[Any]) -> None:
        """Put values fetched from the store into the cache."""
        cache = self._cache
        for k, v in zip(keys, values, strict=True):
            cache[k] = ABSENT if v is None else v

    def _freeze_key(self, k: str) -> None:
        # Called before the first touch of a frozen key: keep its barrier value.
        frozen = self._frozen
        assert frozen is not None and self._encode is not None and self._encode_key is not None
        frozen.discard(k)
        if not frozen:
            self._set_cow(False)
        v = self._cache.get(k, ABSENT)
        sk = self.prefix + k
        if v is ABSENT:
            self._deletes.append(self._encode_key(sk))
        else:
            self._puts.append((self._encode_key(sk), self._encode(sk, v)))

    #: the subclass whose methods copy frozen values before touching them,
    #: swapped in while a checkpoint is being encoded (so that outside
    #: checkpoints the per-event methods carry no check at all)
    _COW: type[StateHandle] | None = None
    _FAST: type[StateHandle] | None = None

    def _set_cow(self, on: bool) -> None:
        cls = self._COW if on else self._FAST
        if cls is not None and self.__class__ is not cls:
            self.__class__ = cls

    def begin_checkpoint(self) -> None:
        """The barrier: what is dirty now is what this checkpoint writes."""
        self._frozen = self._dirty
        self._dirty = set()
        self._puts = []
        self._deletes = []
        if self._frozen:
            self._set_cow(True)

    def encode_some(self, budget: int) -> int:
        """Encode up to ``budget`` frozen keys; returns how many are left."""
        frozen = self._frozen
        if not frozen:
            return 0
        cache = self._cache
        puts = self._puts
        enc = self._encode
        enc_key = self._encode_key
        prefix = self.prefix
        assert enc is not None and enc_key is not None
        pop = frozen.pop
        for _ in range(min(budget, len(frozen))):
            k = pop()
            v = cache.get(k, ABSENT)
            sk = prefix + k
            if v is ABSENT:
                self._deletes.append(enc_key(sk))
            else:
                puts.append((enc_key(sk), enc(sk, v)))
        if not frozen:
            self._set_cow(False)
        return len(frozen)

    def take_snapshot(self) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """The encoded puts and deletes of the finished barrier (once
        encode_some returned 0)."""
        out = self._puts, self._deletes
        self._puts = []
        self._deletes = []
        self._frozen = None
        self._set_cow(False)
        return out

    def preload(self, key: str, value: Any) -> None:
        """Put a committed value in the cache without marking it changed
        (a restore that read it from the store already)."""
        self._cache[key] = value

    def forget_absent(self) -> None:
        """Drop the cache's clean known-absent entries (after a commit)."""
        cache = self._cache
        dirty = self._dirty
        for k in [k for k, v in cache.items() if v is ABSENT and k not in dirty]:
            del cache[k]

    def evict_clean(self, keep: int) -> None:
        """Drop clean cached keys until at most ``keep`` remain."""
        cache = self._cache
        excess = len(cache) - keep
        if excess <= 0:
            return
        dirty = self._dirty
        frozen = self._frozen or ()
        for k in [k for k in cache if k not in dirty and k not in frozen][:excess]:
            del cache[k]

    @property
    def cached_keys(self) -> int:
        """How many keys the cache holds (present or known absent)."""
        return len(self._cache)

    @property
    def dirty_keys(self) -> int:
        """How many keys changed since the last checkpoint barrier."""
        return len(self._dirty)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} cached={len(self._cache)}>"


class ValueState(StateHandle, Generic[T]):
    """One value per key.

    ``value()`` returns the current key's value (``default`` if it has none),
    ``update(v)`` replaces it, ``clear()`` removes it. Values must be
    encodable by the store's value codec (the pipeline's own store uses
    pickle). Mutating the object ``value()`` returned is allowed; call
    ``update`` afterwards so the change is written at the next checkpoint.
    """

    __slots__ = ("default",)

    def __init__(self, name: str, default: T | None = None) -> None:
        super().__init__(name)
        self.default = default

    def value(self) -> T | None:
        """The current key's value, or ``default``."""
        v = self._cache.get(self.key, ABSENT)
        return self.default if v is ABSENT else v

    def update(self, value: T) -> None:
        """Set the current key's value."""
        k = self.key
        self._cache[k] = value
        self._dirty.add(k)

    def clear(self) -> None:
        """Remove the current key's value."""
        k = self.key
        self._cache[k] = ABSENT
        self._dirty.add(k)


class _CowValueState(ValueState[T]):
    """ValueState while a checkpoint is encoded: copy before touching."""

    __slots__ = ()

    def value(self) -> T | None:
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        return ValueState.value(self)

    def update(self, value: T) -> None:
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        ValueState.update(self, value)

    def clear(self) -> None:
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        ValueState.clear(self)


ValueState._COW = _CowValueState
ValueState._FAST = ValueState


class MapState(StateHandle, Generic[V]):
    """A dict per key (stored as one value per key: keep the maps small).

    ``get(field)``, ``put(field, v)``, ``remove(field)``, ``items()``,
    ``contains(field)`` and ``clear()`` act on the current key's map.
    """

    __slots__ = ()

    def _map(self, create: bool) -> dict[Any, V] | None:
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        m = self._cache.get(k, ABSENT)
        if m is ABSENT:
            if not create:
                return None
            m = {}
            self._cache[k] = m
        if create:
            self._dirty.add(k)
        return m  # type: ignore[no-any-return]

    def get(self, field: Any, default: V | None = None) -> V | None:
        """The current key's value for ``field``."""
        m = self._map(False)
        return default if m is None else m.get(field, default)

    def contains(self, field: Any) -> bool:
        """True if the current key's map has ``field``."""
        m = self._map(False)
        return m is not None and field in m

    def put(self, field: Any, value: V) -> None:
        """Set ``field`` in the current key's map."""
        m = self._map(True)
        assert m is not None
        m[field] = value

    def remove(self, field: Any) -> bool:
        """Remove ``field``; True if it was there."""
        m = self._map(False)
        if m is None or field not in m:
            return False
        m = self._map(True)
        assert m is not None
        del m[field]
        if not m:
            self.clear()
        return True

    def items(self) -> list[tuple[Any, V]]:
        """The current key's (field, value) pairs."""
        m = self._map(False)
        return [] if m is None else list(m.items())

    def clear(self) -> None:
        """Remove the current key's whole map."""
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        self._cache[k] = ABSENT
        self._dirty.add(k)


class CounterState(StateHandle):
    """An integer per key, changed by increments: ``add`` folds into the
    cached count, like a merge operator folds operands, and only the total
    is written at a checkpoint.

    ``add(n)`` adds to the current key's count, ``value()`` reads it (0 when
    absent), ``clear()`` resets it.
    """

    __slots__ = ()

    def add(self, n: int = 1) -> int:
        """Add ``n`` to the current key's count; returns the new count."""
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        cache = self._cache
        v = cache.get(k, ABSENT)
        total: int = n if v is ABSENT else v + n
        cache[k] = total
        self._dirty.add(k)
        return total

    def value(self) -> int:
        """The current key's count (0 if it has none)."""
        v = self._cache.get(self.key, ABSENT)
        return 0 if v is ABSENT else int(v)

    def clear(self) -> None:
        """Reset the current key's count (removes it from the store)."""
        k = self.key
        if self._frozen and k in self._frozen:
            self._freeze_key(k)
        self._cache[k] = ABSENT
        self._dirty.add(k)
