#!/usr/bin/env python3
"""The seed's materialization scenario on weir.materialize.

A securities dimension table, a stream of trades enriched with it (the join
runs in C over Arrow buffers), and a sector-metrics view maintained
incrementally with weir's merge operators. The store is reopened at the
end to show both survive a restart.

Usage: examples/materialize.py [--db DIR] [--trades N]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator

import pyarrow as pa

import weir
from weir.materialize import AggregateView, DimensionTable

SECURITIES = [
    {"symbol": "AAPL", "name": "Apple Inc", "sector": "Technology", "exchange": "NASDAQ"},
    {"symbol": "GOOGL", "name": "Alphabet Inc", "sector": "Technology", "exchange": "NASDAQ"},
    {"symbol": "JPM", "name": "JPMorgan Chase", "sector": "Finance", "exchange": "NYSE"},
    {"symbol": "BAC", "name": "Bank of America", "sector": "Finance", "exchange": "NYSE"},
]


def trade_batches(batch_size: int = 1000) -> Iterator[pa.RecordBatch]:
    """The seed's trade flow: 4,500 Technology trades (1,500,000 shares at
    $175.50 on average) and 3,200 Finance trades (890,000 shares at
    $45.25), shuffled, in Arrow batches."""
    rows = [
        {
            "symbol": "AAPL" if i % 3 else "GOOGL",
            "qty": 300 if i < 3000 else 400,
            "price": 170.0 if i % 2 else 181.0,
        }
        for i in range(4500)
    ] + [
        {
            "symbol": "JPM" if i % 2 else "BAC",
            "qty": 275 if i < 2700 else 295,
            "price": 40.0 if i % 4 < 2 else 50.5,
        }
        for i in range(3200)
    ]
    random.Random(7).shuffle(rows)
    for i in range(0, len(rows), batch_size):
        yield pa.RecordBatch.from_pylist(rows[i : i + batch_size])


def open_views(db: weir.DB) -> tuple[DimensionTable, AggregateView]:
    securities = DimensionTable("securities", key="symbol", store=db)
    metrics = AggregateView(
        "sector_metrics",
        group_by=["sector"],
        aggregations={"volume": ("sum", "qty"), "trades": "count", "avg_price": ("mean", "price")},
        store=db,
    )
    return securities, metrics


def run(path: str, extra_trades: int) -> None:
    with weir.DB(path) as db:
        securities, metrics = open_views(db)
        securities.clear()
        metrics.clear()

        print("📊 Loading dimension table...")
        securities.load(pa.Table.from_pylist(SECURITIES))
        print(f"   ✅ Loaded {len(securities)} securities")

        print("\n💰 Simulating trade enrichment...")
        sample = pa.record_batch({"symbol": ["AAPL", "JPM", "GOOGL"], "qty": [100, 50, 10]})
        for row in securities.enrich(sample, columns=["name", "sector"]).to_pylist():
            print(f"   ✅ Enriched {row['symbol']}: {row['name']} ({row['sector']})")

        print("\n📊 Building analytical view...")
        for enriched in securities @ trade_batches():
            metrics.update(enriched)
        print(f"   ✅ Materialized {len(metrics)} sector metrics")

        if extra_trades:
            # A larger flow through the same pipeline, into a separate view.
            rng = random.Random(1)
            symbols = pa.array([rng.choice(SECURITIES)["symbol"] for _ in range(extra_trades)])
            flow = pa.record_batch({"symbol": symbols, "qty": pa.array([100] * extra_trades)})
            started = time.perf_counter()
            out = securities.enrich(flow, columns=["sector"])
            took = time.perf_counter() - started
            print(f"   ⚡ Enriched {out.num_rows:,} more trades in {took * 1000:.1f} ms")

    # Reopen: the dimension and the view come back from weir.
    with weir.DB(path) as db:
        securities, metrics = open_views(db)
        print(f"\n🔁 Reopened: {len(securities)} securities, {len(metrics)} sector metrics")
        print("\n📈 Querying analytical view...")
        for sector in ("Technology", "Finance"):
            m = metrics[sector]
            print(f"   📊 {sector}:")
            print(f"      Volume: {m['volume']:,}")
            print(f"      Trades: {m['trades']:,}")
            print(f"      Avg Price: ${m['avg_price']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The seed's materialization scenario: a securities dimension table, "
        "trade enrichment and a sector-metrics view, persisted in weir."
    )
    parser.add_argument(
        "--db", help="weir DB directory to use (default: a temporary one, removed at the end)"
    )
    parser.add_argument(
        "--trades",
        type=int,
        default=0,
        help="also enrich this many generated trades in one batch and time it",
    )
    args = parser.parse_args()
    if args.db:
        run(args.db, args.trades)
        return 0
    tmp = tempfile.mkdtemp(prefix="weir-materialize-")
    try:
        run(tmp, args.trades)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
