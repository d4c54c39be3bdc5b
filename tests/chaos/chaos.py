"""The chaos test of weir.cluster: the fraud job on a local 3-node Redis
Cluster (durable: each node keeps an fsynced append-only file) while a
fault schedule kills, stops, terminates and adds workers and pauses and
restarts Redis nodes; a producer process feeds the input all along.

It then compares every partition's output and state with a single-process
run of the same input and fails on any duplicate or gap (in the input
streams, by producer sequence number, and in the outputs, by item
number), any difference from the single-process result, any hang (a
worker that does not exit within a bound after SIGTERM, or at the end of
the job) and any traceback in a worker's or the producer's log.

    python tests/chaos/chaos.py --schedule short   # CI (make test)
    python tests/chaos/chaos.py --schedule long    # make chaos

Prints the figures (faults by kind, partition moves, outcome) and exits
non-zero on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "examples"))

from fraud_detection import TransactionGenerator  # noqa: E402

from test_cluster import FRAUD_MODULE, by_tx, cluster_result, fraud_job, reference_run  # noqa: E402
from weir.cluster import PartitionKeys, Producer, job_status  # noqa: E402
from weir.cluster._redis import connect  # noqa: E402
from weir.cluster.local import LocalRedisCluster, start_worker  # noqa: E402

#: Fault schedules: (action, argument). "pause" pauses a Redis node for
#: the given seconds (the client's socket timeout is 5 s; the cluster's
#: node timeout 5 s, after which the whole cluster refuses commands until
#: the node is back), "restart" kills a node with SIGKILL and starts it
#: again, "kill" is kill -9 of a worker (a new one is started), "stop" a
#: SIGSTOP of a worker for three lease times, "term" a SIGTERM (the worker
#: must exit within the bound; a new one is started), "add" a new worker.
SCHEDULES: dict[str, dict[str, Any]] = {
    "short": {
        "events": 30_000,
        "partitions": 6,
        "faults": [
            ("kill", None),
            ("pause", 2.0),
            ("stop", None),
            ("pause", 7.0),
            ("term", None),
            ("add", None),
            ("restart", None),
            ("kill", None),
        ],
    },
    "long": {
        "events": 200_000,
        "partitions": 8,
        "faults": [
            ("kill", None),
            ("pause", 2.0),
            ("stop", None),
            ("term", None),
            ("pause", 7.0),
            ("add", None),
            ("kill", None),
            ("pause", 12.0),
            ("restart", None),
            ("stop", None),
            ("term", None),
            ("kill", None),
        ]
        * 3,
    },
}

LEASE_MS = 1500
#: A worker must exit this long after SIGTERM: the hand-over (one lease),
#: ending pipelines that do not hand over (a lease each, at once), closing.
TERM_BOUND = 4 * LEASE_MS / 1000 + 10


class Chaos:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        sched = SCHEDULES[args.schedule]
        self.events_n = args.events or sched["events"]
        self.partitions = args.partitions or sched["partitions"]
        self.faults: list[tuple[str, Any]] = list(sched["faults"])
        self.rng = random.Random(args.seed)
        self.work = workdir
        self.job = fraud_job(f"chaos{args.seed}", self.partitions)
        self.env = {
            "WEIR_FRAUD_JOB": self.job.name,
            "WEIR_FRAUD_PARTITIONS": str(self.partitions),
        }
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.n = 0
        self.done: Counter[str] = Counter()
        self.hangs: list[str] = []
        self.term_seconds: list[float] = []
        self.cluster = LocalRedisCluster(3, workdir / "redis", durable=True)

    def spawn(self) -> None:
        self.n += 1
        self.workers[self.n] = start_worker(
            self.url,
            FRAUD_MODULE,
            self.work / "work",
            self.work / "snap",
            f"w{self.n}",
            self.work / f"worker-{self.n}.log",
            lease_ms=LEASE_MS,
            env=self.env,
        )

    def alive(self) -> list[int]:
        return [w for w, p in self.workers.items() if p.poll() is None]

    def victim(self) -> int | None:
        alive = self.alive()
        return self.rng.choice(alive) if alive else None

    def fault(self, kind: str, arg: Any) -> None:
        w = self.victim()
        if kind == "kill" and w is not None:
            os.kill(self.workers[w].pid, signal.SIGKILL)
            self.workers[w].wait()
            self.spawn()
        elif kind == "stop" and w is not None:
            os.kill(self.workers[w].pid, signal.SIGSTOP)
            time.sleep(3 * LEASE_MS / 1000)
            os.kill(self.workers[w].pid, signal.SIGCONT)
        elif kind == "term" and w is not None:
            started = time.monotonic()
            self.workers[w].send_signal(signal.SIGTERM)
            try:
                self.workers[w].wait(TERM_BOUND)
                self.term_seconds.append(time.monotonic() - started)
            except subprocess.TimeoutExpired:
                self.workers[w].send_signal(signal.SIGUSR2)
                time.sleep(1)
                self.hangs.append(f"w{w} did not exit {TERM_BOUND:g} s after SIGTERM")
                self.workers[w].kill()
                self.workers[w].wait()
            self.spawn()
        elif kind == "add":
            self.spawn()
        elif kind == "pause":
            node = self.rng.randrange(3)
            self.cluster.pause(node)
            time.sleep(float(arg))
            self.cluster.resume(node)
        elif kind == "restart":
            self.cluster.restart(self.rng.randrange(3), kill=True, down_for=1.0)
        else:
            return
        self.done[kind if kind != "pause" else f"pause {arg:g} s"] += 1

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        events = TransactionGenerator(max(50, self.events_n // 100), seed=3).make(0, self.events_n)
        data = self.work / "events.json"
        data.write_text(json.dumps(events))
        self.url = self.cluster.__enter__()
        try:
            return self._run(events, data, started)
        finally:
            for p in self.workers.values():
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                    p.wait()
            self.cluster.stop()

    def _run(self, events: list[dict[str, Any]], data: Path, started: float) -> dict[str, Any]:
        # Paced so that input arrives during the whole schedule.
        seconds = 6 * len(self.faults)
        plog = self.work / "producer.log"
        with open(plog, "wb") as out:
            producer = subprocess.Popen(
                [sys.executable, __file__, "produce", self.url, str(data), str(self.partitions),
                 self.job.name, str(seconds)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        for _ in range(3):
            self.spawn()
        time.sleep(2)
        for kind, arg in self.faults:
            self.fault(kind, arg)
            time.sleep(self.rng.uniform(1.0, 3.0))
            for w, p in self.workers.items():
                if p.poll() not in (None, 0, -signal.SIGKILL):
                    self.hangs.append(f"w{w} exited with {p.returncode} during the run")
        if producer.wait(600) != 0:
            raise AssertionError(f"the producer failed:\n{plog.read_text()[-4000:]}")
        deadline = time.monotonic() + 600
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                st = asyncio.run(job_status(self.url, self.job.name))
                if all(p["finished"] for p in st["partitions"]):
                    break
            if not self.alive():
                self.spawn()
            time.sleep(0.5)
        else:
            for w in self.alive():
                self.workers[w].send_signal(signal.SIGUSR2)
            time.sleep(1)
            raise AssertionError(f"the job did not finish: {st}\n{self.logs()[-6000:]}")
        for w, p in self.workers.items():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGUSR2)
                time.sleep(1)
                self.hangs.append(f"w{w} did not exit 60 s after the job finished")
        return self.verify(events, st, time.monotonic() - started, plog)

    def logs(self) -> str:
        return "".join(
            f.read_text(errors="replace") for f in sorted(self.work.glob("worker-*.log"))
        )

    def verify(
        self, events: list[dict[str, Any]], st: dict[str, Any], took: float, plog: Path
    ) -> dict[str, Any]:
        logs = self.logs()
        plog_text = plog.read_text(errors="replace")
        dups, gaps, entries = asyncio.run(self._input_check())
        want_alerts, want_state = reference_run(self.job, events, self.work)
        alerts, state = asyncio.run(cluster_result(self.url, self.job, self.work))
        acquired = logs.count("acquired (fencing token")
        figures = {
            "events": len(events),
            "partitions": self.partitions,
            "workers_started": self.n,
            "faults": dict(self.done),
            "faults_total": sum(self.done.values()),
            "partition_moves": acquired - self.partitions,
            "lost_to_newer_owner": logs.count("lease lost to a newer owner")
            + logs.count("WEIRFENCED"),
            "stopped_before_lease_expiry": logs.count("stopping its writes before the lease"),
            "sigterm_exit_seconds_max": round(max(self.term_seconds, default=0.0), 1),
            "input_entries": entries,
            "duplicates": dups,
            "gaps": gaps,
            "alerts": len(alerts),
            "alerts_match": by_tx(alerts) == by_tx(want_alerts),
            "state_match": state == sorted(want_state),
            "events_counted": sum(p["events"] for p in st["partitions"]),
            "hangs": self.hangs,
            "tracebacks": logs.count("Traceback") + plog_text.count("Traceback"),
            "never_retrieved": logs.count("never retrieved") + plog_text.count("never retrieved"),
            "seconds": round(took),
        }
        figures["ok"] = (
            not dups
            and not gaps
            and entries == len(events)
            and figures["alerts_match"]
            and figures["state_match"]
            and figures["events_counted"] == len(events)
            and not self.hangs
            and not figures["tracebacks"]
            and not figures["never_retrieved"]
        )
        if not figures["ok"]:
            bad = [line for line in logs.splitlines() if "Traceback" in line or "Error" in line]
            figures["log_excerpt"] = bad[:40]
        return figures

    async def _input_check(self) -> tuple[int, int, int]:
        client = await connect(self.url)
        dups = gaps = total = 0
        try:
            for p in range(self.partitions):
                seqs: dict[str, list[int]] = {}
                for _id, f in await client.xrange(PartitionKeys(self.job.name, p).input):
                    if b"data" in f:
                        seqs.setdefault(f[b"p"].decode(), []).append(int(f[b"s"]))
                        total += 1
                for s in seqs.values():
                    dups += len(s) - len(set(s))
                    gaps += max(s) - len(set(s))
        finally:
            await client.aclose()
        return dups, gaps, total


async def produce(url: str, data: Path, partitions: int, job_name: str, seconds: float) -> None:
    """The producer process: sends the events in chunks of 500, paced over
    ``seconds``, then the end markers."""
    events = json.loads(data.read_text())
    job = fraud_job(job_name, partitions)
    chunks = [events[i : i + 500] for i in range(0, len(events), 500)]
    pause = seconds / max(1, len(chunks))
    async with Producer(url, job, retry_for=120) as prod:
        for chunk in chunks:
            await prod.send(chunk)
            await asyncio.sleep(pause)
        await prod.end()
        print(f"producer: {prod.sent} records sent, {prod.retries} retry rounds", flush=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "produce":
        url, data, parts, name, seconds = sys.argv[2:7]
        asyncio.run(produce(url, Path(data), int(parts), name, float(seconds)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="short")
    ap.add_argument("--events", type=int, help="input events (default: the schedule's)")
    ap.add_argument("--partitions", type=int, help="partitions (default: the schedule's)")
    ap.add_argument("--seed", type=int, default=1, help="picks victims, nodes and pauses")
    ap.add_argument("--workdir", help="keep logs and data here (default: a temporary directory)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.workdir:
            work = Path(args.workdir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="weir-chaos-")))
        figures = Chaos(args, work).run()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
