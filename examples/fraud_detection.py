#!/usr/bin/env python3
"""Real-time fraud detection on weir.stream: the seed's fifth scenario as a
streaming job that survives crashes without losing or double-counting.

Per user the job keeps, in keyed state: the transaction count, the total,
the average, the maximum and the last five amounts. For each transaction it
updates the state first, then flags it if the user has more than one
transaction of history and the amount is over 10x their running average
("unusual amount"), or else if the amount is over 5000 ("large
transaction").

It runs, in order:

1. the seed's 10 transactions, printing the seed's result;
2. a generated stream (``--events`` transactions over ``--users`` users) on
   ``--backend``, with a progress bar, ending with the alerts found,
   events/s and checkpoint figures;
3. with ``--crash-test N``: the generated stream again in a worker process
   killed with SIGKILL at random points N times and restarted each time;
   the final state and the alert output must equal an uninterrupted run's,
   byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import pickle
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from weir.stream import (
    CallbackSink,
    FunctionSource,
    IterableSource,
    JsonLinesSink,
    ListSink,
    Pipeline,
    Sink,
    Source,
    ValueState,
)

#: The seed's 10 transactions (its report shows T001-T003, T006 and T010;
#: the others are filled in to give its per-user totals exactly).
SEED_TRANSACTIONS: list[dict[str, Any]] = [
    {"tx_id": "T001", "user_id": "U001", "amount": 50.00, "merchant": "Coffee Shop"},
    {"tx_id": "T002", "user_id": "U001", "amount": 45.00, "merchant": "Gas Station"},
    {"tx_id": "T003", "user_id": "U001", "amount": 5000.00, "merchant": "Jewelry Store"},
    {"tx_id": "T004", "user_id": "U002", "amount": 25.00, "merchant": "Bookstore"},
    {"tx_id": "T005", "user_id": "U003", "amount": 200.00, "merchant": "Restaurant"},
    {"tx_id": "T006", "user_id": "U002", "amount": 8000.00, "merchant": "Electronics"},
    {"tx_id": "T007", "user_id": "U001", "amount": 80.00, "merchant": "Grocery Store"},
    {"tx_id": "T008", "user_id": "U003", "amount": 150.00, "merchant": "Department Store"},
    {"tx_id": "T009", "user_id": "U001", "amount": 50.00, "merchant": "Pharmacy"},
    {"tx_id": "T010", "user_id": "U003", "amount": 12000.00, "merchant": "Car Dealer"},
]

LARGE_AMOUNT = 5000.0
UNUSUAL_FACTOR = 10.0
RECENT = 5
NL = b"\n"
OPERATOR = "fraud"
#: A user's state: (transaction count, total amount, largest amount, last
#: five amounts). A tuple, not a dict: it is built per event and pickled
#: per checkpoint, and a tuple is the cheapest to do both with.
UserState = tuple[int, float, float, tuple[float, ...]]


def describe(state: UserState) -> dict[str, Any]:
    """A user's state with names (and the average) for printing."""
    count, total, largest, recent = state
    return {
        "txn_count": count,
        "total_amount": total,
        "avg_amount": total / count,
        "max_amount": largest,
        "recent": list(recent),
    }


STATE = "user"


def make_detector(emit_every_verdict: bool) -> Any:
    """The keyed operator: ``detect(user_id, tx, user_state)``.

    It emits an alert dict for a flagged transaction; with
    ``emit_every_verdict`` it emits a verdict for every transaction (the
    alert's ``reason`` is None when it is fine).
    """

    def detect(user_id: str, tx: dict[str, Any], user: ValueState[UserState]) -> Any:
        amount = tx["amount"]
        s = user.value()
        if s is None:
            count, total, largest, recent = 1, amount, amount, (amount,)
        else:
            count = s[0] + 1
            total = s[1] + amount
            largest = s[2] if s[2] >= amount else amount
            recent = (*s[3][1 - RECENT :], amount)
        user.update((count, total, largest, recent))
        avg = total / count
        if count > 1 and amount > UNUSUAL_FACTOR * avg:
            reason = f"Unusual amount: ${amount:.2f} is over 10x the average ${avg:.2f}"
        elif amount > LARGE_AMOUNT:
            reason = f"Large transaction: ${amount:.2f} exceeds threshold"
        elif emit_every_verdict:
            reason = None
        else:
            return None
        return (
            {
                "tx_id": tx["tx_id"],
                "user_id": user_id,
                "amount": amount,
                "merchant": tx.get("merchant", ""),
                "reason": reason,
            },
        )

    return detect


def build_job(
    source: Source,
    alerts: Sink,
    *,
    store: Any = None,
    state_dir: str | os.PathLike[str] | None = None,
    verdicts: Sink | None = None,
    dead_letter: Sink | None = None,
    checkpoint_every: int | None = 100_000,
    progress: bool | None = None,
    name: str = "fraud",
) -> Pipeline:
    """The fraud job over ``source``: alerts to ``alerts`` (and, if given,
    every verdict to ``verdicts``)."""
    job = Pipeline(
        name,
        store=store,
        state_dir=state_dir,
        checkpoint_every=checkpoint_every,
        dead_letter=dead_letter,
        progress=progress,
    )
    scored = (
        job.source(source)
        .key_by("user_id")
        .process(make_detector(verdicts is not None), ValueState(STATE), name=OPERATOR)
    )
    if verdicts is not None:
        scored.sink(verdicts)
        scored.filter(lambda v: v["reason"] is not None).sink(alerts)
    else:
        scored.sink(alerts)
    return job


# ---- generated transactions ---------------------------------------------------------------

MERCHANTS = [
    "Coffee Shop",
    "Gas Station",
    "Grocery Store",
    "Restaurant",
    "Pharmacy",
    "Bookstore",
    "Department Store",
    "Electronics",
    "Jewelry Store",
    "Car Dealer",
    "Airline",
    "Hotel",
]
_CHUNK = 4096


class TransactionGenerator:
    """Deterministic transactions by index: ``make(start, count)`` always
    returns the same ones, so a restarted job regenerates what it replays."""

    def __init__(self, users: int, seed: int = 42) -> None:
        if users <= 0:
            raise ValueError(f"users must be positive, not {users}")
        self.users = [f"U{i:06d}" for i in range(1, users + 1)]
        self.seed = seed
        self._chunk_no = -1
        self._chunk: list[dict[str, Any]] = []

    def _make_chunk(self, no: int) -> list[dict[str, Any]]:
        rng = random.Random(self.seed * 1_000_003 + no)
        r = rng.random
        users = self.users
        n_users = len(users)
        merchants = MERCHANTS
        n_merchants = len(merchants)
        base = no * _CHUNK
        out = []
        for i in range(_CHUNK):
            x = r()
            if x < 0.002:
                amount = round(5000.0 + 15000.0 * r(), 2)  # a large purchase
            elif x < 0.004:
                amount = round(1000.0 + 3000.0 * r(), 2)  # unusual for a small spender
            else:
                amount = round(1.0 + 150.0 * r() * r(), 2)
            out.append(
                {
                    "tx_id": f"T{base + i:09d}",
                    "user_id": users[int(r() * n_users)],
                    "amount": amount,
                    "merchant": merchants[int(r() * n_merchants)],
                }
            )
        return out

    def make(self, start: int, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        pos, end = start, start + count
        while pos < end:
            no = pos // _CHUNK
            if no != self._chunk_no:
                self._chunk = self._make_chunk(no)
                self._chunk_no = no
            lo = pos - no * _CHUNK
            hi = min(_CHUNK, end - no * _CHUNK)
            out.extend(self._chunk[lo:hi])
            pos += hi - lo
        return out


# ---- backends -----------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port (no persistence)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (scripts/install-deps.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from weir.cluster.local import start_redis_server, stop_redis_server, wait_for_redis

    workdir = tempfile.mkdtemp(prefix="weir-redis-")
    proc = start_redis_server(exe, port, workdir, None)
    try:
        if not wait_for_redis(port, proc, timeout=10):
            raise SystemExit("redis-server did not start")
        yield f"127.0.0.1:{port}/0"
    finally:
        stop_redis_server(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def make_store(backend: str, path: Path, redis_addr: str | None, namespace: str) -> Any:
    """A store backend of kind ``backend`` with pickle values (unstarted)."""
    from weir.stores import StoreBackendConfig, create_backend

    options: dict[str, Any] = {"value_codec": "pickle"}
    if backend == "redis":
        options["namespace"] = namespace
        return create_backend(
            StoreBackendConfig(backend_type="redis", path=redis_addr, options=options)
        )
    if backend == "memory":
        return create_backend(StoreBackendConfig(backend_type="memory", options=options))
    return create_backend(StoreBackendConfig(backend_type=backend, path=path, options=options))


async def dump_state(store: Any, job: str = "fraud") -> bytes:
    """Every user's committed state, sorted, as bytes (to compare runs)."""
    prefix = f"{job}:s:{OPERATOR}:{STATE}:"
    items = sorted(await store.items(prefix))
    return pickle.dumps(items, protocol=4)


# ---- 1. the seed's scenario ---------------------------------------------------------------


def print_verdict(v: dict[str, Any]) -> None:
    if v["reason"] is None:
        print(f"✅ OK | {v['tx_id']} | User {v['user_id']} | ${v['amount']:8.2f} | {v['merchant']}")
    else:
        print(
            f"🚨 FRAUD | {v['tx_id']} | User {v['user_id']} | ${v['amount']:8.2f} | {v['merchant']}"
        )
        print(f"      └─ Reason: {v['reason']}")


async def run_seed(backend: str, workdir: Path, redis_addr: str | None) -> dict[str, Any]:
    """The seed's 10 transactions: prints the seed's report, returns the figures."""
    store = make_store(backend, workdir / "seed-state", redis_addr, "fraud-seed")
    alerts = ListSink("alerts")
    job = build_job(
        IterableSource(SEED_TRANSACTIONS, name="seed"),
        alerts,
        store=store,
        verdicts=CallbackSink(print_verdict, name="verdicts"),
        progress=False,
    )
    print("📊 Processing transaction stream...\n")
    await store.start()  # ours: the run leaves it open for the report below
    try:
        await job.run()
        users = {k: describe(v) for k, v in await job.state_items(OPERATOR, STATE)}
        await store.clear()
    finally:
        await store.stop()
    total = len(SEED_TRANSACTIONS)
    print("\nFRAUD DETECTION SUMMARY:")
    print(f"Total transactions: {total}")
    print(f"Fraud alerts: {len(alerts.items)}")
    print(f"Fraud rate: {100 * len(alerts.items) / total:.1f}%")
    print(f"\nUSER STATE STATISTICS (stored in weir, {backend} backend):")
    for uid, s in users.items():
        print(f"\nUser {uid}:")
        print(f"  Transactions: {s['txn_count']}")
        print(f"  Total amount: ${s['total_amount']:.2f}")
        print(f"  Average: ${s['avg_amount']:.2f}")
        print(f"  Max: ${s['max_amount']:.2f}")
    print(
        f"\n✅ State correctly persisted: User U001 has {users['U001']['txn_count']} transactions"
    )
    return {"alerts": [a["tx_id"] for a in alerts.items], "users": users}


# ---- 2. the generated stream ----------------------------------------------------------------


def is_terminal(*streams: Any) -> bool:
    """True if every stream is an interactive terminal (not a file, a pipe
    or TERM=dumb): only then is a redrawn progress line worth drawing."""
    if os.environ.get("TERM") == "dumb":
        return False
    return all(hasattr(s, "isatty") and s.isatty() for s in streams)


class ProgressBar:
    """A one-line progress bar for a run of a known number of events.

    The total is fixed when the bar is made (the generated stream's length),
    so the bar never changes its total during a run. It draws on ``stream``
    (stderr) only when both stdout and that stream are terminals, unless
    ``enabled`` says otherwise: a redirected or piped run gets no control
    characters in its output.
    """

    WIDTH = 30

    def __init__(
        self, label: str, total: int, stream: Any = None, *, enabled: bool | None = None
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, not {total}")
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = is_terminal(sys.stdout, self.stream) if enabled is None else enabled
        self.drawn = False

    def line(self, done: int, rate: float) -> str:
        """The bar for ``done`` events at ``rate`` events/s (no control characters)."""
        done = min(max(done, 0), self.total)
        frac = done / self.total if self.total else 1.0
        filled = int(frac * self.WIDTH)
        return (
            f"{self.label}: [{'#' * filled:<{self.WIDTH}}] {100 * frac:5.1f}% "
            f"{done:,}/{self.total:,} | {rate:,.0f} ev/s"
        )

    def draw(self, done: int, rate: float) -> None:
        if not self.enabled:
            return
        self.stream.write("\r" + self.line(done, rate))
        self.stream.flush()
        self.drawn = True

    def finish(self, done: int, rate: float) -> None:
        """The final state, then a newline (only if anything was drawn)."""
        if not self.enabled:
            return
        self.draw(done, rate)
        self.stream.write("\n")
        self.stream.flush()

    async def follow(self, job: Pipeline, interval: float = 0.2) -> None:
        """Redraw from ``job.metrics()`` every ``interval`` s until cancelled."""
        if not self.enabled:
            return
        while True:
            await asyncio.sleep(interval)
            m = job.metrics()
            self.draw(m["events_total"], m["events_per_s"])


async def run_generated(
    args: argparse.Namespace, workdir: Path, redis_addr: str | None, *, progress: bool | None
) -> dict[str, Any]:
    """The generated stream; ``progress`` None draws the bar on a terminal."""
    gen = TransactionGenerator(args.users, args.seed)
    store = make_store(args.backend, workdir / "state", redis_addr, "fraud-gen")
    alerts_path = workdir / "alerts.jsonl"
    job = build_job(
        FunctionSource(gen.make, args.events, name="transactions"),
        JsonLinesSink(alerts_path, name="alerts"),
        store=store,
        dead_letter=JsonLinesSink(workdir / "dead-letters.jsonl", name="dead-letters"),
        checkpoint_every=args.checkpoint_every,
        progress=False,
    )
    bar = ProgressBar("fraud", args.events, enabled=progress)
    follower = asyncio.create_task(bar.follow(job))
    try:
        m = await job.run()
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    bar.finish(m["events_total"], m["events_per_s"])
    return m


def print_generated(m: dict[str, Any], alerts_path: Path, args: argparse.Namespace) -> None:
    with open(alerts_path, "rb") as f:
        n_alerts = sum(1 for _ in f)
    print(
        f"\nGenerated stream: {m['events_total']:,} transactions over {args.users:,} users "
        f"on the {args.backend} backend"
    )
    print(
        f"  alerts found:        {n_alerts:,} ({100 * n_alerts / max(1, m['events_total']):.2f}%)"
    )
    print(
        f"  throughput:          {m['events_per_s']:,.0f} events/s ({m['seconds']:.2f} s); "
        f"{m['events_per_cpu_s']:,.0f} events per CPU second ({m['cpu_seconds']:.2f} CPU s)"
    )
    print(f"  users in state:      {m['state_keys']:,}")
    print(f"  checkpoints:         {m['checkpoints']} (every {args.checkpoint_every:,} events)")
    print(
        f"  checkpoint duration: median {m['checkpoint_ms_median']:.1f} ms, "
        f"max {m['checkpoint_ms_max']:.1f} ms (barrier to durable)"
    )
    print(
        f"  checkpoint pause:    median {m['checkpoint_pause_ms_median']:.2f} ms, "
        f"max {m['checkpoint_pause_ms_max']:.2f} ms (time the pipeline stood still); "
        f"in CPU time median {m['checkpoint_pause_cpu_ms_median']:.2f} ms, "
        f"max {m['checkpoint_pause_cpu_ms_max']:.2f} ms"
    )
    if m["cpu_seconds"] < 0.8 * m["seconds"]:
        print(
            f"  (the process had the CPU {100 * m['cpu_seconds'] / m['seconds']:.0f}% of the "
            "time: the machine is busy with other work, so wall-clock figures are low)"
        )


# ---- 3. the crash test ----------------------------------------------------------------------


def worker_argv(args: argparse.Namespace, workdir: Path, redis_addr: str | None) -> list[str]:
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        str(workdir),
        "--events",
        str(args.events),
        "--users",
        str(args.users),
        "--seed",
        str(args.seed),
        "--backend",
        args.backend,
        "--checkpoint-every",
        str(args.checkpoint_every),
    ]
    if redis_addr:
        argv += ["--redis", redis_addr]
    return argv


async def result_of(
    args: argparse.Namespace, workdir: Path, redis_addr: str | None, namespace: str
) -> tuple[bytes, bytes]:
    store = make_store(args.backend, workdir / "state", redis_addr, namespace)
    await store.start()
    try:
        state = await dump_state(store)
        if args.backend == "redis":
            await store.clear()
    finally:
        await store.stop()
    return state, (workdir / "alerts.jsonl").read_bytes()


def crash_test(args: argparse.Namespace, workdir: Path, redis_addr: str | None) -> bool:
    """Kill a worker ``args.crash_test`` times at random points; compare."""
    rng = random.Random(args.seed)
    ref_dir, crash_dir = workdir / "reference", workdir / "crashed"
    ref_dir.mkdir()
    crash_dir.mkdir()
    print(
        f"\nCrash test: {args.events:,} transactions, killed with SIGKILL {args.crash_test} times"
    )
    t0 = time.perf_counter()
    ref = subprocess.run(
        worker_argv(args, ref_dir, redis_addr), check=False, stdout=subprocess.DEVNULL
    )
    ref_seconds = time.perf_counter() - t0
    if ref.returncode != 0:
        print(f"  the uninterrupted run failed (exit {ref.returncode})")
        return False
    ref_state, ref_alerts = asyncio.run(
        result_of(args, ref_dir, redis_addr, "fraud-worker-reference")
    )
    print(f"  uninterrupted run: {ref_seconds:.2f} s, {ref_alerts.count(NL):,} alerts")
    kills = 0
    runs = 0
    width = 30
    kill_points: list[int] = []
    while kills < args.crash_test:
        # The worker prints the offset of each batch it reads; kill it once it
        # passes a random point between where it resumed and the end, drawn
        # so that the remaining kills spread over the rest of the input.
        proc = subprocess.Popen(
            worker_argv(args, crash_dir, redis_addr), stdout=subprocess.PIPE, text=True
        )
        runs += 1
        assert proc.stdout is not None
        target: int | None = None
        killed = False
        for line in proc.stdout:
            offset = int(line.split()[1])
            if target is None:
                left = args.events - offset
                span = max(1, 2 * left // (args.crash_test - kills + 1))
                # ...but before the last batch (1024 events), so it is reached.
                target = min(offset + rng.randint(1, span), max(offset + 1, args.events - 1025))
            if offset >= target and offset < args.events:
                proc.send_signal(signal.SIGKILL)
                killed = True
                kill_points.append(offset)
                break
        proc.stdout.close()
        proc.wait()
        if not killed:
            if proc.returncode != 0:
                print(f"  a worker failed (exit {proc.returncode})")
                return False
            break  # it finished before the kill point: the job is done
        kills += 1
        bar = "#" * (width * kills // args.crash_test)
        sys.stderr.write(f"\r  [{bar:<{width}}] {kills}/{args.crash_test} kills")
        sys.stderr.flush()
    sys.stderr.write("\n")
    final = subprocess.run(
        worker_argv(args, crash_dir, redis_addr), check=False, stdout=subprocess.DEVNULL
    )
    runs += 1
    if final.returncode != 0:
        print(f"  the final restart failed (exit {final.returncode})")
        return False
    state, alerts = asyncio.run(result_of(args, crash_dir, redis_addr, "fraud-worker-crashed"))
    same_state = state == ref_state
    same_alerts = alerts == ref_alerts
    print(
        f"  killed while reading events {', '.join(f'{k:,}' for k in kill_points)}\n"
        f"  {kills} kills, {runs} runs; final state identical: {same_state} "
        f"(sha256 {hashlib.sha256(state).hexdigest()[:16]}); alert output identical: "
        f"{same_alerts} ({len(alerts):,} bytes, {alerts.count(NL):,} alerts)"
    )
    return same_state and same_alerts


def worker_main(args: argparse.Namespace) -> int:
    """One attempt of the crash test's job (resumes from its checkpoint)."""
    workdir = Path(args.worker)
    namespace = "fraud-worker-" + workdir.name
    gen = TransactionGenerator(args.users, args.seed)
    store = make_store(args.backend, workdir / "state", args.redis, namespace)

    def make(start: int, count: int) -> list[dict[str, Any]]:
        # Progress for the crash test's parent, which picks when to kill.
        print(f"read {start}", flush=True)
        return gen.make(start, count)

    job = build_job(
        FunctionSource(make, args.events, name="transactions"),
        JsonLinesSink(workdir / "alerts.jsonl", name="alerts"),
        store=store,
        checkpoint_every=args.checkpoint_every,
        progress=False,
    )
    asyncio.run(job.run())
    return 0


# ---- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Fraud detection on weir.stream: the seed's 10 transactions, a generated "
        "stream, and optionally a kill -9 crash test of exactly-once processing.",
    )
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="generated transactions (default 1,000,000)"
    )
    ap.add_argument("--users", type=int, default=100_000, help="distinct users (default 100,000)")
    ap.add_argument(
        "--backend",
        choices=["weir", "memory", "rocksdb", "redis"],
        default="weir",
        help="store backend for the state (default weir)",
    )
    ap.add_argument(
        "--checkpoint-every",
        type=int,
        default=100_000,
        help="events between checkpoints (default 100,000)",
    )
    ap.add_argument(
        "--crash-test",
        type=int,
        default=0,
        metavar="N",
        help="also run the job in a worker killed with SIGKILL N times at random "
        "points and check its final state and alerts equal an uninterrupted run",
    )
    ap.add_argument(
        "--crash-events",
        type=int,
        default=200_000,
        help="transactions for the crash test (default 200,000)",
    )
    ap.add_argument(
        "--crash-checkpoint-every",
        type=int,
        default=10_000,
        help="events between checkpoints in the crash test (default 10,000)",
    )
    ap.add_argument("--seed", type=int, default=42, help="random seed of the generated stream")
    ap.add_argument("--skip-seed", action="store_true", help="skip the seed's 10 transactions")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--redis", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if (
        args.events < 0
        or args.users <= 0
        or args.checkpoint_every <= 0
        or args.crash_test < 0
        or args.crash_events <= 0
        or args.crash_checkpoint_every <= 0
    ):
        ap.error(
            "--events and --crash-test must be >= 0; --users, --checkpoint-every, "
            "--crash-events and --crash-checkpoint-every positive"
        )
    if args.crash_test and args.backend == "memory":
        ap.error("the memory backend keeps nothing across a crash; pick another for --crash-test")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="weir-fraud-")))
        redis_addr = stack.enter_context(redis_server()) if args.backend == "redis" else None
        ok = True
        if not args.skip_seed:
            seed = asyncio.run(run_seed(args.backend, workdir, redis_addr))
            expect = {"U001": (5, 5225.0), "U002": (2, 8025.0), "U003": (3, 12350.0)}
            got = {
                u: (s["txn_count"], round(s["total_amount"], 2)) for u, s in seed["users"].items()
            }
            if seed["alerts"] != ["T006", "T010"] or got != expect:
                print(f"\n❌ the seed's result differs: alerts {seed['alerts']}, users {got}")
                ok = False
        if args.events:
            gen_dir = workdir / "generated"
            gen_dir.mkdir()
            m = asyncio.run(run_generated(args, gen_dir, redis_addr, progress=None))
            print_generated(m, gen_dir / "alerts.jsonl", args)
        if args.crash_test:
            crash_args = argparse.Namespace(**vars(args))
            crash_args.events = args.crash_events
            crash_args.checkpoint_every = args.crash_checkpoint_every
            passed = crash_test(crash_args, workdir, redis_addr)
            print("  crash test " + ("PASSED" if passed else "FAILED"))
            ok = ok and passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
