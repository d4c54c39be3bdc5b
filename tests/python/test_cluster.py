"""weir.cluster: leases and fencing, the changelog and snapshots, and the
multi-worker crash test: the fraud job on a 3-node Redis Cluster with
workers killed (SIGKILL), paused past their lease (SIGSTOP) and added while
it runs must end with exactly the state and alerts of one process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from weir.cluster import (
    ClusterError,
    FencedError,
    FencedStreamSink,
    Job,
    PartitionKeys,
    PartitionSource,
    Producer,
    Worker,
    job_status,
    load_job,
    partition_of,
    restore_partition,
)
from weir.cluster._redis import ACQUIRE, COMMIT, RENEW, connect
from weir.cluster.local import LocalRedisCluster, start_worker
from weir.stores import StoreBackendConfig, create_backend
from weir.stream import IterableSource, ListSink, Pipeline

ROOT = Path(__file__).resolve().parents[2]
FRAUD_MODULE = ROOT / "examples" / "fraud_cluster.py"
sys.path.insert(0, str(ROOT / "examples"))
from fraud_detection import TransactionGenerator  # noqa: E402


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of three masters (Debian's redis-server) on loopback
    ports, for this module; its URL names the first node."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server/redis-cli missing: run scripts/install-deps.sh (make deps)")
    with LocalRedisCluster(3, tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


def fraud_job(name: str, partitions: int, **kw: Any) -> Job:
    base = load_job(str(FRAUD_MODULE))
    return dataclasses.replace(base, name=name, partitions=partitions, **kw)


def reference_run(job: Job, events: list[dict[str, Any]], tmp: Path) -> tuple[list, list]:
    """The job in one process over all events: (alerts, state items)."""
    out = ListSink("out")
    # Pickle values, as weir.cluster's partition stores keep them (the
    # default codec, msgpack, would give the state's tuples back as lists).
    store = create_backend(
        StoreBackendConfig(path=tmp / "reference", options={"value_codec": "pickle"})
    )
    p = Pipeline(job.name, store=store, progress=False)
    job.build(p.source(IterableSource(events)), out)
    p.run_sync()

    async def state() -> list[tuple[str, Any]]:
        await p.open_store()
        try:
            return await p.state_items("fraud", "user")
        finally:
            await p.close_store()

    return out.items, asyncio.run(state())


async def cluster_result(
    url: str, job: Job, tmp: Path
) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """What the workers left: every partition's alerts (with their
    numbers), and the state restored from snapshot + changelog; on the way,
    check that no old owner's write landed after a newer owner's."""
    client = await connect(url)
    alerts: list[dict[str, Any]] = []
    state: list[tuple[str, Any]] = []
    try:
        for p in range(job.partitions):
            k = PartitionKeys(job.name, p)
            entries = await client.xrange(k.out)
            numbers = [int(f[b"n"]) for _id, f in entries]
            assert numbers == list(range(1, len(numbers) + 1)), f"p{p} output numbering"
            alerts += [json.loads(f[b"data"]) for _id, f in entries]
            out_tokens = [int(f[b"token"]) for _id, f in entries]
            log_tokens = [int(f[b"token"]) for _id, f in await client.xrange(k.log)]
            assert out_tokens == sorted(out_tokens), f"p{p}: an old owner wrote output late"
            assert log_tokens == sorted(log_tokens), f"p{p}: an old owner wrote a checkpoint late"
            store = await restore_partition(url, job.name, p, tmp / f"restored-{p}")
            try:
                state += await Pipeline(job.name, store=store).state_items("fraud", "user")
            finally:
                await store.stop()
    finally:
        await client.aclose()
    return alerts, sorted(state)


def by_tx(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda a: a["tx_id"])


# ---- routing, configuration, bad input ---------------------------------------------------------


def test_partition_of_is_stable_and_spreads_keys() -> None:
    seen = [partition_of(f"U{i:06d}", 8) for i in range(2000)]
    assert seen == [partition_of(f"U{i:06d}", 8) for i in range(2000)]
    assert partition_of("U000001", 8) == partition_of(b"U000001", 8)
    counts = [seen.count(p) for p in range(8)]
    assert min(counts) > 150, counts


def test_bad_jobs_and_modules_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="job name"):
        Job("a{b}", 4, "k", lambda s, o: None)
    with pytest.raises(ClusterError, match="partitions"):
        Job("ok", 0, "k", lambda s, o: None)
    with pytest.raises(ClusterError, match="does not exist"):
        load_job(str(tmp_path / "missing.py"))
    bad = tmp_path / "bad_job.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ClusterError, match="boom"):
        load_job(str(bad))
    empty = tmp_path / "empty_job.py"
    empty.write_text("X = 1\n")
    with pytest.raises(ClusterError, match=r"no weir\.cluster\.Job named 'JOB'"):
        load_job(str(empty))
    with pytest.raises(ClusterError, match="no key field"):
        Job("ok", 4, "user", lambda s, o: None).partition({"other": 1})


async def test_unreachable_redis_is_a_cluster_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match="cannot reach Redis"):
        await job_status(f"redis://127.0.0.1:{port}/0", "nojob")


async def test_a_worker_refuses_a_job_with_other_partitions(
    redis_cluster: str, tmp_path: Path
) -> None:
    job = fraud_job("cfg", 4)
    client = await connect(redis_cluster)
    await client.hset("weir:{cfg}:config", "partitions", 6)
    await client.aclose()
    w = Worker(redis_cluster, job, tmp_path / "w", tmp_path / "snap", worker_id="w1")
    with pytest.raises(ClusterError, match="6 partitions in Redis"):
        await w.run()
    with pytest.raises(ClusterError, match="no job 'nosuch'"):
        await job_status(redis_cluster, "nosuch")


def test_worker_options_are_checked(tmp_path: Path) -> None:
    job = fraud_job("opts", 2)
    with pytest.raises(ClusterError, match="lease_ms must be at least 300"):
        Worker("redis://127.0.0.1:1/0", job, tmp_path / "w", tmp_path / "s", lease_ms=100)
    with pytest.raises(ClusterError, match="worker id must be non-empty"):
        Worker("redis://127.0.0.1:1/0", job, tmp_path / "w", tmp_path / "s", worker_id="a b")


async def test_a_missing_snapshot_is_a_clear_error(redis_cluster: str, tmp_path: Path) -> None:
    # The snapshot directory must be shared; a worker that cannot see the
    # snapshot a partition's record names refuses to restore instead of
    # starting the partition from empty state.
    keys = PartitionKeys("lostsnap", 0)
    client = await connect(redis_cluster)
    try:
        await client.hset(
            keys.snap, mapping={"path": str(tmp_path / "gone" / "p0-t1"), "log": "0-1", "ckpt": 1}
        )
    finally:
        await client.aclose()
    with pytest.raises(ClusterError, match=r"p0-t1 of .* is missing: the snapshot directory"):
        await restore_partition(redis_cluster, "lostsnap", 0, tmp_path / "restore")


# ---- leases and fencing ----------------------------------------------------------------------


async def test_a_stale_owner_cannot_write_after_a_takeover(redis_cluster: str) -> None:
    client = await connect(redis_cluster)
    acquire, renew = client.register_script(ACQUIRE), client.register_script(RENEW)
    commit = client.register_script(COMMIT)
    k = PartitionKeys("fence", 0)
    try:
        t1 = int(await acquire(keys=[k.lease, k.fence], args=["a", 300]))
        assert t1 > 0
        # Held: nobody else gets it.
        assert int(await acquire(keys=[k.lease, k.fence], args=["b", 300])) == 0
        assert await renew(keys=[k.lease, k.fence], args=["a", t1, 300]) == 1
        await asyncio.sleep(0.45)  # a's lease runs out (a is "paused")
        t2 = int(await acquire(keys=[k.lease, k.fence], args=["b", 300]))
        assert t2 > t1
        # a wakes up: its renewal, checkpoint and output are all refused.
        assert await renew(keys=[k.lease, k.fence], args=["a", t1, 300]) == 0
        with pytest.raises(Exception, match="WEIRFENCED"):
            await commit(keys=[k.fence, k.log, k.state], args=[str(t1), b"x", "{}", "1"])
        sink = FencedStreamSink(client, k, t1)
        await sink.open(None)
        with pytest.raises(FencedError):
            await sink.write([{"late": True}])
        # b's writes go through; the same checkpoint again (a retry after a
        # lost reply) appends nothing and returns the first entry's id.
        first = await commit(keys=[k.fence, k.log, k.state], args=[str(t2), b"x", "{}", "1"])
        again = await commit(keys=[k.fence, k.log, k.state], args=[str(t2), b"x", "{}", "1"])
        assert again == first
        b_sink = FencedStreamSink(client, k, t2)
        await b_sink.open(None)
        await b_sink.write([{"ok": 1}])
        assert await client.xlen(k.out) == 1
        assert await client.xlen(k.log) == 1
    finally:
        await client.aclose()


# ---- one worker, in process ------------------------------------------------------------------


async def test_one_worker_runs_the_job_and_snapshots_restore_it(
    redis_cluster: str, tmp_path: Path
) -> None:
    job = fraud_job("solo", 4, snapshot_every=1, checkpoint_every=500, checkpoint_interval=None)
    events = TransactionGenerator(120, seed=7).make(0, 10000)
    async with Producer(redis_cluster, job) as prod:
        await prod.send(events)
        await prod.end()
    w = Worker(
        redis_cluster, job, tmp_path / "w", tmp_path / "snap", worker_id="solo-1", lease_ms=1500
    )
    stats = await asyncio.wait_for(w.run(), 120)
    # One worker never hands a partition to itself (a partition finishing
    # must not make another look like one too many).
    assert stats["finished"] == 4 and stats["lost"] == 0 and stats["released"] == 0
    want_alerts, want_state = await asyncio.to_thread(reference_run, job, events, tmp_path)
    alerts, state = await cluster_result(redis_cluster, job, tmp_path)
    assert by_tx(alerts) == by_tx(want_alerts) and want_alerts
    assert state == sorted(want_state)
    st = await job_status(redis_cluster, "solo")
    assert all(p["finished"] and p["lag"] == 0 for p in st["partitions"])
    assert sum(p["events"] for p in st["partitions"]) == len(events)
    # Snapshots were taken and the changelog behind them trimmed.
    assert all(p["snapshot"] is not None for p in st["partitions"])
    assert all(p["changelog"] < 6 for p in st["partitions"]), st["partitions"]
    assert len(list((tmp_path / "snap" / "solo").glob("p*/*-t*"))) == 4
    # The local state of finished partitions is gone from the work dir.
    assert not list((tmp_path / "w" / "solo-1").glob("p*"))


# ---- many worker processes, killed, paused and added --------------------------------------------


def _spawn(url: str, job: Job, tmp: Path, n: int, lease_ms: int) -> subprocess.Popen[bytes]:
    env = {
        "WEIR_FRAUD_JOB": job.name,
        "WEIR_FRAUD_PARTITIONS": str(job.partitions),
        "WEIR_FRAUD_CHECKPOINT_S": "0.3",
        "WEIR_FRAUD_SNAPSHOT_EVERY": "4",
    }
    return start_worker(
        url,
        FRAUD_MODULE,
        tmp / "work",
        tmp / "snap",
        f"w{n}",
        tmp / f"worker-{n}.log",
        lease_ms=lease_ms,
        env=env,
    )


def test_workers_killed_paused_and_added_give_the_single_process_result(
    redis_cluster: str, tmp_path: Path
) -> None:
    job = fraud_job("crash", int(os.environ.get("WEIR_CLUSTER_TEST_PARTITIONS", "6")))
    total = int(os.environ.get("WEIR_CLUSTER_TEST_EVENTS", "40000"))
    kills = int(os.environ.get("WEIR_CLUSTER_TEST_KILLS", "4"))
    lease_ms = 1200
    rng = random.Random(int(os.environ.get("WEIR_CLUSTER_TEST_SEED", "11")))
    events = TransactionGenerator(400, seed=3).make(0, total)
    chunks = [events[i : i + total // 10] for i in range(0, total, total // 10)]
    workers: dict[int, subprocess.Popen[bytes]] = {}
    n = 0
    for _ in range(3):
        n += 1
        workers[n] = _spawn(redis_cluster, job, tmp_path, n, lease_ms)
    paused_done = False
    killed = 0

    async def produce(chunk: list[dict[str, Any]], end: bool) -> None:
        async with Producer(redis_cluster, job) as prod:
            await prod.send(chunk)
            if end:
                await prod.end()

    try:
        for i, chunk in enumerate(chunks):
            asyncio.run(produce(chunk, i == len(chunks) - 1))
            time.sleep(0.6)
            alive = [w for w, p in workers.items() if p.poll() is None]
            if killed < kills and i % 2 == 1 and alive:
                victim = rng.choice(alive)
                os.kill(workers[victim].pid, signal.SIGKILL)
                workers[victim].wait()
                killed += 1
                n += 1
                workers[n] = _spawn(redis_cluster, job, tmp_path, n, lease_ms)
            if not paused_done and i == 4:
                # A "network partition": stop a worker past its lease, let
                # the others take its partitions, then wake it up.
                alive = [w for w, p in workers.items() if p.poll() is None]
                victim = rng.choice(alive)
                os.kill(workers[victim].pid, signal.SIGSTOP)
                time.sleep(3 * lease_ms / 1000)
                os.kill(workers[victim].pid, signal.SIGCONT)
                paused_done = True
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            st = asyncio.run(job_status(redis_cluster, job.name))
            if all(p["finished"] for p in st["partitions"]):
                break
            if not any(p.poll() is None for p in workers.values()):
                n += 1
                workers[n] = _spawn(redis_cluster, job, tmp_path, n, lease_ms)
            time.sleep(0.3)
        else:
            for p in workers.values():
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGUSR2)  # each worker prints its tasks' stacks
            time.sleep(1)
            logs = "".join(
                f.read_text(errors="replace")[-3000:] for f in tmp_path.glob("worker-*.log")
            )
            pytest.fail(f"the job did not finish in time: {st}\n{logs}")
        for p in workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "".join(f.read_text(errors="replace") for f in sorted(tmp_path.glob("worker-*.log")))
    assert killed == kills
    assert "Traceback" not in logs, logs[-5000:]
    assert logs.count("acquired (fencing token") > job.partitions, "no partition ever moved"
    want_alerts, want_state = reference_run(job, events, tmp_path)
    alerts, state = asyncio.run(cluster_result(redis_cluster, job, tmp_path))
    assert len(alerts) == len(want_alerts) > 0
    assert by_tx(alerts) == by_tx(want_alerts)
    assert state == sorted(want_state)
    st = asyncio.run(job_status(redis_cluster, job.name))
    assert sum(p["events"] for p in st["partitions"]) == total


def test_job_status_cli(redis_cluster: str, tmp_path: Path) -> None:
    job = fraud_job("clijob", 2)
    events = TransactionGenerator(20, seed=5).make(0, 300)

    async def run() -> None:
        async with Producer(redis_cluster, job) as prod:
            await prod.send(events)
            await prod.end()
        await Worker(redis_cluster, job, tmp_path / "w", tmp_path / "s", worker_id="c1").run()

    asyncio.run(run())
    out = subprocess.run(
        [sys.executable, "-m", "weir.cluster", "job", "status", "clijob", "--redis", redis_cluster],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "job clijob: 2 partitions" in out.stdout
    assert out.stdout.count("finished") == 2
    assert "total: 300 events, lag 0" in out.stdout
    js = subprocess.run(
        [
            sys.executable,
            "-m",
            "weir.cluster",
            "job",
            "status",
            "clijob",
            "--redis",
            redis_cluster,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(js.stdout)["partitions"][0]["finished"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "weir.cluster", "job", "status", "nojob", "--redis", redis_cluster],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "no job 'nojob'" in bad.stderr
    # The C tool hands `weir job` to this package (make test builds it first).
    weir_cli = ROOT / "build" / "weir"
    assert weir_cli.exists(), f"{weir_cli} is missing: build the C tool (make build)"
    via_c = subprocess.run(
        [str(weir_cli), "job", "status", "clijob", "--redis", redis_cluster],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WEIR_PYTHON": sys.executable},
    )
    assert via_c.returncode == 0 and "job clijob" in via_c.stdout, via_c.stderr
    for args in (["worker", "--help"], ["job", "status", "--help"]):
        h = subprocess.run(
            [sys.executable, "-m", "weir.cluster", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert h.returncode == 0 and "usage" in h.stdout.lower()


async def test_the_end_marker_is_left_for_the_next_owner(redis_cluster: str) -> None:
    # A pipeline stopped for a hand-over right after the batch holding the
    # end marker must not checkpoint an offset past it: the next owner
    # would wait for input forever instead of finishing.
    job = fraud_job("endmark", 1)
    async with Producer(redis_cluster, job) as prod:
        await prod.send([{"user_id": "u", "n": i} for i in range(3)])
        await prod.end()
    client = await connect(redis_cluster)
    try:
        keys = PartitionKeys("endmark", 0)
        first = PartitionSource(client, keys, "p0")
        await first.open(None)
        batch = await first.read(100)
        assert batch is not None and [e["n"] for e in batch.events] == [0, 1, 2]
        assert batch.offset["n"] == 3
        assert await first.read(100) is None
        second = PartitionSource(client, keys, "p0")
        await second.open(batch.offset)
        again = await second.read(100)
        assert again is not None and again.events == []
        assert await second.read(100) is None
    finally:
        await client.aclose()


def test_sigterm_hands_the_partitions_over_at_once(redis_cluster: str, tmp_path: Path) -> None:
    # A worker told to stop (SIGTERM) checkpoints, releases its leases and
    # exits 0; with a 60 s lease a second worker can only take over this
    # fast if the leases were released, not left to expire.
    job = fraud_job("term", 3)
    events = TransactionGenerator(50, seed=3).make(0, 3000)

    async def produce(end: bool) -> None:
        async with Producer(redis_cluster, job) as prod:
            await prod.send(events if not end else [])
            if end:
                await prod.end()

    asyncio.run(produce(end=False))
    env = {"WEIR_FRAUD_JOB": "term", "WEIR_FRAUD_PARTITIONS": "3"}
    log1 = tmp_path / "w1.log"
    w1 = start_worker(
        redis_cluster,
        FRAUD_MODULE,
        tmp_path / "work",
        tmp_path / "snap",
        "t1",
        log1,
        lease_ms=60000,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = _status_or_none(redis_cluster, "term")
            if (
                st
                and all(p["owner"] == "t1" for p in st["partitions"])
                and sum(p["events"] for p in st["partitions"]) == len(events)
            ):
                break
            assert w1.poll() is None, log1.read_text()
            time.sleep(0.2)
        else:
            pytest.fail(
                f"worker t1 did not take and checkpoint every partition: {log1.read_text()}"
            )
        w1.send_signal(signal.SIGTERM)
        assert w1.wait(timeout=30) == 0, log1.read_text()
    finally:
        if w1.poll() is None:
            w1.kill()
            w1.wait()
    st = asyncio.run(job_status(redis_cluster, "term"))
    assert all(p["owner"] is None and not p["finished"] for p in st["partitions"]), st
    assert "3 handed over, 0 lost" in log1.read_text()
    asyncio.run(produce(end=True))
    log2 = tmp_path / "w2.log"
    started = time.monotonic()
    w2 = start_worker(
        redis_cluster,
        FRAUD_MODULE,
        tmp_path / "work",
        tmp_path / "snap",
        "t2",
        log2,
        lease_ms=60000,
        env=env,
    )
    assert w2.wait(timeout=50) == 0, log2.read_text()
    assert time.monotonic() - started < 50
    st = asyncio.run(job_status(redis_cluster, "term"))
    assert all(p["finished"] for p in st["partitions"])
    assert sum(p["events"] for p in st["partitions"]) == len(events)
    want_alerts, want_state = reference_run(job, events, tmp_path)
    alerts, state = asyncio.run(cluster_result(redis_cluster, job, tmp_path))
    assert by_tx(alerts) == by_tx(want_alerts)
    assert state == sorted(want_state)


def _status_or_none(url: str, job: str) -> dict[str, Any] | None:
    """job_status, or None while no worker has registered the job yet."""
    try:
        return asyncio.run(job_status(url, job))
    except ClusterError:
        return None
