"""weir.sabot.stores: Sabot's backend names over weir.stores.

Written from what Sabot's store tests and callers expect: a config with
Sabot's defaults (and "gzip"), values that come back as Sabot's Tonbo
backend gives them (pickled: tuples stay tuples, dates work), int keys
without options, scans that both iterate and have len, the get_stats keys
Sabot's callers read, the memory backend usable without start(), Redis's
host/port options. Every backend kind runs the shared tests.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import weir
from weir.sabot import stores
from weir.sabot._keys import SABOT_KEYS
from weir.sabot.stores import (
    MarbleDBStoreBackend,
    MemoryBackend,
    RedisBackend,
    RocksDBBackend,
    ScanItems,
    StoreBackendConfig,
    TonboBackend,
    WeirBackend,
    create_backend,
    create_backend_auto,
    create_backend_from_string,
)

KINDS = ("memory", "tonbo", "marbledb", "weir", "rocksdb", "redis")
PERSISTENT = ("tonbo", "marbledb", "weir", "rocksdb", "redis")
CLASSES = {
    "memory": MemoryBackend,
    "tonbo": TonboBackend,
    "marbledb": MarbleDBStoreBackend,
    "weir": WeirBackend,
    "rocksdb": RocksDBBackend,
    "redis": RedisBackend,
}

Make = Callable[..., Any]


@pytest.fixture
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Make]:
    """``make(kind, **config)`` -> an unstarted weir.sabot backend; Redis ones
    share the session's server under a fresh namespace; all stopped after."""
    made: list[Any] = []
    namespace = f"sabot-test-{uuid.uuid4().hex[:10]}"

    def build(kind: str, **fields: Any) -> Any:
        options = dict(fields.pop("options", None) or {})
        if kind == "redis":
            url = urlparse(request.getfixturevalue("redis_url"))
            options.setdefault("host", url.hostname)
            options.setdefault("port", url.port)
            options.setdefault("namespace", namespace)
        elif kind != "memory":
            fields.setdefault("path", tmp_path / kind)
        backend = CLASSES[kind](StoreBackendConfig(backend_type=kind, options=options, **fields))
        made.append(backend)
        return backend

    yield build
    for backend in made:
        try:
            if backend.started:
                await backend.clear()
        finally:
            await backend.stop()


@pytest.fixture(params=KINDS)
async def backend(request: pytest.FixtureRequest, make: Make) -> Any:
    b = make(request.param)
    await b.start()
    return b


# ---- config --------------------------------------------------------------------------------


def test_config_has_sabots_defaults_and_accepts_gzip() -> None:
    config = StoreBackendConfig(
        max_size=1000, ttl_seconds=300, compression="GZIP", options={"custom": 1}
    )
    assert config.backend_type == "memory"
    assert config.compression == "gzip"
    assert config.ttl_seconds == 300
    assert isinstance(config, weir.stores.StoreBackendConfig)
    copy = config.copy()
    copy.options["other"] = 2  # type: ignore[index]
    assert config.options == {"custom": 1}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"compression": "brotli"}, weir.InvalidArgumentError),
        ({"compression": 3}, TypeError),
        ({"max_size": 0}, weir.InvalidArgumentError),
        ({"ttl_seconds": -1}, weir.InvalidArgumentError),
        ({"path": 12}, TypeError),
        ({"options": ["a"]}, TypeError),
    ],
)
def test_config_rejects_bad_fields(fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        StoreBackendConfig(**fields)


async def test_gzip_is_stored_as_zstd_by_the_engine(make: Make) -> None:
    b = make("tonbo", compression="gzip")
    await b.start()
    await b.set("k", "v" * 1000)
    stats = await b.get_stats()
    assert stats["compression"] == "gzip"
    assert stats["engine"]["compression"] == "zstd"


# ---- keys ----------------------------------------------------------------------------------


def test_key_codec_round_trips_and_keeps_int_order() -> None:
    for key in ("user:1", "", b"\x80raw", 0, -5, 2**70, None, ("a", 1, (2, b"x"))):
        assert SABOT_KEYS.decode(SABOT_KEYS.encode(key)) == key
    # As with weir's default keys, bytes that are valid UTF-8 come back as str.
    assert SABOT_KEYS.decode(SABOT_KEYS.encode(b"text")) == "text"
    ints = [-(2**65), -3, 0, 7, 255, 256, 2**40]
    assert sorted(ints, key=SABOT_KEYS.encode) == ints
    assert SABOT_KEYS.encode("user:1") == b"user:1"  # as weir's default str keys


@pytest.mark.parametrize("key", [True, 1.5, object(), ["list"], ("ok", 2.0)])
def test_key_codec_refuses_other_types(key: Any) -> None:
    with pytest.raises(TypeError):
        SABOT_KEYS.encode(key)


def test_key_codec_reserves_bytes_starting_with_ff() -> None:
    with pytest.raises(ValueError, match="0xff"):
        SABOT_KEYS.encode(b"\xffabc")


# ---- every backend -------------------------------------------------------------------------


async def test_crud_and_pickled_values(backend: Any) -> None:
    value = {
        "tuple": (1, "a"),
        "date": datetime.date(2025, 10, 6),
        "when": datetime.datetime(2025, 10, 6, 12, 30),
        "dec": Decimal("1.10"),
        "set": {1, 2},
    }
    if backend.backend_type == "redis":  # Sabot's Redis default serializer is JSON
        value = {"tuple": [1, "a"], "n": 2}
    await backend.set("user:1", value)
    assert await backend.get("user:1") == value
    assert await backend.exists("user:1")
    assert not await backend.exists("nope")
    assert await backend.get("nope") is None
    assert await backend.delete("user:1") is True
    assert await backend.delete("user:1") is False
    assert await backend.size() == 0


async def test_int_and_tuple_keys_without_options(backend: Any) -> None:
    await backend.batch_set({3: "c", 1: "a", 2: "b", ("g", 1): "t"})
    assert await backend.get(2) == "b"
    assert await backend.get(("g", 1)) == "t"
    assert [k for k in await backend.keys() if isinstance(k, int)] == [1, 2, 3]
    found = await backend.scan(start_key=2, end_key=4)
    assert list(found) == [(2, "b"), (3, "c")]


async def test_scan_result_iterates_and_has_len(backend: Any) -> None:
    await backend.batch_set({f"key_{i:02d}": i for i in range(10)})
    items = await backend.scan(limit=5)
    assert isinstance(items, ScanItems)
    assert len(items) == 5
    assert next(items) == ("key_00", 0)
    assert next(items) == ("key_01", 1)
    assert [k for k, _ in items] == [f"key_{i:02d}" for i in range(5)]
    assert list(await backend.scan(prefix="key_0", start_key="key_03", end_key="key_06")) == [
        ("key_03", 3),
        ("key_04", 4),
        ("key_05", 5),
    ]
    streamed = [k async for k, _ in backend.scan(prefix="key_")]
    assert len(streamed) == 10
    exhausted = await backend.scan(limit=1)
    next(exhausted)
    with pytest.raises(StopIteration):
        next(exhausted)


async def test_stats_have_sabots_keys(backend: Any) -> None:
    await backend.batch_set({"a": 1, "b": "hello", "c": [1, 2, 3]})
    stats = await backend.get_stats()
    assert stats["backend_type"] == backend.backend_type
    assert stats["size"] == 3
    assert isinstance(stats["memory_usage_bytes"], int)
    assert "max_size" in stats and "ttl_seconds" in stats
    if backend.backend_type == "memory":
        assert stats["memory_usage_bytes"] > 0


async def test_keys_values_items_prefix_and_clear(backend: Any) -> None:
    await backend.batch_set({"x": 10, "y": 20, "xyz": 40})
    assert await backend.keys(prefix="xy") == ["xyz"]
    assert sorted(await backend.values()) == [10, 20, 40]
    assert dict(await backend.items(prefix="x")) == {"x": 10, "xyz": 40}
    assert await backend.batch_delete(["x", "nope"]) == 1
    await backend.clear()
    assert await backend.size() == 0


async def test_bad_keys_and_values_raise_typed_errors(backend: Any) -> None:
    with pytest.raises(TypeError):
        await backend.set(1.5, "float keys are refused")
    with pytest.raises(weir.InvalidArgumentError):
        await backend.set(b"\xffx", "reserved")
    with pytest.raises(TypeError):
        await backend.set("k", object() if backend.backend_type == "redis" else lambda: 0)
    assert await backend.size() == 0


async def test_transactions_go_through(backend: Any) -> None:
    await backend.set("balance", 10)
    txn = await backend.begin_transaction()
    assert await txn.get("balance") == 10
    await txn.set("balance", 15)
    await txn.set(7, "seven")
    await backend.commit_transaction(txn)
    assert await backend.get("balance") == 15
    assert await backend.get(7) == "seven"
    txn = await backend.begin_transaction()
    await txn.set("balance", 99)
    await backend.rollback_transaction(txn)
    assert await backend.get("balance") == 15


async def test_backup_and_restore(backend: Any, tmp_path: Path) -> None:
    await backend.batch_set({"a": (1, 2) if backend.backend_type != "redis" else [1, 2], 5: "x"})
    target = tmp_path / "backup"
    await backend.backup(target)
    await backend.clear()
    await backend.set("later", 1)
    await backend.restore(target)
    assert await backend.get(5) == "x"
    assert await backend.get("later") is None


@pytest.mark.parametrize("kind", PERSISTENT)
async def test_persistent_backends_keep_data_across_reopen(kind: str, make: Make) -> None:
    first = make(kind)
    await first.start()
    await first.batch_set({"user:1": {"n": 1}, 42: "answer"})
    await first.stop()
    with pytest.raises(weir.ClosedError):
        await first.get("user:1")
    second = make(kind)
    await second.start()
    assert await second.get("user:1") == {"n": 1}
    assert await second.get(42) == "answer"


async def test_engine_backends_refuse_a_second_opener(make: Make, tmp_path: Path) -> None:
    first = make("tonbo", path=tmp_path / "shared")
    await first.start()
    second = make("marbledb", path=tmp_path / "shared")
    with pytest.raises(weir.BusyError):
        await second.start()


async def test_engine_backends_need_a_path() -> None:
    with pytest.raises(weir.InvalidArgumentError, match="directory"):
        TonboBackend(StoreBackendConfig(backend_type="tonbo"))


async def test_tonbo_stats_report_sabots_fields(make: Make) -> None:
    b = make("tonbo")
    await b.start()
    stats = await b.get_stats()
    assert stats["backend_type"] == "tonbo"
    assert stats["engine_backend"] == "weir"
    assert stats["cython_enabled"] is True
    assert stats["arrow_enabled"] is False
    assert stats["db_path"] == str(b.config.path)
    assert isinstance(b.db, weir.DB)
    await b.stop()
    assert b.db is None


# ---- memory ----------------------------------------------------------------------------------


async def test_memory_backend_needs_no_start_and_forgets_at_stop() -> None:
    b = MemoryBackend(StoreBackendConfig())
    await b.set("k", "v")  # starts it
    assert b.started
    await b.stop()
    assert not b.started
    assert await b.get("k") is None  # started again, empty
    await b.set("k", "again")
    assert await b.get("k") == "again"
    await b.stop()


async def test_memory_backend_evicts_at_max_size() -> None:
    b = MemoryBackend(StoreBackendConfig(max_size=2))
    await b.batch_set({"a": 1})
    await b.set("b", 2)
    await b.get("a")
    await b.set("c", 3)
    assert sorted(await b.keys()) == ["a", "c"]
    await b.stop()


async def test_memory_backend_is_safe_under_concurrent_tasks() -> None:
    import asyncio

    b = MemoryBackend(StoreBackendConfig())

    async def writer(n: int) -> None:
        for i in range(50):
            await b.set((n, i), i)

    await asyncio.gather(*(writer(n) for n in range(8)))
    assert await b.size() == 400
    await b.stop()


# ---- Redis ---------------------------------------------------------------------------------------


async def test_redis_host_port_and_serializer_options(make: Make) -> None:
    b = make("redis", options={"serializer": "pickle"})
    await b.start()
    await b.set("t", (1, datetime.date(2025, 1, 2)))
    assert await b.get("t") == (1, datetime.date(2025, 1, 2))
    stats = await b.get_stats()
    assert stats["serializer"] == "pickle"
    assert stats["port"] == b.config.options["port"]
    assert stats["namespace"] == b.config.options["namespace"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": "6379"}, "port"),
        ({"port": 70000}, "port"),
        ({"host": ""}, "host"),
        ({"serializer": "yaml"}, "serializer"),
        ({"serializer": "json", "value_codec": "pickle"}, "not both"),
        ({"host": "h", "url": "redis://h:1/0"}, "not both"),
        ({"username": "u"}, "password"),
        ({"colour": "blue"}, "unknown option"),
    ],
)
def test_redis_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(weir.InvalidArgumentError, match=message):
        RedisBackend(StoreBackendConfig(backend_type="redis", options=options))


async def test_redis_without_a_server_fails_to_start_clearly() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = RedisBackend(StoreBackendConfig(options={"host": "127.0.0.1", "port": port}))
    with pytest.raises(OSError):
        await b.start()
    assert not b.started


# ---- factories -----------------------------------------------------------------------------------


def test_factories_know_sabots_names(tmp_path: Path) -> None:
    assert isinstance(create_backend_from_string("memory://"), MemoryBackend)
    assert isinstance(create_backend_from_string("memory"), MemoryBackend)
    tonbo = create_backend_from_string(f"tonbo://{tmp_path}/t")
    assert isinstance(tonbo, TonboBackend)
    assert tonbo.config.path == tmp_path / "t"
    arrow = create_backend_from_string("arrow_files://data/dir")
    assert isinstance(arrow, stores.ArrowFileBackend)
    assert arrow.config.path == Path("data/dir")
    redis = create_backend_from_string("redis://127.0.0.1:6390/2")
    assert isinstance(redis, RedisBackend)
    assert redis.engine.config.options["url"] == "redis://127.0.0.1:6390/2"
    assert isinstance(
        create_backend(StoreBackendConfig(backend_type="ROCKSDB", path=tmp_path)), RocksDBBackend
    )
    assert isinstance(create_backend_auto("memory://", use_cython=True), MemoryBackend)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: create_backend_from_string("kafka://x"), weir.InvalidArgumentError),
        (lambda: create_backend_from_string("nosuch"), weir.InvalidArgumentError),
        (lambda: create_backend_from_string(3), TypeError),
        (lambda: create_backend_from_string("memory://", path="x"), TypeError),
        (lambda: create_backend("memory"), TypeError),
        (lambda: create_backend_auto("memory://", use_cython="yes"), TypeError),
        (
            lambda: MemoryBackend(StoreBackendConfig(options={"colour": 1})),
            weir.InvalidArgumentError,
        ),
    ],
)
def test_factories_reject_bad_input(call: Callable[[], Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_availability_flags_are_true_to_the_machine() -> None:
    import importlib.util

    assert stores.ROCKSDB_AVAILABLE is (importlib.util.find_spec("rocksdict") is not None)
    assert stores.ARROW_AVAILABLE is (importlib.util.find_spec("pyarrow") is not None)
    assert stores.CYTHON_AVAILABLE is False
    assert stores.TONBO_AVAILABLE and stores.MARBLEDB_AVAILABLE


async def test_sabot_backends_are_weir_backends_for_weirs_layers(make: Make) -> None:
    from weir.table import Table

    b = make("tonbo")
    await b.start()
    t = Table("customers", b)
    await t.aset("C1", ("gold", 3))
    assert await t.aget("C1") == ("gold", 3)
    assert isinstance(b, weir.stores.StoreBackend)
    assert isinstance(b.engine, weir.stores.StoreBackend)
    t.close()


# ---- the byte-level interface weir's own layers use ---------------------------------------------


async def test_byte_level_interface_delegates(backend: Any) -> None:
    k1, k2 = backend.encode_key("a"), backend.encode_key(5)
    assert backend.decode_key(k2) == 5
    assert backend.key_codec is SABOT_KEYS
    payload = backend.encode_value("a", {"n": 1})
    assert backend.decode_value("a", payload) == {"n": 1}
    await backend.apply([(k1, payload), (k2, backend.encode_value(5, "five"))])
    assert await backend.get("a") == {"n": 1} and await backend.get(5) == "five"
    pairs = await backend.snapshot_range(None, None)
    assert [k for k, _ in pairs] == [k1, k2]
    await backend.apply((), [k1], clear_range=(k2, None))
    assert await backend.size() == 0
    await backend.restore_range(None, None, pairs)
    assert await backend.batch_get(["a", 5, "missing"]) == [{"n": 1}, "five", None]


@pytest.mark.parametrize("kind", ["tonbo", "memory", "arrow_files"])
async def test_a_weir_stream_job_keeps_its_state_in_a_sabot_backend(
    kind: str, make: Make, tmp_path: Path
) -> None:
    from weir.stream import IterableSource, ListSink, Pipeline, ValueState

    def store() -> Any:
        if kind == "arrow_files":
            return stores.ArrowFileBackend(StoreBackendConfig(path=tmp_path / "af"))
        return make(kind, path=tmp_path / kind) if kind != "memory" else make(kind)

    def count(key: Any, event: Any, seen: Any) -> list[Any]:
        n = (seen.value() or (0, key))[0] + 1
        seen.update((n, key))  # a tuple: pickled state keeps it
        return [(key, n)]

    events = [{"user": u} for u in ("a", "b", "a", "a")]
    backend = store()
    out = ListSink()
    p = Pipeline("counts", store=backend, checkpoint_every=2)
    p.source(IterableSource(events)).key_by("user").process(count, ValueState("seen")).sink(out)
    await p.run()
    assert out.items == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    if kind != "memory":
        await backend.stop()
        again = store()
        await again.start()
        stored = [v for _, v in await again.items() if isinstance(v, tuple)]
        assert sorted(stored) == [(1, "b"), (3, "a")]
        await again.stop()
