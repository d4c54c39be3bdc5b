"""weir.cluster against a Redis that stalls: a redis-server of the test's
own, stopped with SIGSTOP for longer than the client's 5 s socket timeout.

The producer must write every record exactly once (before: a 7 s stall
duplicated 450 of 2,000 records, and a send that failed left its caller
unable to retry safely); workers must ride the stall out, stop writing
before their leases could expire, come back, and exit promptly on SIGTERM
even while Redis does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_cluster import (
    FRAUD_MODULE,
    TransactionGenerator,
    by_tx,
    cluster_result,
    fraud_job,
    reference_run,
)
from weir.cluster import Job, PartitionKeys, Producer, ProducerError, job_status
from weir.cluster._redis import connect
from weir.cluster.local import start_redis_server, start_worker, stop_redis_server, wait_for_redis


class StallableRedis:
    """A redis-server on a free loopback port that the test can pause."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed: run scripts/install-deps.sh")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = start_redis_server(exe, self.port, workdir, workdir / "redis.log")
        if not wait_for_redis(self.port, self.proc):
            pytest.fail((workdir / "redis.log").read_text())
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.resume()
        stop_redis_server(self.proc)


@pytest.fixture
def stallable(tmp_path: Path) -> Iterator[StallableRedis]:
    d = tmp_path / "redis"
    d.mkdir()
    r = StallableRedis(d)
    try:
        yield r
    finally:
        r.stop()


def _job(name: str, partitions: int = 4) -> Job:
    return fraud_job(name, partitions)


async def _input_entries(url: str, job: Job) -> dict[int, list[tuple[str, int, bytes]]]:
    """Per partition: (producer id, sequence number, payload) of every data entry."""
    client = await connect(url)
    try:
        out = {}
        for p in range(job.partitions):
            entries = await client.xrange(PartitionKeys(job.name, p).input)
            out[p] = [
                (f[b"p"].decode(), int(f[b"s"]), f[b"data"]) for _id, f in entries if b"data" in f
            ]
        return out
    finally:
        await client.aclose()


def _assert_once_in_order(entries: dict[int, list[tuple[str, int, bytes]]], total: int) -> None:
    n = 0
    for p, rows in entries.items():
        by_producer: dict[str, list[int]] = {}
        for pid, seq, _data in rows:
            by_producer.setdefault(pid, []).append(seq)
        for pid, seqs in by_producer.items():
            assert seqs == list(range(1, len(seqs) + 1)), f"p{p} {pid}: duplicates or a gap"
        n += len(rows)
    assert n == total, f"{n} entries for {total} records"


async def _stall(redis: StallableRedis, after: float, seconds: float) -> None:
    await asyncio.sleep(after)
    redis.pause()
    try:
        await asyncio.sleep(seconds)
    finally:
        redis.resume()


async def test_a_stall_longer_than_the_client_timeout_writes_each_record_once(
    stallable: StallableRedis,
) -> None:
    job = _job("stallprod")
    records = [{"user_id": f"u{i % 97}", "i": i} for i in range(2000)]
    stall = asyncio.create_task(_stall(stallable, 0.2, 7.0))  # > the 5 s socket timeout
    async with Producer(stallable.url, job, retry_for=60) as prod:
        for i in range(0, len(records), 50):
            assert await prod.send(records[i : i + 50]) == 50
            await asyncio.sleep(0.01)
        await prod.end()
        assert prod.sent == len(records)
        await stall
    entries = await _input_entries(stallable.url, job)
    _assert_once_in_order(entries, len(records))
    # Each partition holds its records in the order they were sent.
    for p, rows in entries.items():
        want = [r["i"] for r in records if job.partition(r) == p]

        assert [json.loads(d)["i"] for _pid, _s, d in rows] == want


async def test_a_send_that_gives_up_says_so_and_a_retry_is_safe(
    stallable: StallableRedis,
) -> None:
    job = _job("retryprod")
    records = [{"user_id": f"u{i % 31}", "i": i} for i in range(500)]
    async with Producer(stallable.url, job, retry_for=1.0) as prod:
        await prod.send(records[:100])
        stallable.pause()
        try:
            with pytest.raises(ProducerError, match="calling send\\(\\) again is safe") as info:
                await prod.send(records[100:400])
            assert info.value.acknowledged + info.value.unconfirmed == 300
            assert info.value.unconfirmed > 0
        finally:
            stallable.resume()
        # The same call again: what had landed is not written twice.
        assert await prod.send(records[100:400]) == 300
        # A different call after a failed one is safe too.
        stallable.pause()
        try:
            with pytest.raises(ProducerError):
                await prod.send(records[400:450])
        finally:
            stallable.resume()
        await prod.send(records[450:])  # sends 400..449 first, then these
        assert prod.sent == 500
    _assert_once_in_order(await _input_entries(stallable.url, job), 500)


def _status(url: str, job: str) -> dict[str, Any] | None:
    try:
        return asyncio.run(job_status(url, job))
    except Exception:
        return None


def test_a_worker_rides_out_stalls_stops_writing_in_time_and_comes_back(
    stallable: StallableRedis, tmp_path: Path
) -> None:
    job = _job("ride", 3)
    events = TransactionGenerator(200, seed=7).make(0, 30_000)

    async def produce(chunk: list[dict[str, Any]], end: bool) -> None:
        async with Producer(stallable.url, job) as prod:
            await prod.send(chunk)
            if end:
                await prod.end()

    env = {"WEIR_FRAUD_JOB": "ride", "WEIR_FRAUD_PARTITIONS": "3"}
    log = tmp_path / "w.log"
    asyncio.run(produce(events[:10_000], False))
    w = start_worker(
        stallable.url, FRAUD_MODULE, tmp_path / "work", tmp_path / "snap", "r1", log,
        lease_ms=1500, env=env,
    )  # fmt: skip
    try:
        time.sleep(2)
        for seconds in (2.0, 7.0):  # shorter and longer than the client's timeout
            stallable.pause()
            time.sleep(seconds)
            stallable.resume()
            time.sleep(1.5)
            assert w.poll() is None, log.read_text()[-3000:]
        asyncio.run(produce(events[10_000:], True))
        assert w.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-5000:]
    assert "stopping its writes before the lease could expire" in text, text[-3000:]
    assert text.count("acquired (fencing token") > 3, "the partitions were not taken again"
    st = asyncio.run(job_status(stallable.url, "ride"))
    assert all(p["finished"] for p in st["partitions"])
    assert sum(p["events"] for p in st["partitions"]) == len(events)
    want_alerts, want_state = reference_run(job, events, tmp_path)
    alerts, state = asyncio.run(cluster_result(stallable.url, job, tmp_path))
    assert by_tx(alerts) == by_tx(want_alerts)
    assert state == sorted(want_state)


def test_sigterm_while_redis_does_not_answer_exits_within_a_bound(
    stallable: StallableRedis, tmp_path: Path
) -> None:
    job = _job("termstall", 2)
    events = TransactionGenerator(50, seed=9).make(0, 5000)

    async def produce() -> None:
        async with Producer(stallable.url, job) as prod:
            await prod.send(events)

    asyncio.run(produce())
    env = {"WEIR_FRAUD_JOB": "termstall", "WEIR_FRAUD_PARTITIONS": "2"}
    log = tmp_path / "w.log"
    lease_ms = 2000
    w = start_worker(
        stallable.url, FRAUD_MODULE, tmp_path / "work", tmp_path / "snap", "ts1", log,
        lease_ms=lease_ms, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = _status(stallable.url, "termstall")
            if st and all(p["owner"] == "ts1" for p in st["partitions"]):
                break
            time.sleep(0.2)
        stallable.pause()
        time.sleep(0.5)
        w.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # Hand-over bound (a lease) + ending the pipelines + closing.
        bound = 4 * lease_ms / 1000 + 10
        try:
            code = w.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            w.send_signal(signal.SIGUSR2)
            time.sleep(1)
            pytest.fail(f"worker hung after SIGTERM:\n{log.read_text()[-6000:]}")
        took = time.monotonic() - started
    finally:
        stallable.resume()
        if w.poll() is None:
            w.kill()
            w.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert took < bound
    assert "Traceback" not in text, text[-5000:]


SLOW_HANDOVER_JOB = '''
import asyncio, os
from weir.cluster import Job
from weir.stream import Sink

class SlowFlush(Sink):
    """Flushes take 2.5 s once the flag file exists (a slow hand-over)."""
    name = "slow"
    async def open(self, position):
        self.n = int(position or 0)
    async def write(self, items):
        self.n += len(items)
    async def flush(self):
        if os.path.exists(os.environ["SLOW_FLAG"]):
            await asyncio.sleep(2.5)
        return self.n

def build(stream, out):
    s = stream.map(lambda r: r)
    s.sink(out)
    s.sink(SlowFlush())

JOB = Job("slowho", partitions=4, key="k", build=build, checkpoint_interval=30.0)
'''


def test_a_slow_hand_over_on_sigterm_keeps_its_leases(redis_url: str, tmp_path: Path) -> None:
    # Seen under CPU load: a worker told to stop lost partitions to lease
    # expiry instead of handing them over, because its shutdown waited for
    # them one after the other and renewed no lease meanwhile.
    module = tmp_path / "slow_handover_job.py"
    module.write_text(SLOW_HANDOVER_JOB)
    flag = tmp_path / "slow"
    env = {"SLOW_FLAG": str(flag)}

    async def produce() -> None:
        from weir.cluster import load_job

        async with Producer(redis_url, load_job(str(module))) as prod:
            await prod.send([{"k": f"k{i}", "i": i} for i in range(1000)])

    asyncio.run(produce())
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = start_worker(
        redis_url, module, tmp_path / "work", tmp_path / "snap", "a", logs[0],
        lease_ms=1500, env=env,
    )  # fmt: skip
    b = None
    try:
        deadline = time.monotonic() + 60
        while logs[0].read_text().count("restored in") < 4:
            assert time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.05)
        b = start_worker(
            redis_url, module, tmp_path / "work", tmp_path / "snap", "b", logs[1],
            lease_ms=1500, env=env,
        )  # fmt: skip
        while logs[1].read_text().count("restored in") < 2:
            assert time.monotonic() < deadline, logs[1].read_text()
            time.sleep(0.05)
        time.sleep(1.0)
        flag.write_text("1")
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0, logs[0].read_text()
    finally:
        for w in (a, b):
            if w is not None and w.poll() is None:
                w.kill()
                w.wait()
    a_log = logs[0].read_text()
    assert "4 handed over, 0 lost" in a_log, a_log[-3000:]
    assert "no hand-over within" not in a_log, a_log[-3000:]
    assert "Traceback" not in a_log, a_log[-3000:]


async def test_a_named_producer_continues_its_numbering_and_bad_records_send_nothing(
    redis_url: str,
) -> None:
    from weir.cluster import ClusterError

    job = _job("namedprod", 2)
    records = [{"user_id": f"u{i % 5}", "i": i} for i in range(30)]
    async with Producer(redis_url, job, producer_id="ingest-1") as prod:
        await prod.send(records[:20])
        with pytest.raises(ClusterError, match="is not JSON"):
            await prod.send([{"user_id": "u1", "bad": {1, 2}}])
        with pytest.raises(ClusterError, match="no key field"):
            await prod.send([{"other": 1}])
    # A new producer under the same id numbers after the old one's records
    # (its new records are not taken for retries of old ones).
    async with Producer(redis_url, job, producer_id="ingest-1") as prod:
        await prod.send(records[20:])
    _assert_once_in_order(await _input_entries(redis_url, job), 30)
    with pytest.raises(ClusterError, match="producer_id must be letters"):
        Producer(redis_url, job, producer_id="has space")
    # A producer with a generated id leaves nothing behind in Redis.
    async with Producer(redis_url, job) as anon:
        await anon.send(records[:3])
        anon_id = anon.producer_id
    client = await connect(redis_url)
    try:
        for p in range(job.partitions):
            k = PartitionKeys(job.name, p)
            assert await client.hget(k.producers, anon_id) is None
            assert await client.hget(k.producers, "ingest-1") is not None
    finally:
        await client.aclose()
