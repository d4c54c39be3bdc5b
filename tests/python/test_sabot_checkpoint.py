"""weir.sabot.checkpoint: numbered, retained checkpoints of several stores.

Sabot's contract (``create_checkpoint(force=True)`` returns an id whose
``{id}.json`` is in the directory; ``restore_checkpoint(id)`` brings the
data back; ``get_checkpoint_stats()``), plus what weir asks: every value
comes back (not only JSON), several stores at once, numbering and
retention that survive a new manager, damage detected before anything is
changed, managers sharing a directory.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

import weir
from weir.sabot.checkpoint import (
    CheckpointConfig,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointManager,
    CheckpointNotFoundError,
)
from weir.sabot.stores import MemoryBackend, StoreBackendConfig, TonboBackend
from weir.sabot.stores.arrow_files import ArrowFileBackend


def config(path: Path, **fields: Any) -> CheckpointConfig:
    return CheckpointConfig(checkpoint_dir=path, **fields)


@pytest.fixture
async def three(tmp_path: Path) -> Any:
    """A memory, a weir-engine and an Arrow-files store, started."""
    mem = MemoryBackend(StoreBackendConfig())
    engine = TonboBackend(StoreBackendConfig(path=tmp_path / "tonbo"))
    files = ArrowFileBackend(StoreBackendConfig(path=tmp_path / "files"))
    for b in (mem, engine, files):
        await b.start()
    yield {"sessions": mem, "users": engine, "orders": files}
    for b in (mem, engine, files):
        await b.stop()


async def test_sabots_single_backend_contract(tmp_path: Path) -> None:
    backend = MemoryBackend(StoreBackendConfig())
    values = {
        f"key_{i}": {"value": i, "when": datetime.date(2025, 1, 1 + i % 28)} for i in range(100)
    }
    await backend.batch_set(values)
    cp = CheckpointManager(backend, config(tmp_path / "cp", max_checkpoints=5))
    cp_id = await cp.create_checkpoint(force=True)
    assert cp_id is not None
    assert (tmp_path / "cp" / f"{cp_id}.json").exists()
    await backend.clear()
    assert await cp.restore_checkpoint(cp_id) is True
    assert dict(await backend.items()) == values  # dates too: not JSON
    stats = await cp.get_checkpoint_stats()
    assert stats["total_checkpoints"] == 1 and stats["valid_checkpoints"] == 1
    assert stats["invalid_checkpoints"] == 0
    assert cp.backend is backend
    await backend.stop()


async def test_several_stores_numbered_and_restored_together(
    three: dict[str, Any], tmp_path: Path
) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp"))
    await three["users"].set("u1", ("Alice", 30))
    await three["sessions"].set(1, "s1")
    await three["orders"].set("o1", 9.5)
    first = await cp.create_checkpoint(force=True, metadata={"offset": 10})
    await three["users"].set("u2", ("Bob", 40))
    await three["orders"].delete("o1")
    second = await cp.create_checkpoint(force=True, metadata={"offset": 20})
    assert (first, second) == ("00000001", "00000002")
    meta = cp.get_checkpoint_info(second)
    assert meta is not None and meta.metadata == {"offset": 20}
    assert meta.parent_checkpoint_id == first
    assert meta.key_count == 3
    assert set(meta.stores) == {"sessions", "users", "orders"}

    await three["users"].clear()
    await three["sessions"].set(2, "later")
    assert await cp.restore_checkpoint(first)
    assert await three["users"].items() == [("u1", ("Alice", 30))]
    assert await three["sessions"].items() == [(1, "s1")]
    assert await three["orders"].get("o1") == 9.5
    assert await cp.restore_checkpoint()  # the latest
    assert await three["users"].size() == 2
    assert await three["orders"].get("o1") is None


async def test_restore_only_some_stores(three: dict[str, Any], tmp_path: Path) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp"))
    await three["users"].set("u", 1)
    await three["sessions"].set("s", 1)
    await cp.create_checkpoint(force=True)
    await three["users"].set("u", 2)
    await three["sessions"].set("s", 2)
    await cp.restore_checkpoint(stores=["users"])
    assert await three["users"].get("u") == 1
    assert await three["sessions"].get("s") == 2
    with pytest.raises(CheckpointError, match="no store 'nope'"):
        await cp.restore_checkpoint(stores=["nope"])
    only = await cp.create_checkpoint(force=True, stores=["sessions"])
    info = cp.get_checkpoint_info(only or "")
    assert info is not None and list(info.stores) == ["sessions"]
    with pytest.raises(CheckpointError, match="no store"):
        await cp.create_checkpoint(force=True, stores=["missing"])


async def test_retention_and_a_new_manager_continue_the_numbers(
    three: dict[str, Any], tmp_path: Path
) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp", max_checkpoints=2))
    ids = []
    for i in range(4):
        await three["users"].set("n", i)
        ids.append(await cp.create_checkpoint(force=True))
    assert [m.checkpoint_id for m in cp.list_checkpoints()] == ids[2:]
    assert not (tmp_path / "cp" / f"{ids[0]}.json").exists()
    assert not (tmp_path / "cp" / ids[0]).exists()
    again = CheckpointManager(three, config(tmp_path / "cp", max_checkpoints=2))
    assert again.latest_checkpoint_id == ids[-1]
    assert await again.create_checkpoint(force=True) == "00000005"
    await again.restore_checkpoint(ids[3])
    assert await three["users"].get("n") == 3


async def test_unknown_and_damaged_checkpoints(three: dict[str, Any], tmp_path: Path) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp"))
    with pytest.raises(CheckpointNotFoundError, match="no checkpoints"):
        await cp.restore_checkpoint()
    await three["users"].set("k", "original")
    cp_id = await cp.create_checkpoint(force=True)
    assert cp_id is not None
    with pytest.raises(CheckpointNotFoundError, match="there are: 00000001"):
        await cp.restore_checkpoint("99999999")
    with pytest.raises(TypeError):
        await cp.restore_checkpoint(7)  # type: ignore[arg-type]
    # Damage one byte of one file: the restore is refused before any store changes.
    meta = cp.get_checkpoint_info(cp_id)
    assert meta is not None
    rel = next(iter(meta.files))
    victim = tmp_path / "cp" / cp_id / rel
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    await three["users"].set("k", "changed")
    with pytest.raises(CheckpointCorruptError, match="damaged"):
        await cp.restore_checkpoint(cp_id)
    assert await three["users"].get("k") == "changed"
    assert isinstance(CheckpointCorruptError("x"), weir.CorruptionError)
    assert not await cp.validate_checkpoint(cp_id)
    stats = await cp.get_checkpoint_stats()
    assert stats["invalid_checkpoints"] == 1 and stats["valid_checkpoints"] == 0
    # An unreadable manifest is reported, and can be deleted.
    (tmp_path / "cp" / "00000007.json").write_text("{not json")
    again = CheckpointManager(three, config(tmp_path / "cp"))
    with pytest.raises(CheckpointCorruptError, match="unreadable manifest"):
        await again.restore_checkpoint("00000007")
    assert (await again.get_checkpoint_stats())["invalid_checkpoints"] == 2
    assert await again.delete_checkpoint("00000007")
    assert not await again.delete_checkpoint("00000007")
    assert await again.create_checkpoint(force=True) == "00000008"


async def test_a_store_the_manager_does_not_hold(three: dict[str, Any], tmp_path: Path) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp"))
    cp_id = await cp.create_checkpoint(force=True)
    fewer = CheckpointManager({"users": three["users"]}, config(tmp_path / "cp"))
    with pytest.raises(CheckpointError, match=r"holds store '(sessions|orders)'"):
        await fewer.restore_checkpoint(cp_id)
    assert await fewer.restore_checkpoint(cp_id, stores=["users"])


async def test_interrupted_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    ok = MemoryBackend(StoreBackendConfig())
    stopped = TonboBackend(StoreBackendConfig(path=tmp_path / "t"))  # never started
    cp = CheckpointManager({"ok": ok, "stopped": stopped}, config(tmp_path / "cp"))
    with pytest.raises(CheckpointError, match="checkpoint 00000001 failed"):
        await cp.create_checkpoint(force=True)
    assert sorted(p.name for p in (tmp_path / "cp").iterdir()) == ["LAST", "LOCK"]
    # A directory without a manifest (a crash mid-checkpoint) is removed.
    (tmp_path / "cp" / "00000004").mkdir()
    cp.remove_store("stopped")
    assert await cp.create_checkpoint(force=True) == "00000005"
    assert not (tmp_path / "cp" / "00000004").exists()
    await ok.stop()


async def test_interval_metadata_and_config_checks(tmp_path: Path) -> None:
    b = MemoryBackend(StoreBackendConfig())
    cp = CheckpointManager(b, config(tmp_path / "cp", interval_seconds=3600))
    assert await cp.create_checkpoint() is not None  # the first is due
    assert await cp.create_checkpoint() is None  # the interval has not passed
    assert await cp.create_checkpoint(force=True) is not None
    with pytest.raises(TypeError, match="JSON"):
        await cp.create_checkpoint(force=True, metadata={"bad": object()})
    for fields, error in (
        ({"max_checkpoints": 0}, ValueError),
        ({"max_checkpoints": 1.5}, TypeError),
        ({"interval_seconds": 0}, ValueError),
        ({"interval_seconds": "5"}, TypeError),
        ({"checkpoint_dir": 5}, TypeError),
    ):
        with pytest.raises(error):
            CheckpointConfig(**fields)
    with pytest.raises(TypeError):
        CheckpointManager("not a store", config(tmp_path / "x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CheckpointManager({"": b}, config(tmp_path / "x"))
    with pytest.raises(TypeError):
        CheckpointManager(b, {"dir": "x"})  # type: ignore[arg-type]
    assert CheckpointConfig(checkpoint_dir="rel").checkpoint_dir == Path("rel")  # type: ignore[arg-type]
    empty = CheckpointManager({}, config(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="no stores"):
        await empty.create_checkpoint(force=True)
    await b.stop()


async def test_auto_recovery_restores_empty_stores_only(tmp_path: Path) -> None:
    b = MemoryBackend(StoreBackendConfig())
    await b.set("k", (1, 2))
    cp = CheckpointManager(b, config(tmp_path / "cp"))
    await cp.create_checkpoint(force=True)
    await b.stop()  # a memory store forgets: a "restart"
    assert await b.size() == 0
    fresh = CheckpointManager(b, config(tmp_path / "cp"))
    assert await fresh.auto_recover_on_startup() is True
    assert await b.get("k") == (1, 2)
    await b.set("k", "newer")
    assert await fresh.auto_recover_on_startup() is False  # holds data: kept
    assert await b.get("k") == "newer"
    with pytest.raises(CheckpointError, match="no store"):
        await fresh.auto_recover_on_startup(["nope"])
    off = CheckpointManager(b, config(tmp_path / "cp", auto_recovery=False))
    await b.clear()
    assert await off.auto_recover_on_startup() is False
    await b.stop()


async def test_automatic_checkpoints(tmp_path: Path) -> None:
    b = MemoryBackend(StoreBackendConfig())
    cp = CheckpointManager(b, config(tmp_path / "cp", interval_seconds=0.05))
    await cp.start_auto_checkpointing()
    assert cp.is_running
    for _ in range(200):
        if cp.list_checkpoints():
            break
        await asyncio.sleep(0.02)
    await cp.stop_auto_checkpointing()
    assert not cp.is_running
    assert cp.list_checkpoints()
    disabled = CheckpointManager(b, config(tmp_path / "cp2", enabled=False))
    await disabled.start_auto_checkpointing()
    assert not disabled.is_running
    await b.stop()


async def test_two_managers_share_a_directory(three: dict[str, Any], tmp_path: Path) -> None:
    a = CheckpointManager({"users": three["users"]}, config(tmp_path / "cp", max_checkpoints=50))
    b = CheckpointManager(
        {"sessions": three["sessions"]}, config(tmp_path / "cp", max_checkpoints=50)
    )
    ids = await asyncio.gather(*(m.create_checkpoint(force=True) for m in (a, b, a, b, a, b)))
    assert sorted(ids) == [f"{n:08d}" for n in range(1, 7)]  # no number given twice
    for cp_id in ids:
        manifest = json.loads((tmp_path / "cp" / f"{cp_id}.json").read_text())
        assert manifest["checkpoint"]["checkpoint_id"] == cp_id


async def test_deleted_checkpoint(three: dict[str, Any], tmp_path: Path) -> None:
    cp = CheckpointManager(three, config(tmp_path / "cp"))
    cp_id = await cp.create_checkpoint(force=True)
    assert cp_id is not None
    assert await cp.delete_checkpoint(cp_id)
    assert not (tmp_path / "cp" / cp_id).exists()
    with pytest.raises(CheckpointNotFoundError):
        await cp.restore_checkpoint(cp_id)
