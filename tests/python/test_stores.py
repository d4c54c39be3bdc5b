"""The store-backend conformance suite: every test runs on every backend
(weir, memory, rocksdb, redis) unless it is about something only some of
them have (a directory, a lock, an LRU cap), and says so."""

from __future__ import annotations

import asyncio
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import weir
from conftest import BACKENDS, PATH_BACKENDS, PERSISTENT
from weir.stores import (
    CountedRange,
    DBFace,
    EngineTransaction,
    MemoryBackend,
    RedisBackend,
    RocksDBBackend,
    ScanResult,
    StoreBackend,
    StoreBackendConfig,
    StoreTransaction,
    SyncFace,
    Transaction,
    TransactionConflictError,
    WeirBackend,
    create_backend,
    create_backend_from_string,
)

MiB = 1 << 20


async def fill(b: StoreBackend, n: int, prefix: str = "k") -> dict[str, Any]:
    model = {f"{prefix}{i:05d}": {"i": i, "name": f"item {i}"} for i in range(n)}
    await b.batch_set(model)
    return model


# ---- configuration and construction ----------------------------------------------------


def test_config_path_alone_gives_the_weir_backend(tmp_path: pathlib.Path) -> None:
    cfg = StoreBackendConfig(path=tmp_path / "db")
    assert cfg.backend_type == "weir"
    assert cfg.options == {}
    assert isinstance(create_backend(cfg), WeirBackend)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("weir", WeirBackend),
        ("memory", MemoryBackend),
        ("rocksdb", RocksDBBackend),
        ("redis", RedisBackend),
    ],
)
def test_create_backend_builds_each_type(tmp_path: pathlib.Path, kind: str, cls: type) -> None:
    b = create_backend(StoreBackendConfig(backend_type=kind, path=tmp_path / "x"))
    assert isinstance(b, cls)
    assert isinstance(b, StoreBackend)
    assert b.backend_type == kind


def test_create_backend_from_string(tmp_path: pathlib.Path) -> None:
    b = create_backend_from_string(f"weir://{tmp_path}/db")
    assert isinstance(b, WeirBackend)
    assert os.fspath(b.config.path) == f"{tmp_path}/db"
    assert isinstance(create_backend_from_string("memory://"), MemoryBackend)
    assert isinstance(create_backend_from_string("memory", max_size=3), MemoryBackend)
    assert isinstance(create_backend_from_string(f"rocksdb://{tmp_path}/r"), RocksDBBackend)
    r = create_backend_from_string("redis://127.0.0.1:6390/2", options={"namespace": "x"})
    assert isinstance(r, RedisBackend)
    assert r.namespace == b"x"
    with pytest.raises(weir.InvalidArgumentError, match="unknown backend_type 'tonbo'"):
        create_backend_from_string("tonbo:///x")
    with pytest.raises(TypeError):
        create_backend_from_string(42)  # type: ignore[arg-type]


def test_config_rejects_bad_fields() -> None:
    with pytest.raises(TypeError):
        StoreBackendConfig(max_size="10")  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError):
        StoreBackendConfig(max_size=0)
    with pytest.raises(weir.InvalidArgumentError):
        StoreBackendConfig(ttl_seconds=-1)
    with pytest.raises(TypeError):
        StoreBackendConfig(ttl_seconds="1")  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError):
        StoreBackendConfig(compression="snappy-ish")
    with pytest.raises(TypeError):
        StoreBackendConfig(options=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        StoreBackendConfig(path=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        create_backend({"backend_type": "memory"})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", BACKENDS)
def test_unknown_option_is_refused(tmp_path: pathlib.Path, kind: str) -> None:
    with pytest.raises(weir.InvalidArgumentError, match="wrtie_buffer"):
        create_backend(
            StoreBackendConfig(backend_type=kind, path=tmp_path / "x", options={"wrtie_buffer": 1})
        )


@pytest.mark.parametrize("kind", PATH_BACKENDS)
def test_path_backends_need_a_path(kind: str) -> None:
    with pytest.raises(weir.InvalidArgumentError, match="needs a directory"):
        create_backend(StoreBackendConfig(backend_type=kind))


def test_abstract_backend_cannot_be_instantiated_half_done() -> None:
    class Half(StoreBackend):
        async def start(self) -> None:
            pass

    with pytest.raises(TypeError):
        Half(StoreBackendConfig(backend_type="memory"))  # type: ignore[abstract]


# ---- point operations ------------------------------------------------------------------


async def test_set_get_roundtrip_of_json_values(backend: StoreBackend) -> None:
    values = {
        "user:1": {"name": "Alice", "balance": 1000, "tags": ["a", "b"], "ok": True, "x": None},
        "user:2": [1, 2.5, "three", {"four": 4}],
        "user:3": "plain string",
        "user:4": 12345678901234567890,
        "user:5": -0.5,
        "user:6": False,
        "user:7": {},
    }
    for k, v in values.items():
        await backend.set(k, v)
    for k, v in values.items():
        assert await backend.get(k) == v


async def test_values_come_back_as_fresh_objects(backend: StoreBackend) -> None:
    v = {"n": [1, 2]}
    await backend.set("k", v)
    v["n"].append(3)
    got = await backend.get("k")
    assert got == {"n": [1, 2]}
    got["n"].append(9)
    assert await backend.get("k") == {"n": [1, 2]}


async def test_get_missing_is_none_and_exists_false(backend: StoreBackend) -> None:
    assert await backend.get("nope") is None
    assert await backend.exists("nope") is False


async def test_overwrite_keeps_the_last_value(backend: StoreBackend) -> None:
    for i in range(5):
        await backend.set("k", i)
    assert await backend.get("k") == 4
    assert await backend.size() == 1


async def test_delete_reports_whether_the_key_was_there(backend: StoreBackend) -> None:
    await backend.set("k", 1)
    assert await backend.delete("k") is True
    assert await backend.delete("k") is False
    assert await backend.get("k") is None
    assert await backend.exists("k") is False
    assert await backend.delete("never") is False


async def test_a_stored_none_exists(backend: StoreBackend) -> None:
    await backend.set("k", None)
    assert await backend.exists("k") is True
    assert await backend.get("k") is None
    assert await backend.keys() == ["k"]


async def test_empty_key(backend: StoreBackend) -> None:
    await backend.set("", {"empty": True})
    assert await backend.get("") == {"empty": True}
    assert await backend.get(b"") == {"empty": True}
    assert await backend.exists("")
    assert await backend.keys() == [""]
    assert await backend.delete("")
    assert await backend.size() == 0


async def test_one_mib_key_is_the_limit(backend: StoreBackend) -> None:
    big = "k" * MiB
    await backend.set(big, 1)
    assert await backend.get(big) == 1
    assert await backend.keys() == [big]
    with pytest.raises(weir.InvalidArgumentError, match="exceeds the limit"):
        await backend.set(big + "k", 2)
    with pytest.raises(weir.InvalidArgumentError):
        await backend.batch_set({"small": 1, big + "k": 2})
    assert await backend.get("small") is None
    assert await backend.delete(big)


def make_other(
    make_backend: Any, kind: str, tmp_path: pathlib.Path, name: str, **fields: Any
) -> Any:
    """A second backend of ``kind`` with its own directory or namespace."""
    options = dict(fields.pop("options", {}))
    if kind == "redis":
        options["namespace"] = f"{name}-{os.getpid()}"
        return make_backend(kind, options=options, **fields)
    return make_backend(kind, options=options, path=tmp_path / name, **fields)


async def test_sixteen_mib_values(
    backend: StoreBackend, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    text = "v" * (16 * MiB)
    await backend.set("big", text)
    assert await backend.get("big") == text
    raw = make_other(
        make_backend, backend.backend_type, tmp_path, "raw", options={"value_codec": "bytes"}
    )
    await raw.start()
    blob = os.urandom(16 * MiB)
    await raw.set(b"blob", blob)
    assert await raw.get(b"blob") == blob
    await raw.batch_set({b"a": blob, b"b": b"small"})
    got = dict(await raw.items())
    assert got["a"] == blob and got["b"] == b"small"


async def test_unicode_keys_round_trip_in_utf8_byte_order(backend: StoreBackend) -> None:
    keys = ["zebra", "Äpfel", "日本語", "emoji:😀", "ελληνικά", "a\u0000b", "ключ"]
    for i, k in enumerate(keys):
        await backend.set(k, i)
    for i, k in enumerate(keys):
        assert await backend.get(k) == i
    assert await backend.keys() == sorted(keys, key=lambda s: s.encode("utf-8"))


async def test_binary_keys(backend: StoreBackend) -> None:
    keys = [b"\xff\xfe\x00\x01", b"\x00", b"\x80abc", b"plain"]
    for i, k in enumerate(keys):
        await backend.set(k, i)
    for i, k in enumerate(keys):
        assert await backend.get(k) == i
        assert await backend.get(bytearray(k)) == i
        assert await backend.get(memoryview(k)) == i
    # Keys that are not UTF-8 come back as bytes; "plain" is valid UTF-8.
    assert await backend.keys() == ["\x00", "plain", b"\x80abc", b"\xff\xfe\x00\x01"]
    assert await backend.keys(prefix=b"\xff") == [b"\xff\xfe\x00\x01"]


async def test_bytes_key_codec_always_gives_bytes(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, options={"key_codec": "bytes"})
    await b.start()
    await b.set(b"user:1", 1)
    assert await b.keys() == [b"user:1"]
    with pytest.raises(TypeError):
        await b.set("user:2", 2)


async def test_wrong_key_types_raise_type_error(backend: StoreBackend) -> None:
    for bad in (None, 1, 1.5, ["a"], {"a": 1}, ("a",), object()):
        with pytest.raises(TypeError, match="key"):
            await backend.set(bad, 1)
        with pytest.raises(TypeError):
            await backend.get(bad)
        with pytest.raises(TypeError):
            await backend.delete(bad)
        with pytest.raises(TypeError):
            await backend.exists(bad)
    with pytest.raises(weir.InvalidArgumentError):
        await backend.set("\ud800", 1)  # a lone surrogate is not encodable
    assert await backend.size() == 0


async def test_unencodable_values_name_the_key_and_type(backend: StoreBackend) -> None:
    class Thing:
        pass

    for bad in (Thing(), {1, 2}, {"nested": object()}):
        with pytest.raises(TypeError) as info:
            await backend.set("the-key", bad)
        assert "the-key" in str(info.value)
        assert type(bad).__name__ in str(info.value)
    with pytest.raises(weir.InvalidArgumentError, match="circular"):
        await backend.set("circular", _circular())
    assert await backend.exists("the-key") is False
    assert await backend.size() == 0


def _circular() -> Any:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


@pytest.mark.parametrize("codec", ["msgpack", "pickle", "bytes", "str"])
async def test_other_value_codecs(kind: str, make_backend: Any, codec: str) -> None:
    b = make_backend(kind, options={"value_codec": codec})
    await b.start()
    sample = {
        "msgpack": {"bin": b"\x00\xff", "list": [1, "a"], "n": None},
        "pickle": {"tuple": (1, 2), "set": {3}, "bytes": b"\x00"},
        "bytes": b"\x00\x01\xff raw",
        "str": "text ☃",
    }[codec]
    await b.set("k", sample)
    assert await b.get("k") == sample
    assert (await b.get_stats())["value_codec"] == codec


async def test_batch_get(backend: StoreBackend) -> None:
    await backend.batch_set({"a": 1, "b": 2})
    assert await backend.batch_get(["a", "x", "b", "a"]) == [1, None, 2, 1]  # type: ignore[attr-defined]
    assert await backend.batch_get([]) == []  # type: ignore[attr-defined]


# ---- batches ----------------------------------------------------------------------------


async def test_batch_set_and_batch_delete(backend: StoreBackend) -> None:
    model = await fill(backend, 50)
    assert await backend.size() == 50
    assert await backend.get("k00007") == model["k00007"]
    n = await backend.batch_delete(["k00001", "k00002", "k00002", "missing", "k00003"])
    assert n == 3
    assert await backend.size() == 47
    assert await backend.batch_delete([]) == 0
    await backend.batch_set({})
    assert await backend.size() == 47


async def test_batch_set_accepts_pairs_and_overwrites(backend: StoreBackend) -> None:
    await backend.batch_set([("a", 1), ("b", 2)])
    await backend.batch_set(p for p in [("a", 10), ("c", 3)])
    assert await backend.items() == [("a", 10), ("b", 2), ("c", 3)]


async def test_batch_set_with_a_bad_value_writes_nothing(backend: StoreBackend) -> None:
    items: dict[str, Any] = {f"k{i}": i for i in range(10)}
    items["k5"] = object()
    with pytest.raises(TypeError, match="k5"):
        await backend.batch_set(items)
    assert await backend.size() == 0
    big: dict[str, Any] = {f"k{i}": i for i in range(3000)}
    big["k2999"] = {1, 2}
    with pytest.raises(TypeError, match="k2999"):
        await backend.batch_set(big)
    assert await backend.size() == 0


async def test_large_batches(backend: StoreBackend) -> None:
    model = await fill(backend, 5000)
    assert await backend.size() == 5000
    assert await backend.get("k04999") == model["k04999"]
    assert await backend.batch_delete([*list(model)[:3000], "nope"]) == 3000
    assert await backend.size() == 2000
    assert await backend.keys() == list(model)[3000:]


async def test_batch_argument_types(backend: StoreBackend) -> None:
    for bad in (42, "abc", b"abc", None, [1, 2], [("a", 1, 2)]):
        with pytest.raises(TypeError):
            await backend.batch_set(bad)  # type: ignore[arg-type]
    for bad_keys in ("abc", b"abc", 42, None):
        with pytest.raises(TypeError):
            await backend.batch_delete(bad_keys)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await backend.batch_delete(["ok", 1.5])
    assert await backend.size() == 0


# ---- scans ------------------------------------------------------------------------------


async def test_keys_values_items_in_key_order(backend: StoreBackend) -> None:
    data = {"b": 2, "a": 1, "c": 3, "ab": 12}
    for k, v in data.items():
        await backend.set(k, v)
    assert await backend.keys() == ["a", "ab", "b", "c"]
    assert await backend.values() == [1, 12, 2, 3]
    assert await backend.items() == [("a", 1), ("ab", 12), ("b", 2), ("c", 3)]


async def test_prefix_filters(backend: StoreBackend) -> None:
    for k in ["user:1", "user:2", "user:10", "users", "use", "order:1", "user;"]:
        await backend.set(k, k)
    assert await backend.keys("user:") == ["user:1", "user:10", "user:2"]
    assert await backend.keys(prefix=b"user:") == ["user:1", "user:10", "user:2"]
    assert [k for k, _ in await backend.items("user")] == [
        "user:1",
        "user:10",
        "user:2",
        "user;",
        "users",
    ]
    assert await backend.keys("nothing") == []
    assert len(await backend.keys("")) == 7
    assert await backend.items("order:") == [("order:1", "order:1")]


async def test_prefix_of_0xff_bytes(backend: StoreBackend) -> None:
    await backend.batch_set({b"\xff": 1, b"\xff\xff": 2, b"\xff\xff\x00": 3, b"\xfe": 4})
    assert await backend.keys(prefix=b"\xff\xff") == [b"\xff\xff", b"\xff\xff\x00"]
    assert len(await backend.keys(prefix=b"\xff")) == 3


async def test_scan_ranges_are_half_open(backend: StoreBackend) -> None:
    await fill(backend, 20)
    it = await backend.scan(start_key="k00005", end_key="k00008")
    assert [k for k, _ in it] == ["k00005", "k00006", "k00007"]
    assert [k for k, _ in await backend.scan(start_key="k00018")] == ["k00018", "k00019"]
    assert [k for k, _ in await backend.scan(end_key="k00002")] == ["k00000", "k00001"]
    assert list(await backend.scan(start_key="k00008", end_key="k00005")) == []
    assert list(await backend.scan(start_key="k00005", end_key="k00005")) == []
    assert list(await backend.scan(end_key="")) == []
    assert len(list(await backend.scan())) == 20


async def test_scan_limits(backend: StoreBackend) -> None:
    await fill(backend, 30)
    assert [k for k, _ in await backend.scan(limit=3)] == ["k00000", "k00001", "k00002"]
    assert list(await backend.scan(limit=0)) == []
    assert len(list(await backend.scan(limit=1000))) == 30
    assert [k for k, _ in await backend.scan(start_key="k00028", limit=5)] == ["k00028", "k00029"]


async def test_scan_prefix_and_range_intersect(backend: StoreBackend) -> None:
    await fill(backend, 10, prefix="a:")
    await fill(backend, 10, prefix="b:")
    got = await backend.scan(prefix="b:", start_key="a:00005", end_key="b:00003")
    assert [k for k, _ in got] == ["b:00000", "b:00001", "b:00002"]
    got = await backend.scan(prefix="a:", start_key="a:00008")
    assert [k for k, _ in got] == ["a:00008", "a:00009"]
    got = await backend.scan(prefix="b:", end_key="a:9")
    assert list(got) == []
    got = await backend.scan(prefix="b:", limit=2)
    assert got.__class__ is not list and [k for k, _ in got] == ["b:00000", "b:00001"]


async def test_scan_streams_with_async_for(backend: StoreBackend) -> None:
    model = await fill(backend, 2500)  # more than two chunks
    seen = [(k, v) async for k, v in backend.scan()]
    assert seen == sorted(model.items())
    limited = [k async for k, _ in backend.scan(prefix="k01", limit=150)]
    assert limited == [f"k01{i:03d}" for i in range(150)]
    assert [k async for k, _ in backend.scan(limit=0)] == []
    assert isinstance(backend.scan(), ScanResult)


async def test_scan_stream_can_stop_early(backend: StoreBackend) -> None:
    await fill(backend, 3000)
    n = 0
    async for _k, _v in backend.scan():
        n += 1
        if n == 10:
            break
    assert n == 10
    assert await backend.size() == 3000


async def test_scan_argument_errors(backend: StoreBackend) -> None:
    with pytest.raises(TypeError):
        backend.scan(limit="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        backend.scan(limit=2.0)  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError):
        backend.scan(limit=-1)
    with pytest.raises(TypeError):
        backend.scan(prefix=1.5)
    with pytest.raises(TypeError):
        backend.scan(start_key=1.5)
    with pytest.raises(TypeError):
        await backend.keys(prefix=[1])


async def test_typed_keys_with_the_order_preserving_codec(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, options={"key_codec": "key"})
    await b.start()
    await b.batch_set({("user", i): {"i": i} for i in (-5, 0, 3, 10, 200, 70000)})
    await b.batch_set({("order", i): i for i in range(3)})
    assert await b.keys(prefix=("user",)) == [("user", i) for i in (-5, 0, 3, 10, 200, 70000)]
    got = await b.scan(start_key=("user", 0), end_key=("user", 200))
    assert [k for k, _ in got] == [("user", 0), ("user", 3), ("user", 10)]
    assert await b.get(("user", 70000)) == {"i": 70000}
    await b.set(42, "int key")
    assert await b.get(42) == "int key"


async def test_size_and_clear(backend: StoreBackend) -> None:
    assert await backend.size() == 0
    await fill(backend, 1200)
    assert await backend.size() == 1200
    await backend.clear()
    assert await backend.size() == 0
    assert await backend.keys() == []
    assert await backend.get("k00001") is None
    await backend.set("after", 1)
    assert await backend.items() == [("after", 1)]
    await backend.clear()
    await backend.clear()
    assert await backend.size() == 0


# ---- lifecycle --------------------------------------------------------------------------


async def test_use_after_stop_raises_closed_error(kind: str, make_backend: Any) -> None:
    b = make_backend(kind)
    await b.start()
    await b.set("k", 1)
    await b.stop()
    await b.stop()  # idempotent
    calls = [
        lambda: b.get("k"),
        lambda: b.set("k", 2),
        lambda: b.delete("k"),
        lambda: b.exists("k"),
        lambda: b.keys(),
        lambda: b.values(),
        lambda: b.items(),
        lambda: b.size(),
        lambda: b.clear(),
        lambda: b.batch_set({"a": 1}),
        lambda: b.batch_delete(["a"]),
        lambda: b.batch_get(["a"]),
        lambda: b.get_stats(),
        lambda: b.backup("/nonexistent/backup"),
        lambda: b.restore("/nonexistent/backup"),
        lambda: b.begin_transaction(),
        lambda: _await_scan(b),
        lambda: _iterate_scan(b),
    ]
    for call in calls:
        with pytest.raises(weir.ClosedError):
            await call()
    await b.start()
    expected = None if kind == "memory" else 1
    assert await b.get("k") == expected
    await b.start()  # idempotent


async def _await_scan(b: StoreBackend) -> Any:
    return await b.scan()


async def _iterate_scan(b: StoreBackend) -> Any:
    return [x async for x in b.scan()]  # type: ignore[attr-defined]


async def test_async_context_manager(kind: str, make_backend: Any) -> None:
    b = make_backend(kind)
    async with b as started:
        assert started is b
        await b.set("k", 1)
    with pytest.raises(weir.ClosedError):
        await b.get("k")


@pytest.mark.parametrize("kind", PERSISTENT)
async def test_data_survives_stop_and_a_new_backend(kind: str, make_backend: Any) -> None:
    b = make_backend(kind)
    await b.start()
    model = await fill(b, 300)
    await b.set("single", {"x": 1})
    await b.delete("k00000")
    await b.stop()
    namespace = {"options": {"namespace": b.namespace.decode()}} if kind == "redis" else {}
    path = {} if kind == "redis" else {"path": b.config.path}
    b2 = make_backend(kind, **namespace, **path)
    await b2.start()
    assert await b2.size() == 300
    assert await b2.get("single") == {"x": 1}
    assert await b2.get("k00000") is None
    assert await b2.get("k00299") == model["k00299"]


# ---- directories and locks ---------------------------------------------------------------


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_path_that_is_a_file(kind: str, make_backend: Any, tmp_path: pathlib.Path) -> None:
    f = tmp_path / "a-file"
    f.write_text("not a database")
    b = make_backend(kind, path=f)
    with pytest.raises(weir.InvalidArgumentError, match="not a directory"):
        await b.start()
    assert f.read_text() == "not a database"
    with pytest.raises(weir.ClosedError):
        await b.get("k")


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_second_backend_on_a_path_in_use_is_busy(kind: str, make_backend: Any) -> None:
    first = make_backend(kind)
    await first.start()
    second = make_backend(kind, path=first.config.path)
    with pytest.raises(weir.BusyError):
        await second.start()
    await first.stop()
    await second.start()
    await second.set("k", 1)


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_path_locked_by_another_process_is_busy(
    kind: str, make_backend: Any, tmp_path: pathlib.Path, child_env: dict[str, str]
) -> None:
    path = tmp_path / "shared"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from weir.stores import StoreBackendConfig, create_backend
        async def main():
            b = create_backend(StoreBackendConfig(backend_type={kind!r}, path={str(path)!r}))
            await b.start()
            await b.set("owner", "child")
            print("ready", flush=True)
            sys.stdin.readline()
            await b.stop()
        asyncio.run(main())
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        b = make_backend(kind, path=path)
        with pytest.raises(weir.BusyError):
            await b.start()
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.close()
        assert child.wait(30) == 0
    await b.start()
    assert await b.get("owner") == "child"


# ---- crash atomicity (weir) ----------------------------------------------------------------

_CRASH_WRITER = """
import asyncio, sys
from weir.stores import StoreBackendConfig, create_backend

N = {n}

async def main():
    b = create_backend(StoreBackendConfig(path={path!r}))
    await b.start()
    gen = int(sys.argv[1])
    while True:
        gen += 1
        keys = [f"key{{i:04d}}" for i in range(N)]
        if gen % 3 == 0:
            await b.batch_delete(keys)
        else:
            await b.batch_set({{k: {{"gen": gen, "pad": "x" * (gen % 200)}} for k in keys}})
        print(gen, flush=True)

asyncio.run(main())
"""


async def test_weir_batches_are_all_or_nothing_across_sigkill(
    tmp_path: pathlib.Path, child_env: dict[str, str]
) -> None:
    """A writer applies batches of N keys (all set to one generation, or all
    deleted) and is SIGKILLed at random moments; after each crash every key
    must belong to the same batch, and no acknowledged batch may be lost."""
    n = 600
    path = str(tmp_path / "crash")
    script = _CRASH_WRITER.format(n=n, path=path)
    rng = random.Random(0xC0FFEE)
    gen = 0
    for _round in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(gen)],
            stdout=subprocess.PIPE,
            env=child_env,
            text=True,
        )
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.strip(), "writer died before its first batch"
        acked = int(first)
        await asyncio.sleep(rng.uniform(0.02, 0.4))
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
        lines = rest.split()
        if lines:
            acked = int(lines[-1])
        b = create_backend(StoreBackendConfig(path=path))
        await b.start()
        items = await b.items()
        await b.stop()
        if not items:
            # The last applied batch was a delete: acknowledged or the next one.
            assert acked % 3 == 0 or (acked + 1) % 3 == 0, (acked, "unexpected empty store")
            recovered = acked if acked % 3 == 0 else acked + 1
        else:
            assert len(items) == n, f"partial batch: {len(items)} of {n} keys"
            gens = {v["gen"] for _, v in items}
            assert len(gens) == 1, f"keys from several batches: {sorted(gens)[:5]}"
            recovered = gens.pop()
            assert recovered in (acked, acked + 1), (recovered, acked)
        gen = recovered


# ---- concurrency -----------------------------------------------------------------------


async def test_many_concurrent_tasks(backend: StoreBackend) -> None:
    """Tasks own disjoint key ranges and check their own reads as they go;
    scans and counts run alongside. The final state must match the model."""
    model: dict[str, Any] = {}

    async def worker(w: int) -> None:
        rng = random.Random(w)
        mine: dict[str, Any] = {}
        for step in range(120):
            k = f"w{w:02d}:{rng.randrange(40):03d}"
            op = rng.random()
            if op < 0.5:
                v = {"w": w, "step": step}
                await backend.set(k, v)
                mine[k] = v
            elif op < 0.7:
                assert await backend.delete(k) == (k in mine)
                mine.pop(k, None)
            elif op < 0.85:
                batch = {f"w{w:02d}:{rng.randrange(40):03d}": step for _ in range(5)}
                await backend.batch_set(batch)
                mine.update(batch)
            else:
                assert await backend.get(k) == mine.get(k)
            if step % 40 == 0:
                got = dict(await backend.items(prefix=f"w{w:02d}:"))
                assert got == mine
        model.update(mine)

    async def reader() -> None:
        for _ in range(10):
            await backend.size()
            async for _k, _v in backend.scan(limit=200):
                pass
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(w) for w in range(30)), reader(), reader())
    assert dict(await backend.items()) == model
    assert await backend.size() == len(model)


async def test_big_scan_leaves_the_event_loop_free(backend: StoreBackend) -> None:
    await fill(backend, 30000)
    ticks = 0
    done = False

    async def heartbeat() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    hb = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    start = ticks
    items = await backend.items()
    done = True
    await hb
    assert len(items) == 30000
    assert ticks - start > 1, "the loop ran nothing else while a 30,000-item scan ran"


async def test_stop_waits_for_work_in_flight(kind: str, make_backend: Any) -> None:
    b = make_backend(kind)
    await b.start()
    big = {f"k{i:05d}": {"i": i} for i in range(20000)}
    writer = asyncio.create_task(b.batch_set(big))
    await asyncio.sleep(0)
    await b.stop()
    try:
        await writer
        finished = True
    except weir.ClosedError:
        finished = False
    await b.start()
    n = await b.size()
    if kind == "memory":
        assert n == 0  # stop() drops the memory backend's data
    else:
        assert n == (20000 if finished else 0)


async def test_stop_while_a_stream_is_open(backend: StoreBackend) -> None:
    await fill(backend, 3000)
    stream = backend.scan().__aiter__()
    first = await stream.__anext__()
    assert first[0] == "k00000"
    await backend.stop()
    with pytest.raises(weir.ClosedError):
        async for _ in stream:
            pass
    await backend.start()  # the store can be reopened: nothing pins it


# ---- transactions --------------------------------------------------------------------------


async def test_transaction_commit_and_read_your_writes(backend: StoreBackend) -> None:
    await backend.set("acct:a", {"balance": 100})
    await backend.set("acct:b", {"balance": 0})
    txn = await backend.begin_transaction()
    assert isinstance(txn, Transaction)
    native = backend.backend_type == "weir"
    assert isinstance(txn, EngineTransaction if native else StoreTransaction)
    a = await txn.get("acct:a")
    b = await txn.get("acct:b")
    await txn.set("acct:a", {"balance": a["balance"] - 30})
    await txn.set("acct:b", {"balance": b["balance"] + 30})
    assert await txn.get("acct:a") == {"balance": 70}
    assert await backend.get("acct:a") == {"balance": 100}  # not yet visible
    assert await txn.delete("acct:c") is False
    await txn.set("acct:c", 1)
    assert await txn.delete("acct:c") is True
    assert await txn.get("acct:c") is None
    await backend.commit_transaction(txn)
    assert await backend.get("acct:a") == {"balance": 70}
    assert await backend.get("acct:b") == {"balance": 30}
    assert await backend.exists("acct:c") is False
    with pytest.raises(weir.InvalidArgumentError, match="already committed"):
        await backend.commit_transaction(txn)
    with pytest.raises(weir.InvalidArgumentError, match="already committed"):
        await txn.set("x", 1)
    await backend.rollback_transaction(txn)  # finished: nothing to do


async def test_transaction_rollback_discards(backend: StoreBackend) -> None:
    await backend.set("k", 1)
    txn = await backend.begin_transaction()
    await txn.set("k", 2)
    await txn.delete("k")
    await txn.set("new", 3)
    await backend.rollback_transaction(txn)
    assert await backend.get("k") == 1
    assert await backend.get("new") is None
    assert txn.state == "rolled back"  # type: ignore[attr-defined]


async def test_transaction_conflict_writes_nothing(backend: StoreBackend) -> None:
    await backend.set("counter", 1)
    txn = await backend.begin_transaction()
    v = await txn.get("counter")
    await txn.set("counter", v + 1)
    await txn.set("other", "from txn")
    await backend.set("counter", 10)  # someone else, meanwhile
    with pytest.raises(TransactionConflictError, match="counter"):
        await backend.commit_transaction(txn)
    assert await backend.get("counter") == 10
    assert await backend.get("other") is None
    assert isinstance(TransactionConflictError("x"), weir.Error)


async def test_transaction_conflict_on_a_key_that_appeared(backend: StoreBackend) -> None:
    txn = await backend.begin_transaction()
    assert await txn.get("slot") is None
    await txn.set("slot", "mine")
    await backend.set("slot", "theirs")
    with pytest.raises(TransactionConflictError):
        await backend.commit_transaction(txn)
    assert await backend.get("slot") == "theirs"


async def test_blind_writes_conflict_only_on_the_weir_backend(backend: StoreBackend) -> None:
    txn = await backend.begin_transaction()
    await txn.set("k", "txn")
    await backend.set("k", "direct")
    if backend.backend_type == "weir":
        # Engine transactions check the keys they write as well as those
        # they read: the first writer since the snapshot wins.
        with pytest.raises(TransactionConflictError, match='"k"'):
            await backend.commit_transaction(txn)
        assert await backend.get("k") == "direct"
    else:
        # Store-level transactions check only what they read.
        await backend.commit_transaction(txn)
        assert await backend.get("k") == "txn"
    txn = await backend.begin_transaction()
    await txn.set("untouched", 1)
    await backend.set("other", 2)
    await backend.commit_transaction(txn)
    assert await backend.get("untouched") == 1


async def test_transaction_as_context_manager(backend: StoreBackend) -> None:
    async with backend.transaction() as txn:  # type: ignore[attr-defined]
        await txn.set("a", 1)
    assert await backend.get("a") == 1
    with pytest.raises(RuntimeError):
        async with backend.transaction() as txn:  # type: ignore[attr-defined]
            await txn.set("a", 2)
            raise RuntimeError("boom")
    assert await backend.get("a") == 1


async def test_concurrent_increments_with_retries_lose_nothing(backend: StoreBackend) -> None:
    await backend.set("n", 0)
    conflicts = 0

    async def incr() -> None:
        nonlocal conflicts
        while True:
            txn = await backend.begin_transaction()
            v = await txn.get("n")
            await asyncio.sleep(0)  # let the others interleave
            await txn.set("n", v + 1)
            try:
                await backend.commit_transaction(txn)
                return
            except TransactionConflictError:
                conflicts += 1

    await asyncio.gather(*(incr() for _ in range(25)))
    assert await backend.get("n") == 25
    assert conflicts > 0


async def test_transaction_bad_input(backend: StoreBackend, make_backend: Any) -> None:
    txn = await backend.begin_transaction()
    with pytest.raises(TypeError):
        await txn.set("k", object())
    with pytest.raises(TypeError):
        await txn.get(1.5)
    with pytest.raises(TypeError):
        await backend.commit_transaction("not a transaction")
    other = make_backend("memory")
    await other.start()
    with pytest.raises(weir.InvalidArgumentError):
        await other.commit_transaction(txn)
    await backend.rollback_transaction(txn)


# ---- backup and restore ------------------------------------------------------------------


async def test_backup_and_restore(backend: StoreBackend, tmp_path: pathlib.Path) -> None:
    model = await fill(backend, 1500)
    await backend.set(b"\xffbin", {"bin": True})
    target = tmp_path / "backup"
    await backend.backup(target)
    assert target.exists()
    await backend.set("k00001", "changed")
    await backend.set("new", 1)
    await backend.batch_delete(["k00002", "k00003"])
    await backend.restore(target)
    assert await backend.size() == 1501
    assert await backend.get("k00001") == model["k00001"]
    assert await backend.get("k00002") == model["k00002"]
    assert await backend.get("new") is None
    assert await backend.get(b"\xffbin") == {"bin": True}
    await backend.set("after", 2)  # still writable
    assert await backend.get("after") == 2
    with pytest.raises(FileExistsError):
        await backend.backup(target)
    with pytest.raises(FileNotFoundError):
        await backend.restore(tmp_path / "missing")


async def test_restore_into_another_backend_of_the_same_type(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    a = make_other(make_backend, kind, tmp_path, "a")
    await a.start()
    await fill(a, 100)
    await a.backup(tmp_path / "bk")
    b = make_other(make_backend, kind, tmp_path, "b")
    await b.start()
    await b.set("only-in-b", 1)
    await b.restore(tmp_path / "bk")
    assert await b.items() == await a.items()


async def test_backup_is_one_moment_while_writes_continue(
    backend: StoreBackend, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    """Every batch rewrites all 50 keys with one number: a backup holding
    two different numbers would have caught a batch half-way."""
    await backend.batch_set({f"pair:{j:02d}": 0 for j in range(50)})
    stop = False

    async def writer() -> None:
        i = 0
        while not stop:
            i += 1
            await backend.batch_set({f"pair:{j:02d}": i for j in range(50)})
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.02)
    await backend.backup(tmp_path / "bk")
    stop = True
    await task
    other = make_other(make_backend, backend.backend_type, tmp_path, "copy")
    await other.start()
    await other.restore(tmp_path / "bk")
    assert len(await other.keys()) == 50
    assert len(set(await other.values())) == 1


async def test_restore_refuses_garbage(backend: StoreBackend, tmp_path: pathlib.Path) -> None:
    await backend.set("keep", 1)
    junk = tmp_path / "junk"
    if isinstance(backend, (WeirBackend, RocksDBBackend)):
        junk.mkdir()
        (junk / "CURRENT").write_text("garbage\n")
        with pytest.raises(weir.Error):
            await backend.restore(junk)
        with pytest.raises(weir.InvalidArgumentError):
            await backend.restore(__file__)
    else:
        junk.write_bytes(b"not a dump")
        with pytest.raises(weir.CorruptionError, match="bad magic"):
            await backend.restore(junk)
        await backend.backup(tmp_path / "good")
        data = (tmp_path / "good").read_bytes()
        (tmp_path / "torn").write_bytes(data[:-5])
        with pytest.raises(weir.CorruptionError):
            await backend.restore(tmp_path / "torn")
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x40
        (tmp_path / "flipped").write_bytes(bytes(flipped))
        with pytest.raises(weir.CorruptionError):
            await backend.restore(tmp_path / "flipped")
    assert await backend.items() == [("keep", 1)]


async def test_readers_never_see_half_a_restore(
    backend: StoreBackend, tmp_path: pathlib.Path
) -> None:
    await backend.batch_set({"a": "old", "b": "old"})
    await backend.backup(tmp_path / "old")
    await backend.batch_set({"a": "new", "b": "new"})
    await backend.backup(tmp_path / "new")
    stop = False
    seen: set[tuple[Any, Any]] = set()

    async def reader() -> None:
        while not stop:
            pair = tuple(await backend.batch_get(["a", "b"]))  # type: ignore[attr-defined]
            seen.add(pair)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(reader()) for _ in range(3)]
    for i in range(4):
        await backend.restore(tmp_path / ("old" if i % 2 == 0 else "new"))
    stop = True
    await asyncio.gather(*tasks)
    assert seen <= {("old", "old"), ("new", "new")}, seen


# ---- stats --------------------------------------------------------------------------------


async def test_get_stats(backend: StoreBackend) -> None:
    await fill(backend, 42)
    stats = await backend.get_stats()
    assert stats["backend_type"] == backend.backend_type
    assert stats["backend_type"] in ("weir", "memory", "rocksdb", "redis")
    assert stats["keys"] == 42
    assert stats["keys_exact"] is True
    assert "bytes_on_disk" in stats
    assert isinstance(stats["engine"], dict) and stats["engine"]
    if backend.backend_type in PATH_BACKENDS:
        assert stats["bytes_on_disk"] > 0
    if backend.backend_type == "weir":
        assert stats["engine"]["writes"] >= 1
        assert "levels" in stats["engine"]


# ---- TTL ------------------------------------------------------------------------------------


async def test_ttl_hides_expired_values(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, ttl_seconds=1.0)
    await b.start()
    await b.set("a", 1)
    await b.batch_set({"b": 2, "c": 3})
    assert await b.get("a") == 1
    assert await b.size() == 3
    await asyncio.sleep(0.6)
    await b.set("c", 33)  # a rewrite restarts the clock
    await asyncio.sleep(0.6)
    assert await b.get("a") is None
    assert await b.exists("b") is False
    assert await b.get("c") == 33
    assert await b.keys() == ["c"]
    assert await b.items() == [("c", 33)]
    assert [k async for k, _ in b.scan()] == ["c"]
    assert await b.size() == 1
    assert await b.delete("a") is False
    assert await b.batch_delete(["a", "b", "c"]) == 1
    txn = await b.begin_transaction()
    await txn.set("t", 1)
    await b.commit_transaction(txn)
    assert await b.get("t") == 1
    await asyncio.sleep(1.1)
    assert await b.get("t") is None
    assert await b.size() == 0


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_ttl_survives_restart(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, ttl_seconds=1.0)
    await b.start()
    await b.set("k", "v")
    await b.stop()
    b2 = make_backend(kind, ttl_seconds=1.0, path=b.config.path)
    await b2.start()
    assert await b2.get("k") == "v"
    await asyncio.sleep(1.1)
    assert await b2.get("k") is None


# ---- memory specifics -------------------------------------------------------------------------


async def test_memory_max_size_evicts_least_recently_used(make_backend: Any) -> None:
    b = make_backend("memory", max_size=3)
    await b.start()
    await b.batch_set({"a": 1, "b": 2, "c": 3})
    assert await b.get("a") == 1  # "a" is now the most recently used
    await b.set("d", 4)  # evicts "b"
    assert await b.keys() == ["a", "c", "d"]
    await b.set("c", 30)  # an update is a use too
    await b.set("e", 5)  # evicts "a"
    assert await b.keys() == ["c", "d", "e"]
    assert await b.size() == 3
    stats = await b.get_stats()
    assert stats["engine"]["evictions"] == 2
    assert stats["max_size"] == 3


async def test_memory_ttl_sweep_drops_dead_keys(make_backend: Any) -> None:
    b = make_backend("memory", ttl_seconds=0.05)
    await b.start()
    await b.batch_set({f"k{i}": i for i in range(100)})
    await asyncio.sleep(0.1)
    await b.set("fresh", 1)  # a write sweeps what has expired
    stats = await b.get_stats()
    assert stats["engine"]["entries"] == 1
    assert stats["engine"]["expirations"] == 100


async def test_persistent_backends_warn_on_max_size(
    make_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    b = make_backend("weir", max_size=10)
    with caplog.at_level("WARNING", logger="weir.stores"):
        await b.start()
    assert "ignores max_size" in caplog.text


# ---- weir specifics -------------------------------------------------------------------------


async def test_weir_options_reach_the_engine(make_backend: Any) -> None:
    b = make_backend(
        "weir", compression="lz4", options={"sync": "fsync", "write_buffer_size": 1 << 20}
    )
    await b.start()
    await fill(b, 10)
    stats = await b.get_stats()
    assert stats["engine"]["compression"] == "lz4"
    assert stats["engine"]["wal_syncs"] >= 1
    bad = make_backend("weir", options={"sync": "sometimes"}, path=b.config.path.parent / "bad")
    with pytest.raises(weir.InvalidArgumentError):
        await bad.start()


async def test_weir_backup_is_an_openable_database(
    make_backend: Any, tmp_path: pathlib.Path
) -> None:
    b = make_backend("weir")
    await b.start()
    await b.batch_set({"a": 1, "b": 2})
    await b.backup(tmp_path / "copy")
    with weir.DB(tmp_path / "copy", create_if_missing=False) as db:
        # The default codec's bytes: msgpack, 1 and 2 are single bytes.
        assert dict(db.items()) == {b"a": b"\x01", b"b": b"\x02"}


async def test_redis_namespaces_are_isolated(make_backend: Any) -> None:
    a = make_backend("redis", options={"namespace": "iso-a"})
    b = make_backend("redis", options={"namespace": "iso-b"})
    await a.start()
    await b.start()
    await a.set("k", "a")
    await b.set("k", "b")
    await a.clear()
    assert await a.get("k") is None
    assert await b.get("k") == "b"
    assert await b.keys() == ["k"]


async def test_redis_server_down_is_a_storage_io_error(make_backend: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = make_backend("redis", options={"url": f"redis://127.0.0.1:{port}/0", "socket_timeout": 2})
    with pytest.raises(weir.StorageIOError):
        await b.start()
    assert isinstance(weir.StorageIOError("x"), OSError)


# ---- the byte-level interface of the layers above ----------------------------------------


async def test_codec_access_round_trips(backend: StoreBackend) -> None:
    ek = backend.encode_key("user:1")
    assert ek == b"user:1" and backend.decode_key(ek) == "user:1"
    assert backend.decode_key(b"\xff") == b"\xff"
    payload = backend.encode_value("user:1", {"n": 1, "t": (1, 2)})
    assert backend.value_codec.decode(payload) == {"n": 1, "t": [1, 2]}
    assert backend.decode_value("user:1", payload) == {"n": 1, "t": [1, 2]}
    assert backend.key_codec.encode("x") == b"x"
    with pytest.raises(TypeError, match="user:2"):
        backend.encode_value("user:2", {1, 2})
    with pytest.raises(weir.CorruptionError, match="user:3"):
        backend.decode_value("user:3", b"\xc1")  # never used in msgpack
    with pytest.raises(TypeError):
        backend.encode_key(3.5)
    assert backend.started
    await backend.stop()
    assert not backend.started


async def test_apply_is_one_atomic_write_of_encoded_data(backend: StoreBackend) -> None:
    await backend.batch_set({f"a{i}": i for i in range(5)} | {"b1": 1, "b2": 2, "c": 3})
    enc = backend.encode_value
    await backend.apply(
        [(b"a9", enc("a9", "new")), (b"b2", enc("b2", "again"))],
        [b"c", b"absent"],
        clear_range=(b"a", b"b"),
    )
    assert await backend.items() == [("a9", "new"), ("b1", 1), ("b2", "again")]
    # An unbounded clear, then puts: exactly the puts remain.
    await backend.apply([(b"z", enc("z", 1))], clear_range=(None, None))
    assert await backend.items() == [("z", 1)]
    await backend.apply()  # nothing at all is fine
    many = [(f"m{i:05d}".encode(), enc("m", i)) for i in range(3000)]
    await backend.apply(many, [b"z"])
    assert await backend.size() == 3000
    assert await backend.get("m02999") == 2999


async def test_apply_checks_everything_before_writing(backend: StoreBackend) -> None:
    await backend.set("keep", 1)
    good = (b"new", backend.encode_value("new", 1))
    for puts, deletes in (
        ([good, ("str-key", b"v")], []),
        ([good, (b"k", "not bytes")], []),
        ([good, (b"k",)], []),
        ([good], ["str-key"]),
    ):
        with pytest.raises(TypeError):
            await backend.apply(puts, deletes)  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError, match="exceeds"):
        await backend.apply([good, (b"x" * (MiB + 1), b"v")])
    with pytest.raises(weir.InvalidArgumentError, match="above"):
        await backend.apply([good], clear_range=(b"b", b"a"))
    with pytest.raises(TypeError):
        await backend.apply([good], clear_range=b"ab")  # type: ignore[arg-type]
    assert await backend.items() == [("keep", 1)]
    await backend.stop()
    with pytest.raises(weir.ClosedError):
        await backend.apply([good])


async def test_snapshot_range_and_restore_range(backend: StoreBackend) -> None:
    await backend.batch_set({"p:1": {"a": 1}, "p:2": [1, 2], "q:1": "other", "o": 0})
    snap = await backend.snapshot_range(b"p:", b"p;")
    assert [k for k, _ in snap] == [b"p:1", b"p:2"]
    assert backend.decode_value("p:1", snap[0][1]) == {"a": 1}
    await backend.batch_set({"p:1": "changed", "p:3": "added"})
    await backend.restore_range(b"p:", b"p;", snap)
    assert await backend.items() == [("o", 0), ("p:1", {"a": 1}), ("p:2", [1, 2]), ("q:1", "other")]
    everything = await backend.snapshot_range()
    assert len(everything) == 4
    await backend.restore_range(None, None, [])
    assert await backend.size() == 0
    await backend.restore_range(None, None, everything)
    assert await backend.size() == 4
    with pytest.raises(weir.InvalidArgumentError, match="outside"):
        await backend.restore_range(b"p:", b"p;", [(b"q:1", snap[0][1])])
    with pytest.raises(weir.InvalidArgumentError):
        await backend.snapshot_range(b"z", b"a")
    assert await backend.size() == 4


async def test_apply_and_snapshots_honour_ttl(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, ttl_seconds=1.0)
    await b.start()
    await b.apply([(b"k", b.encode_value("k", "v"))])
    assert await b.get("k") == "v"
    [(key, payload)] = await b.snapshot_range()
    assert key == b"k" and b.decode_value("k", payload) == "v"  # no expiry header
    await asyncio.sleep(1.3)
    assert await b.get("k") is None
    assert await b.snapshot_range() == []


def test_backend_registry(tmp_path: pathlib.Path) -> None:
    from weir.stores import backend_types, register_backend

    assert backend_types()[:4] == ["weir", "memory", "rocksdb", "redis"]

    class Mine(MemoryBackend):
        backend_type = "mine"

    register_backend("Mine", Mine)
    try:
        assert isinstance(create_backend(StoreBackendConfig(backend_type="mine")), Mine)
        assert "mine" in backend_types()
    finally:
        from weir.stores import base

        base._REGISTRY.pop("mine")
    with pytest.raises(weir.InvalidArgumentError, match="unknown backend_type 'mine'"):
        create_backend(StoreBackendConfig(backend_type="mine"))
    with pytest.raises(TypeError):
        register_backend("x", "not callable")  # type: ignore[arg-type]


# ---- restore verifies the whole backup first -----------------------------------------------


def _rewrite_with_a_flipped_byte(path: pathlib.Path, offset: int) -> None:
    """Flip one byte of ``path`` in a new copy of the file: backups share
    their table files with the live store through hard links."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.unlink()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_restore_of_a_damaged_backup_changes_nothing(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    b = make_backend(kind, options={"write_buffer_size": 1 << 20})
    await b.start()
    await b.batch_set({f"k{i:06d}": {"i": i, "pad": "x" * 100} for i in range(5000)})
    await b.backup(tmp_path / "bk")
    tables = sorted((tmp_path / "bk").glob("*.sst"), key=lambda p: p.stat().st_size)
    assert tables, "the backup holds no table"
    _rewrite_with_a_flipped_byte(tables[-1], 200)  # inside the first data blocks
    await b.batch_set({"after": 1})
    before = await b.items()
    with pytest.raises(weir.CorruptionError) as info:
        await b.restore(tmp_path / "bk")
    assert str(tmp_path / "bk") in str(info.value)
    assert ".restore-" not in str(info.value)
    assert await b.items() == before
    # Nothing staged is left beside the store.
    assert [p.name for p in b.config.path.parent.iterdir() if ".restore-" in p.name] == []


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_restore_of_a_directory_that_is_no_backup(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    b = make_backend(kind)
    await b.start()
    await b.set("keep", 1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(weir.InvalidArgumentError, match="no CURRENT file") as info:
        await b.restore(empty)
    assert str(empty) in str(info.value)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "CURRENT").write_text("garbage\n")
    with pytest.raises(weir.Error) as info2:
        await b.restore(junk)
    assert str(junk) in str(info2.value)
    assert ".restore-" not in str(info2.value)
    assert await b.items() == [("keep", 1)]


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_restore_of_a_directory_into_a_dump_backend(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    b = make_backend(kind)
    await b.start()
    await b.set("keep", 1)
    with pytest.raises(weir.InvalidArgumentError, match="is a directory, not a"):
        await b.restore(tmp_path)
    assert await b.items() == [("keep", 1)]


BACKUP_ON_A_FULL_DISK = textwrap.dedent(
    r"""
    import asyncio, json, os, sys
    import weir
    from weir.stores import StoreBackendConfig, create_backend

    mnt = sys.argv[1]

    async def main():
        out = {}
        for kind in ("memory", "weir"):
            path = None if kind == "memory" else os.path.join(sys.argv[2], "db")
            b = create_backend(StoreBackendConfig(backend_type=kind, path=path))
            await b.start()
            await b.batch_set({f"k{i:06d}": os.urandom(200).hex() for i in range(8000)})
            target = os.path.join(mnt, f"bk-{kind}")
            try:
                await b.backup(target)
            except weir.NoSpaceError as e:
                out[kind] = {"message": str(e), "status": e.status, "errno": e.errno}
            out[kind + "_left"] = sorted(os.listdir(mnt))
            await b.set("still", "writable")
            out[kind + "_writable"] = await b.get("still") == "writable"
            await b.stop()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_backup_on_a_full_disk_says_what_to_do(
    tmp_path: pathlib.Path, child_env: dict[str, str]
) -> None:
    import json
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing: it is part of every Debian install")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    child = tmp_path / "child.py"
    child.write_text(BACKUP_ON_A_FULL_DISK)
    flags = ["--mount"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
    script = 'mount -t tmpfs -o size=1m weirbk "$1" && shift && exec "$@"'
    cmd = [unshare, *flags, "sh", "-c", script, "sh", str(mnt)]
    cmd += [sys.executable, str(child), str(mnt), str(tmp_path)]
    proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for kind in ("memory", "weir"):
        err = out[kind]
        assert err["status"] == "WEIR_NO_SPACE" and err["errno"] == 28
        assert "resumes writes" not in err["message"]
        assert "Free space there or back up to another file system" in err["message"]
        assert f"bk-{kind}" in err["message"]
        assert out[kind + "_left"] == []  # no partial file or directory left behind
        assert out[kind + "_writable"]


# ---- data written with the previous default codec (JSON) ---------------------------------


async def test_a_store_written_with_the_old_json_default_still_opens(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    """Stores wrote JSON by default before the default became msgpack:
    such a store opened with the default settings reads every old value,
    and old and new values live side by side."""
    old_values = {
        "digit": 7,
        "int": 48,
        "neg": -3,
        "float": 2.5,
        "str": "text",
        "list": [1, "a", None],
        "dict": {"name": "Acme Corp", "tier": "gold"},
        "true": True,
        "null": None,
    }
    old = make_other(make_backend, kind, tmp_path, "old", options={"value_codec": "json"})
    await old.start()
    await old.batch_set(old_values)
    if kind == "memory":
        await old.backup(tmp_path / "old.dump")
    else:
        await old.stop()
    new = make_other(make_backend, kind, tmp_path, "old")
    await new.start()
    if kind == "memory":
        await new.restore(tmp_path / "old.dump")
    assert dict(await new.items()) == old_values
    await new.batch_set({"new-int": 48, "new-dict": {1: (2, 3)}})
    assert await new.get("new-int") == 48
    assert await new.get("new-dict") == {1: [2, 3]}
    assert await new.get("int") == 48 and await new.get("digit") == 7
    assert (await new.get_stats())["value_codec"] == "default"


# ---- point reads, scans and counted writes of encoded data ------------------------------


async def test_read_contains_and_scan_range_of_encoded_data(backend: StoreBackend) -> None:
    model = await fill(backend, 2500)  # more than one chunk
    await backend.set("other", 1)
    payload = await backend.read(b"k00007")
    assert payload is not None and backend.decode_value("k00007", payload) == model["k00007"]
    assert await backend.read(b"absent") is None
    assert await backend.contains(b"k00007") and not await backend.contains(b"absent")
    chunks = [c async for c in backend.scan_range(b"k", b"l")]
    assert len(chunks) >= 2 and all(len(c) <= 1024 for c in chunks)
    pairs = [p for c in chunks for p in c]
    assert pairs == await backend.snapshot_range(b"k", b"l")
    key_chunks = [c async for c in backend.scan_range(b"k", b"l", values=False)]
    assert [k for c in key_chunks for k, _ in c] == [k for k, _ in pairs]
    assert [c async for c in backend.scan_range(b"x", b"y")] == []
    assert sum([len(c) async for c in backend.scan_range()]) == 2501
    with pytest.raises(TypeError):
        await backend.read("k00007")  # type: ignore[arg-type]
    with pytest.raises(weir.InvalidArgumentError):
        [c async for c in backend.scan_range(b"z", b"a")]
    await backend.stop()
    with pytest.raises(weir.ClosedError):
        await backend.read(b"k00007")


def _counted(prefix: bytes = b"r:") -> CountedRange:
    return CountedRange(b"c:" + prefix, prefix, prefix[:-1] + bytes([prefix[-1] + 1]))


async def test_counted_writes_keep_an_exact_count(backend: StoreBackend) -> None:
    rows, others = _counted(b"r:"), _counted(b"s:")
    enc = backend.encode_value
    assert await backend.count_range(rows) == 0
    present = await backend.write_counted(
        [
            (b"r:1", enc("r:1", 1), rows),
            (b"r:2", enc("r:2", 2), rows),
            (b"r:2", enc("r:2", 22), rows),  # again in the same write: it exists by then
            (b"r:3", None, rows),  # absent: nothing to remove
            (b"s:1", enc("s:1", "x"), others),
        ]
    )
    assert present == [False, False, True, False, False]
    assert await backend.count_range(rows) == 2 and await backend.count_range(others) == 1
    assert await backend.get("r:2") == 22 and await backend.get("r:3") is None
    assert await backend.put_counted(b"r:1", enc("r:1", 10), rows) is True
    assert await backend.put_counted(b"r:4", enc("r:4", 4), rows) is False
    assert await backend.delete_counted(b"r:2", rows) is True
    assert await backend.delete_counted(b"r:2", rows) is False
    assert await backend.count_range(rows) == 2
    assert [k for k, _ in await backend.snapshot_range(b"r:", b"r;")] == [b"r:1", b"r:4"]
    # The store's own reads see the count as a number, or (Redis) no key at all.
    assert await backend.get("c:r:") in (2, None)
    # A write that bypasses the count until recount_range rebuilds it.
    await backend.set("r:5", 5)
    assert await backend.recount_range(rows) == 3 == await backend.count_range(rows)
    await backend.clear_range(rows)
    assert await backend.count_range(rows) == 0
    assert await backend.snapshot_range(b"r:", b"r;") == []
    assert await backend.count_range(others) == 1 and await backend.get("s:1") == "x"
    many = [(f"r:{i:05d}".encode(), enc("r", i), rows) for i in range(3000)]
    assert await backend.write_counted(many) == [False] * 3000
    assert await backend.count_range(rows) == 3000
    assert await backend.write_counted([]) == []


async def test_count_range_counts_keys_written_before_the_counter(backend: StoreBackend) -> None:
    """Keys stored without the counted methods (e.g. by an earlier version)
    are counted once, the first time the count is needed."""
    rows = _counted(b"r:")
    await backend.batch_set({f"r:{i}": i for i in range(7)} | {"q": 0, "s": 0})
    assert await backend.count_range(rows) == 7
    await backend.put_counted(b"r:new", backend.encode_value("r:new", 1), rows)
    await backend.delete_counted(b"r:0", rows)
    assert await backend.count_range(rows) == 7


async def test_counted_writes_check_everything_before_writing(backend: StoreBackend) -> None:
    rows = _counted(b"r:")
    good = (b"r:1", backend.encode_value("r:1", 1), rows)
    for bad in ((b"s:1", b"v", rows), ("r:2", b"v", rows), (b"r:2", "v", rows), (b"r:2", b"v")):
        with pytest.raises((TypeError, weir.InvalidArgumentError)):
            await backend.write_counted([good, bad])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await backend.count_range((b"c", b"r:", b"r;"))  # type: ignore[arg-type]
    assert await backend.snapshot_range() == []
    assert await backend.count_range(rows) == 0
    with pytest.raises(weir.InvalidArgumentError, match="inside"):
        CountedRange(b"r:count", b"r:", b"r;")
    with pytest.raises(weir.InvalidArgumentError, match="not below"):
        CountedRange(b"c", b"r;", b"r:")
    with pytest.raises(TypeError):
        CountedRange("c", b"r:", b"r;")  # type: ignore[arg-type]
    await backend.stop()
    with pytest.raises(weir.ClosedError):
        await backend.write_counted([good])
    with pytest.raises(weir.ClosedError):
        await backend.count_range(rows)


@pytest.mark.parametrize("kind", BACKENDS)
async def test_counts_under_ttl_are_of_the_live_keys(kind: str, make_backend: Any) -> None:
    b = make_backend(kind, ttl_seconds=1.0)
    await b.start()
    rows = _counted(b"r:")
    await b.write_counted([(f"r:{i}".encode(), b.encode_value("r", i), rows) for i in range(4)])
    assert await b.count_range(rows) == 4
    await asyncio.sleep(1.3)
    assert await b.count_range(rows) == 0
    assert await b.get("c:r:") is None  # no counter is kept where values expire


async def test_memory_count_under_max_size_is_of_the_kept_keys(make_backend: Any) -> None:
    b = make_backend("memory", max_size=3)
    await b.start()
    rows = _counted(b"r:")
    await b.write_counted([(f"r:{i}".encode(), b.encode_value("r", i), rows) for i in range(5)])
    assert await b.count_range(rows) == 3 == await b.size()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_sync_face_only_where_the_engine_takes_any_thread(
    kind: str, make_backend: Any
) -> None:
    b = make_backend(kind)
    assert b.sync_face() is None  # not started
    await b.start()
    face = b.sync_face()
    if kind not in PATH_BACKENDS:
        assert face is None  # memory and Redis live on their event loop
        return
    assert isinstance(face, SyncFace)
    rows = _counted(b"r:")
    enc = b.encode_value

    def from_a_thread() -> tuple[Any, ...]:
        assert face.put_counted(b"r:1", enc("r:1", 1), rows) is False
        assert face.write_counted([(b"r:2", enc("r:2", 2), rows), (b"r:1", None, rows)]) == [
            False,
            True,
        ]
        return (
            face.read(b"r:2"),
            face.contains(b"r:1"),
            face.count_range(rows),
            list(face.keys(b"r:", b"r;")),
        )

    payload, has1, n, keys = await asyncio.to_thread(from_a_thread)
    assert b.decode_value("r:2", payload) == 2 and not has1 and n == 1 and keys == [b"r:2"]
    # The face and the async methods are the same store and the same count.
    await b.put_counted(b"r:3", enc("r:3", 3), rows)
    assert face.count_range(rows) == 2 == await b.count_range(rows)
    await b.batch_set({f"r:x{i:05d}": i for i in range(2500)})
    assert face.recount_range(rows) == 2502
    items = face.items(b"r:", b"r;")
    assert sum(1 for _ in items) == 2502
    face.clear_range(rows)
    assert face.count_range(rows) == 0 and await b.size() == 1  # only the counter remains
    await b.stop()
    assert b.sync_face() is None
    with pytest.raises(weir.ClosedError):
        face.read(b"r:2")
    with pytest.raises(weir.ClosedError):
        face.put_counted(b"r:1", enc("r:1", 1), rows)


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_sync_face_counts_stay_exact_under_threads(kind: str, make_backend: Any) -> None:
    import threading

    b = make_backend(kind)
    await b.start()
    face = b.sync_face()
    assert face is not None
    rows = _counted(b"r:")
    payload = b.encode_value("r", 1)

    def work(seed: int) -> None:
        for i in range(300):
            face.put_counted(f"r:{(i * 7 + seed) % 200:03d}".encode(), payload, rows)
            if i % 3 == 0:
                face.delete_counted(f"r:{(i + seed) % 200:03d}".encode(), rows)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert face.count_range(rows) == len(await b.snapshot_range(b"r:", b"r;"))


@pytest.mark.parametrize("kind", PATH_BACKENDS)
async def test_sync_face_scan_stopped_midway_raises(kind: str, make_backend: Any) -> None:
    b = make_backend(kind)
    await b.start()
    face = b.sync_face()
    assert face is not None
    await b.batch_set({f"r:{i:05d}": i for i in range(3000)})
    it = face.items(b"r:", b"r;")
    next(it)
    await b.stop()
    with pytest.raises(weir.ClosedError):
        list(it)


def test_db_face_keeps_the_table_layout(tmp_path: pathlib.Path) -> None:
    """DBFace's counts are int64_add merge values, changed in the write batch."""
    with weir.DB(tmp_path / "db") as db:
        face = DBFace(db)
        rows = _counted(b"r:")
        db.put(b"r:old", b"x")  # before any counter: counted once, when first needed
        assert face.put_counted(b"r:1", b"a", rows) is False
        assert db.get_int(b"c:r:") == 2
        assert face.write_counted([(b"r:2", b"b", rows), (b"r:old", None, rows)]) == [False, True]
        assert face.count_range(rows) == 2 == db.get_int(b"c:r:")
        assert face.delete_counted(b"r:absent", rows) is False
        assert face.read(b"r:1") == b"a" and face.contains(b"r:2")
        assert list(face.keys(b"r:", b"r;")) == [b"r:1", b"r:2"]
        assert face.recount_range(rows) == 2
        face.clear_range(rows)
        assert face.count_range(rows) == 0 and list(face.items(b"r:", b"r;")) == []
        with pytest.raises(weir.InvalidArgumentError):
            face.put_counted(b"s:1", b"a", rows)
        with pytest.raises(TypeError):
            DBFace("not a db")  # type: ignore[arg-type]
    with pytest.raises(weir.ClosedError):
        face.put_counted(b"r:1", b"a", rows)
