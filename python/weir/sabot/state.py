"""Flink-style keyed state, outside a pipeline, bound to a store.

A :class:`KeyedStateBackend` is bound to a store, a namespace (which
operator or job the state belongs to) and, through each state handle, a
current key; the handles (:class:`ValueState`, :class:`ListState`,
:class:`MapState`, :class:`ReducingState`, :class:`AggregatingState`) read
and write the state of that key, synchronously, as in Flink and in Sabot's
Cython state primitives::

    backend = KeyedStateBackend(TonboBackend(StoreBackendConfig(path="state")))
    ...                                    # (the store started by its owner)
    backend.set_current_namespace("fraud-detector")
    totals = backend.get_reducing_state("total", lambda a, b: a + b)
    totals.set_current_key("window-1", "user-7")
    totals.add(120.0)
    totals.get()                           # 120.0

Where the state lives: every handle of a backend shares one
:class:`weir.table.Table` (named ``__weir_sabot_keyed_state__``) in the
store, keyed by the tuple (backend namespace, state name, state kind, key
namespace, key[, map key]) in weir's order-preserving key encoding, so a
map's entries are one prefix scan and states never collide. Keys and map
keys may be ``str``, bytes, ``int``, ``None`` or tuples of these. Values
are pickled on a weir engine store, and stored with the backend's value
codec otherwise (weir.sabot's backends pickle too), so tuples stay tuples.

The store may be:

- a started weir-engine backend (weir.sabot's ``TonboBackend``,
  ``MarbleDBStoreBackend``, ``WeirBackend``, or :class:`weir.stores.WeirBackend`):
  the state is read and written in its :class:`weir.DB` directly, so the
  handles work anywhere, on the store's event loop included (this is how
  Sabot code calls them); every write is durable when it returns;
- a :class:`weir.DB` or a directory path (opened, and closed by :meth:`close`);
- any other store backend, through :class:`weir.table.Table`'s sync face:
  an unstarted one is started on a loop of the table's own and works from
  anywhere; a started one works from threads other than its loop's, and
  on its loop raises :class:`weir.table.SyncInLoopError` (blocking there
  would deadlock).

Read-modify-write operations (``ListState.add``, ``ReducingState.add``,
``AggregatingState.add``) hold a lock of the backend, so threads sharing
it never lose an update.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from .. import DB, ClosedError
from ..codecs import KeyCodec
from ..stores import StoreBackend, StoreBackendConfig
from ..table import SyncInLoopError, Table, batch

__all__ = [
    "AggregatingState",
    "KeyedStateBackend",
    "ListState",
    "MapState",
    "NoCurrentKeyError",
    "ReducingState",
    "StateError",
    "StateNotInitializedError",
    "TonboStateBackend",
    "ValueState",
]

T = TypeVar("T")
ACC = TypeVar("ACC")
OUT = TypeVar("OUT")

#: The table every keyed state of a store lives in.
TABLE_NAME = "__weir_sabot_keyed_state__"
_KEY_TYPES = (str, bytes, int, tuple, type(None))
_MISSING: Any = object()


class StateError(RuntimeError):
    """Base class of keyed state's usage errors."""


class StateNotInitializedError(StateError):
    """The backend has no store yet: call ``initialize(store)`` first."""


class NoCurrentKeyError(StateError):
    """A state handle was used before ``set_current_key(namespace, key)``."""


def _check_key(what: str, key: Any) -> Any:
    if isinstance(key, bool) or not isinstance(key, _KEY_TYPES):
        raise TypeError(
            f"{what} must be a str, bytes, int, None or a tuple of these, "
            f"not {type(key).__name__} ({key!r:.60})"
        )
    return key


class KeyedStateBackend:
    """Keyed state of one store (see the module docs).

    ``store``: where the state lives (or None, then :meth:`initialize`
    later). ``namespace``: the backend namespace (default ``"default"``).
    """

    backend_type = "weir"

    def __init__(self, store: Any = None, *, namespace: str | None = None) -> None:
        self._store: Any = None
        self._engine: Any = None
        self._table_obj: Table | None = None
        self._owns_table = False
        self._namespace: str | None = None
        self._handles: list[_State] = []
        self._rmw = threading.RLock()
        self._initialized = False
        self._closed = False
        if namespace is not None:
            self.set_current_namespace(namespace)
        if store is not None:
            self.initialize(store)

    # ---- binding to a store ----------------------------------------------------------

    def initialize(self, store: Any) -> None:
        """Bind the backend to ``store`` (see the module docs for the kinds)."""
        if self._initialized:
            raise StateError("this keyed state backend is already bound to a store")
        if isinstance(getattr(type(store), "db", None), property):
            # A weir-engine backend: the state goes to its weir.DB directly.
            if not isinstance(store.db, DB):
                raise ClosedError("start the store before binding keyed state to it")
            self._engine = store
        elif isinstance(store, DB | str | os.PathLike):
            self._table_obj = Table(TABLE_NAME, store, key_codec=KeyCodec(), value_codec="pickle")
        elif isinstance(store, StoreBackend | StoreBackendConfig):
            self._table_obj = Table(TABLE_NAME, store, key_codec=KeyCodec())
        else:
            raise TypeError(
                "store must be a store backend, a StoreBackendConfig, a weir.DB or a path, "
                f"not {type(store).__name__}"
            )
        self._store = store
        self._owns_table = True
        self._initialized = True

    def _table(self) -> Table:
        if self._closed:
            raise ClosedError("this keyed state backend is closed")
        if not self._initialized:
            raise StateNotInitializedError(
                "the keyed state backend is not bound to a store: call initialize(store)"
            )
        if self._engine is not None:
            db = self._engine.db
            if db is None:
                raise ClosedError("the store is stopped; start it before using keyed state")
            table = self._table_obj
            if table is None or table.store is not db:
                # First use, or the store was restarted or restored (a new DB).
                if table is not None:
                    table.close()
                table = self._table_obj = Table(
                    TABLE_NAME, db, key_codec=KeyCodec(), value_codec="pickle"
                )
            return table
        assert self._table_obj is not None
        return self._table_obj

    # ---- namespace and key -------------------------------------------------------------

    def set_current_namespace(self, namespace: str) -> None:
        """The backend namespace the handles read and write from now on."""
        if not isinstance(namespace, str) or not namespace:
            raise TypeError(f"a namespace must be a non-empty str, not {namespace!r}")
        self._namespace = namespace

    def get_current_namespace(self) -> str:
        return self._namespace or "default"

    def set_current_key(self, namespace: Any, key: Any) -> None:
        """Set the current key of every handle this backend made (Flink's
        ``setCurrentKey``; a handle's own ``set_current_key`` sets one)."""
        _check_key("a key namespace", namespace)
        _check_key("a key", key)
        for handle in self._handles:
            handle.set_current_key(namespace, key)

    # ---- handles ------------------------------------------------------------------------

    def _register(self, handle: _State) -> None:
        self._handles.append(handle)

    def get_value_state(self, state_name: str, default_value: Any = None) -> ValueState[Any]:
        return ValueState(self, state_name, default_value)

    def get_list_state(self, state_name: str) -> ListState[Any]:
        return ListState(self, state_name)

    def get_map_state(self, state_name: str) -> MapState[Any]:
        return MapState(self, state_name)

    def get_reducing_state(
        self, state_name: str, reduce_function: Callable[[Any, Any], Any]
    ) -> ReducingState[Any]:
        return ReducingState(self, state_name, reduce_function)

    def get_aggregating_state(
        self,
        state_name: str,
        add_function: Callable[[Any, Any], Any],
        get_result_function: Callable[[Any], Any],
    ) -> AggregatingState[Any, Any, Any]:
        return AggregatingState(self, state_name, add_function, get_result_function)

    # ---- whole-backend operations --------------------------------------------------------

    def clear_namespace(self) -> int:
        """Delete every state of the current backend namespace (one atomic
        write); returns how many entries were removed."""
        table = self._table()
        prefix = KeyCodec().prefix((self.get_current_namespace(),))
        keys = list(table.keys(prefix=prefix))
        if keys:
            with batch(table) as b:
                for k in keys:
                    b.delete(table, k)
        return len(keys)

    def get_backend_stats(self) -> dict[str, Any]:
        """``backend_type``, ``initialized``, ``current_namespace``,
        ``arrow_integration`` (False: state values are Python objects),
        ``entries`` (state entries of every namespace; None when counting
        would block the store's own event loop) and ``store``."""
        entries: int | None = None
        if self._initialized and not self._closed:
            try:
                entries = len(self._table())
            except SyncInLoopError:
                entries = None  # a started backend, asked from its own loop
        return {
            "backend_type": self.backend_type,
            "initialized": self._initialized,
            "current_namespace": self.get_current_namespace(),
            "arrow_integration": False,
            "entries": entries,
            "store": type(self._store).__name__ if self._store is not None else None,
        }

    def close(self) -> None:
        """Detach from the store (a DB opened from a path is closed; a store
        backend given started is left running). Idempotent."""
        self._closed = True
        if self._table_obj is not None and self._owns_table:
            self._table_obj.close()

    def __enter__(self) -> KeyedStateBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} namespace={self.get_current_namespace()!r} "
            f"store={type(self._store).__name__}>"
        )


class TonboStateBackend(KeyedStateBackend):
    """Sabot's name for the keyed state backend of a Tonbo store
    (``backend_type`` ``"tonbo_arrow"``, as Sabot reports). ``_arrow_store``
    is None: the Arrow scans of state that Sabot's offers are not here."""

    backend_type = "tonbo_arrow"
    _arrow_store: Any = None


class _State:
    """What the handles share: the backend, the name, the current key."""

    kind = "?"

    def __init__(self, backend: KeyedStateBackend, state_name: str) -> None:
        if not isinstance(backend, KeyedStateBackend):
            raise TypeError(f"backend must be a KeyedStateBackend, not {type(backend).__name__}")
        if not isinstance(state_name, str) or not state_name:
            raise TypeError(f"a state name must be a non-empty str, not {state_name!r}")
        self._backend = backend
        self._state_name = state_name
        self._current: tuple[Any, Any] | None = None
        backend._register(self)

    @property
    def name(self) -> str:
        return self._state_name

    def get_state_name(self) -> str:
        return self._state_name

    def set_current_key(self, namespace: Any, key: Any) -> None:
        """The (key namespace, key) the handle reads and writes from now on
        (Flink's namespace is the window; any key type works)."""
        self._current = (_check_key("a key namespace", namespace), _check_key("a key", key))

    def get_current_key(self) -> tuple[Any, Any] | None:
        return self._current

    def _base(self) -> tuple[Any, ...]:
        if self._current is None:
            raise NoCurrentKeyError(
                f"{type(self).__name__} {self._state_name!r}: no current key; "
                "call set_current_key(namespace, key) first"
            )
        return (
            self._backend.get_current_namespace(),
            self._state_name,
            self.kind,
            *self._current,
        )

    def _load(self, default: Any = None) -> Any:
        return self._backend._table().get(self._base(), default)

    def _store(self, value: Any) -> None:
        self._backend._table()[self._base()] = value

    def _drop(self) -> bool:
        return self._backend._table().pop(self._base(), _MISSING) is not _MISSING

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._state_name!r}, current_key={self._current!r})"


class ValueState(_State, Generic[T]):
    """One value per key: ``update``, ``get`` (``value`` in Flink), ``clear``."""

    kind = "value"

    def __init__(
        self, backend: KeyedStateBackend, state_name: str, default_value: T | None = None
    ) -> None:
        super().__init__(backend, state_name)
        self.default_value = default_value

    def get(self) -> T | None:
        """The value of the current key, or ``default_value`` if it has none."""
        return self._load(self.default_value)  # type: ignore[no-any-return]

    def value(self) -> T | None:
        return self.get()

    def update(self, value: T) -> None:
        self._store(value)

    def clear(self) -> None:
        self._drop()

    def has_value(self) -> bool:
        return self._load(_MISSING) is not _MISSING

    @property
    def exists(self) -> bool:
        return self.has_value()


class ListState(_State, Generic[T]):
    """A list per key: ``add``, ``add_all``, ``get`` (``[]`` when empty),
    ``update`` (replace), ``clear``."""

    kind = "list"

    def get(self) -> list[T]:
        return list(self._load([]))

    def __iter__(self) -> Iterator[T]:
        return iter(self.get())

    def add(self, value: T) -> None:
        with self._backend._rmw:
            current = self._load([])
            current.append(value)
            self._store(current)

    def add_all(self, values: Iterable[T]) -> None:
        values = list(values)
        with self._backend._rmw:
            current = self._load([])
            current.extend(values)
            self._store(current)

    def update(self, values: Iterable[T]) -> None:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(f"update() takes a list of values, not {type(values).__name__}")
        self._store(list(values))

    def clear(self) -> None:
        self._drop()


class MapState(_State, Generic[T]):
    """A map per key: ``put``, ``put_all``, ``get``, ``contains``, ``remove``,
    ``keys``, ``values``, ``entries`` (``items``), ``is_empty``, ``clear``.
    Each entry is its own row, so ``get``/``put`` touch one entry only."""

    kind = "map"

    def _entry(self, map_key: Any) -> tuple[Any, ...]:
        return (*self._base(), _check_key("a map key", map_key))

    def get(self, map_key: Any, default: T | None = None) -> T | None:
        return self._backend._table().get(self._entry(map_key), default)  # type: ignore[no-any-return]

    def contains(self, map_key: Any) -> bool:
        return self._entry(map_key) in self._backend._table()

    def __contains__(self, map_key: object) -> bool:
        return self.contains(map_key)

    def put(self, map_key: Any, value: T) -> None:
        self._backend._table()[self._entry(map_key)] = value

    def put_all(self, entries: Mapping[Any, T]) -> None:
        """Put every entry in one atomic write."""
        table = self._backend._table()
        rows = {self._entry(k): v for k, v in entries.items()}
        with batch(table) as b:
            for k, v in rows.items():
                b.set(table, k, v)

    def remove(self, map_key: Any) -> bool:
        """Remove an entry; True if it was there."""
        return self._backend._table().pop(self._entry(map_key), _MISSING) is not _MISSING

    def entries(self) -> list[tuple[Any, T]]:
        """Every ``(map key, value)`` of the current key, in map-key order."""
        table = self._backend._table()
        prefix = KeyCodec().prefix(self._base())
        return [(k[-1], v) for k, v in table.items(prefix=prefix)]

    def items(self) -> list[tuple[Any, T]]:
        return self.entries()

    def keys(self) -> list[Any]:
        return [k for k, _ in self.entries()]

    def values(self) -> list[T]:
        return [v for _, v in self.entries()]

    def is_empty(self) -> bool:
        table = self._backend._table()
        prefix = KeyCodec().prefix(self._base())
        return next(iter(table.keys(prefix=prefix)), _MISSING) is _MISSING

    def clear(self) -> None:
        """Remove every entry of the current key (one atomic write)."""
        table = self._backend._table()
        prefix = KeyCodec().prefix(self._base())
        keys = list(table.keys(prefix=prefix))
        if keys:
            with batch(table) as b:
                for k in keys:
                    b.delete(table, k)


class ReducingState(_State, Generic[T]):
    """One value per key, folded by ``reduce_function(current, new)`` on each
    ``add``; ``get`` is None until the first ``add``."""

    kind = "reducing"

    def __init__(
        self,
        backend: KeyedStateBackend,
        state_name: str,
        reduce_function: Callable[[T, T], T],
    ) -> None:
        if not callable(reduce_function):
            raise TypeError("reduce_function must be callable")
        super().__init__(backend, state_name)
        self._reduce = reduce_function

    def get(self) -> T | None:
        return self._load()  # type: ignore[no-any-return]

    def add(self, value: T) -> None:
        with self._backend._rmw:
            current = self._load(_MISSING)
            self._store(value if current is _MISSING else self._reduce(current, value))

    def clear(self) -> None:
        self._drop()


class AggregatingState(_State, Generic[T, ACC, OUT]):
    """An accumulator per key: ``add(x)`` stores ``add_function(acc, x)``
    (``acc`` is None before the first add); ``get`` is
    ``get_result_function(acc)``, or None while there is no accumulator."""

    kind = "aggregating"

    def __init__(
        self,
        backend: KeyedStateBackend,
        state_name: str,
        add_function: Callable[[ACC | None, T], ACC],
        get_result_function: Callable[[ACC], OUT],
    ) -> None:
        if not callable(add_function) or not callable(get_result_function):
            raise TypeError("add_function and get_result_function must be callable")
        super().__init__(backend, state_name)
        self._add = add_function
        self._result = get_result_function

    def get(self) -> OUT | None:
        acc = self._load(_MISSING)
        return None if acc is _MISSING else self._result(acc)

    def get_accumulator(self) -> ACC | None:
        return self._load()  # type: ignore[no-any-return]

    def add(self, value: T) -> None:
        with self._backend._rmw:
            acc = self._load(_MISSING)
            self._store(self._add(None if acc is _MISSING else acc, value))

    def clear(self) -> None:
        self._drop()
