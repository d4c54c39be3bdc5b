"""weir.sabot.state: Flink-style keyed state outside a pipeline.

From Sabot's keyed-state tests and its Cython state primitives: each state
kind bound to a backend, a namespace and a current key, used synchronously
from async code on a started store; namespaces isolate. weir adds: values
persist across a reopen, threads never lose an update, keys of any
supported type, and clear errors for misuse.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import weir
from weir.sabot.state import (
    AggregatingState,
    KeyedStateBackend,
    ListState,
    MapState,
    NoCurrentKeyError,
    ReducingState,
    StateError,
    StateNotInitializedError,
    TonboStateBackend,
    ValueState,
)
from weir.sabot.stores import MemoryBackend, StoreBackendConfig, TonboBackend
from weir.table import SyncInLoopError


@pytest.fixture
async def tonbo(tmp_path: Path) -> Any:
    store = TonboBackend(StoreBackendConfig(path=tmp_path / "state"))
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
def keyed(tmp_path: Path) -> Any:
    """A keyed state backend over a weir.DB directory (sync everywhere)."""
    k = KeyedStateBackend(tmp_path / "db", namespace="job")
    yield k
    k.close()


async def test_all_kinds_on_a_started_store_from_its_loop(tonbo: Any) -> None:
    backend = TonboStateBackend()
    backend.initialize(tonbo)
    assert backend._initialized is True
    assert backend.get_current_namespace() == "default"
    backend.set_current_namespace("fraud")

    value = backend.get_value_state("last")
    value.set_current_key("w1", "user-1")
    assert value.get() is None
    value.update({"amount": 12.5, "seen": (1, 2)})
    assert value.get() == {"amount": 12.5, "seen": (1, 2)}
    assert value.value() == value.get() and value.exists

    lst = backend.get_list_state("txns")
    lst.set_current_key("w1", "user-1")
    assert lst.get() == []
    lst.add("t1")
    lst.add_all(["t2", 3])
    assert lst.get() == ["t1", "t2", 3] and list(lst) == ["t1", "t2", 3]
    lst.update(["only"])
    assert lst.get() == ["only"]

    mp = backend.get_map_state("by_merchant")
    mp.set_current_key("w1", "user-1")
    assert mp.is_empty() and mp.entries() == []
    mp.put("coffee", 5)
    mp.put_all({"gas": 40, 7: "int map key"})
    assert mp.get("coffee") == 5 and mp.get("nope", -1) == -1
    assert "gas" in mp and mp.contains(7)
    assert mp.entries() == [("coffee", 5), ("gas", 40), (7, "int map key")]
    assert mp.remove("gas") is True and mp.remove("gas") is False
    assert mp.keys() == ["coffee", 7] and mp.values() == [5, "int map key"]

    total = backend.get_reducing_state("total", lambda a, b: a + b)
    total.set_current_key("w1", "user-1")
    assert total.get() is None
    for x in (10, 20, 5):
        total.add(x)
    assert total.get() == 35

    def add(acc: tuple[int, int] | None, x: int) -> tuple[int, int]:
        return (x, 1) if acc is None else (acc[0] + x, acc[1] + 1)

    avg = backend.get_aggregating_state("avg", add, lambda acc: acc[0] / acc[1])
    avg.set_current_key("w1", "user-1")
    assert avg.get() is None
    for x in (10, 20, 30):
        avg.add(x)
    assert avg.get() == 20.0
    assert avg.get_accumulator() == (60, 3)  # a tuple stays a tuple

    stats = backend.get_backend_stats()
    assert stats["backend_type"] == "tonbo_arrow"
    assert stats["current_namespace"] == "fraud" and stats["entries"] >= 5
    for state in (value, lst, mp, total, avg):
        state.clear()
    assert value.get() is None and lst.get() == [] and mp.is_empty()
    assert total.get() is None and avg.get() is None


def test_namespaces_and_keys_isolate(keyed: KeyedStateBackend) -> None:
    v = keyed.get_value_state("v")
    other = keyed.get_map_state("v")  # same name, another kind: no collision
    v.set_current_key("w", "k")
    other.set_current_key("w", "k")
    v.update("value")
    other.put("m", 1)
    assert v.get() == "value" and other.get("m") == 1
    v.set_current_key("w", "k2")
    assert v.get() is None
    v.set_current_key("w2", "k")
    assert v.get() is None
    keyed.set_current_namespace("other-job")
    v.set_current_key("w", "k")
    assert v.get() is None
    v.update("theirs")
    keyed.set_current_namespace("job")
    assert v.get() == "value"
    assert keyed.clear_namespace() == 2
    assert v.get() is None
    keyed.set_current_namespace("other-job")
    assert v.get() == "theirs"


def test_backend_wide_current_key(keyed: KeyedStateBackend) -> None:
    a = keyed.get_value_state("a")
    b = keyed.get_reducing_state("b", max)
    keyed.set_current_key("window", ("user", 7))
    a.update(1)
    b.add(3)
    b.add(9)
    assert a.get_current_key() == ("window", ("user", 7))
    assert b.get() == 9
    a.set_current_key("window", 8)  # a handle's own key wins for that handle
    assert a.get() is None and b.get() == 9


def test_state_persists_across_reopen(tmp_path: Path) -> None:
    with KeyedStateBackend(tmp_path / "db", namespace="n") as k:
        counts = k.get_map_state("counts")
        counts.set_current_key("w", "u1")
        counts.put("clicks", 3)
        seen = k.get_list_state("seen")
        seen.set_current_key("w", "u1")
        seen.add(("page", 1))
    with KeyedStateBackend(tmp_path / "db", namespace="n") as k:
        counts = k.get_map_state("counts")
        counts.set_current_key("w", "u1")
        assert counts.get("clicks") == 3
        seen = k.get_list_state("seen")
        seen.set_current_key("w", "u1")
        assert seen.get() == [("page", 1)]


async def test_engine_store_restart_and_restore_are_followed(tonbo: Any, tmp_path: Path) -> None:
    k = KeyedStateBackend(tonbo)
    v = k.get_value_state("v")
    v.set_current_key("w", "k")
    v.update("before backup")
    await tonbo.backup(tmp_path / "bk")
    v.update("after backup")
    await tonbo.restore(tmp_path / "bk")  # a new DB underneath
    assert v.get() == "before backup"
    await tonbo.stop()
    with pytest.raises(weir.ClosedError, match="stopped"):
        v.get()
    await tonbo.start()
    assert v.get() == "before backup"


async def test_unstarted_store_runs_on_its_own_loop() -> None:
    store = MemoryBackend(StoreBackendConfig())
    k = KeyedStateBackend(store)
    v = k.get_value_state("v")
    v.set_current_key("w", 1)
    v.update((1, 2))
    assert v.get() == (1, 2)
    k.close()


async def test_started_non_engine_store_from_its_own_loop_is_refused() -> None:
    store = MemoryBackend(StoreBackendConfig())
    await store.start()
    k = KeyedStateBackend(store)
    v = k.get_value_state("v")
    v.set_current_key("w", "k")
    with pytest.raises(SyncInLoopError):
        v.update(1)
    assert k.get_backend_stats()["entries"] is None
    k.close()
    await store.stop()


async def test_unstarted_engine_store_is_refused(tmp_path: Path) -> None:
    store = TonboBackend(StoreBackendConfig(path=tmp_path / "t"))
    with pytest.raises(weir.ClosedError, match="start the store"):
        KeyedStateBackend(store)


def test_misuse_raises_clear_errors(keyed: KeyedStateBackend, tmp_path: Path) -> None:
    v = keyed.get_value_state("v")
    with pytest.raises(NoCurrentKeyError, match="set_current_key"):
        v.get()
    with pytest.raises(NoCurrentKeyError):
        keyed.get_list_state("l").add(1)
    for bad in (1.5, True, ["list"], object()):
        with pytest.raises(TypeError):
            v.set_current_key("w", bad)
    v.set_current_key("w", "k")
    m = keyed.get_map_state("m")
    m.set_current_key("w", "k")
    with pytest.raises(TypeError):
        m.put(2.5, "float map key")
    with pytest.raises(TypeError):
        keyed.get_list_state("l2").update("not a list")
    with pytest.raises(TypeError):
        keyed.set_current_namespace("")
    with pytest.raises(TypeError):
        ValueState("not a backend", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keyed.get_value_state("")
    with pytest.raises(TypeError):
        ReducingState(keyed, "r", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AggregatingState(keyed, "a", len, None)  # type: ignore[arg-type]
    with pytest.raises(StateError, match="already bound"):
        keyed.initialize(tmp_path / "other")
    with pytest.raises(TypeError, match="store must be"):
        KeyedStateBackend(42)
    unbound = KeyedStateBackend()
    with pytest.raises(StateNotInitializedError, match="initialize"):
        unbound.get_value_state("x").get()
    assert isinstance(StateNotInitializedError("x"), RuntimeError)
    keyed.close()
    with pytest.raises(weir.ClosedError):
        v.get()


def test_threads_never_lose_an_update(keyed: KeyedStateBackend) -> None:
    lst = keyed.get_list_state("events")
    total = keyed.get_reducing_state("total", lambda a, b: a + b)

    def work(n: int) -> None:
        mine_list = ListState(keyed, "events")
        mine_total = ReducingState(keyed, "total", lambda a, b: a + b)
        mine_list.set_current_key("w", "shared")
        mine_total.set_current_key("w", "shared")
        for i in range(100):
            mine_list.add((n, i))
            mine_total.add(1)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lst.set_current_key("w", "shared")
    total.set_current_key("w", "shared")
    assert total.get() == 400
    assert sorted(lst.get()) == sorted((n, i) for n in range(4) for i in range(100))


def test_map_state_entries_are_separate_rows(keyed: KeyedStateBackend) -> None:
    m = MapState(keyed, "m")
    m.set_current_key("w", "a")
    m.put("x", 1)
    m.set_current_key("w", "ab")  # a key that extends the other's bytes
    m.put("y", 2)
    assert m.entries() == [("y", 2)]
    m.set_current_key("w", "a")
    assert m.entries() == [("x", 1)]
    m.clear()
    m.set_current_key("w", "ab")
    assert m.entries() == [("y", 2)]


def test_default_value(keyed: KeyedStateBackend) -> None:
    v = keyed.get_value_state("v", default_value=0)
    v.set_current_key("w", "k")
    assert v.get() == 0 and not v.has_value()
    v.update(None)  # a stored None is a value
    assert v.has_value() and v.get() is None
