"""weir-worker and `weir job status` as a user meets them: without redis-py,
piped into `head`, with a metrics endpoint, their log lines and figures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from test_cluster import FRAUD_MODULE, TransactionGenerator, fraud_job
from weir.cluster import Job, PartitionKeys, Producer, Worker, job_status
from weir.cluster._redis import connect
from weir.cluster.local import start_worker

# redis-py is an optional extra: importing it must fail as in a venv
# without it (None in sys.modules makes `import redis` raise
# ModuleNotFoundError with name 'redis').
WITHOUT_REDIS = "import sys; sys.modules['redis'] = None; sys.argv[0] = 'weir-worker'; "


def test_weir_worker_without_redis_py_says_what_to_install(tmp_path: Path) -> None:
    for code in (
        WITHOUT_REDIS + "from weir.cluster.cli import worker_main; "
        f"sys.exit(worker_main(['{FRAUD_MODULE}', '--snapshot-dir', '{tmp_path}']))",
        WITHOUT_REDIS + "from weir.cluster.cli import main; sys.exit(main(['job', 'status', 'x']))",
    ):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert "pip install 'weirdb[cluster]'" in r.stderr
    # The library itself: a clear ImportError naming the extra.
    r = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS + "from weir.cluster import Worker"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "pip install 'weirdb[cluster]'" in r.stderr


def _run_job(url: str, name: str, partitions: int, n: int, tmp: Path) -> Job:
    job = fraud_job(name, partitions)
    events = TransactionGenerator(20, seed=5).make(0, n)

    async def run() -> None:
        async with Producer(url, job) as prod:
            await prod.send(events)
            await prod.end()
        await Worker(url, job, tmp / "w", tmp / "s", worker_id="c1").run()

    asyncio.run(run())
    return job


def test_job_status_piped_into_head_ends_quietly(redis_url: str, tmp_path: Path) -> None:
    _run_job(redis_url, "pipejob", 2, 200, tmp_path)
    for extra in (["--json"], []):
        proc = subprocess.Popen(
            [sys.executable, "-m", "weir.cluster", "job", "status", "pipejob",
             "--redis", redis_url, "--watch", "0.01", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()  # like `| head -1`: read a line, then go away
        proc.stdout.close()
        code = proc.wait(timeout=60)
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "BrokenPipeError" not in err, err
        assert code == 141, (code, err)


def test_weir_job_status_json_piped_into_head_through_the_c_tool(
    redis_url: str, tmp_path: Path
) -> None:
    """The issue's own command line: `weir job status --json | head`, the C
    tool handing over to this package, in a real shell pipeline."""
    weir_cli = Path(__file__).resolve().parents[2] / "build" / "weir"
    assert weir_cli.exists(), f"{weir_cli} is missing: build the C tool (make build)"
    _run_job(redis_url, "headjob", 2, 200, tmp_path)
    script = (
        f"'{weir_cli}' job status headjob --redis '{redis_url}' --json --watch 0.01 "
        f"2>'{tmp_path}/err' | head -3 >'{tmp_path}/out'; echo ${{PIPESTATUS[0]}}"
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WEIR_PYTHON": sys.executable},
    )
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err == "", err
    assert proc.stdout.strip() == "141", (proc.stdout, err)  # SIGPIPE's status, quietly
    lines = (tmp_path / "out").read_text().splitlines()
    assert len(lines) == 3 and lines[0] == "{" and '"job": "headjob"' in "".join(lines), lines


def test_job_status_figures_in_milliseconds_and_without_end_markers(
    redis_url: str, tmp_path: Path
) -> None:
    job = fraud_job("statusfig", 1)

    async def run() -> dict[str, Any]:
        async with Producer(redis_url, job) as prod:
            await prod.send([{"user_id": "u", "amount": 1.0, "n": i} for i in range(3)])
            await prod.end()
        client = await connect(redis_url)
        try:
            k = PartitionKeys("statusfig", 0)
            await client.hset("weir:{statusfig}:config", "partitions", 1)
            # A partition that read all 3 records (not finished yet: it was
            # handed over just before the end marker).
            last = (await client.xrange(k.input))[2][0].decode()
            record = {"id": 1, "offset": {"id": last, "n": 3}, "events": 3, "finished": False}
            await client.hset(k.state, "record", json.dumps(record))
            await client.zadd("weir:{statusfig}:members", {"m1": 0})
            sec, usec = await client.time()
            now_ms = int(sec) * 1000 + int(usec) // 1000
            await client.zadd("weir:{statusfig}:members", {"m1": now_ms + 1500})
        finally:
            await client.aclose()
        return await job_status(redis_url, "statusfig")

    st = asyncio.run(run())
    assert st["partitions"][0]["lag"] == 0
    [member] = st["workers"]
    assert 1000 < member["expires_in_ms"] <= 1500, member


def test_worker_log_lines_carry_timestamps(redis_url: str, tmp_path: Path) -> None:
    import io

    job = fraud_job("stamps", 1)
    buf = io.StringIO()

    async def run() -> None:
        async with Producer(redis_url, job) as prod:
            await prod.send([{"user_id": "u", "amount": 1.0}])
            await prod.end()
        await Worker(redis_url, job, tmp_path / "w", tmp_path / "s", log=buf).run()

    asyncio.run(run())
    lines = buf.getvalue().splitlines()
    assert lines
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d weir-worker ")
    assert all(stamp.match(line) for line in lines), lines


def test_weir_worker_serves_prometheus_metrics(redis_url: str, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    job = fraud_job("promjob", 2)
    events = TransactionGenerator(30, seed=4).make(0, 3000)

    async def produce() -> None:
        async with Producer(redis_url, job) as prod:
            await prod.send(events)

    asyncio.run(produce())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "w.log"
    env = {"WEIR_FRAUD_JOB": "promjob", "WEIR_FRAUD_PARTITIONS": "2"}
    with open(log, "wb") as out:
        w = subprocess.Popen(
            [sys.executable, "-m", "weir.cluster", "worker", str(FRAUD_MODULE), "--redis",
             redis_url, "--work-dir", str(tmp_path / "work"), "--snapshot-dir",
             str(tmp_path / "snap"), "--id", "m1", "--lease-ms", "1500",
             "--metrics-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
        )  # fmt: skip
    samples: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                continue
            samples = {
                s.name + json.dumps(s.labels, sort_keys=True): s.value
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
            }
            events_done = sum(
                v for k, v in samples.items() if k.startswith("weir_stream_events_total")
            )
            lags = [v for k, v in samples.items() if k.startswith("weir_stream_lag_events")]
            if events_done == len(events) and lags == [0, 0]:
                break  # (the lag is refreshed about once a second)
        assert w.poll() is None, log.read_text()
    finally:
        w.terminate()
        w.wait(60)
    assert samples, log.read_text()
    worker = '{"job": "promjob", "worker": "m1"}'
    assert samples["weir_worker_partitions_owned" + worker] == 2
    assert samples["weir_worker_partitions_acquired_total" + worker] == 2
    assert sum(v for k, v in samples.items() if k.startswith("weir_stream_events_total")) == 3000
    assert samples['weir_stream_lag_events{"job": "promjob", "partition": "0"}'] == 0
    assert any(k.startswith("weir_store_engine_writes_total") for k in samples)
    assert "metrics on http://127.0.0.1:" in log.read_text()


def test_a_worker_started_beside_a_busy_one_gets_partitions_at_once(
    redis_url: str, tmp_path: Path
) -> None:
    # Seen following docs/CLUSTER.md: the second worker joined only after
    # every partition had finished.
    job = fraud_job("joinjob", 4)
    events = TransactionGenerator(400, seed=8).make(0, 120_000)

    async def produce() -> None:
        async with Producer(redis_url, job) as prod:
            await prod.send(events)
            await prod.end()

    asyncio.run(produce())
    env = {"WEIR_FRAUD_JOB": "joinjob", "WEIR_FRAUD_PARTITIONS": "4"}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = start_worker(
        redis_url, FRAUD_MODULE, tmp_path / "work", tmp_path / "snap", "a", logs[0], env=env
    )
    b = None
    try:
        deadline = time.monotonic() + 60
        while logs[0].read_text().count("restored in") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        b = start_worker(
            redis_url, FRAUD_MODULE, tmp_path / "work", tmp_path / "snap", "b", logs[1], env=env
        )
        assert a.wait(timeout=180) == 0 and b.wait(timeout=180) == 0
    finally:
        for w in (a, b):
            if w is not None and w.poll() is None:
                w.kill()
                w.wait()
    a_log, b_log = (f.read_text() for f in logs)
    assert "acquired (fencing token" in b_log, (a_log[-3000:], b_log[-3000:])
    assert "handing over" in a_log, a_log[-3000:]
    st = asyncio.run(job_status(redis_url, "joinjob"))
    assert sum(p["events"] for p in st["partitions"]) == len(events)
