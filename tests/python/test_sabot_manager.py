"""weir.sabot.stores.StateTable and StateStoreManager.

From Sabot's state-management tests and code: tables with awaitable
get/set, increment, keys by prefix, scans, metrics and health checks; a
manager that makes tables under three isolation levels, lists and drops
them, reports metrics and health. weir adds: tables sharing a backend are
isolated, a manager's checkpoints cover all its backends at one moment,
state of a persistent backend is back after a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import weir
from weir.sabot.checkpoint import CheckpointConfig
from weir.sabot.stores import (
    BackendType,
    MemoryBackend,
    StateIsolation,
    StateMetrics,
    StateStoreConfig,
    StateStoreManager,
    StateTable,
    StoreBackendConfig,
    TonboBackend,
)


def manager_config(
    tmp_path: Path,
    backend_type: BackendType = BackendType.MEMORY,
    isolation: StateIsolation = StateIsolation.SHARED,
    checkpoints: bool = False,
) -> StateStoreConfig:
    config = StateStoreConfig(
        backend_type=backend_type,
        isolation_level=isolation,
        checkpoint_config=CheckpointConfig(
            enabled=checkpoints, checkpoint_dir=tmp_path / "checkpoints", interval_seconds=3600
        ),
    )
    for kind in ("weir", "tonbo", "marbledb", "rocksdb", "arrow_files"):
        getattr(config, f"{kind}_config").path = tmp_path / kind
    return config


@pytest.fixture
async def backend() -> Any:
    b = MemoryBackend(StoreBackendConfig())
    await b.start()
    yield b
    await b.stop()


# ---- StateTable ---------------------------------------------------------------------------


async def test_table_operations_and_metrics(backend: Any) -> None:
    t = StateTable("users", backend, enable_metrics=True)
    await t.set("user_123", {"name": "Alice", "age": 30})
    assert await t.get("user_123") == {"name": "Alice", "age": 30}
    assert await t.get("missing") is None
    assert await t.exists("user_123")
    for i in range(20):
        await t.set(f"batch_key_{i:02d}", f"v{i}")
    await t.set(5, "int key")
    assert len(await t.keys("batch_key")) == 20
    assert await t.size() == 22
    assert sorted(await t.values(), key=str)[0] == "int key"
    assert dict(await t.items("batch_key_0"))["batch_key_03"] == "v3"
    assert await t.delete("user_123") is True
    assert await t.delete("user_123") is False
    metrics = t.get_metrics()
    assert isinstance(metrics, StateMetrics)
    assert metrics.operations_by_type["set"] == 22
    assert metrics.operations_total > 25
    assert metrics.errors_total == 0
    assert StateTable("quiet", backend, enable_metrics=False).get_metrics() is None


async def test_table_scan_ranges(backend: Any) -> None:
    t = StateTable("t", backend)
    for i in range(10):
        await t.set(i, i * i)
        await t.set(f"k{i}", i)
    found = await t.scan(start_key=3, end_key=6)
    assert list(found) == [(3, 9), (4, 16), (5, 25)]
    limited = await t.scan(limit=4)
    assert len(limited) == 4 and next(limited) == ("k0", 0)
    assert [k for k, _ in await t.scan(prefix="k", start_key="k7")] == ["k7", "k8", "k9"]
    assert list(await t.scan(start_key=8, end_key=2)) == []


async def test_tables_sharing_a_backend_are_isolated(backend: Any) -> None:
    a = StateTable("a", backend)
    ab = StateTable("ab", backend)
    await a.set("k", "in a")
    await ab.set("k", "in ab")
    assert await a.get("k") == "in a"
    assert await ab.get("k") == "in ab"
    await a.clear()
    assert await a.size() == 0
    assert await ab.get("k") == "in ab"


async def test_increment(backend: Any) -> None:
    t = StateTable("counters", backend)
    assert await t.increment("fresh") == 1
    await t.set("counter", 0)
    assert await t.increment("counter", 5) == 5
    assert await t.increment("counter", 2.5) == 7.5
    await t.set("text", "abc")
    with pytest.raises(TypeError, match="holds a str"):
        await t.increment("text")
    with pytest.raises(TypeError, match="amount"):
        await t.increment("counter", "1")  # type: ignore[arg-type]
    metrics = t.get_metrics()
    assert metrics is not None and metrics.errors_by_type == {"increment": 1}


async def test_concurrent_increments_are_not_lost(backend: Any) -> None:
    t = StateTable("hits", backend)

    async def hammer() -> None:
        for _ in range(50):
            await t.increment("n")

    await asyncio.gather(*(hammer() for _ in range(10)))
    assert await t.get("n") == 500


async def test_health_check_and_errors(backend: Any, tmp_path: Path) -> None:
    t = StateTable("h", backend)
    health = await t.health_check()
    assert health["status"] == "healthy" and health["size"] == 0
    stopped = TonboBackend(StoreBackendConfig(path=tmp_path / "t"))
    await stopped.start()
    bad = StateTable("h", stopped)
    await bad.set("k", 1)
    await stopped.stop()
    health = await bad.health_check()
    assert health["status"] == "error" and "ClosedError" in health["message"]
    with pytest.raises(TypeError):
        StateTable("", backend)
    with pytest.raises(TypeError):
        StateTable("x", "not a backend")  # type: ignore[arg-type]
    t.close()
    with pytest.raises(weir.ClosedError):
        await t.get("k")


async def test_table_starts_an_unstarted_backend() -> None:
    b = MemoryBackend(StoreBackendConfig())
    t = StateTable("t", b)
    await t.set("k", (1, 2))
    assert await t.get("k") == (1, 2)
    await b.stop()


# ---- StateStoreManager -----------------------------------------------------------------------


async def test_shared_manager(tmp_path: Path) -> None:
    m = StateStoreManager(manager_config(tmp_path))
    await m.start()
    users = await m.create_table("users")
    sessions = await m.create_table("sessions")
    assert await m.create_table("users") is users
    await users.set("user_1", {"name": "Bob"})
    await sessions.set("user_1", {"active": True})
    assert (await users.get("user_1"))["name"] == "Bob"
    assert (await sessions.get("user_1"))["active"] is True
    metrics = m.get_metrics()
    assert set(metrics["tables"]) == {"users", "sessions"}
    assert metrics["backends"] == ["shared"]
    health = await m.health_check()
    assert health["overall_status"] == "healthy"
    assert set(health["tables"]) == {"users", "sessions"}
    assert await m.list_tables() == ["users", "sessions"]
    assert await m.drop_table("sessions") is True
    assert await m.drop_table("sessions") is False
    assert await m.list_tables() == ["users"]
    assert await users.get("user_1") == {"name": "Bob"}  # dropping one left the other
    assert await m.get_table("users") is users
    await m.stop()
    assert not m.is_running


@pytest.mark.parametrize(
    ("kind", "isolation", "expected_backends"),
    [
        (BackendType.MEMORY, StateIsolation.TABLE, ["user_profiles", "user_sessions", "orders"]),
        (BackendType.WEIR, StateIsolation.TABLE, ["user_profiles", "user_sessions", "orders"]),
        (BackendType.TONBO, StateIsolation.NAMESPACE, ["user", "orders"]),
        (BackendType.ARROW_FILES, StateIsolation.NAMESPACE, ["user", "orders"]),
        (BackendType.ROCKSDB, StateIsolation.SHARED, ["shared"]),
    ],
)
async def test_isolation_levels(
    tmp_path: Path, kind: BackendType, isolation: StateIsolation, expected_backends: list[str]
) -> None:
    m = StateStoreManager(manager_config(tmp_path, kind, isolation))
    await m.start()
    tables = [await m.create_table(n) for n in ("user_profiles", "user_sessions", "orders")]
    for t in tables:
        await t.set("key1", f"value in {t.name}")
    for t in tables:
        assert await t.get("key1") == f"value in {t.name}"
    assert sorted(m.backends) == sorted(expected_backends)
    if kind is not BackendType.MEMORY and isolation is not StateIsolation.SHARED:
        assert (tmp_path / kind.value / expected_backends[0]).is_dir()
    await m.stop()


async def test_persistent_state_is_back_after_a_restart(tmp_path: Path) -> None:
    config = manager_config(tmp_path, BackendType.MARBLEDB, StateIsolation.TABLE)
    async with StateStoreManager(config) as m:
        t = await m.create_table("fraud")
        await t.set("U001", {"txn_count": 5, "last": (1, 2)})
    async with StateStoreManager(config) as m:
        t = await m.create_table("fraud")
        assert await t.get("U001") == {"txn_count": 5, "last": (1, 2)}


async def test_manager_checkpoints_every_backend_together(tmp_path: Path) -> None:
    config = manager_config(tmp_path, BackendType.MEMORY, StateIsolation.TABLE, checkpoints=True)
    m = StateStoreManager(config)
    await m.start()
    a = await m.create_table("a")
    b = await m.create_table("b")
    await a.set("k", 1)
    await b.set("k", 1)

    async def writes() -> None:
        for i in range(2, 400):
            await a.set("k", i)
            await asyncio.sleep(0)
            await b.set("k", i)
            await asyncio.sleep(0)

    writer = asyncio.create_task(writes())
    for _ in range(20):
        await asyncio.sleep(0)  # let the writer get going
    cp_id = await m.create_checkpoint(force=True, metadata={"offset": 7})
    await writer
    assert cp_id is not None
    assert m.checkpoints is not None
    info = m.checkpoints.get_checkpoint_info(cp_id)
    assert info is not None and set(info.stores) == {"a", "b"}
    await m.restore_checkpoint(cp_id)
    # Taken with the tables paused, both stores are from one moment: b was
    # written right after a, so it holds a's value or the one before.
    got_a, got_b = await a.get("k"), await b.get("k")
    assert 2 <= got_a < 399
    assert got_b in (got_a, got_a - 1)
    only_a = await m.create_checkpoint(table_name="a", force=True)
    assert list(m.checkpoints.get_checkpoint_info(only_a or "").stores) == ["a"]  # type: ignore[union-attr]
    with pytest.raises(weir.InvalidArgumentError, match="no table"):
        await m.create_checkpoint(table_name="zzz", force=True)
    health = await m.health_check()
    assert health["checkpoints"]["all"]["stats"]["valid_checkpoints"] == 2
    assert m.get_metrics()["checkpoint_managers"] == ["all"]
    await m.stop()


@pytest.mark.parametrize("isolation", [StateIsolation.SHARED, StateIsolation.TABLE])
async def test_manager_recovers_memory_state_from_its_checkpoint(
    tmp_path: Path, isolation: StateIsolation
) -> None:
    config = manager_config(tmp_path, BackendType.MEMORY, isolation, checkpoints=True)
    async with StateStoreManager(config) as m:
        t = await m.create_table("sessions")
        await t.set("s1", ("alive", 3))
        await m.create_checkpoint(force=True)
        other = await m.create_table("later")
        await other.set("x", 1)
        await m.create_checkpoint(table_name="later", force=True)
    async with StateStoreManager(config) as m:  # memory: empty until recovered
        t = await m.create_table("sessions")
        assert await t.get("s1") == ("alive", 3)
        assert await (await m.create_table("later")).get("x") == 1


async def test_manager_bad_use(tmp_path: Path) -> None:
    m = StateStoreManager(manager_config(tmp_path))
    with pytest.raises(weir.ClosedError, match="start"):
        await m.create_table("t")
    kafka = StateStoreManager(manager_config(tmp_path, BackendType.KAFKA))
    with pytest.raises(weir.InvalidArgumentError, match="KAFKA"):
        await kafka.start()
    with pytest.raises(weir.InvalidArgumentError):
        StateStoreConfig(backend_type="cassandra")  # type: ignore[arg-type]
    assert StateStoreConfig(backend_type="memory").backend_type is BackendType.MEMORY  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        StateStoreManager({"backend_type": "memory"})  # type: ignore[arg-type]
    unsafe = StateStoreManager(manager_config(tmp_path, BackendType.WEIR, StateIsolation.TABLE))
    await unsafe.start()
    with pytest.raises(weir.InvalidArgumentError, match="directory name"):
        await unsafe.create_table("../escape")
    await unsafe.stop()
    off = StateStoreManager(manager_config(tmp_path))
    await off.start()
    assert await off.create_checkpoint(force=True) is None
    with pytest.raises(weir.InvalidArgumentError, match="checkpointing is off"):
        await off.restore_checkpoint()
    await off.stop()


async def test_default_config_matches_sabot(tmp_path: Path) -> None:
    config = StateStoreConfig()
    assert config.backend_type is BackendType.MARBLEDB
    assert config.isolation_level is StateIsolation.SHARED
    assert config.marbledb_config.path == Path("./sabot_state/marbledb")
    assert config.redis_config.options["serializer"] == "json"  # type: ignore[index]
    assert config.checkpoint_config.max_checkpoints == 10
    assert config.backend_config() is config.marbledb_config
