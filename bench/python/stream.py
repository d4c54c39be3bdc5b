#!/usr/bin/env python3
"""Benchmark: the fraud-detection job (examples/fraud_detection.py) over
generated transactions on weir.stream with each store backend, and the same
job on bytewax and PyFlink when their venv is given.

Every engine reads the same JSON-lines input file and must find the same
number of alerts (the run fails otherwise). Checkpoints are time-based and
equal for all: every ``--checkpoint-seconds`` (weir.stream: a checkpoint;
bytewax: an epoch snapshot to its SQLite recovery store; PyFlink: a
checkpoint of the hashmap state backend). Each peer is configured as its
own guidance would have it (the settings are listed in each peer script's
docstring and in docs/BENCHMARKS.md).

Figures: wall seconds and events/s, and for weir.stream also events per CPU
second of the process and the longest checkpoint pause. Results go to
bench/results/stream.json and, with ``--update-docs``, into the section of
docs/BENCHMARKS.md between the ``stream-bench`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- stream-bench:begin -->", "<!-- stream-bench:end -->"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fraud_detection", ROOT / "examples" / "fraud_detection.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fraud_detection"] = mod
    spec.loader.exec_module(mod)
    return mod


def progress(msg: str) -> None:
    sys.stderr.write(f"\r\x1b[K{msg}" if sys.stderr.isatty() else msg + "\n")
    sys.stderr.flush()


def write_input(fd: Any, path: Path, events: int, users: int, seed: int) -> None:
    gen = fd.TransactionGenerator(users, seed)
    step = 50_000
    with open(path, "w") as f:
        for start in range(0, events, step):
            batch = gen.make(start, min(step, events - start))
            f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in batch))
            progress(f"writing input: {min(start + step, events):,}/{events:,} transactions")
    if sys.stderr.isatty():
        sys.stderr.write("\n")


async def run_weir(
    fd: Any, backend: str, inp: Path, work: Path, redis_addr: str | None, ckpt_s: float
) -> dict[str, Any]:
    from weir.stream import JsonLinesSink, JsonLinesSource

    store = fd.make_store(backend, work / "state", redis_addr, f"bench-{work.name}")
    out = work / "alerts.jsonl"
    job = fd.build_job(
        JsonLinesSource(inp, name="transactions"),
        JsonLinesSink(out, name="alerts"),
        store=store,
        checkpoint_every=None,
        progress=None,
    )
    job.checkpoint_interval = ckpt_s
    m = await job.run()
    if backend == "redis":
        await store.start()
        await store.clear()
        await store.stop()
    with open(out, "rb") as f:
        alerts = sum(1 for _ in f)
    return {
        "engine": f"weir.stream ({backend})",
        "events": m["events"],
        "seconds": m["seconds"],
        "cpu_seconds": m["cpu_seconds"],
        "alerts": alerts,
        "checkpoints": m["checkpoints"],
        "pause_ms_max": m["checkpoint_pause_ms_max"],
        "pause_cpu_ms_max": m["checkpoint_pause_cpu_ms_max"],
        "checkpoint_ms_median": m["checkpoint_ms_median"],
    }


async def run_pause(fd: Any, events: int, users: int, work: Path) -> dict[str, Any]:
    """The checkpoint pause with about ``users`` dirty keys per checkpoint:
    the generated stream (no file parsing), weir backend, a checkpoint
    halfway (by then ~99% of the users changed) and one at the end."""
    from weir.stream import FunctionSource, ListSink

    gen = fd.TransactionGenerator(users, 7)
    job = fd.build_job(
        FunctionSource(gen.make, events),
        ListSink("alerts"),
        state_dir=work / "state",
        checkpoint_every=events // 2,
        progress=False,
    )
    m: dict[str, Any] = await job.run()
    return m


def run_peer(
    engine: str, python: str, inp: Path, work: Path, ckpt_s: float, timeout: float
) -> dict[str, Any]:
    script = ROOT / "bench" / "python" / f"stream_peer_{engine}.py"
    flag = "--epoch-seconds" if engine == "bytewax" else "--checkpoint-seconds"
    argv = [
        python,
        str(script),
        "--input",
        str(inp),
        "--output",
        str(work / "alerts.jsonl"),
        "--state-dir",
        str(work / "state"),
        flag,
        str(ckpt_s),
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"did not finish within {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"engine": engine, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    res: dict[str, Any] = json.loads(lines[-1])
    res["process_seconds"] = wall  # including interpreter/JVM start-up
    return res


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r["seconds"])
    best = dict(ok[len(ok) // 2])
    best["runs"] = len(ok)
    best["seconds_all"] = [round(r["seconds"], 3) for r in ok]
    return best


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    ref = next(
        (r for r in results if r["engine"] == "weir.stream (weir)" and "error" not in r), None
    )
    rows = [
        "| engine | events/s | seconds | events per CPU-s | alerts | checkpoints | "
        "longest pause (wall / CPU) | weir.stream (weir) is faster by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['engine']} | not measured: {r['error']} | | | | | | |")
            continue
        eps = r["events"] / r["seconds"]
        cpu = r.get("cpu_seconds")
        per_cpu = f"{r['events'] / cpu:,.0f}" if cpu and r["engine"].startswith("weir") else "n/a"
        pause = (
            f"{r['pause_ms_max']:.1f} / {r['pause_cpu_ms_max']:.1f} ms"
            if "pause_ms_max" in r
            else "n/a"
        )
        # How many times longer this engine took than weir.stream on weir.
        ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else ""
        rows.append(
            f"| {r['engine']} | {eps:,.0f} | {r['seconds']:.2f} | {per_cpu} | {r['alerts']:,} | "
            f"{r.get('checkpoints', 'n/a')} | {pause} | {ratio} |"
        )
    return "\n".join(rows)


def update_docs(md: str) -> None:
    doc = ROOT / "docs" / "BENCHMARKS.md"
    text = doc.read_text()
    block = f"{BEGIN}\n{md}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="transactions (default 1,000,000)"
    )
    ap.add_argument("--users", type=int, default=100_000, help="users (default 100,000)")
    ap.add_argument(
        "--backends",
        default="weir,memory,rocksdb,redis",
        help="weir.stream store backends to run (default all four)",
    )
    ap.add_argument(
        "--peer-python",
        default=None,
        help="python of a venv with bytewax and apache-flink (peers skipped if absent)",
    )
    ap.add_argument("--peers", default="bytewax,flink", help="peers to run (default bytewax,flink)")
    ap.add_argument("--peer-timeout", type=float, default=1800, help="seconds per peer run")
    ap.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=1.0,
        help="checkpoint interval for every engine (default 1.0)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the median is kept")
    ap.add_argument(
        "--peer-repeat",
        type=int,
        default=None,
        help="runs per peer (default --repeat; PyFlink takes long)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--pause-users",
        type=int,
        default=100_000,
        help="keys for the checkpoint-pause measurement (0: skip)",
    )
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "stream.json")
    ap.add_argument(
        "--update-docs", action="store_true", help="write the table into docs/BENCHMARKS.md"
    )
    args = ap.parse_args()
    fd = load_example()
    backends = [b for b in args.backends.split(",") if b]
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="weir-stream-bench-")))
        inp = tmp / "transactions.jsonl"
        write_input(fd, inp, args.events, args.users, args.seed)
        redis_addr = stack.enter_context(fd.redis_server()) if "redis" in backends else None
        # Rounds rotate the backends' order (as weir-bench rotates its
        # engines), so no backend always runs first on a cold or busy
        # machine.
        runs_of: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        for i in range(args.repeat):
            shift = i % len(backends) if backends else 0
            for backend in backends[shift:] + backends[:shift]:
                progress(f"weir.stream ({backend}) run {i + 1}/{args.repeat}")
                work = tmp / f"{backend}-{i}"
                work.mkdir()
                runs_of[backend].append(
                    asyncio.run(
                        run_weir(fd, backend, inp, work, redis_addr, args.checkpoint_seconds)
                    )
                )
                shutil.rmtree(work, ignore_errors=True)
        results.extend(median_run(runs_of[b]) for b in backends)
        pauses = []
        if args.pause_users:
            for i in range(args.repeat):
                progress(
                    f"checkpoint pause at {args.pause_users:,} keys, run {i + 1}/{args.repeat}"
                )
                work = tmp / f"pause-{i}"
                work.mkdir()
                pauses.append(
                    asyncio.run(run_pause(fd, 10 * args.pause_users, args.pause_users, work))
                )
                shutil.rmtree(work, ignore_errors=True)
        for peer in [p for p in args.peers.split(",") if p]:
            if args.peer_python is None:
                results.append({"engine": peer, "error": "no --peer-python venv given"})
                continue
            runs = []
            peer_repeat = args.repeat if args.peer_repeat is None else args.peer_repeat
            for i in range(peer_repeat):
                progress(f"{peer} run {i + 1}/{peer_repeat}")
                work = tmp / f"{peer}-{i}"
                work.mkdir()
                runs.append(
                    run_peer(
                        peer,
                        args.peer_python,
                        inp,
                        work,
                        args.checkpoint_seconds,
                        args.peer_timeout,
                    )
                )
                shutil.rmtree(work, ignore_errors=True)
                if "error" in runs[-1]:
                    break
            results.append(median_run(runs))
    progress("done\n")
    want = {r["alerts"] for r in results if "error" not in r}
    if len(want) > 1:
        print(f"engines disagree on the number of alerts: {sorted(want)}", file=sys.stderr)
        return 1
    md = table(results, args)
    pause_md = ""
    if pauses:
        pauses.sort(key=lambda m: m["checkpoint_pause_ms_max"])
        p = pauses[len(pauses) // 2]
        pause_md = (
            f"\n\nCheckpoint pause with {p['checkpoint_keys_max']:,} keys written by one "
            f"checkpoint (generated stream of {p['events']:,} transactions over "
            f"{args.pause_users:,} users, weir backend, a checkpoint halfway; median of "
            f"{len(pauses)} runs): longest stall {p['checkpoint_pause_ms_max']:.1f} ms wall, "
            f"{p['checkpoint_pause_cpu_ms_max']:.1f} ms CPU; the checkpoint took "
            f"{p['checkpoint_ms_max']:.0f} ms from barrier to durable while processing went "
            f"on; {p['events_per_s']:,.0f} events/s, {p['events_per_cpu_s']:,.0f} per CPU "
            "second (source included)."
        )
        for m in pauses:
            m.pop("sinks", None)
    md += pause_md
    header = (
        f"Fraud job, {args.events:,} transactions over {args.users:,} users, JSON-lines input, "
        f"checkpoint every {args.checkpoint_seconds:g} s, median of {args.repeat} runs "
        "(rounds rotate the backends' order) "
        f"(peers: {args.repeat if args.peer_repeat is None else args.peer_repeat}); "
        f"{platform.machine()}, {os.cpu_count()} cores, 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}."
    )
    print(header + "\n\n" + md)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": results,
                "pause_runs": pauses,
            },
            indent=2,
        )
    )
    if args.update_docs:
        update_docs(header + "\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
