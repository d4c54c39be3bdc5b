#!/usr/bin/env python3
"""weir.materialize benchmarks: enrichment joins against their peers, single
lookups, index memory and bulk loads.

One run, the same Arrow data for every engine:

* ``enrich``  -- a left join of PROBE probe rows (key, qty) against a
  dimension of D rows (key, a: int64, b: float64) for each D in --dims and
  each key type (int64; string keys "k" + 10 digits). About 9% of probe keys
  miss. weir: ``DimensionTable.enrich`` on one RecordBatch (C probe and
  gather, on its default threads). Peers: pyarrow ``Table.join`` (Acero, its default
  threads), duckdb (``LEFT JOIN`` over the registered Arrow tables, result
  fetched as an Arrow table), polars (``DataFrame.join(how="left")`` on
  frames converted from the Arrow tables before timing). Each figure is
  the median of --repeat runs; rows/s counts probe rows.
* ``dim[key]`` and ``key in dim`` from Python, per second (1M random keys
  present in the dimension; half of the ``in`` keys are absent).
* index bytes per dimension row (the C hash index only; the rows
  themselves are the Arrow table's).
* bulk load rows/s into a persisted dimension (weir DB on disk) from a
  Parquet file and an Arrow IPC file, next to the time pyarrow alone needs
  to read the same file.

Usage: bench/python/materialize.py [--probe N] [--dims 10000,1000000,10000000]
       [--keys int64,string] [--engines weir,pyarrow,duckdb,polars] [--repeat R]
       [--load-rows N] [--dir DIR] [--json FILE] [--plot PNG] [--no-doc]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pa_parquet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _doc import ROOT, machine, update_block

import weir
from weir.materialize import DimensionTable

ENGINES = ("weir", "pyarrow", "duckdb", "polars")


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def string_keys(ids: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise("k", pc.utf8_lpad(pc.cast(ids, pa.string()), 10, "0"), "")


def make_dim(rows: int, key_type: str, seed: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    key = ids if key_type == "int64" else string_keys(ids)
    return pa.table(
        {
            "key": key,
            "a": pc.multiply(ids, 3),
            "b": pc.random(rows, initializer=seed),
        }
    )


def make_probe(rows: int, dim_rows: int, key_type: str, seed: int) -> pa.Table:
    # Uniform over 1.1 x the dimension's keys: about 9% miss.
    uniform = pc.random(rows, initializer=seed)
    ids = pc.cast(pc.floor(pc.multiply(uniform, dim_rows * 1.1)), pa.int64())
    key = ids if key_type == "int64" else string_keys(ids)
    qty = pc.cast(pc.floor(pc.multiply(pc.random(rows, initializer=seed + 1), 1000)), pa.int64())
    return pa.table({"key": key, "qty": qty}).combine_chunks()


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def result_rows(out: Any) -> int:
    if isinstance(out, pa.Table | pa.RecordBatch):
        return int(out.num_rows)
    return int(out.height)  # polars


def bench_enrich(args: argparse.Namespace, engines: list[str]) -> list[dict[str, Any]]:
    results = []
    for key_type in args.keys:
        for dim_rows in args.dims:
            progress(f"data: {dim_rows:,}-row {key_type} dimension, {args.probe:,} probe rows")
            dim_table = make_dim(dim_rows, key_type, seed=1)
            probe = make_probe(args.probe, dim_rows, key_type, seed=2)
            probe_batch = probe.to_batches()[0]
            expected_rows = args.probe
            for engine in engines:
                progress(f"enrich {engine}: dim {dim_rows:,} {key_type}")
                try:
                    fn = setup_engine(engine, dim_table, probe, probe_batch)
                except Exception as e:
                    results.append(
                        {
                            "engine": engine,
                            "key": key_type,
                            "dim_rows": dim_rows,
                            "error": f"{type(e).__name__}: {e}",
                        }
                    )
                    continue
                secs, out = median_time(fn, args.repeat)
                if result_rows(out) != expected_rows:
                    raise SystemExit(
                        f"{engine} returned {result_rows(out)} rows, expected {expected_rows}"
                    )
                del out
                results.append(
                    {
                        "engine": engine,
                        "key": key_type,
                        "dim_rows": dim_rows,
                        "probe_rows": args.probe,
                        "seconds": secs,
                        "rows_per_sec": args.probe / secs,
                    }
                )
                progress(f"  {args.probe / secs / 1e6:,.1f} M rows/s ({secs * 1000:,.0f} ms)")
            del dim_table, probe, probe_batch
            gc.collect()
    return results


def setup_engine(
    engine: str, dim_table: pa.Table, probe: pa.Table, probe_batch: pa.RecordBatch
) -> Callable[[], Any]:
    if engine == "weir":
        dim = DimensionTable("bench", key="key")
        dim.upsert(dim_table)
        return lambda: dim.enrich(probe_batch)
    if engine == "pyarrow":
        return lambda: probe.join(dim_table, "key", join_type="left outer")
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.register("probe", probe)
        con.register("dim", dim_table)
        sql = "SELECT p.key, p.qty, d.a, d.b FROM probe p LEFT JOIN dim d ON p.key = d.key"
        return lambda: con.sql(sql).to_arrow_table()
    if engine == "polars":
        import polars as pl

        pdim = pl.from_arrow(dim_table)
        pprobe = pl.from_arrow(probe)
        return lambda: pprobe.join(pdim, on="key", how="left")
    raise ValueError(engine)


def bench_lookups(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    rng = random.Random(3)
    n = args.lookups
    for key_type in args.keys:
        for dim_rows in args.dims:
            progress(f"lookups: dim {dim_rows:,} {key_type}")
            dim_table = make_dim(dim_rows, key_type, seed=1)
            dim = DimensionTable("bench", key="key")
            t0 = time.perf_counter()
            dim.upsert(dim_table)
            build = time.perf_counter() - t0
            ids = [rng.randrange(dim_rows) for _ in range(n)]
            misses = [rng.randrange(dim_rows, 2 * dim_rows) for _ in range(n)]
            if key_type == "int64":
                hits, absent = ids, misses
            else:
                hits = [f"k{i:010d}" for i in ids]
                absent = [f"k{i:010d}" for i in misses]
            mixed = [k for pair in zip(hits[: n // 2], absent[: n // 2], strict=True) for k in pair]

            def contains(keys: list[Any] = mixed, d: DimensionTable = dim) -> int:
                found = 0
                for k in keys:
                    if k in d:
                        found += 1
                return found

            def getitem(keys: list[Any] = hits, d: DimensionTable = dim) -> None:
                for k in keys:
                    d[k]

            secs_in, found = median_time(contains, args.repeat)
            assert found == n // 2, found
            getitem(hits[: min(n, 200_000)])  # warm the row cache like a running job would
            secs_get, _ = median_time(getitem, args.repeat)
            out.append(
                {
                    "key": key_type,
                    "dim_rows": dim_rows,
                    "contains_per_sec": n / secs_in,
                    "getitem_per_sec": n / secs_get,
                    "index_bytes": dim.index_nbytes,
                    "index_bytes_per_row": dim.index_nbytes / dim_rows,
                    "key_bytes_per_row": (
                        0 if key_type == "int64" else 11
                    ),  # "k" + 10 digits, kept in the index's arena
                    "build_rows_per_sec": dim_rows / build,
                }
            )
            progress(
                f"  in: {n / secs_in / 1e6:.1f} M/s, dim[key]: {n / secs_get / 1e6:.2f} M/s, "
                f"index {dim.index_nbytes / dim_rows:.1f} B/row"
            )
            del dim, dim_table
            gc.collect()
    return out


def bench_loads(args: argparse.Namespace, workdir: str) -> list[dict[str, Any]]:
    out = []
    rows = args.load_rows
    for key_type in args.keys:
        table = make_dim(rows, key_type, seed=5)
        paths = {
            "parquet": os.path.join(workdir, f"dim-{key_type}.parquet"),
            "ipc": os.path.join(workdir, f"dim-{key_type}.arrow"),
        }
        pa_parquet.write_table(table, paths["parquet"])
        with pa_ipc.new_file(paths["ipc"], table.schema) as w:
            w.write_table(table, max_chunksize=65536)
        for fmt, path in paths.items():
            progress(f"bulk load: {rows:,} rows, {key_type} keys, {fmt}")
            loads = []
            reads = []
            for r in range(args.repeat):
                dbdir = os.path.join(workdir, f"db-{fmt}-{key_type}-{r}")
                with weir.DB(dbdir) as db:
                    dim = DimensionTable("loaded", key="key", store=db)
                    gc.collect()
                    t0 = time.perf_counter()
                    dim.load(path)
                    loads.append(time.perf_counter() - t0)
                    assert len(dim) == rows
                shutil.rmtree(dbdir)
                gc.collect()
                t0 = time.perf_counter()
                if fmt == "parquet":
                    pa_parquet.read_table(path)
                else:
                    with pa.memory_map(path) as src:
                        pa_ipc.open_file(src).read_all()
                reads.append(time.perf_counter() - t0)
            load = statistics.median(loads)
            read = statistics.median(reads)
            out.append(
                {
                    "key": key_type,
                    "format": fmt,
                    "rows": rows,
                    "file_bytes": os.path.getsize(path),
                    "load_rows_per_sec": rows / load,
                    "read_only_rows_per_sec": rows / read,
                }
            )
            progress(f"  {rows / load / 1e6:.2f} M rows/s (read alone {rows / read / 1e6:.1f})")
    return out


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.1f} M"
    return f"{x / 1e3:,.0f} K"


def render(res: dict[str, Any]) -> str:
    lines = [
        "### weir.materialize: enrichment joins, lookups, bulk loads",
        "",
        f"`bench/python/materialize.py`, {res['date']}; {res['machine']}. "
        f"Median of {res['settings']['repeat']} runs; the machine is shared with other "
        "jobs, so absolute figures move between runs (ratios less so). "
        f"{res['settings']['probe']:,} probe rows (key, qty) left-joined to a dimension "
        "(key, a: int64, b: float64), about 9% of probe keys absent; string keys are "
        '"k" + 10 digits. Every engine uses its default threads (weir: one per 256K '
        "probe rows, at most one per core; 2 cores here).",
        "",
        "**Enrichment, million probe rows per second** (ratio = weir ÷ the fastest peer)",
        "",
    ]
    enrich = res["enrich"]
    engines = [e for e in ENGINES if any(r["engine"] == e for r in enrich)]
    lines.append("| key | dimension rows | " + " | ".join(engines) + " | weir ÷ best peer |")
    lines.append("|---|---:|" + "---:|" * len(engines) + "---:|")
    for key_type in res["settings"]["keys"]:
        for dim_rows in res["settings"]["dims"]:
            cells = []
            weir_rate = None
            peers = []
            for e in engines:
                r = next(
                    (
                        x
                        for x in enrich
                        if x["engine"] == e and x["key"] == key_type and x["dim_rows"] == dim_rows
                    ),
                    None,
                )
                if r is None or "error" in r:
                    cells.append("not measured")
                    continue
                rate = r["rows_per_sec"]
                cells.append(f"{rate / 1e6:,.1f}")
                if e == "weir":
                    weir_rate = rate
                else:
                    peers.append((rate, e))
            if weir_rate and peers:
                best, best_e = max(peers)
                ratio = f"{weir_rate / best:.2f}x ({best_e})"
            else:
                ratio = "-"
            lines.append(f"| {key_type} | {dim_rows:,} | " + " | ".join(cells) + f" | {ratio} |")
    errors = [r for r in enrich if "error" in r]
    for r in errors:
        lines.append("")
        lines.append(f"{r['engine']} not measured ({r['key']}, {r['dim_rows']:,}): {r['error']}")
    lines += [
        "",
        "**Single lookups from Python, index memory, index build**",
        "",
        "| key | dimension rows | `key in dim` /s | `dim[key]` /s | index bytes/row "
        "| build rows/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["lookups"]:
        note = " (incl. 11 key bytes)" if r["key"] == "string" else ""
        lines.append(
            f"| {r['key']} | {r['dim_rows']:,} | {fmt_rate(r['contains_per_sec'])} "
            f"| {fmt_rate(r['getitem_per_sec'])} | {r['index_bytes_per_row']:.1f}{note} "
            f"| {fmt_rate(r['build_rows_per_sec'])} |"
        )
    lines += [
        "",
        "**Bulk load into a persisted dimension** (file read + weir log write + index; "
        "`read alone` is pyarrow reading the same file)",
        "",
        "| key | format | rows | file MB | load rows/s | read alone rows/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in res["loads"]:
        lines.append(
            f"| {r['key']} | {r['format']} | {r['rows']:,} | {r['file_bytes'] / 1e6:,.1f} "
            f"| {fmt_rate(r['load_rows_per_sec'])} | {fmt_rate(r['read_only_rows_per_sec'])} |"
        )
    if res.get("plot"):
        lines += ["", f"![enrichment throughput]({res['plot']})"]
    lines.append("")
    lines.append(
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(res["versions"].items())) + "."
    )
    return "\n".join(lines)


def plot(res: dict[str, Any], png: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("matplotlib is missing; no plot (make bench-materialize installs it)")
        return False
    enrich = [r for r in res["enrich"] if "error" not in r]
    keys = res["settings"]["keys"]
    dims = res["settings"]["dims"]
    engines = [e for e in ENGINES if any(r["engine"] == e for r in enrich)]
    palette = {"weir": "#1f77b4", "pyarrow": "#ff7f0e", "duckdb": "#2ca02c", "polars": "#9467bd"}
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    width = 0.8 / max(1, len(engines))
    for ax, key_type in zip(axes[0], keys, strict=True):
        for j, e in enumerate(engines):
            xs, ys = [], []
            for i, d in enumerate(dims):
                r = next(
                    (
                        x
                        for x in enrich
                        if x["engine"] == e and x["key"] == key_type and x["dim_rows"] == d
                    ),
                    None,
                )
                if r:
                    xs.append(i + (j - (len(engines) - 1) / 2) * width)
                    ys.append(r["rows_per_sec"] / 1e6)
            ax.bar(xs, ys, width=width, label=e, color=palette.get(e))
        ax.set_xticks(range(len(dims)))
        ax.set_xticklabels([f"{d:,}" for d in dims])
        ax.set_xlabel("dimension rows")
        ax.set_ylabel("million probe rows/s")
        ax.set_title(f"left join, {key_type} keys")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"weir.materialize enrich vs peers, {res['settings']['probe']:,} probe rows, "
        f"{res['date'][:10]}"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def versions(engines: list[str]) -> dict[str, str]:
    v = {"weir": weir.__version__, "pyarrow": pa.__version__}
    for name in ("duckdb", "polars"):
        if name in engines:
            try:
                v[name] = __import__(name).__version__
            except ImportError:
                pass
    return v


def main() -> int:
    p = argparse.ArgumentParser(
        description="weir.materialize: enrichment joins vs pyarrow, duckdb and polars; "
        "single lookups; index memory; bulk loads. Updates docs/BENCHMARKS.md."
    )
    p.add_argument("--probe", type=int, default=10_000_000, help="probe rows (default 10M)")
    p.add_argument(
        "--dims",
        default="10000,1000000,10000000",
        help="dimension sizes, comma-separated (default 10000,1000000,10000000)",
    )
    p.add_argument("--keys", default="int64,string", help="key types: int64,string")
    p.add_argument("--engines", default=",".join(ENGINES), help="engines to run")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is kept")
    p.add_argument("--lookups", type=int, default=1_000_000, help="keys per lookup test")
    p.add_argument("--load-rows", type=int, default=1_000_000, help="rows per bulk-load file")
    p.add_argument("--dir", help="scratch directory (default: a temporary one)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument(
        "--plot",
        default=os.path.join(ROOT, "docs", "bench_materialize.png"),
        help="plot file (default docs/bench_materialize.png)",
    )
    p.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = p.parse_args()
    args.dims = [int(x) for x in args.dims.split(",") if x]
    args.keys = [k for k in args.keys.split(",") if k]
    for k in args.keys:
        if k not in ("int64", "string"):
            p.error(f"unknown key type {k!r}")
    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            p.error(f"unknown engine {e!r}")
    available = []
    for e in engines:
        if e in ("duckdb", "polars"):
            try:
                __import__(e)
            except ImportError:
                progress(f"{e} is not installed; it is reported as not measured")
                continue
        available.append(e)

    workdir = args.dir or tempfile.mkdtemp(prefix="weir-bench-materialize-")
    os.makedirs(workdir, exist_ok=True)
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {
            "probe": args.probe,
            "dims": args.dims,
            "keys": args.keys,
            "repeat": args.repeat,
            "lookups": args.lookups,
            "load_rows": args.load_rows,
        },
        "versions": versions(available),
    }
    try:
        res["enrich"] = bench_enrich(args, available)
        for e in engines:
            if e not in available:
                for k in args.keys:
                    for d in args.dims:
                        res["enrich"].append(
                            {"engine": e, "key": k, "dim_rows": d, "error": "not installed"}
                        )
        res["lookups"] = bench_lookups(args)
        res["loads"] = bench_loads(args, workdir)
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    res["machine_end_load"] = os.getloadavg()[0]
    if args.plot and plot(res, args.plot):
        res["plot"] = os.path.relpath(args.plot, os.path.join(ROOT, "docs"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    text = render(res)
    print(text)
    if not args.no_doc:
        update_block("materialize", text)
        progress("docs/BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
