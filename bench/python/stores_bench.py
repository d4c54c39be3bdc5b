#!/usr/bin/env python3
"""The seed's store performance workload, scaled up, on every store backend.

The seed measured its store backend from Python with 1,000 async writes of
small dict values, 1,000 async reads and one batch of 100, and reported
72,708 writes/s, 241,655 reads/s and 135,716 batch items/s. This runs the
same shape of workload with N keys (100,000 by default) on the weir,
memory, rocksdb and redis backends in one run (Redis on a redis-server this
script starts on a free loopback port and stops), plus a full streaming
scan, and prints each figure with its ratio to the seed's.

The seed's figures come from another machine, so those ratios are only a
rough guide; the ratios between backends measured here, in the same run,
are the real comparison.

Usage: bench/python/stores_bench.py [--num N] [--backends weir,memory,...] [--no-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _doc import machine, update_block

SEED = {"writes": 72_708, "reads": 241_655, "batch": 135_716}
BACKENDS = ("weir", "memory", "rocksdb", "redis")


def value(i: int) -> dict[str, Any]:
    return {"id": i, "value": f"data_{i}", "score": i * 1.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self, workdir: str) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server is not installed (scripts/install-deps.sh installs it)"
            )
        from weir.cluster.local import start_redis_server, wait_for_redis

        self.port = free_port()
        self.proc = start_redis_server(exe, self.port, workdir, None)
        if not wait_for_redis(self.port, self.proc):
            self.stop()
            raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        from weir.cluster.local import stop_redis_server

        stop_redis_server(self.proc)


async def run_backend(kind: str, n: int, workdir: str, redis_url: str | None) -> dict[str, float]:
    from weir.stores import StoreBackendConfig, create_backend

    if kind == "redis":
        cfg = StoreBackendConfig(
            backend_type=kind, options={"url": redis_url, "namespace": "bench"}
        )
    else:
        cfg = StoreBackendConfig(backend_type=kind, path=os.path.join(workdir, kind))
    b = create_backend(cfg)
    await b.start()
    out: dict[str, float] = {}
    try:
        await b.clear()
        gc.collect()
        t = time.perf_counter()
        for i in range(n):
            await b.set(f"perf:{i}", value(i))
        out["writes"] = n / (time.perf_counter() - t)

        t = time.perf_counter()
        for i in range(n):
            v = await b.get(f"perf:{i}")
            if v is None:
                raise AssertionError(f"{kind}: perf:{i} missing")
        out["reads"] = n / (time.perf_counter() - t)

        t = time.perf_counter()
        for j in range(n // 100):
            await b.batch_set({f"batch:{j * 100 + i}": value(i) for i in range(100)})
        out["batch"] = (n // 100) * 100 / (time.perf_counter() - t)

        t = time.perf_counter()
        seen = 0
        async for _k, _v in b.scan(prefix="perf:"):
            seen += 1
        out["scan"] = seen / (time.perf_counter() - t)
        if seen != n:
            raise AssertionError(f"{kind}: scanned {seen} of {n}")
        stats = await b.get_stats()
        out["bytes_on_disk"] = float(stats.get("bytes_on_disk") or 0)
        await b.clear()
    finally:
        await b.stop()
    return out


def table(results: dict[str, dict[str, float]], n: int) -> str:
    lines = [
        f"The seed's store workload with {n:,} keys (async `set`/`get` of small dict values, "
        f"`batch_set` of 100, then a streaming `scan`), one event loop, one task; {machine()}. "
        "In parentheses: the ratio to the seed's figures (72,708 writes/s, 241,655 reads/s, "
        "135,716 batch items/s, measured on the seed author's machine).",
        "",
        "| backend | writes/s | reads/s | batch items/s | scan items/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        if "error" in r:
            lines.append(f"| {kind} | not measured: {r['error']} | | | |")
            continue
        cells = [f"{r[m]:,.0f} ({r[m] / SEED[m]:.2f}x)" for m in ("writes", "reads", "batch")]
        cells.append(f"{r['scan']:,.0f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if "weir" in results and "error" not in results["weir"]:
        w = results["weir"]
        peers = [k for k in results if k != "weir" and "error" not in results[k]]
        if peers:
            lines.append("")
            lines.append("weir relative to each backend in this run (higher is better for weir):")
            lines.append("")
            lines.append("| vs | writes | reads | batch | scan |")
            lines.append("|---|---:|---:|---:|---:|")
            for p in peers:
                r = results[p]
                cells = [f"{w[m] / r[m]:.2f}x" for m in ("writes", "reads", "batch", "scan")]
                lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    workdir = tempfile.mkdtemp(prefix="weir-stores-bench-")
    server: RedisServer | None = None
    results: dict[str, dict[str, Any]] = {}
    try:
        for kind in args.backends.split(","):
            url = None
            if kind == "redis":
                server = RedisServer(workdir)
                url = server.url
            print(f"{kind}: ...", end="", flush=True)
            r = await run_backend(kind, args.num, workdir, url)
            results[kind] = r
            print(
                " " + ", ".join(f"{m} {r[m]:,.0f}/s" for m in ("writes", "reads", "batch", "scan")),
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--num", type=int, default=100_000)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    md = table(results, args.num)
    print()
    print(md)
    if not args.no_doc:
        update_block("stores_bench", "### Store backends (the seed's async workload)\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
