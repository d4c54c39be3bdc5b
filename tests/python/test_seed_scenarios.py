"""The seed document's store scenarios, written against weir's names.

The seed integrated a Rust store into a Python streaming framework and
tested it with four store scenarios: backend CRUD, Table-style customer
updates, the materialization pattern (dimension table, analytical view,
enrichment) and a small performance workload. Here they run on the weir
backend, built exactly as the seed built its backend (a config with only a
path), and on the other three backends to show they are drop-ins.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import pytest

from conftest import BACKENDS
from weir.stores import StoreBackendConfig, WeirBackend, create_backend


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, make_backend: Any) -> Any:
    b = make_backend(request.param)
    await b.start()
    return b


async def test_seed_store_backend_crud(tmp_path: pathlib.Path) -> None:
    """Seed test 1: CRUD, existence checks, a batch insert and stats, on a
    backend configured the way the seed configured its own."""
    config = StoreBackendConfig(path=tmp_path / "db")
    backend = WeirBackend(config)
    await backend.start()

    users = {
        "user:1": {"name": "Alice", "email": "alice@example.com", "balance": 1000},
        "user:2": {"name": "Bob", "email": "bob@example.com", "balance": 500},
        "user:3": {"name": "Carol", "email": "carol@example.com", "balance": 750},
    }
    for key, value in users.items():
        await backend.set(key, value)

    alice = await backend.get("user:1")
    bob = await backend.get("user:2")
    assert alice["name"] == "Alice"
    assert bob["name"] == "Bob"

    assert await backend.delete("user:2") is True
    assert await backend.get("user:2") is None

    assert await backend.exists("user:1") is True
    assert await backend.exists("user:2") is False

    products = {
        f"product:{i}": {"id": i, "name": f"Product {i}", "price": 9.99 + i} for i in range(10)
    }
    await backend.batch_set(products)
    assert await backend.get("product:7") == products["product:7"]
    assert len(await backend.keys("product:")) == 10

    stats = await backend.get_stats()
    assert stats["backend_type"] == "weir"
    assert stats["keys"] == 12

    await backend.stop()
    # Clean shutdown: the data is there for the next process.
    again = create_backend(StoreBackendConfig(path=tmp_path / "db"))
    await again.start()
    assert await again.get("user:3") == users["user:3"]
    await again.stop()


async def test_seed_table_customer_updates(store: Any) -> None:
    """Seed test 2: customer records kept and updated in place, the way a
    dict-like Table over the store does it (read, modify, write back)."""
    await store.set(
        "customer:C001",
        {"name": "Acme Corp", "tier": "gold", "region": "US-WEST", "orders": 12},
    )
    await store.set(
        "customer:C002",
        {"name": "Globex", "tier": "silver", "region": "EU-CENTRAL", "orders": 3},
    )

    customer = await store.get("customer:C001")
    assert (customer["name"], customer["tier"]) == ("Acme Corp", "gold")

    customer["tier"] = "platinum"
    await store.set("customer:C001", customer)
    assert (await store.get("customer:C001"))["tier"] == "platinum"

    # The same update as a transaction, safe against a concurrent writer.
    async with store.transaction() as txn:
        c = await txn.get("customer:C002")
        c["orders"] += 1
        await txn.set("customer:C002", c)
    assert (await store.get("customer:C002"))["orders"] == 4

    assert await store.keys("customer:") == ["customer:C001", "customer:C002"]
    assert await store.size() == 2


SECURITIES = {
    "AAPL": {"name": "Apple Inc", "sector": "Technology", "exchange": "NASDAQ"},
    "GOOGL": {"name": "Alphabet Inc", "sector": "Technology", "exchange": "NASDAQ"},
    "JPM": {"name": "JPMorgan Chase", "sector": "Finance", "exchange": "NYSE"},
    "BAC": {"name": "Bank of America", "sector": "Finance", "exchange": "NYSE"},
}

SECTOR_METRICS = {
    "Technology": {"volume": 1_500_000, "trades": 4_500, "avg_price": 175.50},
    "Finance": {"volume": 890_000, "trades": 3_200, "avg_price": 45.25},
}


async def test_seed_materialization_pattern(
    kind: str, make_backend: Any, tmp_path: pathlib.Path
) -> None:
    """Seed test 3: a dimension table (securities), an analytical view
    (sector metrics), and trades enriched by dimension lookups."""
    if kind == "redis":
        dim_store = make_backend(kind, options={"namespace": f"dim-{tmp_path.name}"})
        view_store = make_backend(kind, options={"namespace": f"view-{tmp_path.name}"})
    else:
        dim_store = make_backend(kind, path=tmp_path / "dim")
        view_store = make_backend(kind, path=tmp_path / "view")
    await dim_store.start()
    await view_store.start()

    await dim_store.batch_set({f"security:{sym}": info for sym, info in SECURITIES.items()})
    assert len(await dim_store.keys("security:")) == 4

    await view_store.batch_set({f"metrics:sector:{s}": m for s, m in SECTOR_METRICS.items()})
    assert len(await view_store.keys("metrics:sector:")) == 2

    trades = [
        {"symbol": "AAPL", "qty": 100, "price": 178.20},
        {"symbol": "JPM", "qty": 50, "price": 151.10},
        {"symbol": "GOOGL", "qty": 10, "price": 139.95},
    ]
    enriched = []
    for trade in trades:
        security = await dim_store.get(f"security:{trade['symbol']}")
        enriched.append({**trade, **security})
    assert [(e["symbol"], e["name"], e["sector"]) for e in enriched] == [
        ("AAPL", "Apple Inc", "Technology"),
        ("JPM", "JPMorgan Chase", "Finance"),
        ("GOOGL", "Alphabet Inc", "Technology"),
    ]

    tech = await view_store.get("metrics:sector:Technology")
    fin = await view_store.get("metrics:sector:Finance")
    assert (tech["volume"], tech["trades"], tech["avg_price"]) == (1_500_000, 4_500, 175.50)
    assert (fin["volume"], fin["trades"], fin["avg_price"]) == (890_000, 3_200, 45.25)

    # The view is a range: every sector's metrics in one prefix scan.
    sectors = [k.rsplit(":", 1)[1] async for k, _ in view_store.scan(prefix="metrics:sector:")]
    assert sectors == ["Finance", "Technology"]

    # Keeping the view up to date from the enriched stream, atomically.
    for e in enriched:
        async with view_store.transaction() as txn:
            key = f"metrics:sector:{e['sector']}"
            m = await txn.get(key)
            total = m["avg_price"] * m["trades"] + e["price"]
            m["trades"] += 1
            m["volume"] += e["qty"]
            m["avg_price"] = total / m["trades"]
            await txn.set(key, m)
    tech = await view_store.get("metrics:sector:Technology")
    assert (tech["volume"], tech["trades"]) == (1_500_110, 4_502)


async def test_seed_performance_workload(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Seed test 4: 1,000 writes, 1,000 reads, a batch of 100. It checks the
    results; the figures are printed, not asserted (benchmarks measure speed:
    bench/python/stores_bench.py)."""
    n = 1000
    t0 = time.perf_counter()
    for i in range(n):
        await store.set(f"perf:{i}", {"id": i, "value": f"data_{i}", "score": i * 1.5})
    t1 = time.perf_counter()
    for i in range(n):
        value = await store.get(f"perf:{i}")
        assert value["id"] == i
    t2 = time.perf_counter()
    batch = {f"batch:{i}": {"id": i, "value": f"batch_data_{i}"} for i in range(100)}
    await store.batch_set(batch)
    t3 = time.perf_counter()

    assert await store.size() == n + 100
    assert await store.get("batch:99") == batch["batch:99"]
    with capsys.disabled():
        print(
            f"\n  [{store.backend_type}] writes {n / (t1 - t0):,.0f}/s, "
            f"reads {n / (t2 - t1):,.0f}/s, batch {100 / (t3 - t2):,.0f} items/s"
        )
