"""Command line of weir.cluster.

``weir-worker JOB_MODULE ...`` starts a worker (also ``python -m
weir.cluster worker``); ``weir job status JOB ...`` (the ``weir`` CLI hands
``job`` to ``python3 -m weir.cluster``) shows partitions, owners, lag and
throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import MISSING_REDIS

_DEFAULT_URL = os.environ.get("WEIR_REDIS_URL", "redis://127.0.0.1:6379/0")


def _worker_parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Run a worker of a scaled-out weir job: it takes a fair share of the "
        "job's partitions through Redis leases, keeps their state in local weir DBs and "
        "hands them over when workers join or leave.",
    )
    ap.add_argument(
        "job", help="the job: path/to/job.py or package.module, optionally :ATTRIBUTE (JOB)"
    )
    ap.add_argument("--redis", default=_DEFAULT_URL, help="Redis URL (a Cluster node works too)")
    ap.add_argument(
        "--work-dir", default="weir-work", help="where the local state DBs go (default weir-work)"
    )
    ap.add_argument(
        "--snapshot-dir",
        required=True,
        help="where partition snapshots go; every worker of the job must see the same one",
    )
    ap.add_argument("--id", dest="worker_id", help="worker id (default HOSTNAME-PID)")
    ap.add_argument(
        "--lease-ms", type=int, default=6000, help="partition lease time in ms (default 6000)"
    )
    ap.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus/OpenMetrics metrics on http://ADDR:PORT/metrics "
        "(needs prometheus_client: pip install 'weirdb[metrics]')",
    )
    ap.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address of the metrics endpoint (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    ap.add_argument(
        "--forever",
        action="store_true",
        help="keep running after every partition has finished (default: exit then)",
    )
    return ap


@contextlib.contextmanager
def _needs_redis(prog: str) -> Iterator[None]:
    """Turn a missing redis-py into a one-line hint and exit status 2."""
    try:
        yield
    except ModuleNotFoundError as e:
        if e.name == "redis" or (e.name or "").startswith("redis."):
            print(f"{prog}: {MISSING_REDIS}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


def _cluster() -> Any:
    """weir.cluster's worker and status functions (imported here: they
    need redis-py, which is an optional extra)."""
    from . import _job, _redis, _worker

    return _job, _redis, _worker


def worker_main(argv: list[str] | None = None, prog: str = "weir-worker") -> int:
    """Entry point of ``weir-worker``."""
    args = _worker_parser(prog).parse_args(argv)
    with _needs_redis(prog):
        _job, _redis, _worker = _cluster()
    try:
        job = _job.load_job(args.job)
        worker = _worker.Worker(
            args.redis,
            job,
            args.work_dir,
            args.snapshot_dir,
            worker_id=args.worker_id,
            lease_ms=args.lease_ms,
            exit_when_done=not args.forever,
            metrics_port=args.metrics_port,
            metrics_addr=args.metrics_addr,
        )
        with _needs_metrics(prog):
            stats = asyncio.run(worker.run())
    except _redis.ClusterError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # e.g. the metrics port is taken
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(
        f"{prog}: done: {stats['acquired']} partitions acquired, {stats['finished']} finished, "
        f"{stats['released']} handed over, {stats['lost']} lost, "
        f"{stats['expired']} given up while Redis did not answer",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _needs_metrics(prog: str) -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as e:
        if "prometheus_client" in str(e):
            print(f"{prog}: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


def _quiet_broken_pipe(fn: Callable[[], int]) -> int:
    """Run ``fn``; if the reader of stdout went away (``| head``), exit
    quietly as other command-line tools do, without a traceback (and
    without a second one when Python flushes stdout at exit)."""
    try:
        return fn()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for such a writer


def _print_status(st: dict[str, Any]) -> None:
    parts = st["partitions"]
    print(f"job {st['job']}: {len(parts)} partitions, {len(st['workers'])} live workers")
    for w in st["workers"]:
        print(f"  worker {w['id']} (lease {w['expires_in_ms']} ms)")
    print(
        f"{'part':>4} {'owner':<24} {'token':>5} {'ckpt':>6} {'events':>12} {'lag':>10} "
        f"{'ev/s':>10} {'log':>5} {'snap':>6} state"
    )
    for p in parts:
        print(
            f"{p['partition']:>4} {p['owner'] or '-':<24} {p['token'] or '-':>5} "
            f"{p['checkpoint']:>6} {p['events']:>12,} {p['lag']:>10,} {p['rate']:>10,.0f} "
            f"{p['changelog']:>5} {p['snapshot'] if p['snapshot'] is not None else '-':>6} "
            f"{'finished' if p['finished'] else 'running' if p['owner'] else 'unowned'}"
        )
    total = sum(p["rate"] for p in parts)
    lag = sum(p["lag"] for p in parts)
    print(f"total: {sum(p['events'] for p in parts):,} events, lag {lag:,}, {total:,.0f} ev/s")


def job_main(argv: list[str] | None = None, prog: str = "weir job") -> int:
    """Entry point of ``weir job``."""
    ap = argparse.ArgumentParser(prog=prog, description="Inspect scaled-out weir jobs.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser(
        "status",
        help="partitions, owners, lag and throughput of a job",
        description="Show a job's partitions: owner, fencing token, last checkpoint, "
        "events, lag (input entries not yet checkpointed), throughput at the last "
        "checkpoint, changelog length and snapshot; and its live workers.",
    )
    st.add_argument("job", help="the job's name")
    st.add_argument("--redis", default=_DEFAULT_URL, help="Redis URL")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS")
    args = ap.parse_args(argv)
    with _needs_redis(prog):
        _job, _redis, _worker = _cluster()

    def show() -> int:
        try:
            while True:
                status = asyncio.run(_worker.job_status(args.redis, args.job))
                if args.json:
                    print(json.dumps(status, indent=2))
                else:
                    _print_status(status)
                sys.stdout.flush()
                if not args.watch:
                    return 0
                time.sleep(args.watch)
                print()
        except _redis.ClusterError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return _quiet_broken_pipe(show)


def main(argv: list[str] | None = None) -> int:
    """``python -m weir.cluster worker|job ...``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        return worker_main(argv[1:], prog="python -m weir.cluster worker")
    if argv and argv[0] == "job":
        return job_main(argv[1:])
    usage = "usage: python -m weir.cluster {worker|job} ...  (each takes --help)"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    print(usage, file=sys.stderr)
    return 2
