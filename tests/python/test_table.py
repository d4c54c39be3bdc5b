"""weir.table.Table: the mapping, namespaces, len, atomic batches, both faces,
on a weir DB and on every store backend."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import weir
from weir.stores import StoreBackendConfig, create_backend
from weir.table import SyncInLoopError, Table, batch, key_space

STORES = ("db", "path", "weir", "memory", "rocksdb", "redis")


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[Callable[[str], Any]]:
    """``make(kind)`` -> something ``Table(name, store)`` takes: an open
    weir.DB ("db"), a path ("path"), or an unstarted store backend."""
    opened: list[Any] = []

    def make(kind: str) -> Any:
        where = tmp_path / f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "db":
            db = weir.DB(where)
            opened.append(db)
            return db
        if kind == "path":
            return where
        options: dict[str, Any] = {}
        path: Any = where
        if kind == "redis":
            options = {
                "url": request.getfixturevalue("redis_url"),
                "namespace": f"table-{uuid.uuid4().hex[:12]}",
            }
            path = None
        return create_backend(StoreBackendConfig(backend_type=kind, path=path, options=options))

    yield make
    for db in opened:
        db.close()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_seed_customer_scenario(make_store: Callable[[str], Any], store_kind: str) -> None:
    """The seed's Table test: insert a customer, read it, upgrade gold -> platinum."""
    with Table("customers", make_store(store_kind)) as customers:
        customers["C001"] = {"name": "Acme Corp", "tier": "gold", "region": "US-WEST"}
        customer = customers["C001"]
        assert customer["name"] == "Acme Corp"
        assert customer["tier"] == "gold"
        customer["tier"] = "platinum"
        customers["C001"] = customer
        assert customers["C001"] == {"name": "Acme Corp", "tier": "platinum", "region": "US-WEST"}
        assert len(customers) == 1
        assert "C001" in customers and "C002" not in customers
        assert list(customers) == ["C001"]


def test_mutable_mapping_contract(make_store: Callable[[str], Any], store_kind: str) -> None:
    with Table("t", make_store(store_kind)) as t:
        assert len(t) == 0 and list(t) == [] and t.get("x") is None and t.get("x", 7) == 7
        with pytest.raises(KeyError):
            t["missing"]
        with pytest.raises(KeyError):
            del t["missing"]
        t["b"] = 2
        t["a"] = 1
        t["a"] = 10  # overwrite: no new row
        assert len(t) == 2
        assert t.setdefault("a", 99) == 10
        assert t.setdefault("c", 3) == 3
        t.update({"d": 4}, e=5)
        t.update([("f", 6)])
        assert dict(t) == {"a": 10, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}
        assert list(t.keys()) == ["a", "b", "c", "d", "e", "f"]  # key order
        assert list(t.values()) == [10, 2, 3, 4, 5, 6]
        assert ("a", 10) in t.items() and ("a", 11) not in t.items()
        assert t.pop("f") == 6 and t.pop("f", None) is None
        key, _value = t.popitem()
        assert key not in t and len(t) == 4
        assert t == {k: v for k, v in {"a": 10, "b": 2, "c": 3, "d": 4, "e": 5}.items() if k != key}
        t["null"] = None  # a stored None is a value, not an absence
        assert "null" in t and t["null"] is None and t.get("null", 1) is None
        del t["null"]
        t.clear()
        assert len(t) == 0 and list(t.items()) == []
        t["again"] = 1
        assert len(t) == 1


def test_items_prefix(make_store: Callable[[str], Any], store_kind: str) -> None:
    with Table("users", make_store(store_kind)) as t:
        t.update({"user:1": "a", "user:2": "b", "usex": "c", "admin:1": "d"})
        assert list(t.items(prefix="user:")) == [("user:1", "a"), ("user:2", "b")]
        assert list(t.keys(prefix=b"user")) == ["user:1", "user:2"]
        assert list(t.values(prefix="admin")) == ["d"]
        assert len(t.items(prefix="user:")) == 2
        assert "usex" not in t.keys(prefix="user:") and "user:1" in t.keys(prefix="user:")
        assert list(t.items(prefix="zzz")) == []
        with pytest.raises(TypeError):
            list(t.items(prefix=1.5))


def test_many_rows_iterate_in_chunks(make_store: Callable[[str], Any], store_kind: str) -> None:
    with Table("big", make_store(store_kind)) as t:
        rows = {f"k{i:05d}": i for i in range(2500)}  # more than one scan chunk
        t.update(rows)
        assert len(t) == 2500
        assert dict(t.items()) == rows
        assert list(t) == sorted(rows)


def test_tables_share_a_store_without_collisions(
    make_store: Callable[[str], Any], store_kind: str
) -> None:
    store = make_store(store_kind)
    if store_kind == "path":
        store = weir.DB(store)
    names = ["a", "ab", "a\x01b", "b", "ü", "a:b"]
    tables = [Table(n, store) for n in names]
    try:
        for i, t in enumerate(tables):
            t["k"] = i
            t["k2"] = i
        for i, t in enumerate(tables):
            assert dict(t) == {"k": i, "k2": i}
            assert len(t) == 2
        tables[1].clear()
        assert len(tables[0]) == 2 and len(tables[1]) == 0 and len(tables[2]) == 2
    finally:
        for t in tables:
            t.close()
        if store_kind == "path":
            store.close()


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_key_spaces_are_prefix_free(a: str, b: str) -> None:
    if a != b:
        ka, kb = key_space(a), key_space(b)
        assert not ka.startswith(kb) and not kb.startswith(ka)


def test_bad_names_and_stores(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "db") as db:
        with pytest.raises(weir.InvalidArgumentError):
            Table("", db)
        with pytest.raises(TypeError):
            Table(5, db)  # type: ignore[arg-type]
        with pytest.raises(weir.InvalidArgumentError):
            Table("x" * 70000, db)
    with pytest.raises(TypeError, match="store must be"):
        Table("t", 42)
    with pytest.raises(weir.InvalidArgumentError, match="value codec"):
        Table("t", StoreBackendConfig(backend_type="memory"), value_codec="json")


def test_len_is_persistent_and_exact(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "db"
    with Table("t", path, key_codec="key") as t:
        for i in range(100):
            t[i % 60] = i  # 40 overwrites
        assert len(t) == 60
        del t[0]
        with batch(t) as b:
            b[t][1000] = 1  # new
            b[t][1] = 1  # existing
            b.delete(t, 2)  # existing
            b.delete(t, 5000)  # absent: fine in a batch
            b[t][1001] = 1
            b.delete(t, 1001)  # same key again: the last write wins
        assert len(t) == 59
    # The count is stored with the rows, so a reopen reads it without a scan.
    with Table("t", path, key_codec="key") as t:
        assert len(t) == 59 == sum(1 for _ in t)


def test_recount_after_raw_writes(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "db") as db:
        t = Table("t", db)
        t["a"] = 1
        db.put(t.row_prefix + b"b", weir.codecs.get_codec("msgpack").encode(2))
        assert len(t) == 1  # raw writes bypass the count ...
        assert t.recount() == 2  # ... until it is rebuilt
        assert len(t) == 2 and t["b"] == 2
        # An existing table space without a count (e.g. bulk-loaded) is counted once on open.
        db.put(Table("u", db).row_prefix + b"x", b"\x01")
        db.delete(key_space("v") + b"\x00n")
        db.put(key_space("v") + b"\x01y", b"\x01")
        assert len(Table("v", db)) == 1


def test_concurrent_writers_keep_len_exact(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "db") as db:
        t = Table("t", db, key_codec="key")
        t2 = Table("t", db, key_codec="key")  # a second handle on the same table shares the lock

        def work(tab: Table, seed: int) -> None:
            for i in range(400):
                tab[(i * 7 + seed) % 300] = i
                if i % 5 == 0:
                    tab.pop((i + seed) % 300, None)

        threads = [threading.Thread(target=work, args=(t if n % 2 else t2, n)) for n in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(t) == sum(1 for _ in t)


def test_batch_is_atomic_across_tables(make_store: Callable[[str], Any], store_kind: str) -> None:
    store = make_store(store_kind)
    if store_kind == "path":
        store = weir.DB(store)
    customers, orders = Table("customers", store), Table("orders", store)
    try:
        customers["C001"] = {"tier": "gold"}
        with pytest.raises(RuntimeError, match="boom"):
            with batch(customers, orders) as b:
                b[customers]["C002"] = {"tier": "silver"}
                b[orders]["O1"] = {"customer": "C002"}
                raise RuntimeError("boom")
        assert dict(customers) == {"C001": {"tier": "gold"}} and len(orders) == 0
        with batch(customers, orders) as b:
            b[customers]["C002"] = {"tier": "silver"}
            b.set(orders, "O1", {"customer": "C002"})
            del b[customers]["C001"]
            assert len(b) == 3 and len(b[orders]) == 1
        assert dict(customers) == {"C002": {"tier": "silver"}}
        assert dict(orders) == {"O1": {"customer": "C002"}}
        assert len(customers) == 1 and len(orders) == 1
        b = batch(customers)
        with pytest.raises(weir.InvalidArgumentError, match="not part of this batch"):
            b.set(orders, "x", 1)
        with pytest.raises(TypeError, match="write-only"):
            b[customers]["C002"]
        b.commit()
        with pytest.raises(weir.ClosedError):
            b.commit()
    finally:
        customers.close()
        orders.close()
        if store_kind == "path":
            store.close()


def test_batch_rejects_unencodable_values_before_writing(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "db") as db:
        t = Table("t", db, value_codec="json")
        with pytest.raises(TypeError, match="key 'bad'"):
            with batch(t) as b:
                b[t]["ok"] = 1
                b[t]["bad"] = object()
        assert len(t) == 0 and "ok" not in t
        with pytest.raises(TypeError):
            t["bad"] = object()
        assert len(t) == 0


def test_batch_needs_one_store(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "a") as a, weir.DB(tmp_path / "b") as b:
        with pytest.raises(weir.InvalidArgumentError, match="different stores"):
            batch(Table("x", a), Table("y", b))
    with pytest.raises(weir.InvalidArgumentError):
        batch()


def test_typed_keys_with_the_key_codec(tmp_path: pathlib.Path) -> None:
    with Table("scores", tmp_path / "db", key_codec="key") as t:
        for k in (10, -5, 3, 2**40):
            t[k] = k * 2
        t[("user", 1)] = "tuple keys too"
        assert [k for k in t if isinstance(k, int)] == [-5, 3, 10, 2**40]
        assert t[-5] == -10 and t[("user", 1)] == "tuple keys too"


def test_closed_table_and_closed_db(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db")
    t = Table("t", db)
    t["a"] = 1
    t.close()
    assert t.closed
    with pytest.raises(weir.ClosedError):
        t["a"]
    t2 = Table("t", db)
    db.close()
    with pytest.raises(weir.ClosedError):
        t2["a"]
    with pytest.raises(weir.ClosedError):
        t2["a"] = 2


async def test_async_face_on_a_db(tmp_path: pathlib.Path) -> None:
    with Table("events", tmp_path / "db") as t:
        await t.aset("e1", {"n": 1})
        await t.aset("e2", {"n": 2})
        assert await t.aget("e1") == {"n": 1}
        assert await t.aget("nope", "dflt") == "dflt"
        assert await t.acontains("e2") and await t.alen() == 2
        assert [k async for k, _ in t.aitems()] == ["e1", "e2"]
        assert await t.adelete("e1") is True and await t.adelete("e1") is False
        t.update({f"x{i:04d}": i for i in range(1500)})
        assert len([p async for p in t.aitems(prefix="x")]) == 1500
        async with batch(t) as b:
            b[t]["e3"] = 3
        assert t["e3"] == 3


async def test_async_face_on_backends(make_store: Callable[[str], Any], store_kind: str) -> None:
    """An unstarted backend runs on the table's own loop: both faces work
    inside a running loop."""
    with Table("t", make_store(store_kind)) as t:
        await t.aset("a", [1, 2])
        assert await t.aget("a") == [1, 2] and t["a"] == [1, 2]
        assert await t.alen() == 1 and await t.acontains("a")
        assert [p async for p in t.aitems()] == [("a", [1, 2])]
        assert await t.adelete("a") and not await t.adelete("a")


async def test_started_backend_sync_face_in_its_loop_raises(tmp_path: pathlib.Path) -> None:
    backend = create_backend(StoreBackendConfig(backend_type="memory"))
    await backend.start()
    try:
        t = Table("t", backend)  # built in the loop that started it
        await t.aset("k", 1)
        assert await t.aget("k") == 1
        with pytest.raises(SyncInLoopError, match="async face"):
            t["k"]
        # From another thread the sync face reaches the loop.
        assert await asyncio.to_thread(lambda: t["k"]) == 1
        await asyncio.to_thread(t.__setitem__, "j", 2)
        assert await t.aget("j") == 2
        t.close()
        assert backend.started  # not ours to stop
    finally:
        await backend.stop()


def test_started_backend_outside_its_loop_is_refused() -> None:
    backend = create_backend(StoreBackendConfig(backend_type="memory"))

    async def start() -> None:
        await backend.start()

    asyncio.run(start())
    with pytest.raises(weir.InvalidArgumentError, match="already started"):
        Table("t", backend)


def test_backend_tables_share_the_table_loop(make_store: Callable[[str], Any]) -> None:
    backend = make_store("memory")
    a, b = Table("a", backend), Table("b", backend)
    a["k"] = 1
    b["k"] = 2
    with batch(a, b) as wb:
        wb[a]["k2"] = 3
        wb[b]["k2"] = 4
    assert dict(a) == {"k": 1, "k2": 3} and dict(b) == {"k": 2, "k2": 4}
    a.close()
    assert backend.started  # b still uses it
    b["k3"] = 5
    b.close()
    assert not backend.started


def test_put_arrow_rows_into_a_table(tmp_path: pathlib.Path) -> None:
    """put_arrow's multi-column values are msgpack maps: the table's default codec."""
    import pyarrow as pa

    with weir.DB(tmp_path / "db") as db:
        t = Table("customers", db)
        data = pa.table(
            {"id": ["C001", "C002"], "name": ["Acme", "Initech"], "tier": ["gold", "x"]}
        )
        assert (
            db.put_arrow(data, key="id", value_columns=["name", "tier"], key_prefix=t.row_prefix)
            == 2
        )
        assert t.recount() == 2
        assert t["C001"] == {"name": "Acme", "tier": "gold"}


def test_a_table_written_with_the_old_msgpack_default_still_opens(tmp_path: pathlib.Path) -> None:
    """Tables over a weir.DB stored plain msgpack before the one default
    codec: the single bytes "0".."9" there are the integers 48..57."""
    with weir.DB(tmp_path / "db") as db:
        t = Table("t", db)
        plain = weir.codecs.MsgpackCodec()
        for i, v in enumerate([48, 57, {"a": (1, 2)}, "s"]):
            db.put(t.row_prefix + f"k{i}".encode(), plain.encode(v))
        t.recount()
        assert dict(t.items()) == {"k0": 48, "k1": 57, "k2": {"a": [1, 2]}, "k3": "s"}
        t["new"] = 48
        assert t["new"] == 48
        assert db.get(t.row_prefix + b"new") == weir.codecs.DEFAULT_VALUE_CODEC.encode(48)


def test_a_db_written_by_the_previous_table_layout_opens(tmp_path: pathlib.Path) -> None:
    """Data as the Table before the one code path stored it, written here
    byte for byte: rows at key_space + b"\\x01" + key holding plain msgpack
    (the integers 48..57 as msgpack's single bytes "0".."9"), the row count
    an int64_add merge value at key_space + b"\\x00n" built from many
    operands. It opens with the same rows and count, and writes keep it."""
    path = tmp_path / "db"
    plain = weir.codecs.MsgpackCodec()
    space = b"\x00T" + len(b"orders").to_bytes(2, "big") + b"orders"
    with weir.DB(path) as db:
        rows = {f"O-{i:03d}": {"n": i, "tag": "x" * (i % 3)} for i in range(40)} | {"O-048": 48}
        for k, v in rows.items():
            db.put(space + b"\x01" + k.encode(), plain.encode(v))
        for _ in range(len(rows)):
            db.incr(space + b"\x00n", 1)
        db.incr(space + b"\x00n", -1)
        db.delete(space + b"\x01O-000")
        del rows["O-000"]
    with Table("orders", path) as t:
        assert t.key_prefix == space and t.row_prefix == space + b"\x01"
        assert len(t) == len(rows) == 40
        assert dict(t.items()) == rows and t["O-048"] == 48
        t["O-999"] = {"n": 999}
        del t["O-001"]
        with batch(t) as b:
            b[t]["O-500"] = 1
            b.delete(t, "O-002")
        assert len(t) == 40 == sum(1 for _ in t)
    with weir.DB(path) as db:
        assert db.get_int(space + b"\x00n") == 40  # still the merge counter
        assert db.get(space + b"\x01O-999") == weir.codecs.DEFAULT_VALUE_CODEC.encode({"n": 999})


def test_backend_tables_written_before_counts_open(make_store: Callable[[str], Any]) -> None:
    """A table over a store backend used to keep no row count: its rows,
    stored with the backend's value codec under the row prefix, are counted
    once when the table first needs its length."""
    backend = make_store("rocksdb")

    async def write_rows() -> None:
        async with backend:
            await backend.set("outside", 0)  # a key outside every table
            for i in range(25):
                await backend.set(key_space("t") + b"\x01" + f"k{i:02d}".encode(), {"i": i})

    asyncio.run(write_rows())
    with Table("t", backend) as t:
        assert len(t) == 25 and t["k07"] == {"i": 7}
        t["k99"] = 1
        del t["k00"]
        assert len(t) == 25 == sum(1 for _ in t)


def test_len_is_exact_on_every_store(make_store: Callable[[str], Any], store_kind: str) -> None:
    with Table("t", make_store(store_kind), key_codec="key") as t:
        for i in range(100):
            t[i % 60] = i
        with batch(t) as b:
            for i in range(50, 70):
                b[t][i] = -i
            b.delete(t, 0)
            b.delete(t, 1000)
        t.pop(1)
        assert len(t) == 68 == sum(1 for _ in t)
        t.clear()
        assert len(t) == 0
        t[5] = 5
        assert len(t) == 1


async def test_aclear(make_store: Callable[[str], Any], store_kind: str) -> None:
    with Table("t", make_store(store_kind)) as t, Table("u", t.store) as u:
        await t.aset("a", 1)
        await u.aset("a", 2)
        await t.aclear()
        assert await t.alen() == 0 and await u.alen() == 1 and await u.aget("a") == 2


async def test_started_engine_backends_need_no_loop(tmp_path: pathlib.Path) -> None:
    """The weir and RocksDB backends have a sync face: a table over one the
    caller started calls it directly, on the backend's own loop too."""
    for kind in ("weir", "rocksdb"):
        backend = create_backend(StoreBackendConfig(backend_type=kind, path=tmp_path / kind))
        await backend.start()
        try:
            t = Table("t", backend)
            t["k"] = {"on": "the loop"}  # no SyncInLoopError: nothing blocks on the loop
            assert t["k"] == {"on": "the loop"} and len(t) == 1
            assert await asyncio.to_thread(t.__getitem__, "k") == {"on": "the loop"}
            assert await t.aget("k") == {"on": "the loop"}
            t.close()
            assert backend.started  # not the table's to stop
            kept = await asyncio.to_thread(Table, "t", backend)  # built off any loop
        finally:
            await backend.stop()
        with pytest.raises(weir.ClosedError):
            kept["k"]
        with pytest.raises(weir.ClosedError):
            await kept.aset("k", 1)
        kept.close()


def test_a_table_over_a_backend_without_the_fast_paths(tmp_path: pathlib.Path) -> None:
    """weir.sabot's backends leave the byte-level face to StoreBackend's
    defaults (read through snapshot_range, counts by scanning): a table
    over one behaves the same."""
    from weir.sabot.stores import MemoryBackend as SabotMemory

    with Table("t", SabotMemory()) as t:
        t.update({f"k{i:04d}": i for i in range(1500)})
        t["k0000"] = "first"
        del t["k0001"]
        assert len(t) == 1499 and t["k0000"] == "first" and "k0001" not in t
        assert list(t.keys(prefix="k149")) == [f"k149{i}" for i in range(10)]
        t.clear()
        assert len(t) == 0
