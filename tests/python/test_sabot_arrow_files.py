"""weir.sabot.stores.ArrowFileBackend: a store kept as Arrow IPC files.

What Sabot's tests expect of it (``_save_data`` / ``_load_data`` round
trips, its stats keys, ``arrow_files://dir``), and what weir asks of any
store: every acknowledged write survives a reopen, a torn tail is cut and
damage is reported, a second opener is refused, bad input changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest

import weir
from weir.sabot.stores import StoreBackendConfig, create_backend_from_string
from weir.sabot.stores.arrow_files import ArrowFileBackend


def make(path: Path, **fields: Any) -> ArrowFileBackend:
    return ArrowFileBackend(StoreBackendConfig(backend_type="arrow_files", path=path, **fields))


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    b = make(tmp_path / "data")
    await b.start()
    yield b
    await b.stop()


def changes_file(path: Path) -> Path:
    (found,) = sorted(path.glob("changes-*.arrows"))
    return found


async def test_operations_and_sabot_round_trip(store: ArrowFileBackend) -> None:
    value = {"name": "Alice", "age": 30, "joined": datetime.date(2024, 5, 1), "pair": (1, 2)}
    await store.set("user1", value)
    await store.set(7, "seven")
    assert await store.get("user1") == value
    assert await store.exists(7)
    await store._save_data()
    store._data.clear()
    store._loaded = False
    await store._load_data()
    assert await store.get("user1") == value
    assert await store.get(7) == "seven"
    stats = await store.get_stats()
    assert stats["backend_type"] == "arrow_files"
    assert stats["size"] == 2
    assert stats["loaded"] is True
    assert stats["data_path"] == str(store.data_path)
    assert stats["file_size_bytes"] > 0


async def test_every_write_survives_a_reopen(tmp_path: Path) -> None:
    first = make(tmp_path / "d")
    await first.start()
    await first.set("a", 1)
    await first.batch_set({"b": 2, "c": (3,)})
    await first.delete("a")
    # Copied while still open: reopening must not depend on a final save.
    snapshot = {f.name: f.read_bytes() for f in (tmp_path / "d").iterdir() if f.is_file()}
    await first.stop()
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in snapshot.items():
        if name != "LOCK":
            (copy / name).write_bytes(data)
    second = make(copy)
    await second.start()
    assert await second.items() == [("b", 2), ("c", (3,))]
    await second.stop()


async def test_snapshot_is_a_plain_arrow_ipc_file(tmp_path: Path) -> None:
    b = make(tmp_path / "d")
    await b.start()
    await b.batch_set({f"k{i}": i for i in range(5)})
    await b.stop()
    (snap,) = sorted((tmp_path / "d").glob("data-*.arrow"))
    with pa.memory_map(str(snap)) as source:
        table = pa_ipc.open_file(source).read_all()
    assert table.column_names == ["key", "value"]
    assert table.column("key").to_pylist() == [f"k{i}".encode() for i in range(5)]
    assert table.schema.metadata[b"weir.sabot.value_codec"] == b"pickle"


async def test_torn_tail_is_cut_and_damage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d"
    b = make(path)
    await b.start()
    await b.set("first", 1)
    await b.set("second", 2)
    log_path = changes_file(path)
    data = log_path.read_bytes()
    # Simulate a crash: the backend's own files as they are, copied aside.
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / log_path.name).write_bytes(data + data[:20])  # half of a third record
    reopened = make(torn)
    await reopened.start()
    assert await reopened.items() == [("first", 1), ("second", 2)]
    await reopened.stop()
    # Damage followed by a valid record is corruption, not a torn write.
    bad = tmp_path / "bad"
    bad.mkdir()
    first_len = int.from_bytes(data[:4], "little") + 8
    damaged = bytearray(data)
    damaged[first_len - 1] ^= 0xFF
    (bad / log_path.name).write_bytes(bytes(damaged))
    broken = make(bad)
    with pytest.raises(weir.CorruptionError, match="offset 0"):
        await broken.start()
    assert not broken.started
    await b.stop()


async def test_damaged_snapshot_is_corruption(tmp_path: Path) -> None:
    b = make(tmp_path / "d")
    await b.start()
    await b.set("k", "v")
    await b.stop()
    (snap,) = sorted((tmp_path / "d").glob("data-*.arrow"))
    snap.write_bytes(b"not arrow at all")
    with pytest.raises(weir.CorruptionError, match="Arrow IPC"):
        await make(tmp_path / "d").start()


async def test_a_second_backend_on_the_directory_is_refused(tmp_path: Path) -> None:
    first = make(tmp_path / "d")
    await first.start()
    with pytest.raises(weir.BusyError):
        await make(tmp_path / "d").start()
    await first.stop()
    second = make(tmp_path / "d")
    await second.start()  # free again once the first stopped
    await second.stop()


async def test_codec_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    b = make(tmp_path / "d", options={"value_codec": "json"})
    await b.start()
    await b.set("k", [1])
    await b.stop()
    with pytest.raises(weir.InvalidArgumentError, match="value codec 'json'"):
        await make(tmp_path / "d").start()


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"ttl_seconds": 5}, weir.InvalidArgumentError, "expire"),
        ({"options": {"colour": 1}}, weir.InvalidArgumentError, "unknown option"),
        ({"options": {"sync": "never"}}, weir.InvalidArgumentError, "sync"),
        ({"options": {"compact_bytes": 0}}, weir.InvalidArgumentError, "compact_bytes"),
        ({"compression": "snappy"}, weir.InvalidArgumentError, "compression"),
    ],
)
def test_bad_configuration(
    tmp_path: Path, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make(tmp_path / "d", **fields)


def test_a_path_is_required() -> None:
    with pytest.raises(weir.InvalidArgumentError, match="directory"):
        ArrowFileBackend(StoreBackendConfig(backend_type="arrow_files"))


async def test_bad_keys_and_values_write_nothing(store: ArrowFileBackend) -> None:
    await store.set("ok", 1)
    with pytest.raises(TypeError):
        await store.batch_set({"fine": 1, 2.5: "float key"})
    with pytest.raises(TypeError):
        await store.batch_set({"fine": 1, "bad": lambda: 0})
    with pytest.raises(weir.InvalidArgumentError):
        await store.set(b"\xff", 1)
    with pytest.raises(TypeError):
        await store.batch_delete("abc")
    assert await store.items() == [("ok", 1)]


async def test_closed_backend_raises(tmp_path: Path) -> None:
    b = make(tmp_path / "d")
    with pytest.raises(weir.ClosedError):
        await b.get("k")
    await b.start()
    await b.stop()
    with pytest.raises(weir.ClosedError):
        await b.set("k", 1)
    await b.stop()  # idempotent


async def test_compaction_writes_a_new_generation(tmp_path: Path) -> None:
    b = make(tmp_path / "d", options={"compact_bytes": 2000})
    await b.start()
    for i in range(200):
        await b.set(i % 10, "x" * 50)
    stats = await b.get_stats()
    assert stats["generation"] > 1
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    gen = f"{stats['generation']:08d}"
    assert names == ["LOCK", f"changes-{gen}.arrows", f"data-{gen}.arrow"]
    await b.stop()
    again = make(tmp_path / "d")
    await again.start()
    assert await again.size() == 10
    await again.stop()


async def test_leftovers_of_an_interrupted_switch_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "d"
    b = make(path)
    await b.start()
    await b.set("k", "v")
    await b.stop()  # data-00000001.arrow
    (path / "changes-00000002.arrows").write_bytes(b"")
    (path / "data-00000002.arrow.tmp").write_bytes(b"half")
    again = make(path)
    await again.start()
    assert await again.get("k") == "v"
    assert not (path / "changes-00000002.arrows").exists()
    assert not (path / "data-00000002.arrow.tmp").exists()
    await again.stop()


async def test_ranges_prefixes_and_scans(store: ArrowFileBackend) -> None:
    await store.batch_set({f"key_{i:02d}": i for i in range(10)} | {3: "c", 1: "a"})
    assert await store.keys(prefix="key_0") == [f"key_0{i}" for i in range(10)]
    found = await store.scan(start_key="key_03", end_key="key_06")
    assert len(found) == 3 and next(found) == ("key_03", 3)
    assert [k async for k, _ in store.scan(limit=2)] == ["key_00", "key_01"]
    assert list(await store.scan(start_key=1, end_key=3)) == [(1, "a")]
    with pytest.raises(weir.InvalidArgumentError):
        await store.scan(limit=-1)
    await store.delete_range("key_05", "key_08")
    assert await store.size() == 9
    await store.delete_prefix("key_")
    assert await store.keys() == [1, 3]
    with pytest.raises(weir.InvalidArgumentError):
        await store.delete_range("b", "a")
    await store.clear()
    assert await store.size() == 0


async def test_transactions(store: ArrowFileBackend) -> None:
    await store.set("balance", 10)
    async with store.transaction() as txn:
        assert await txn.get("balance") == 10
        await txn.set("balance", 15)
        assert await txn.delete("missing") is False
    assert await store.get("balance") == 15
    txn = await store.begin_transaction()
    assert await txn.get("balance") == 15
    await store.set("balance", 20)  # someone else writes the key it read
    await txn.set("balance", 16)
    with pytest.raises(weir.stores.TransactionConflictError):
        await store.commit_transaction(txn)
    assert await store.get("balance") == 20
    with pytest.raises(weir.InvalidArgumentError, match="already failed"):
        await txn.set("x", 1)
    txn = await store.begin_transaction()
    await txn.set("y", 1)
    await store.rollback_transaction(txn)
    assert await store.get("y") is None
    other = make(store.data_path.parent / "other")
    with pytest.raises(weir.InvalidArgumentError, match="another backend"):
        await other.commit_transaction(await store.begin_transaction())


async def test_backup_and_restore(store: ArrowFileBackend, tmp_path: Path) -> None:
    await store.batch_set({"a": 1, "b": (2,)})
    await store.backup(tmp_path / "bk")
    with pytest.raises(FileExistsError):
        await store.backup(tmp_path / "bk")
    await store.set("c", 3)
    await store.restore(tmp_path / "bk")
    assert await store.items() == [("a", 1), ("b", (2,))]
    with pytest.raises(FileNotFoundError):
        await store.restore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(weir.CorruptionError):
        await store.restore(tmp_path / "empty")


async def test_a_failed_write_leaves_no_partial_record(
    store: ArrowFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.set("kept", 1)
    real_write = os.write
    log_fd = store._log_fd

    def full_disk(fd: int, data: Any) -> int:
        if fd != log_fd:
            return real_write(fd, data)
        real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(weir.NoSpaceError):
        await store.set("lost", 2)
    monkeypatch.setattr(os, "write", real_write)
    assert await store.get("lost") is None
    await store.set("after", 3)
    path = store.data_path
    await store.stop()
    again = make(path)
    await again.start()
    assert await again.items() == [("after", 3), ("kept", 1)]
    await again.stop()


async def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    b = make(tmp_path / "d", options={"compact_bytes": 4096})

    await b.start()

    async def writer(n: int) -> None:
        for i in range(40):
            await b.set((n, i), i)
            if i % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(6)))
    threads = [asyncio.to_thread(lambda n=n: asyncio.run(_thread_writes(b, n))) for n in (6, 7)]
    await asyncio.gather(*threads)
    await b.stop()
    again = make(tmp_path / "d")
    await again.start()
    assert await again.size() == 8 * 40
    assert await again.get((7, 39)) == 39
    await again.stop()


async def _thread_writes(b: ArrowFileBackend, n: int) -> None:
    for i in range(40):
        await b.set((n, i), i)


def test_factory_name() -> None:
    b = create_backend_from_string("arrow_files://some/dir")
    assert isinstance(b, ArrowFileBackend)
    assert b.config.path == Path("some/dir")


def test_missing_pyarrow_is_a_clear_import_error(child_env: dict[str, str]) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.ipc'] = None\n"
        "from weir.sabot.stores import ArrowFileBackend, StoreBackendConfig, ARROW_AVAILABLE\n"
        "try:\n"
        "    ArrowFileBackend(StoreBackendConfig(path='x'))\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
    )
    assert "ImportError: the arrow_files backend needs pyarrow" in out.stdout


def test_frame_checksum_is_crc32(tmp_path: Path) -> None:
    async def run() -> bytes:
        b = make(tmp_path / "d")
        await b.start()
        await b.set("k", "v")
        data = changes_file(tmp_path / "d").read_bytes()
        await b.stop()
        return data

    data = asyncio.run(run())
    length = int.from_bytes(data[:4], "little")
    crc = int.from_bytes(data[4:8], "little")
    assert zlib.crc32(data[8 : 8 + length]) == crc
    reader = pa_ipc.open_stream(pa.py_buffer(data[8 : 8 + length]))
    assert reader.schema.names == ["op", "key", "value"]


async def test_a_failed_snapshot_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = make(tmp_path / "d", options={"compact_bytes": 300})
    await b.start()
    real_open = open

    def no_space(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".arrow.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_space)
    for i in range(20):
        await b.set(i, "x" * 40)  # compaction is due and fails: the writes stand
    assert (await b.get_stats())["generation"] == 0
    monkeypatch.setattr("builtins.open", real_open)
    for i in range(20, 40):
        await b.set(i, "x" * 40)
    assert (await b.get_stats())["generation"] >= 1
    await b.stop()
    again = make(tmp_path / "d")
    await again.start()
    assert await again.size() == 40
    await again.stop()


async def test_byte_level_interface(store: ArrowFileBackend) -> None:
    ka, kb, kc = (store.encode_key(k) for k in ("a", "b", "c"))
    va = store.encode_value("a", (1, 2))
    assert store.decode_key(ka) == "a" and store.decode_value("a", va) == (1, 2)
    await store.apply([(ka, va), (kb, store.encode_value("b", "B")), (kc, va)])
    # Deleted and put in one apply: the put wins, as apply() promises.
    await store.apply([(kb, store.encode_value("b", "again"))], [kb, kc])
    assert await store.items() == [("a", (1, 2)), ("b", "again")]
    pairs = await store.snapshot_range(ka, kb)
    assert pairs == [(ka, va)]
    await store.apply(clear_range=(None, None))
    assert await store.size() == 0
    await store.restore_range(None, None, pairs)
    assert await store.items() == [("a", (1, 2))]
    with pytest.raises(TypeError):
        await store.apply([("a", b"x")])  # type: ignore[list-item]
    with pytest.raises(weir.InvalidArgumentError):
        await store.apply(clear_range=(b"z", b"a"))
    with pytest.raises(weir.InvalidArgumentError):
        await store.restore_range(ka, kb, [(kc, va)])
    with pytest.raises(weir.CorruptionError, match="'a'"):
        store.decode_value("a", b"not pickle")
    assert await store.items() == [("a", (1, 2))]
    path = store.data_path
    await store.stop()
    again = make(path)
    await again.start()
    assert await again.items() == [("a", (1, 2))]
    await again.stop()
    await store.start()
